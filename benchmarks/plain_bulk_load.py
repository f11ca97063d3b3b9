"""Baseline: what a quick script does with a legacy customer CSV: pandas + simple-salesforce Bulk 2.0.

Reads the CSV with pandas, renames a handful of columns to Account fields (no cleaning, no
validation, no ledger, no journal, no reconcile) and upserts it on ``Legacy_Id__c`` with
``sf.bulk2.Account.upsert`` into a fresh embedded sandbox org. Prints the elapsed time, records/s
and the API calls the sandbox counted. ``benchmarks/migrate_100k.py`` runs it as its baseline.

    .venv/bin/python benchmarks/plain_bulk_load.py CSV        # e.g. a sales_customers.csv
    .venv/bin/python benchmarks/plain_bulk_load.py --customers 100000   # generate one first
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# legacy header -> Account field: the columns a quick script would take over as they are
COLUMNS = {"客户编号": "Legacy_Id__c", "客户名称": "Name", "电话": "Phone", "地址": "BillingStreet",
           "城市": "BillingCity", "省份": "BillingState"}


def write_customers_csv(path: Path, customers: int, seed: int = 20231105) -> int:
    """The demo's sales export for ``customers`` companies (every one of them in it)."""
    import random

    from crmbridge.migrations.demo_data import build_companies, write_sales

    rng = random.Random(seed)
    companies = build_companies(customers, rng)
    for c in companies:
        c.departments = ["sales"]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_sales(path, companies, rng)


def plain_upsert(csv_path: Path, workdir: Path, columns: dict | None = COLUMNS) -> dict:
    """Upsert ``csv_path`` into a fresh sandbox org the plain way; returns figures of the run.

    ``columns``: legacy header -> field to keep; None: the CSV already has Salesforce field names."""
    import pandas as pd
    import requests
    from simple_salesforce import Salesforce

    from crmbridge.sandbox.server import start_sandbox

    handle = start_sandbox(workdir / f"plain-org-{csv_path.stem}.db")
    try:
        session = requests.Session()
        session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would override verify=
        session.verify = handle.ca_bundle
        sf = Salesforce(instance_url=handle.instance_url, session_id=handle.new_session(), session=session,
                        version="62.0")
        app = handle.app
        calls0 = app.api_calls
        t0 = time.perf_counter()
        df = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
        if columns:
            df = df[list(columns)].rename(columns=columns)
        out = workdir / "plain-accounts.csv"
        df.to_csv(out, index=False)
        res = sf.bulk2.Account.upsert(csv_file=str(out), external_id_field="Legacy_Id__c", wait=1)
        elapsed = time.perf_counter() - t0
        calls = app.api_calls - calls0
        org_ms = org_job_ms(app)
        failed = sum(int(r.get("numberRecordsFailed", 0)) for r in res)
        processed = sum(int(r.get("numberRecordsProcessed", 0)) for r in res)
    finally:
        handle.stop()
    return {"rows": len(df), "written": processed - failed, "failed": failed, "elapsed": elapsed,
            "api_calls": calls, "jobs": len(res), "org_s": org_ms.get("ingest", 0) / 1000}


def org_job_ms(app) -> dict[str, int]:
    """Milliseconds the sandbox org spent processing Bulk jobs, per kind (ingest, query): the org's own
    share of a load, the same for any client."""
    rows = app.store.conn().execute("SELECT kind, SUM(processing_ms) FROM _sandbox_jobs GROUP BY kind").fetchall()
    return {k: int(v or 0) for k, v in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, help="legacy customer CSV (default: generate one)")
    ap.add_argument("--customers", type=int, default=100_000, help="rows to generate when no CSV is given")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="plain-bulk-") as tmp:
        csv_path = args.csv
        if csv_path is None:
            csv_path = Path(tmp) / "sales_customers.csv"
            write_customers_csv(csv_path, args.customers)
        r = plain_upsert(csv_path, Path(tmp))
    print(f"plain pandas + simple-salesforce Bulk 2.0 upsert of {csv_path.name}")
    print(f"  records written:  {r['written']} of {r['rows']} ({r['failed']} failed) in {r['jobs']} job(s)")
    print(f"  elapsed:          {r['elapsed']:.1f} s ({r['rows'] / r['elapsed']:,.0f} records/s)")
    print(f"  API calls:        {r['api_calls']} (counted by the sandbox)")


if __name__ == "__main__":
    main()
