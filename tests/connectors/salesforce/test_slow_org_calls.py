"""API calls of a Bulk upsert on a fresh project, on the sandbox as it is (fast) and on a slow org
(the sandbox's ``ingest_rows_per_s`` fault knob): the status looks stay within the budget of issue 14
(10 calls per 100k records loaded and reconciled), every row comes back, none twice."""

from __future__ import annotations

import pytest

ROWS = 20_000


@pytest.fixture
def slow_org(fresh_sandbox):
    yield fresh_sandbox
    fresh_sandbox.faults.clear()


@pytest.mark.parametrize("rows_per_s", [0, 2_500])
def test_a_fresh_upsert_pays_create_upload_close_two_status_looks_and_the_results(slow_org, make_conn, rows_per_s,
                                                                                  tag):
    from crmbridge.config import SandboxTarget
    from crmbridge.connectors.salesforce import polling

    org = slow_org
    org.faults.set(ingest_rows_per_s=rows_per_s)
    conn = make_conn(SandboxTarget(instance_url=org.instance_url, ca_bundle=org.ca_bundle, username=org.username,
                                   password=org.password))
    conn.pace = polling.Pace()  # a fresh project: no rate seen on this org yet
    records = [{"Legacy_Id__c": f"{tag}-{i}", "Name": f"公司 {i}"} for i in range(ROWS)]
    calls0 = org.app.api_calls
    results = conn.dml("upsert", "Account", records, external_id_field="Legacy_Id__c", api="bulk")
    calls = org.app.api_calls - calls0
    assert len(results) == ROWS and all(r.success and r.created for r in results)
    assert len({r.id for r in results}) == ROWS
    # create, upload, close, at most FRESH_LOOKS status looks, the successful results (no failed rows)
    assert calls <= 4 + polling.FRESH_LOOKS, calls
    if rows_per_s:
        assert conn.pace.rate("ingest") <= rows_per_s * 1.05  # the org's rate learned, not the machine's
