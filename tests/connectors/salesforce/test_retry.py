"""Retries against faults injected into the sandbox: rate limits, 503s, row locks, expired sessions."""

from __future__ import annotations

import logging

import pytest

from crmbridge.errors import RunFailed, UsageError

LOGGER = "crmbridge.salesforce"


def test_rate_limit_is_retried_with_backoff(conn, faults, caplog):
    conn.describe("Account")
    faults.set(request_limit_after=0, request_limit_calls=3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert conn.count("SELECT COUNT() FROM User") >= 1
    assert faults.refused == 3
    msgs = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len([m for m in msgs if "REQUEST_LIMIT_EXCEEDED" in m]) == 3, msgs


def test_rate_limit_that_never_ends_fails_the_read_and_the_rows(conn, faults, tag):
    conn.retry.max_retries = 2
    faults.set(request_limit_after=0)
    with pytest.raises(RunFailed, match="REQUEST_LIMIT_EXCEEDED"):
        list(conn.query("SELECT Id FROM Account LIMIT 1"))
    res = conn.dml("insert", "Account", [{"Name": f"{tag} a"}, {"Name": f"{tag} b"}], keys=["a", "b"], api="rest")
    assert [(r.key, r.success, r.error_code) for r in res] == [("a", False, "REQUEST_LIMIT_EXCEEDED"),
                                                               ("b", False, "REQUEST_LIMIT_EXCEEDED")]
    assert "gave up after 3 attempts" in res[0].message


@pytest.mark.parametrize("api", ["rest", "bulk"])
def test_503s_are_retried(conn, faults, tag, api):
    faults.set(error_503_rate=0.3, seed=7)
    rows = [{"Name": f"{tag} {i}", "Legacy_Id__c": f"{tag}-{i}"} for i in range(450)]
    res = conn.dml("upsert", "Account", rows, external_id_field="Legacy_Id__c", api=api)
    faults.clear()
    assert all(r.success for r in res), [r for r in res if not r.success][:3]
    assert conn.count(f"SELECT COUNT() FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'") == 450


@pytest.mark.parametrize("api", ["rest", "bulk"])
def test_locked_rows_are_sent_again(conn, faults, tag, api, caplog):
    faults.set(lock_rate=0.2, seed=3)
    rows = [{"Name": f"{tag} {i}", "Legacy_Id__c": f"{tag}-{i}"} for i in range(300)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = conn.dml("upsert", "Account", rows, external_id_field="Legacy_Id__c", api=api)
    faults.clear()
    assert all(r.success for r in res), [r for r in res if not r.success][:3]
    assert any("UNABLE_TO_LOCK_ROW" in r.getMessage() for r in caplog.records)
    assert conn.count(f"SELECT COUNT() FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'") == 300


def test_locks_that_persist_end_as_row_errors(conn, faults, tag):
    conn.retry.max_retries = 2
    faults.set(lock_rate=1.0)
    res = conn.dml("insert", "Account", [{"Name": f"{tag} x"}], api="rest")
    faults.clear()
    assert res[0].error_code == "UNABLE_TO_LOCK_ROW"


@pytest.mark.parametrize("api", ["rest", "bulk"])
def test_expired_session_logs_in_again(conn, faults, tag, api, caplog):
    import time

    old = conn.sf.session_id
    faults.set(session_seconds=0.2)
    time.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = conn.dml("insert", "Account", [{"Name": f"{tag} s"}], api=api)
    assert res[0].success, res[0]
    assert conn.sf.session_id != old


def test_expired_token_cannot_be_renewed(org, make_conn, faults, monkeypatch, tag):
    import time

    from crmbridge.config import TokenTarget
    from crmbridge.connectors.salesforce.auth import make_session
    from crmbridge.secretref import EnvRef

    monkeypatch.setenv("T_SF_TOKEN", org.new_session())
    conn = make_conn(TokenTarget(target="token", instance_url=org.instance_url, access_token=EnvRef(env="T_SF_TOKEN")),
                     session=make_session(ca_bundle=org.ca_bundle, timeout=30))
    faults.set(session_seconds=0.1)
    time.sleep(0.2)
    with pytest.raises(UsageError, match="session expired"):
        conn.count("SELECT COUNT() FROM User")
    res = conn.dml("insert", "Account", [{"Name": f"{tag} t"}], api="rest")
    assert res[0].error_code == "INVALID_SESSION_ID"


def test_timeouts_retry_reads_but_never_resend_an_insert(make_conn, target, faults, tag):
    import time

    conn = make_conn(target, timeout_seconds=0.2)
    conn.retry.max_retries = 1
    faults.set(latency_ms=600)
    with pytest.raises(RunFailed, match="TIMEOUT"):
        conn.count("SELECT COUNT() FROM Account")
    [ins] = conn.dml("insert", "Account", [{"Name": f"{tag} slow"}], api="rest")
    [upd] = conn.dml("update", "Account", [{"Id": "001000000000000AAA", "Phone": "1"}], api="rest")
    faults.clear()
    assert ins.error_code == "OUTCOME_UNKNOWN" and "reconcile" in ins.message
    assert upd.error_code == "TIMEOUT" and "gave up after 2 attempts" in upd.message
    time.sleep(0.6)   # the server finishes the insert the client stopped waiting for
    assert conn.count(f"SELECT COUNT() FROM Account WHERE Name = '{tag} slow'") == 1   # so resending would duplicate
