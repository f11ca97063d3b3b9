"""Benchmark: Bulk API 2.0 insert and upsert of 100k Accounts into the sandbox through the real
simple-salesforce client over HTTPS. Prints rows/s for each.

    .venv/bin/python benchmarks/sandbox_bulk.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _csv(rows: int, suffix: str) -> str:
    lines = ["Name,Legacy_Id__c,Industry,NumberOfEmployees,AnnualRevenue,BillingCity"]
    lines += [f"Company {i} {suffix},BENCH{i},Manufacturing,{i % 5000},{i * 10.5},Shanghai" for i in range(rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
