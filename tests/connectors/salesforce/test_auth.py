"""Every auth mode the sandbox supports, through simple-salesforce, over HTTPS."""

from __future__ import annotations

import pytest

from crmbridge.errors import UsageError
from crmbridge.secretref import EnvRef


def _whoami(conn) -> int:
    return conn.count("SELECT COUNT() FROM User")


def test_sandbox_target_logs_in_with_oauth_and_counts_calls(conn):
    assert conn.sf.auth_type == "password"            # simple-salesforce's OAuth password grant
    assert conn.sf.session.verify.endswith(".pem")
    before = conn.api_calls
    assert _whoami(conn) >= 1
    assert conn.api_calls == before + 1
    assert "DailyApiRequests" in conn.limits()


def test_embedded_sandbox_from_project_is_started_once_per_db(tmp_path):
    from crmbridge.config import Project, ProjectConfig
    from crmbridge.connectors.salesforce import auth, connect

    project = Project(root=tmp_path, config=ProjectConfig())
    a, b = connect(project), connect(project)
    try:
        assert a.sf.sf_instance == b.sf.sf_instance           # one server per db path
        assert (tmp_path / ".crmbridge" / "sandbox.db").exists()
        assert _whoami(a) >= 1 and _whoami(b) >= 1
    finally:
        a.close(), b.close()
        key = str((tmp_path / ".crmbridge" / "sandbox.db").resolve())
        auth._sandboxes.pop(key).stop()


def test_token_target(org, make_conn, monkeypatch):
    from crmbridge.config import TokenTarget

    monkeypatch.setenv("T_SF_TOKEN", org.new_session())
    conn = make_conn(TokenTarget(target="token", instance_url=org.instance_url, access_token=EnvRef(env="T_SF_TOKEN")),
                     session=_ca_session(org))
    assert conn.sf.auth_type == "direct"
    assert _whoami(conn) >= 1


def test_password_target_soap_login_through_login_host(org, make_conn, login_session, monkeypatch):
    from crmbridge.config import PasswordTarget

    monkeypatch.setenv("T_SF_PW", org.password)
    monkeypatch.setenv("T_SF_TOKEN", "")
    conn = make_conn(PasswordTarget(target="password", username=org.username, password=EnvRef(env="T_SF_PW"),
                                    security_token=EnvRef(env="T_SF_TOKEN")), session=login_session())
    assert conn.sf.auth_type == "password"
    assert _whoami(conn) >= 1


def test_password_target_oauth_with_connected_app(org, make_conn, login_session, monkeypatch):
    from crmbridge.config import PasswordTarget

    org.register_app("crmbridge-test-app", client_secret="app-secret-123")
    monkeypatch.setenv("T_SF_PW", org.password)
    monkeypatch.setenv("T_SF_SECRET", "app-secret-123")
    conn = make_conn(PasswordTarget(target="password", username=org.username, password=EnvRef(env="T_SF_PW"),
                                    consumer_key="crmbridge-test-app", consumer_secret=EnvRef(env="T_SF_SECRET")),
                     session=login_session())
    assert _whoami(conn) >= 1


def test_jwt_target(org, make_conn, login_session, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from crmbridge.config import JwtTarget

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    org.register_app("crmbridge-jwt-app", certificate=key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    conn = make_conn(JwtTarget(target="jwt", username=org.username, consumer_key="crmbridge-jwt-app",
                               private_key_file="server.key"), session=login_session())
    assert conn.sf.auth_type == "jwt-bearer"
    assert _whoami(conn) >= 1


def test_jwt_missing_key_file_is_usage_error(make_conn):
    from crmbridge.config import JwtTarget

    with pytest.raises(UsageError, match="private_key_file"):
        make_conn(JwtTarget(target="jwt", username="u@x", consumer_key="k", private_key_file="nope.key"))


def test_wrong_password_is_usage_error_without_the_password(org, make_conn, login_session, monkeypatch):
    from crmbridge.config import PasswordTarget

    monkeypatch.setenv("T_SF_PW", "Wrong-Pa55word-xyz")
    with pytest.raises(UsageError) as err:
        make_conn(PasswordTarget(target="password", username=org.username, password=EnvRef(env="T_SF_PW")),
                  session=login_session())
    assert "login failed" in str(err.value)
    assert "Wrong-Pa55word-xyz" not in str(err.value)


def test_missing_env_var_names_it(make_conn, monkeypatch):
    from crmbridge.config import TokenTarget

    monkeypatch.delenv("T_SF_NOPE", raising=False)
    with pytest.raises(UsageError, match="T_SF_NOPE"):
        make_conn(TokenTarget(target="token", instance_url="https://x.my.salesforce.com",
                              access_token=EnvRef(env="T_SF_NOPE")))


def _ca_session(org):
    from crmbridge.connectors.salesforce.auth import make_session

    return make_session(ca_bundle=org.ca_bundle, timeout=30)
