"""Benchmark: SOQL queries of the sandbox org over a large store.

Builds a sandbox store (the real ``Store``: its tables and indexes) with N accounts and 2N contacts
inserted directly, then times typical migration/sync queries through ``soql.execute`` and prints each
one's SQLite query plan, so a missing index shows up as a SCAN.

    .venv/bin/python benchmarks/soql_query.py            # 100,000 accounts, 200,000 contacts
    .venv/bin/python benchmarks/soql_query.py --accounts 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from crmbridge.sandbox.soql import compile_query, execute, flatten, to18
from crmbridge.sandbox.store import Store

STAMP = "2026-01-05T08:00:00.000+0000"


def _fill(store: Store, n_accounts: int) -> tuple[list[str], list[str]]:
    conn = store.conn()
    owner = store.admin_id
    accounts = [to18(f"001Sb{i:010d}") for i in range(n_accounts)]
    contacts = [to18(f"003Sb{i:010d}") for i in range(2 * n_accounts)]
    common = ("IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById",
              "OwnerId")
    base = (0, STAMP, STAMP, STAMP, owner, owner, owner)
    industries = ["Banking", "Retail", "Energy", None]
    with store.write() as c:
        cols = ", ".join(f'"{k}"' for k in ("Id", "Name", "Legacy_Id__c", "Industry", "NumberOfEmployees",
                                             "AnnualRevenue") + common)
        c.executemany(f'INSERT INTO "Account" ({cols}) VALUES ({", ".join("?" * 13)})',
                      [(a, f"Company {i}", f"L-{i}", industries[i % 4], i % 500, i * 10.5) + base
                       for i, a in enumerate(accounts)])
        cols = ", ".join(f'"{k}"' for k in ("Id", "LastName", "Legacy_Id__c", "AccountId", "Email") + common)
        c.executemany(f'INSERT INTO "Contact" ({cols}) VALUES ({", ".join("?" * 12)})',
                      [(ct, f"Name{i}", f"C-{i}", accounts[i // 2], f"p{i}@example.com") + base
                       for i, ct in enumerate(contacts)])
    conn.execute("ANALYZE")
    return accounts, contacts


def _time(store: Store, label: str, soql: str, repeat: int = 3) -> None:
    conn = store.conn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = execute(conn, store.schema, soql)
        rows = [flatten(r, res.columns) for r in res.records[:1]]
        best = min(best, time.perf_counter() - t0)
    compiled = compile_query(store.schema, soql)
    plan = " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.params))
    print(f"{label:<44} {best * 1000:9.1f} ms  rows={res.total_size:<7} plan: {plan}")
    assert rows is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "org.sqlite")
        t0 = time.perf_counter()
        accounts, _ = _fill(store, args.accounts)
        print(f"filled {args.accounts} accounts, {2 * args.accounts} contacts in {time.perf_counter() - t0:.1f} s")
        keys = ", ".join(f"'L-{i}'" for i in range(0, args.accounts, max(1, args.accounts // 2000)))
        ids = ", ".join(f"'{a}'" for a in accounts[::max(1, args.accounts // 2000)])
        _time(store, "COUNT() of all contacts", "SELECT COUNT() FROM Contact")
        _time(store, "all contacts + Account.Name + Owner", "SELECT Id, LastName, Email, Account.Name, "
              "Account.Owner.Username FROM Contact", repeat=1)
        big = compile_query(store.schema, "SELECT Id, LastName, Email, Account.Name, Account.Owner.Username "
                                          "FROM Contact")
        t0 = time.perf_counter()
        store.conn().execute(big.sql, big.params).fetchall()
        print(f"{'  of which SQLite fetch alone':<44} {(time.perf_counter() - t0) * 1000:9.1f} ms")
        _time(store, "accounts by 2000 external ids (IN)", f"SELECT Id, Legacy_Id__c FROM Account "
              f"WHERE Legacy_Id__c IN ({keys})")
        _time(store, "accounts by 2000 Ids (IN)", f"SELECT Id, Name FROM Account WHERE Id IN ({ids})")
        _time(store, "one account by external id", "SELECT Id FROM Account WHERE Legacy_Id__c = 'l-4242'")
        _time(store, "contacts of one account", f"SELECT Id FROM Contact WHERE AccountId = '{accounts[7]}'")
        _time(store, "contacts filtered on parent field", "SELECT Id FROM Contact WHERE Account.Industry = "
              "'banking' AND Account.NumberOfEmployees > 400")
        _time(store, "LIKE prefix", "SELECT Id, Name FROM Account WHERE Name LIKE 'company 99%'")
        _time(store, "ORDER BY text LIMIT 200 OFFSET 2000", "SELECT Id, Name FROM Account ORDER BY Name DESC "
              "LIMIT 200 OFFSET 2000")
        _time(store, "watermark: SystemModstamp > x ORDER BY", "SELECT Id FROM Account WHERE SystemModstamp > "
              "2026-01-05T07:00:00Z ORDER BY SystemModstamp LIMIT 2000")
        _time(store, "!= with nulls on 100k rows", "SELECT COUNT() FROM Account WHERE Industry != 'Retail'")
        store.close()


if __name__ == "__main__":
    main()
