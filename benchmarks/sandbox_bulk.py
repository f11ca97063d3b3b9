"""Benchmark: Bulk API 2.0 insert and upsert of 100k Accounts into the sandbox through the real
simple-salesforce client over HTTPS, then reconcile's Bulk query of them. Prints rows/s for each.

The query (the shape of reconcile's read-back, ``migrations/readback.window_query``) runs against the
same database served by ``crmbridge sandbox serve`` in a process of its own, so that the org's CPU is its
own: per run the job's processing time (``totalProcessingTime``), the org process's CPU from the job's
creation to JobComplete, and the results download (pages of 200,000 records, as reconcile asks).
``--query-db`` queries an existing org instead (for instance the one ``migrate_100k.py --dir`` keeps,
copied first; its last query job's SOQL is reused, so it is reconcile's own query).

    .venv/bin/python benchmarks/sandbox_bulk.py [--rows 100000] [--query-runs 3]
    .venv/bin/python benchmarks/sandbox_bulk.py --query-db DIR/migrate-org.db --query-runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The read-back of migrate_100k's Account mapping when the org has no query job of its own to repeat.
RECONCILE_SOQL = ("SELECT Id, Legacy_Id__c, Name, Industry, NumberOfEmployees, AnnualRevenue, BillingCity FROM Account "
                  "WHERE Legacy_Id__c != null AND LastModifiedDate >= 2000-01-01T00:00:00Z")


def _csv(rows: int, suffix: str) -> str:
    lines = ["Name,Legacy_Id__c,Industry,NumberOfEmployees,AnnualRevenue,BillingCity"]
    lines += [f"Company {i} {suffix},BENCH{i},Manufacturing,{i % 5000},{i * 10.5},Shanghai" for i in range(rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--query-runs", type=int, default=3, help="runs of reconcile's Bulk query (0: none)")
    parser.add_argument("--query-db", type=Path, default=None, help="query a copy of this org db; no ingest")
    args = parser.parse_args()
    if args.query_db is not None:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "org.db"
            for suffix in ("", "-wal"):
                if Path(f"{args.query_db}{suffix}").exists():
                    shutil.copy(f"{args.query_db}{suffix}", f"{db}{suffix}")
            query_runs(db, args.query_runs)
        return
    from simple_salesforce import Salesforce

    from crmbridge.sandbox.server import start_sandbox

    with tempfile.TemporaryDirectory() as tmp:
        h = start_sandbox(Path(tmp) / "bench.db")
        try:
            sf = Salesforce(instance_url=h.instance_url, session_id=h.new_session(), session=h.session())
            first, second = Path(tmp) / "insert.csv", Path(tmp) / "upsert.csv"
            first.write_text(_csv(args.rows, "a"), encoding="utf-8")
            second.write_text(_csv(args.rows, "b"), encoding="utf-8")
            for label, call in (
                ("insert", lambda: sf.bulk2.Account.insert(csv_file=str(first), wait=0.05)),
                ("upsert", lambda: sf.bulk2.Account.upsert(csv_file=str(second), external_id_field="Legacy_Id__c",
                                                           wait=0.05)),
            ):
                started = time.perf_counter()
                res = call()
                took = time.perf_counter() - started
                failed = sum(r["numberRecordsFailed"] for r in res)
                done = sum(r["numberRecordsProcessed"] for r in res)
                # The client's wall time includes simple-salesforce's polling back-off (its sleeps grow
                # exponentially up to several seconds); the job's own processing time is the server's work.
                server_s = sum(sf.bulk2.Account._client.get_job(r["job_id"], False)["totalProcessingTime"]
                               for r in res) / 1000
                print(f"bulk2 {label:6s} {done:>8,} rows  {failed} failed  client {took:6.2f} s "
                      f"({done / took:>8,.0f} rows/s)  server {server_s:6.2f} s ({done / server_s:>8,.0f} rows/s)")
            count = sf.query("SELECT COUNT() FROM Account")["totalSize"]
            print(f"accounts in org: {count:,}")
        finally:
            h.stop()
        if args.query_runs:
            query_runs(Path(tmp) / "bench.db", args.query_runs)


def query_runs(db: Path, runs: int) -> None:
    """Reconcile's Bulk query against ``db`` served in a process of its own, ``runs`` times."""
    import requests
    from plain_bulk_load import ProcessOrg
    from simple_salesforce import Salesforce
    from simple_salesforce.bulk2 import Operation

    with sqlite3.connect(db) as c:
        last = c.execute("SELECT query FROM _sandbox_jobs WHERE kind='query' ORDER BY created_date DESC "
                         "LIMIT 1").fetchone()
    soql = last[0] if last else RECONCILE_SOQL
    print(f"bulk2 query: {soql[:100]}{'...' if len(soql) > 100 else ''}")
    org = ProcessOrg(db)
    try:
        session = requests.Session()
        session.trust_env, session.verify = False, org.ca_bundle
        sf = Salesforce(instance_url=org.instance_url, session_id=org.session_id(), session=session)
        client = sf.bulk2.Account._client
        for run in range(1, runs + 1):
            load, cpu0, t0 = os.getloadavg()[0], org.cpu_s(), time.perf_counter()
            job = client.create_job(Operation.query, soql)["id"]
            while (info := client.get_job(job, True))["state"] not in ("JobComplete", "Failed", "Aborted"):
                time.sleep(0.05)
            cpu1, t1 = org.cpu_s(), time.perf_counter()
            rows, locator = 0, ""
            while True:
                page = client.get_query_results(job, locator, 200_000)
                rows += page["number_of_records"]
                locator = page["locator"]
                if not locator:
                    break
            cpu2, t2 = org.cpu_s(), time.perf_counter()
            took = info["totalProcessingTime"] / 1000
            print(f"  run {run}: {info['state']} {rows:,} rows; job processing {took:5.2f} s "
                  f"(org CPU {cpu1 - cpu0:5.2f} s, wall to JobComplete seen {t1 - t0:5.2f} s); results download "
                  f"wall {t2 - t1:5.2f} s, org CPU {cpu2 - cpu1:5.2f} s; load average {load:.2f}")
    finally:
        org.stop()


if __name__ == "__main__":
    main()
