"""Baseline: bulk-load the demo's customers and contacts with plain simple-salesforce, no validation.

What a quick script would do: build one Account per legacy customer and one Contact per legacy
contact straight from the generator's records (no cleaning, no ledger, no journal, no reconcile),
upsert them through Bulk API 2.0 into a fresh embedded sandbox org, and time it. Prints records/s,
Salesforce API calls and peak memory, to put ``benchmarks/migrate_100k.py`` in perspective.

    .venv/bin/python benchmarks/plain_bulk_load.py [--customers 100000]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=20231105)
    args = ap.parse_args()

    import requests
    from simple_salesforce import Salesforce

    from crmbridge.migrations.demo_data import _person, build_companies
    from crmbridge.sandbox.server import start_sandbox

    rng = random.Random(args.seed)
    companies = build_companies(args.customers, rng)
    accounts = [{"Legacy_Id__c": c.no, "Name": c.name, "BillingCity": c.city[0], "Phone": c.landline,
                 "AnnualRevenue": str(c.revenue)} for c in companies]
    contacts = [{"Legacy_Id__c": f"P{i:07d}", "LastName": _person(rng) or "-", "Account.Legacy_Id__c": c.no}
                for i, c in enumerate(companies, 1)]

    with tempfile.TemporaryDirectory(prefix="plain-bulk-") as tmp:
        handle = start_sandbox(Path(tmp) / "org.db")
        calls = {"n": 0}
        session = requests.Session()
        session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would override verify=
        session.verify = handle.ca_bundle
        session.hooks["response"].append(lambda r, *a, **k: calls.__setitem__("n", calls["n"] + 1))
        sf = Salesforce(instance_url=handle.instance_url, session_id=handle.new_session(), session=session,
                        version="62.0")
        t0 = time.perf_counter()
        res_a = sf.bulk2.Account.upsert(records=accounts, external_id_field="Legacy_Id__c", wait=1)
        res_c = sf.bulk2.Contact.upsert(records=contacts, external_id_field="Legacy_Id__c", wait=1)
        elapsed = time.perf_counter() - t0
        ok = sum(int(r.get("numberRecordsProcessed", 0)) - int(r.get("numberRecordsFailed", 0)) for r in res_a + res_c)
        handle.stop()
    n = len(accounts) + len(contacts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"plain simple-salesforce Bulk 2.0 upsert: {len(accounts)} accounts + {len(contacts)} contacts")
    print(f"  records written:  {ok} of {n}")
    print(f"  elapsed:          {elapsed:.1f} s")
    print(f"  records/s:        {n / elapsed:,.0f}")
    print(f"  API calls:        {calls['n']}")
    print(f"  peak memory:      {peak:,.0f} MB (this process, embedded sandbox included)")


if __name__ == "__main__":
    main()
