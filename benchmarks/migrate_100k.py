"""Benchmark: `migrate` of 100k Accounts against a plain pandas + simple-salesforce Bulk 2.0 upsert.

Writes one legacy customer CSV (the demo's sales export, N companies), then in the same run:

1. the baseline, ``benchmarks/plain_bulk_load.py``: pandas reads the CSV, renames six columns and
   ``sf.bulk2.Account.upsert`` sends it to a fresh embedded sandbox org;
2. ``crmbridge migrate`` of a project whose only source is that CSV and whose only mapping is the
   template's Account mapping (extract -> validate -> map -> load -> reconcile), into its own fresh
   embedded sandbox org.

Prints both times, the ratio (whole migrate, and load + reconcile alone), the time per stage and
the Salesforce API calls each side made, as counted by the sandbox itself (``api_calls`` of the
org, which counts every authenticated ``/services/data`` request as a real org's daily limit does).

    .venv/bin/python benchmarks/migrate_100k.py [--customers 100000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SOURCE = """
name: migrate-100k
salesforce: {target: sandbox}
sources:
  - name: sales_customers
    entity: customers
    department: sales
    type: csv
    path: data/sales_customers.csv
    encoding: auto
    delimiter: auto
    key: customer_no
    columns: {客户编号: customer_no, 客户名称: name, 统一社会信用代码: credit_code, 电话: phone, 邮箱: email,
              地址: address, 城市: city, 省份: province, 邮编: postal_code, 国家: country, 行业: industry,
              状态: status, 销售代表: sales_rep, 创建日期: created_on, 年营业额: annual_revenue,
              商机数: open_opportunities}
chunk_rows: 50000
"""


def make_project(root: Path, csv_path: Path) -> None:
    """A project with the template's definition and Account mapping, reading only ``csv_path``."""
    from crmbridge.templates.commands import init_project

    init_project(root, force=True)
    (root / "crmbridge.yml").write_text(SOURCE.lstrip(), encoding="utf-8")
    for extra in ("contact.yml", "contract.yml"):
        (root / "mappings" / extra).unlink(missing_ok=True)
    (root / "data").mkdir(exist_ok=True)
    shutil.copy(csv_path, root / "data" / "sales_customers.csv")


def run_migrate_measured(root: Path) -> dict:
    from sqlalchemy import select

    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce.auth import embedded_sandbox
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.state import open_state, run_stages

    project = load_project(root)
    t = project.config.salesforce
    org = embedded_sandbox(project.path(t.db), [], t.username, t.password).server.app
    calls0 = org.api_calls
    t0 = time.perf_counter()
    result = run_migrate(project, new=True)
    elapsed = time.perf_counter() - t0
    with open_state(project.state_url).connect() as c:
        stages = {r.stage: (r.finished_at - r.started_at).total_seconds() for r in
                  c.execute(select(run_stages).where(run_stages.c.run_id == result.run_id))}
    return {"result": result, "elapsed": elapsed, "stages": stages, "api_calls": org.api_calls - calls0,
            "client_calls": result.api_calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="folder to keep (default: a temporary one)")
    args = ap.parse_args()

    from plain_bulk_load import plain_upsert, write_customers_csv

    base = args.dir or Path(tempfile.mkdtemp(prefix="migrate-100k-"))
    try:
        csv_path = base / "sales_customers.csv"
        n = write_customers_csv(csv_path, args.customers)
        (base / "plain").mkdir(parents=True, exist_ok=True)
        plain = plain_upsert(csv_path, base / "plain")
        make_project(base / "project", csv_path)
        mig = run_migrate_measured(base / "project")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    r, stages = mig["result"], mig["stages"]
    lr = stages.get("load", 0.0) + stages.get("reconcile", 0.0)
    loaded = sum(e.loaded for e in r.entities)
    print(f"migrate of {n:,} legacy customers (one CSV) vs the plain bulk script, same machine, same run")
    print(f"  load average:       {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; 2 cores)")
    print(f"  plain script:       {plain['elapsed']:7.1f} s  {plain['written']:,} written, {plain['failed']} failed, "
          f"{plain['jobs']} job(s), {plain['api_calls']} API calls")
    print(f"  crmbridge migrate:  {mig['elapsed']:7.1f} s")
    for name, secs in stages.items():
        print(f"    {name:<10}        {secs:7.1f} s")
    for e in r.entities:
        print(f"  {e.entity}: extracted {e.extracted:,}, quarantined {e.quarantined:,}, loaded {e.loaded:,}, "
              f"rejected {e.rejected:,}; balanced: {r.balanced}, reconcile ok: {r.reconcile_ok}")
    print(f"  ratio migrate / plain:                {mig['elapsed'] / plain['elapsed']:.2f}x")
    print(f"  ratio (load + reconcile) / plain:     {lr / plain['elapsed']:.2f}x")
    print(f"  API calls (sandbox count), migrate:   {mig['api_calls']} "
          f"({mig['api_calls'] / max(loaded, 1) * 100_000:.1f} per 100k records loaded and reconciled; "
          f"client count {mig['client_calls']}, logins included)")


if __name__ == "__main__":
    main()
