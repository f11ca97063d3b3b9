"""Every injected fault, seen through the real simple-salesforce client: REQUEST_LIMIT_EXCEEDED, 503s,
UNABLE_TO_LOCK_ROW in collections and Bulk results, session expiry, latency, the admin endpoint."""

from __future__ import annotations

import json
import time

import pytest
from simple_salesforce.exceptions import (SalesforceExpiredSession, SalesforceGeneralError,
                                          SalesforceRefusedRequest)


def test_request_limit_after_n_calls_for_m_calls(fresh_sandbox, fresh_sf):
    fresh_sandbox.faults.set(request_limit_after=2, request_limit_calls=2)
    fresh_sf.limits()
    fresh_sf.limits()
    for _ in range(2):
        with pytest.raises(SalesforceRefusedRequest) as e:
            fresh_sf.limits()
        assert e.value.status == 403
        assert e.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert fresh_sf.limits()["DailyApiRequests"]["Max"] == 100000  # the window of refusals is over


def test_request_limit_until_cleared(fresh_sandbox, fresh_sf):
    fresh_sandbox.faults.set(request_limit_after=0)
    for _ in range(3):
        with pytest.raises(SalesforceRefusedRequest):
            fresh_sf.query("SELECT Id FROM Account")
    fresh_sandbox.faults.clear()
    assert fresh_sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_503_rate_is_seeded(fresh_sandbox, fresh_sf):
    def pattern():
        fresh_sandbox.faults.set(error_503_rate=0.5, seed=42)
        out = []
        for _ in range(20):
            try:
                fresh_sf.limits()
                out.append(True)
            except SalesforceGeneralError as e:
                assert e.status == 503
                out.append(False)
        return out

    first, second = pattern(), pattern()
    assert first == second and 3 < first.count(False) < 17


def test_lock_rows_in_collections_and_bulk(fresh_sandbox, fresh_sf):
    fresh_sandbox.faults.set(lock_rate=0.3, seed=1)
    res = fresh_sf.restful("composite/sobjects", method="POST", data=json.dumps({"records": [
        {"attributes": {"type": "Account"}, "Name": f"L{i}"} for i in range(50)]}))
    locked = [r for r in res if not r["success"]]
    assert 5 < len(locked) < 30
    err = locked[0]["errors"][0]
    assert err["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert err["message"].startswith("unable to obtain exclusive access to this record or 1 records: 001")
    bulk = fresh_sf.bulk2.Account.insert(records=[{"Name": f"BL{i}"} for i in range(100)], wait=0.1)
    failed = fresh_sf.bulk2.Account.get_failed_records(bulk[0]["job_id"]).splitlines()[1:]
    assert len(failed) == bulk[0]["numberRecordsFailed"] > 10
    assert ",UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: 001" in failed[0]
    assert failed[0].split(",")[1].endswith(":--")
    fresh_sandbox.faults.clear()
    assert fresh_sf.query("SELECT COUNT() FROM Account")["totalSize"] == 50 - len(locked) + 100 - len(failed)


def test_session_expiry(fresh_sandbox, fresh_sf):
    fresh_sandbox.faults.set(session_seconds=0.3)
    fresh_sf.limits()
    time.sleep(0.5)
    with pytest.raises(SalesforceExpiredSession) as e:
        fresh_sf.limits()
    assert e.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_latency(fresh_sandbox, fresh_sf):
    fresh_sandbox.faults.set(latency_ms=300)
    started = time.monotonic()
    fresh_sf.limits()
    assert time.monotonic() - started >= 0.3


def test_admin_endpoint(fresh_sandbox, raw):
    token = fresh_sandbox.new_session()
    r = raw(fresh_sandbox, "POST", "/_sandbox/faults", token, json={"request_limit_after": 0})
    assert r.status_code == 200 and r.json()["request_limit_after"] == 0
    refused = raw(fresh_sandbox, "GET", "/services/data/v62.0/limits", token)
    assert refused.status_code == 403 and refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert raw(fresh_sandbox, "POST", "/_sandbox/faults", token, json={"bogus": 1}).status_code == 400
    assert raw(fresh_sandbox, "POST", "/_sandbox/faults", None, json={"clear": True}).status_code == 401
    assert raw(fresh_sandbox, "DELETE", "/_sandbox/faults", token).json()["request_limit_after"] is None
    assert raw(fresh_sandbox, "GET", "/services/data/v62.0/limits", token).status_code == 200
