"""Baseline: what a quick script does with a legacy customer CSV: pandas + simple-salesforce Bulk 2.0.

Reads the CSV with pandas, renames a handful of columns to Account fields (no cleaning, no
validation, no ledger, no journal, no reconcile) and upserts it on ``Legacy_Id__c`` with
``sf.bulk2.Account.upsert`` into a fresh embedded sandbox org. Prints the elapsed time, records/s
and the API calls the sandbox counted. ``benchmarks/migrate_100k.py`` runs it as its baseline.

    .venv/bin/python benchmarks/plain_bulk_load.py CSV        # e.g. a sales_customers.csv
    .venv/bin/python benchmarks/plain_bulk_load.py --customers 100000   # generate one first
    .venv/bin/python benchmarks/plain_bulk_load.py --org separate CSV  # the org in a process of its own
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


class InProcessOrg:
    """A sandbox org served by threads of this process (as ``crmbridge``'s embedded sandbox is): its
    work shares this process's two cores and its GIL with the client's."""

    where = "same process"

    def __init__(self, db: Path | None = None, handle=None):
        from crmbridge.sandbox.server import start_sandbox

        self.handle = handle or start_sandbox(db)
        self.instance_url, self.ca_bundle = self.handle.instance_url, str(self.handle.ca_bundle)

    def session_id(self) -> str:
        return self.handle.new_session()

    def api_calls(self) -> int:
        return self.handle.app.api_calls

    def job_ms(self) -> dict[str, int]:
        return _job_ms(self.handle.app.store.conn())

    def cpu_s(self) -> float | None:
        return None  # in the client's own process time

    def stop(self) -> None:
        self.handle.stop()


class ProcessOrg:
    """A sandbox org in a process of its own (``crmbridge sandbox serve``), as a real org is never in the
    client's: its work no longer takes the client's GIL. The API calls are read from its ``/limits``
    (those reads not counted) and the Bulk job times from its database file."""

    where = "separate process"

    def __init__(self, db: Path):
        import json
        import subprocess
        import sys

        db.parent.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.proc = subprocess.Popen([sys.executable, "-m", "crmbridge", "sandbox", "serve", "--json", "--port", "0",
                                      "--db", str(db)], stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.instance_url, self.ca_bundle = info["instance_url"], info["ca_bundle"]
        self.username, self.password = info["username"], info["password"]
        self._probes = 0
        self._session = None

    def session_id(self) -> str:
        import requests

        s = requests.Session()
        s.trust_env, s.verify = False, self.ca_bundle
        r = s.post(f"{self.instance_url}/services/oauth2/token",
                   data={"grant_type": "password", "username": self.username, "password": self.password})
        r.raise_for_status()
        return r.json()["access_token"]

    def api_calls(self) -> int:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env, self._session.verify = False, self.ca_bundle
            self._session.headers["Authorization"] = f"Bearer {self.session_id()}"
        r = self._session.get(f"{self.instance_url}/services/data/v62.0/limits")
        r.raise_for_status()
        self._probes += 1
        used = r.json()["DailyApiRequests"]
        return used["Max"] - used["Remaining"] - self._probes

    def job_ms(self) -> dict[str, int]:
        import sqlite3

        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
            return _job_ms(c)

    def cpu_s(self) -> float:
        """CPU seconds the org process used so far (user + system)."""
        import os

        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


ORGS = {"same": InProcessOrg, "separate": ProcessOrg}


def plain_upsert(csv_path: Path, workdir: Path, columns: dict | None = COLUMNS, org: str = "same") -> dict:
    """Upsert ``csv_path`` into a fresh sandbox org the plain way; returns figures of the run.

    ``columns``: legacy header -> field to keep; None: the CSV already has Salesforce field names.
    ``org``: "same" (the org in this process) or "separate" (in its own process)."""
    import pandas as pd
    import requests
    from simple_salesforce import Salesforce

    handle = ORGS[org](workdir / f"plain-org-{csv_path.stem}.db")
    try:
        session = requests.Session()
        session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would override verify=
        session.verify = handle.ca_bundle
        sf = Salesforce(instance_url=handle.instance_url, session_id=handle.session_id(), session=session,
                        version="62.0")
        calls0 = handle.api_calls()
        org_cpu0 = handle.cpu_s()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        df = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
        if columns:
            df = df[list(columns)].rename(columns=columns)
        out = workdir / "plain-accounts.csv"
        df.to_csv(out, index=False)
        res = sf.bulk2.Account.upsert(csv_file=str(out), external_id_field="Legacy_Id__c", wait=1)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        calls = handle.api_calls() - calls0
        org_cpu = handle.cpu_s() - org_cpu0 if org_cpu0 is not None else None
        org_ms = handle.job_ms()
        failed = sum(int(r.get("numberRecordsFailed", 0)) for r in res)
        processed = sum(int(r.get("numberRecordsProcessed", 0)) for r in res)
    finally:
        handle.stop()
    return {"rows": len(df), "written": processed - failed, "failed": failed, "elapsed": elapsed,
            "api_calls": calls, "jobs": len(res), "org_s": org_ms.get("ingest", 0) / 1000, "cpu": cpu,
            "org_cpu": org_cpu}


def _job_ms(conn) -> dict[str, int]:
    """Milliseconds the sandbox org spent processing Bulk jobs, per kind (ingest, query): the org's own
    share of a load, the same for any client."""
    rows = conn.execute("SELECT kind, SUM(processing_ms) FROM _sandbox_jobs GROUP BY kind").fetchall()
    return {k: int(v or 0) for k, v in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, help="legacy customer CSV (default: generate one)")
    ap.add_argument("--customers", type=int, default=100_000, help="rows to generate when no CSV is given")
    ap.add_argument("--org", choices=sorted(ORGS), default="same", help="the sandbox org in this process or its own")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="plain-bulk-") as tmp:
        csv_path = args.csv
        if csv_path is None:
            csv_path = Path(tmp) / "sales_customers.csv"
            write_customers_csv(csv_path, args.customers)
        r = plain_upsert(csv_path, Path(tmp), org=args.org)
    print(f"plain pandas + simple-salesforce Bulk 2.0 upsert of {csv_path.name} (org in the {ORGS[args.org].where})")
    print(f"  records written:  {r['written']} of {r['rows']} ({r['failed']} failed) in {r['jobs']} job(s)")
    print(f"  elapsed:          {r['elapsed']:.1f} s ({r['rows'] / r['elapsed']:,.0f} records/s)")
    print(f"  API calls:        {r['api_calls']} (counted by the sandbox)")
    print(f"  CPU:              {r['cpu']:.1f} s this process" + (f", {r['org_cpu']:.1f} s the org's process"
                                                               if r["org_cpu"] is not None else ""))


if __name__ == "__main__":
    main()
