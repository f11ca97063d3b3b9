"""Benchmark: `migrate` of 100k Accounts against a plain pandas + simple-salesforce Bulk 2.0 upsert.

Writes one legacy customer CSV (the demo's sales export, N companies), then in the same run:

1. the baseline, ``benchmarks/plain_bulk_load.py``: pandas reads the CSV, renames six columns and
   ``sf.bulk2.Account.upsert`` sends it to a fresh embedded sandbox org;
2. ``crmbridge migrate`` of a project whose only source is that CSV and whose only mapping is the
   template's Account mapping (extract -> validate -> map -> load -> reconcile), into its own fresh
   embedded sandbox org;
3. a second baseline: the same plain script upserting exactly the records migrate loaded (its
   ``map/Account.parquet`` as CSV, all mapped fields) into a third fresh org, so that the load +
   reconcile stages are compared with the org's own work on the same payload.

Prints the times, the ratios, the time per stage and the Salesforce API calls each side made, as
counted by the sandbox itself (``api_calls`` of the org: every authenticated ``/services/data``
request, as a real org's daily API limit counts them), per stage for migrate.

    .venv/bin/python benchmarks/migrate_100k.py [--customers 100000] [--dir DIR] [--org same|separate]

``--org separate`` starts each sandbox org in a process of its own (``crmbridge sandbox serve``), as a
real org never runs in the client's process: the org's work then takes neither the client's GIL nor
its CPU time; ``same`` (the default) serves them from threads of this process, as the embedded sandbox
that ``crmbridge migrate`` starts by default does.
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


def make_project(root: Path, csv_path: Path, org=None) -> None:
    """A project with the template's definition and Account mapping, reading only ``csv_path``;
    ``org``: a sandbox org already running in its own process (default: the embedded one)."""
    from crmbridge.templates.commands import init_project

    init_project(root, force=True)
    source = SOURCE.lstrip()
    if org is not None:
        source = source.replace("salesforce: {target: sandbox}", f"salesforce: {{target: sandbox, instance_url: "
                                f"'{org.instance_url}', ca_bundle: '{org.ca_bundle}'}}")
    (root / "crmbridge.yml").write_text(source, encoding="utf-8")
    for extra in ("contact.yml", "contract.yml"):
        (root / "mappings" / extra).unlink(missing_ok=True)
    (root / "data").mkdir(exist_ok=True)
    shutil.copy(csv_path, root / "data" / "sales_customers.csv")


def run_migrate_measured(root: Path, csv_path: Path, org_kind: str) -> dict:
    from sqlalchemy import select

    from plain_bulk_load import InProcessOrg, ProcessOrg

    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce.auth import embedded_sandbox
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.state import open_state, run_stages

    org = ProcessOrg(root.parent / "migrate-org.db") if org_kind == "separate" else None
    try:
        make_project(root, csv_path, org)
        project = load_project(root)
        if org is None:
            t = project.config.salesforce
            org = InProcessOrg(handle=embedded_sandbox(project.path(t.db), [], t.username, t.password))
        out = _measure(project, org, run_migrate, open_state, run_stages, select)
    finally:
        if isinstance(org, ProcessOrg):
            org.stop()
    return out


def _measure(project, org, run_migrate, open_state, run_stages, select) -> dict:
    calls0 = org.api_calls()
    marks: list[tuple[str, int, float, dict, float | None]] = []

    # CPU at each stage start: the process's with the org in a process of its own (the load's batch runs
    # in a thread of its own while the main thread works), else only this thread's (the org's threads
    # share the process)
    cpu = time.process_time if org.cpu_s() is not None else time.thread_time

    from calltrace import CallTrace

    trace = CallTrace()

    def mark(stage: str) -> None:  # API calls, client CPU, org job time and CPU at each stage start
        marks.append((stage, org.api_calls(), cpu(), org.job_ms(), org.cpu_s()))
        trace.stage(stage)

    t0 = time.perf_counter()
    with trace:
        result = run_migrate(project, new=True, on_stage=mark)
    elapsed = time.perf_counter() - t0
    mark("end")
    if getattr(org, "db", None) is not None:
        trace.read_org(org.db)
    root = project.root
    stage_calls = {a[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}
    stage_cpu = {a[0]: b[2] - a[2] for a, b in zip(marks, marks[1:])}
    stage_org = {a[0]: sum(b[3].values()) / 1000 - sum(a[3].values()) / 1000 for a, b in zip(marks, marks[1:])}
    stage_org_cpu = {a[0]: b[4] - a[4] for a, b in zip(marks, marks[1:]) if a[4] is not None}
    with open_state(project.state_url).connect() as c:
        stages = {r.stage: (r.finished_at - r.started_at).total_seconds() for r in
                  c.execute(select(run_stages).where(run_stages.c.run_id == result.run_id))}
    return {"result": result, "elapsed": elapsed, "stages": stages, "api_calls": marks[-1][1] - calls0,
            "client_calls": result.api_calls, "stage_calls": stage_calls, "stage_cpu": stage_cpu,
            "stage_org": stage_org, "stage_org_cpu": stage_org_cpu, "trace": trace,
            "query_ms": marks[-1][3].get("query", 0) - marks[0][3].get("query", 0),
            "load_file": root / "runs" / result.run_id / "map" / "Account.parquet"}


def load_file_csv(parquet: Path, out: Path) -> Path:
    """The records migrate loaded, as the CSV a plain script would upsert (Salesforce field names)."""
    import pandas as pd

    df = pd.read_parquet(parquet)
    df[[c for c in df.columns if not c.startswith("_")]].to_csv(out, index=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="folder to keep (default: a temporary one)")
    ap.add_argument("--org", choices=["same", "separate"], default="same",
                    help="every sandbox org in this process (as the embedded sandbox) or each in its own process")
    args = ap.parse_args()

    from plain_bulk_load import ORGS, plain_upsert, write_customers_csv

    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        # a kept folder holds the orgs' databases and the project's state: a second run would resume
        # into them (its load finds every record written and makes no call) and measure nothing
        sys.exit(f"migrate_100k: {args.dir} is not empty (an earlier run's orgs and state); give a new folder")
    load0 = os.getloadavg()
    base = args.dir or Path(tempfile.mkdtemp(prefix="migrate-100k-"))
    try:
        csv_path = base / "sales_customers.csv"
        n = write_customers_csv(csv_path, args.customers)
        (base / "plain").mkdir(parents=True, exist_ok=True)
        plain = plain_upsert(csv_path, base / "plain", org=args.org)
        mig = run_migrate_measured(base / "project", csv_path, args.org)
        (base / "same").mkdir(exist_ok=True)
        same = plain_upsert(load_file_csv(mig["load_file"], base / "same" / "mapped_accounts.csv"), base / "same",
                            columns=None, org=args.org)
        same["fields"] = len(pd_columns(mig["load_file"]))
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    r, stages = mig["result"], mig["stages"]
    lr = stages.get("load", 0.0) + stages.get("reconcile", 0.0)
    loaded = sum(e.loaded for e in r.entities)
    print(f"migrate of {n:,} legacy customers (one CSV) vs the plain bulk script, same machine, same run; "
          f"sandbox orgs in the {ORGS[args.org].where}")
    print(f"  load average:       {' '.join(f'{x:.2f}' for x in load0)} at the start, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end (1, 5, 15 min; 2 cores)")
    print(f"  plain script:       {plain['elapsed']:7.1f} s  {plain['written']:,} written, {plain['failed']} failed, "
          f"{plain['jobs']} job(s), {plain['api_calls']} API calls; org processing {plain['org_s']:.1f} s"
          + _cpu(plain))
    print(f"  crmbridge migrate:  {mig['elapsed']:7.1f} s")
    from crmbridge.migrations.pipeline import STAGES

    print("    stage               wall    API calls   client CPU   org processing (Bulk jobs)   org process CPU")
    for name, secs in sorted(stages.items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else 99):
        org_cpu = mig["stage_org_cpu"].get(name)
        print(f"    {name:<10}        {secs:7.1f} s  {mig['stage_calls'].get(name, 0):3d}        "
              f"{mig['stage_cpu'].get(name, 0.0):7.1f} s    {mig['stage_org'].get(name, 0.0):6.1f} s"
              + (f"                    {org_cpu:6.1f} s" if org_cpu is not None else ""))
    print(f"    of the org processing: reconcile's Bulk query job(s) {mig['query_ms'] / 1000:.2f} s (started during load)")
    for e in r.entities:
        print(f"  {e.entity}: extracted {e.extracted:,}, quarantined {e.quarantined:,}, loaded {e.loaded:,}, "
              f"rejected {e.rejected:,}; balanced: {r.balanced}, reconcile ok: {r.reconcile_ok}")
    print(f"  plain script, the same {same['rows']:,} mapped records ({same['fields']} fields): "
          f"{same['elapsed']:.1f} s, {same['written']:,} written, {same['failed']} failed, {same['api_calls']} API calls, "
          f"org processing {same['org_s']:.1f} s" + _cpu(same))
    print(f"  ratio migrate / plain:                          {mig['elapsed'] / plain['elapsed']:.2f}x")
    print(f"  ratio (load + reconcile) / plain:               {lr / plain['elapsed']:.2f}x")
    print(f"  ratio (load + reconcile) / plain, same records: {lr / same['elapsed']:.2f}x")
    lr_calls = mig["stage_calls"].get("load", 0) + mig["stage_calls"].get("reconcile", 0)
    print(f"  API calls (sandbox count), migrate:   {mig['api_calls']} in all, {lr_calls} in load + reconcile "
          f"({lr_calls / max(loaded, 1) * 100_000:.1f} per 100k records loaded and reconciled); "
          f"client count {mig['client_calls']}, logins included")
    print("  calls in load + reconcile (as this process sent them; times from the stage's start):")
    print("\n".join(mig["trace"].report(["load", "reconcile"])))


def _cpu(r: dict) -> str:
    if r["org_cpu"] is None:
        return f"; CPU {r['cpu']:.1f} s (client and org, one process)"
    return f"; CPU {r['cpu']:.1f} s client, {r['org_cpu']:.1f} s org process"


def pd_columns(parquet: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [c for c in pq.read_schema(parquet).names if not c.startswith("_")]


if __name__ == "__main__":
    main()
