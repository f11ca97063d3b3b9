"""SOQL over REST (streamed, page by page) and Bulk 2.0 query jobs."""

from __future__ import annotations

import types


def test_query_streams_past_2000_rows_page_by_page(conn, tag):
    n = 2300
    res = conn.dml("insert", "Account", [{"Name": f"{tag} {i:05d}", "Legacy_Id__c": f"{tag}-{i}"} for i in range(n)],
                   api="bulk")
    assert all(r.success for r in res)
    it = conn.query(f"SELECT Id, Name, Owner.Name FROM Account WHERE Name LIKE '{tag} %' ORDER BY Name")
    assert isinstance(it, types.GeneratorType)
    calls = conn.api_calls
    first = next(it)
    assert conn.api_calls == calls + 1                      # nothing fetched beyond the first page
    assert "attributes" not in first and first["Name"] == f"{tag} 00000"
    assert first["Owner"] is None or "attributes" not in first["Owner"]
    rest = list(it)
    assert conn.api_calls >= calls + 2                       # followed nextRecordsUrl
    assert len(rest) + 1 == n
    assert rest[-1]["Name"] == f"{tag} {n - 1:05d}"
    assert conn.count(f"SELECT COUNT() FROM Account WHERE Name LIKE '{tag} %'") == n

    bulk_rows = list(conn.query_bulk(f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag} %'"))
    assert len(bulk_rows) == n
    assert {r["Id"] for r in bulk_rows} == {r.id for r in res}
    assert all(isinstance(v, str) for v in bulk_rows[0].values())


def test_query_bulk_pages_by_locator(conn, tag):
    conn.dml("insert", "Account", [{"Name": f"{tag} {i}"} for i in range(25)], api="rest")
    conn.bulk_page_size = 10
    calls = conn.api_calls
    rows = list(conn.query_bulk(f"SELECT Name FROM Account WHERE Name LIKE '{tag} %'"))
    assert sorted(r["Name"] for r in rows) == sorted(f"{tag} {i}" for i in range(25))
    assert conn.api_calls - calls >= 1 + 1 + 3               # create, poll, three result pages


def test_include_deleted(conn, tag):
    [r] = conn.dml("insert", "Account", [{"Name": f"{tag} gone"}])
    conn.dml("delete", "Account", [{"Id": r.id}])
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Name = '{tag} gone'"
    assert list(conn.query(soql)) == []
    assert list(conn.query(soql, include_deleted=True)) == [{"Id": r.id, "IsDeleted": True}]


def test_malformed_query_is_not_retried(conn):
    import pytest
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    calls = conn.api_calls
    with pytest.raises(SalesforceMalformedRequest):
        list(conn.query("SELECT FROM"))
    assert conn.api_calls == calls + 1


def _query_jobs(org) -> int:
    return org.app.store.conn().execute("SELECT COUNT(*) FROM _sandbox_jobs WHERE kind = 'query'").fetchone()[0]


def test_a_bulk_query_started_ahead_is_read_once_without_a_second_job(conn, org, tag, monkeypatch):
    from crmbridge.connectors.salesforce import client

    conn.dml("insert", "Account", [{"Name": f"{tag} {i}", "Legacy_Id__c": f"{tag}-{i}"} for i in range(30)],
             api="rest")
    soql = f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag} %'"
    fresh = sorted(r for _, rows in conn.query_bulk_pages(soql) for r in map(tuple, rows))
    calls = conn.api_calls
    assert conn.prefetch_bulk_query(soql)
    assert conn.api_calls == calls + 1                       # the job's create
    jobs = _query_jobs(org)
    calls = conn.api_calls
    ahead = sorted(r for _, rows in conn.query_bulk_pages(soql) for r in map(tuple, rows))
    assert ahead == fresh and len(ahead) == 30
    assert 1 <= conn.api_calls - calls <= 2                  # no create: a status look at most, the results page
    assert _query_jobs(org) == jobs
    # read once: the same query again is a job of its own, and so is another query or a stale head start
    list(conn.query_bulk_pages(soql))
    assert _query_jobs(org) == jobs + 1
    conn.prefetch_bulk_query(soql)
    monkeypatch.setattr(client, "PREFETCH_SECONDS", 0.0)
    assert sorted(r for _, rows in conn.query_bulk_pages(soql + " ORDER BY Name") for r in map(tuple, rows)) == fresh
    assert sorted(r for _, rows in conn.query_bulk_pages(soql) for r in map(tuple, rows)) == fresh
    assert _query_jobs(org) == jobs + 4
