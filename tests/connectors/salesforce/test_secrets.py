"""Secrets (passwords, tokens, session ids) never reach logs or exception text."""

from __future__ import annotations

import logging

import pytest

from crmbridge.errors import UsageError
from crmbridge.secretref import EnvRef


def test_no_secret_in_logs_through_faults_and_relogin(org, make_conn, login_session, faults, monkeypatch, caplog, tag):
    import time

    from crmbridge.config import PasswordTarget

    monkeypatch.setenv("T_SF_PW", org.password)
    with caplog.at_level(logging.DEBUG):
        conn = make_conn(PasswordTarget(target="password", username=org.username, password=EnvRef(env="T_SF_PW")),
                         session=login_session())
        first_session = conn.sf.session_id
        faults.set(request_limit_after=0, request_limit_calls=2)
        conn.dml("insert", "Account", [{"Name": f"{tag} 1"}], api="rest")
        faults.set(session_seconds=0.1)
        time.sleep(0.2)
        conn.dml("insert", "Account", [{"Name": f"{tag} 2"}], api="bulk")
        faults.clear()
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert "REQUEST_LIMIT_EXCEEDED" in text and "logged in again" in text
    for secret in (org.password, first_session, conn.sf.session_id):
        assert secret not in text


def test_no_secret_in_login_error(org, make_conn, login_session, monkeypatch):
    from crmbridge.config import PasswordTarget

    monkeypatch.setenv("T_SF_PW", "S3cret-never-shown")
    monkeypatch.setenv("T_SF_TOK", "tok-never-shown")
    with pytest.raises(UsageError) as err:
        make_conn(PasswordTarget(target="password", username=org.username, password=EnvRef(env="T_SF_PW"),
                                 security_token=EnvRef(env="T_SF_TOK")), session=login_session())
    text = str(err.value) + repr(err.value)
    assert "S3cret-never-shown" not in text and "tok-never-shown" not in text
