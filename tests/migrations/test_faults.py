"""Transient Salesforce faults during a load (rate limit, row locks, 503, session expiry) are retried
to success: every record ends in the org exactly once and reconcile agrees."""

from __future__ import annotations

import pytest

# what the connector logs when it meets the fault (proves the fault was really hit and retried)
EVIDENCE = {"rate_limit": "REQUEST_LIMIT_EXCEEDED", "row_locks": "UNABLE_TO_LOCK_ROW",
            "server_unavailable": "SERVER_UNAVAILABLE", "session_expiry": "logged in again"}
FAULTS = {
    "rate_limit": dict(request_limit_after=4, request_limit_calls=3),
    "row_locks": dict(lock_rate=0.15, seed=3),
    "server_unavailable": dict(error_503_rate=0.2, seed=5),
    "session_expiry": dict(session_seconds=0.3, latency_ms=40),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_load_survives(fault, project, sf, org, mapped_run, helpers, caplog):
    from crmbridge.migrations.load import run_load
    from crmbridge.migrations.reconcile import run_reconcile

    run = mapped_run(helpers.accounts(2100), helpers.contacts(300, accounts=2100))  # Bulk + REST
    caplog.set_level("WARNING", logger="crmbridge")
    org.faults.set(**FAULTS[fault])
    result = run_load(project, run, connector=sf)
    stats = org.faults.as_dict()
    org.faults.clear()
    assert [s.failed for s in result.steps] == [0, 0], [s.error_codes for s in result.steps]
    assert [s.created for s in result.steps] == [2100, 300]
    assert any(EVIDENCE[fault] in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    if fault == "rate_limit":
        assert stats["refused"] == 3
    rec = run_reconcile(project, run, connector=sf)
    assert rec.ok, rec.as_dict()
    assert sf.count("SELECT COUNT() FROM Account") == 2100
