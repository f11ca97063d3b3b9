"""Salesforce connector throughput against the local sandbox org: REST vs Bulk DML, REST vs Bulk query.

Prints rows/second and HTTP calls per run, to check the BULK_THRESHOLD choice on this machine:

    .venv/bin/python benchmarks/connector_dml.py [--rows 2000 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _rows(tag: str, n: int) -> list[dict]:
    return [{"Name": f"{tag} 上海明远贸易有限公司 {i}", "Legacy_Id__c": f"{tag}-{i}", "Phone": "021-6234 5678",
             "NumberOfEmployees": i % 500, "BillingCity": "上海"} for i in range(n)]


def _timed(conn, fn):
    calls, t0 = conn.api_calls, time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, conn.api_calls - calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[500, 2000, 10000])
    args = ap.parse_args()

    from crmbridge.config import SandboxTarget, SalesforceSettings
    from crmbridge.connectors.salesforce import connect_settings
    from crmbridge.connectors.salesforce.auth import stop_embedded_sandboxes

    work = Path(tempfile.mkdtemp(prefix="crmbridge-bench-"))
    conn = connect_settings(SandboxTarget(), SalesforceSettings(), base_dir=work)
    print(f"{'operation':<28}{'rows':>8}{'seconds':>10}{'rows/s':>10}{'calls':>8}")
    try:
        for n in args.rows:
            for api in ("rest", "bulk"):
                tag = f"B{api}{n}"
                for op in ("insert", "upsert"):
                    rows = _rows(tag + op[0], n)
                    kw = {"external_id_field": "Legacy_Id__c"} if op == "upsert" else {}
                    res, secs, calls = _timed(conn, lambda: conn.dml(op, "Account", rows, api=api, **kw))
                    ok = sum(r.success for r in res)
                    assert ok == n, f"{op} {api}: {n - ok} rows failed"
                    print(f"{op + ' ' + api:<28}{n:>8}{secs:>10.2f}{n / secs:>10.0f}{calls:>8}")
            soql = f"SELECT Id, Name, Legacy_Id__c FROM Account WHERE Legacy_Id__c LIKE 'Brest{n}i-%'"
            got, secs, calls = _timed(conn, lambda: sum(1 for _ in conn.query(soql)))
            print(f"{'query rest (streamed)':<28}{got:>8}{secs:>10.2f}{got / secs:>10.0f}{calls:>8}")
            got, secs, calls = _timed(conn, lambda: sum(1 for _ in conn.query_bulk(soql)))
            print(f"{'query bulk':<28}{got:>8}{secs:>10.2f}{got / secs:>10.0f}{calls:>8}")
    finally:
        conn.close()
        stop_embedded_sandboxes()


if __name__ == "__main__":
    main()
