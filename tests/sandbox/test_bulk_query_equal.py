"""Bulk 2.0 query jobs answer byte for byte as before bulk_query (tests/sandbox/bulk_query_reference.py).

Tricky data (quotes, delimiters, line breaks, CJK, empty strings, nulls, numbers of every shape, text
where a number is stored, null parents, deleted rows) and many generated queries, each with a random
delimiter, line ending and paging: the job info JSON, every results page's bytes and its Sforce-Locator /
Sforce-NumberOfRecords headers over HTTPS against the reference run on a copy of the same job, which
the server then also serves from the old one-row-per-record layout (a database of an older sandbox).
"""

from __future__ import annotations

import base64
import random
import time
from types import SimpleNamespace

import pytest

from crmbridge.sandbox import bulk_query, ids, soql
from crmbridge.sandbox.bulk_io import DELIMITERS, ENDINGS, job_info
from crmbridge.sandbox.soql import to18
from tests.sandbox import bulk_query_reference as reference

V = "/services/data/v62.0/jobs/query"
STAMP = "2026-01-05T08:00:00.000+0000"
TEXTS = ["plain", "with,comma", 'with "quote"', '"', '""', "line\nbreak", "crlf\r\nbreak", "cr\ronly", "tab\there",
         "pipe|semi;caret^back`", "深圳长城制造有限公司", "🙂 emoji", " lead", "trail ", "", None, "'single'", "\\back",
         "null", "=1+1", "0", "-1.5", "x" * 300]
REALS = [None, 0.0, 1.5, -2.25, 1e16, 123456789.123, 0.1 + 0.2, 1e-7, 5, "", 37505000.0]
INTS = [None, 0, 7, -3, 2 ** 40, "", 2.5]

FIELDS = {
    "Account": ["Id", "Name", "Legacy_Id__c", "Industry", "Phone", "Description", "BillingStreet", "AnnualRevenue",
                "NumberOfEmployees", "IsDeleted", "OwnerId", "ParentId", "CreatedDate", "Parent.Name",
                "Parent.AnnualRevenue", "Parent.IsDeleted", "Parent.Parent.Industry", "Owner.Username"],
    "Contact": ["Id", "LastName", "FirstName", "Email", "Birthdate", "AccountId", "Account.Name",
                "Account.IsDeleted", "Account.NumberOfEmployees", "Account.AnnualRevenue", "Account.Parent.Name",
                "Legacy_Id__c", "Description"],
    "Product2": ["Id", "Name", "IsActive", "Quantity_On_Hand__c", "Family", "ProductCode", "IsDeleted"],
}
WHERES = {
    "Account": ["", "WHERE Name LIKE '%a%'", "WHERE AnnualRevenue > 0", "WHERE Name = 'no such name'",
                "WHERE Industry IN ('Banking', 'Retail') OR NumberOfEmployees = null",
                "WHERE Legacy_Id__c != null AND LastModifiedDate >= 2020-01-01T00:00:00Z"],
    "Contact": ["", "WHERE AccountId = null", "WHERE Account.Name != null", "WHERE LastName LIKE 'L1%'"],
    "Product2": ["", "WHERE IsActive = true", "WHERE IsActive = false", "WHERE Quantity_On_Hand__c < 10"],
}
ORDERS = ["", "ORDER BY Name", "ORDER BY Id DESC", "ORDER BY CreatedDate, Id"]
BAD = ["SELECT Nope FROM Account", "SELECT Name FROM Nothing", "SELECT Name FROM Account WHERE",
       "SELECT Name, Name FROM Account", "SELECT Account FROM Contact", "SELECT Name FROM Account WHERE Name > 5"]


def _fill(store) -> None:
    rnd = random.Random(14)
    owner = store.admin_id
    common = ["CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById"]
    base = (STAMP, STAMP, STAMP, owner, owner)
    accounts = [to18(f"001Eq{i:010d}") for i in range(120)]
    with store.write() as c:
        def insert(table, names, rows):
            cols = ", ".join(f'"{k}"' for k in names + common)
            c.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * (len(names) + len(common)))})',
                          [r + base for r in rows])

        insert("Account", ["Id", "Name", "Legacy_Id__c", "Industry", "Phone", "Description", "BillingStreet",
                           "AnnualRevenue", "NumberOfEmployees", "IsDeleted", "OwnerId", "ParentId"],
               [(a, f"Acc {i} {rnd.choice([t for t in TEXTS if t])}", f"L{i}" if i % 9 else None,
                 rnd.choice(["Banking", "Retail", "Energy", None]), rnd.choice(TEXTS), rnd.choice(TEXTS),
                 rnd.choice(TEXTS), rnd.choice(REALS), rnd.choice(INTS), int(i % 17 == 0), owner,
                 accounts[i // 3] if i % 4 else None) for i, a in enumerate(accounts)])
        insert("Contact", ["Id", "LastName", "FirstName", "Email", "Birthdate", "AccountId", "Legacy_Id__c",
                           "Description", "IsDeleted", "OwnerId"],
               [(to18(f"003Eq{i:010d}"), f"L{i}", rnd.choice(TEXTS), rnd.choice(["a@b.cn", None, ""]),
                 rnd.choice(["1990-01-02", None]), rnd.choice(accounts) if i % 3 else None, f"C{i}",
                 rnd.choice(TEXTS), int(i % 23 == 0), owner) for i in range(150)])
        insert("Product2", ["Id", "Name", "IsActive", "Quantity_On_Hand__c", "Family", "ProductCode", "IsDeleted"],
               [(to18(f"01tEq{i:010d}"), rnd.choice([t for t in TEXTS if t]), rnd.choice([0, 1, None]),
                 rnd.choice(REALS), rnd.choice(["Hardware", None]), rnd.choice(TEXTS), int(i % 11 == 0))
                for i in range(40)])


def _queries(n: int) -> list[tuple[str, str]]:
    rnd = random.Random(2026)
    out = [("query", q) for q in BAD]
    out.append(("query", "SELECT Name, NumberOfEmployees FROM Account WHERE NumberOfEmployees != null LIMIT 3"))
    for _ in range(n):
        obj = rnd.choice(list(FIELDS))
        fields = rnd.sample(FIELDS[obj], rnd.randint(1, len(FIELDS[obj])))
        order = rnd.choice(ORDERS) if obj != "Contact" else rnd.choice(["", "ORDER BY LastName DESC"])
        limit = rnd.choice(["", "", "LIMIT 5", "LIMIT 1"])
        soql_text = " ".join(p for p in (f"SELECT {', '.join(fields)} FROM {obj}", rnd.choice(WHERES[obj]), order,
                                         limit) if p)
        out.append((rnd.choice(["query", "query", "queryAll"]), soql_text))
    return out


def _wait(raw, h, token, job_id) -> dict:
    for _ in range(400):
        info = raw(h, "GET", f"{V}/{job_id}", token).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish")


def _same_info(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("id", "createdDate", "systemModstamp", "totalProcessingTime")}


def _pages(get, max_records) -> list[tuple[int, bytes, dict]]:
    """Every page of a job from the first one, following Sforce-Locator; then a few odd locators."""
    out, locator = [], None
    while True:
        status, body, headers = get(locator, max_records)
        out.append((status, body, headers))
        locator = headers.get("Sforce-Locator")
        if status != 200 or locator == "null" or len(out) > 400:
            break
    for odd in ("0", "3", "-2", "999999"):
        out.append(get(base64.b64encode(odd.encode()).decode(), max_records))
    out.append(get(None, "-1"))
    out.append(get("not-a-locator", None))
    return out


def _clone(store, job_id: str) -> dict:
    """A copy of the job as it was created, for the reference to process."""
    with store.write() as c:
        new_id = ids.make_id("750", store.bump(c, "id:750"))
        c.execute("INSERT INTO _sandbox_jobs(id, kind, object, operation, state, created_by, created_date, "
                  "system_modstamp, column_delimiter, line_ending, api_version, query, worker) SELECT ?, kind, NULL, "
                  "operation, 'JobComplete', created_by, created_date, system_modstamp, column_delimiter, line_ending, "
                  "api_version, query, 'nobody:0' FROM _sandbox_jobs WHERE id=?", (new_id, job_id))
    return _job(store, new_id)


def _job(store, job_id: str) -> dict:
    cur = store.conn().execute("SELECT * FROM _sandbox_jobs WHERE id=?", (job_id,))
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


@pytest.mark.parametrize("path", ["columns", "records"])
def test_query_jobs_answer_as_the_reference(fresh_sandbox, raw, monkeypatch, path):
    monkeypatch.setattr(bulk_query, "CHUNK_ROWS", 7)  # pages cut across many chunks
    if path == "records":  # the general path (TYPEOF, sub-queries ...) on the same queries
        monkeypatch.setattr(soql, "flat_rows", lambda compiled, rows: None)
    h, store = fresh_sandbox, fresh_sandbox.store
    _fill(store)
    token = h.new_session()
    rnd = random.Random(7)
    compared = pages = 0
    for op, q in _queries(45):
        delim, ending = rnd.choice(list(DELIMITERS)), rnd.choice(list(ENDINGS))
        created = raw(h, "POST", V, token, json={"operation": op, "query": q, "columnDelimiter": delim,
                                                  "lineEnding": ending})
        assert created.status_code == 200, created.text
        info = _wait(raw, h, token, created.json()["id"])
        clone = _clone(store, info["id"])
        error = reference.process_query(SimpleNamespace(store=store), clone)
        if error:
            assert (info["state"], info.get("errorMessage")) == ("Failed", error), q
            continue
        assert info["state"] == "JobComplete", (q, info)
        assert _same_info(info) == _same_info(job_info(_job(store, clone["id"]))), q
        max_records = rnd.choice([None, "1", "7", "10", "50", "200000"])

        def http(job_id):
            def get(locator, size):
                params = {k: v for k, v in (("locator", locator), ("maxRecords", size)) if v is not None}
                r = raw(h, "GET", f"{V}/{job_id}/results", token, params=params)
                return r.status_code, r.content if r.status_code == 200 else b"", {
                    k: r.headers[k] for k in ("Sforce-Locator", "Sforce-NumberOfRecords") if k in r.headers}
            return get

        ref_job = _job(store, clone["id"])
        expected = _pages(lambda loc, size: reference.results(store.conn(), ref_job, loc, size), max_records)
        assert _pages(http(info["id"]), max_records) == expected, (q, delim, ending, max_records)
        assert _pages(http(clone["id"]), max_records) == expected, "the old layout, served by the new server"
        compared += 1
        pages += len(expected)
    assert compared >= 35 and pages >= 300


def test_deleted_job_leaves_no_answer(fresh_sandbox, raw):
    h, store = fresh_sandbox, fresh_sandbox.store
    _fill(store)
    token = h.new_session()
    job = raw(h, "POST", V, token, json={"operation": "query", "query": "SELECT Id, Name FROM Account"}).json()
    assert _wait(raw, h, token, job["id"])["numberRecordsProcessed"] > 0
    assert raw(h, "DELETE", f"{V}/{job['id']}", token).status_code == 204
    c = store.conn()
    assert c.execute("SELECT COUNT(*) FROM _sandbox_job_chunks WHERE job_id=?", (job["id"],)).fetchone() == (0,)
    assert raw(h, "GET", f"{V}/{job['id']}/results", token).status_code == 404


def test_answer_survives_a_restart(tmp_path, raw, monkeypatch):
    from crmbridge.sandbox.server import start_sandbox

    monkeypatch.setattr(bulk_query, "CHUNK_ROWS", 10)
    h = start_sandbox(tmp_path / "org.db")
    try:
        _fill(h.store)
        token = h.new_session()
        job = raw(h, "POST", V, token, json={"operation": "queryAll", "query": "SELECT Id, Name, Description, "
                                             "AnnualRevenue FROM Account", "lineEnding": "CRLF"}).json()
        assert _wait(raw, h, token, job["id"])["numberRecordsProcessed"] == 120
        before = _pages_plain(raw, h, token, job["id"])
    finally:
        h.stop()
    h = start_sandbox(tmp_path / "org.db")
    try:
        token = h.new_session()
        assert _pages_plain(raw, h, token, job["id"]) == before and len(before) == 4
    finally:
        h.stop()


def _pages_plain(raw, h, token: str, job_id: str) -> list:
    out, locator = [], None
    while True:
        r = raw(h, "GET", f"{V}/{job_id}/results", token, params={"locator": locator, "maxRecords": 33})
        locator = r.headers.get("Sforce-Locator")
        out.append((r.status_code, r.content, locator))
        if locator == "null":
            return out
