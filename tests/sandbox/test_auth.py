"""Logins through the real simple-salesforce helpers: OAuth password, SOAP, JWT bearer, refresh token,
and the 401 every call gets with a bad session."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession


def test_oauth_password_grant(sandbox, login_session):
    sf = Salesforce(username=sandbox.username, password=sandbox.password, consumer_key="ck", consumer_secret="cs",
                    session=login_session)
    assert sf.sf_instance == sandbox.instance_url.split("//")[1]
    assert sf.query("SELECT Username FROM User WHERE Username = 'admin@sandbox.crmbridge'")["totalSize"] == 1


def test_oauth_wrong_password_is_invalid_grant(sandbox, login_session):
    with pytest.raises(SalesforceAuthenticationFailed) as e:
        Salesforce(username=sandbox.username, password="nope", consumer_key="ck", consumer_secret="cs",
                   session=login_session)
    assert e.value.code == "invalid_grant"
    assert e.value.auth_message == "authentication failure"


def test_oauth_token_json_shape(sandbox, raw):
    r = raw(sandbox, "POST", "/services/oauth2/token", data={
        "grant_type": "password", "client_id": "x", "client_secret": "y", "username": sandbox.username,
        "password": sandbox.password})
    body = r.json()
    assert r.status_code == 200
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(body)
    assert body["token_type"] == "Bearer" and body["instance_url"] == sandbox.instance_url
    # the refresh token grant gives a new working access token
    r2 = raw(sandbox, "POST", "/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": "x",
                                                              "refresh_token": body["refresh_token"]})
    assert r2.status_code == 200
    assert raw(sandbox, "GET", "/services/data/v62.0/limits", r2.json()["access_token"]).status_code == 200
    bad = raw(sandbox, "POST", "/services/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "zz"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_registered_client_secret_is_checked(sandbox, raw):
    sandbox.register_app("registered-app", client_secret="s3cret")
    form = {"grant_type": "password", "client_id": "registered-app", "username": sandbox.username,
            "password": sandbox.password}
    assert raw(sandbox, "POST", "/services/oauth2/token", data={**form, "client_secret": "wrong"}).json()["error"] \
        == "invalid_client"
    assert raw(sandbox, "POST", "/services/oauth2/token", data={**form, "client_secret": "s3cret"}).status_code == 200


def test_soap_login(sandbox, login_session):
    sf = Salesforce(username=sandbox.username, password=sandbox.password, security_token="", session=login_session)
    assert sf.sf_instance == sandbox.instance_url.split("//")[1]
    assert sf.Account.describe()["name"] == "Account"


def test_soap_login_wrong_password_is_invalid_login(sandbox, login_session):
    with pytest.raises(SalesforceAuthenticationFailed) as e:
        Salesforce(username=sandbox.username, password="bad", security_token="", session=login_session)
    assert e.value.code == "INVALID_LOGIN"


def _key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmbridge-jwt")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_jwt_bearer(sandbox, login_session):
    key, cert = _key_and_cert()
    sandbox.register_app("jwt-app", certificate=cert)
    sf = Salesforce(username=sandbox.username, consumer_key="jwt-app", privatekey=key, session=login_session)
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] >= 6


def test_jwt_bearer_refusals(sandbox, login_session, raw):
    key, cert = _key_and_cert()
    other_key, _ = _key_and_cert()
    sandbox.register_app("jwt-app-2", certificate=cert)
    with pytest.raises(SalesforceAuthenticationFailed) as e:  # signed with a key the app does not know
        Salesforce(username=sandbox.username, consumer_key="jwt-app-2", privatekey=other_key, session=login_session)
    assert (e.value.code, e.value.auth_message) == ("invalid_grant", "invalid assertion")
    with pytest.raises(SalesforceAuthenticationFailed) as e:  # unknown user
        Salesforce(username="ghost@nowhere", consumer_key="jwt-app-2", privatekey=key, session=login_session)
    assert e.value.code == "invalid_grant"
    expired = jwt.encode({"iss": "jwt-app-2", "sub": sandbox.username, "aud": "https://login.salesforce.com",
                          "exp": int(time.time()) - 60}, key, algorithm="RS256")
    r = raw(sandbox, "POST", "/services/oauth2/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": expired})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    wrong_aud = jwt.encode({"iss": "jwt-app-2", "sub": sandbox.username, "aud": "https://evil.example",
                            "exp": int(time.time()) + 60}, key, algorithm="RS256")
    r = raw(sandbox, "POST", "/services/oauth2/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": wrong_aud})
    assert r.json()["error_description"] == "audience is invalid"


def test_invalid_session_is_401(sandbox, raw):
    sf = Salesforce(instance_url=sandbox.instance_url, session_id="00Dbogus!token", session=sandbox.session())
    with pytest.raises(SalesforceExpiredSession) as e:
        sf.query("SELECT Id FROM Account")
    assert e.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert raw(sandbox, "GET", "/services/data/v62.0/sobjects").status_code == 401


def test_versions_list_needs_no_session(sandbox, raw):
    versions = raw(sandbox, "GET", "/services/data/").json()
    assert {"label": "v62.0", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert versions[0]["version"] == "40.0"


# ----------------------------------------------------------------------------- issue 13 point 9
def test_db_private_tokens_hashed_reps_follow_password(tmp_path, raw):
    import os
    import sqlite3
    import stat

    from crmbridge.sandbox.server import start_sandbox

    old = os.umask(0o022)  # a umask that would make a plain new file world-readable
    try:
        handle = start_sandbox(tmp_path / "org.db", password="s3cret-Pass")
    finally:
        os.umask(old)
    try:
        token = handle.new_session()
        login = raw(handle, "POST", "/services/oauth2/token", data={
            "grant_type": "password", "client_id": "x", "username": "rep2@sandbox.crmbridge",
            "password": "s3cret-Pass"})
        assert login.status_code == 200
        refused = raw(handle, "POST", "/services/oauth2/token", data={
            "grant_type": "password", "client_id": "x", "username": "rep2@sandbox.crmbridge", "password": "sandbox"})
        assert refused.status_code == 400
        assert raw(handle, "GET", "/services/data/v62.0/limits", token=token).status_code == 200
        for suffix in ("", "-wal", "-shm"):
            path = tmp_path / f"org.db{suffix}"
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        stored = [r[0] for r in sqlite3.connect(tmp_path / "org.db").execute("SELECT token FROM _sandbox_sessions")]
        secrets_seen = [token, login.json()["access_token"], login.json()["refresh_token"]]
        raw_db = b"".join(p.read_bytes() for p in tmp_path.glob("org.db*"))
        assert stored and all(len(t) == 64 for t in stored)
        assert not any(s.encode() in raw_db for s in secrets_seen)
    finally:
        handle.stop()


def test_existing_world_readable_db_is_tightened(tmp_path):
    import os
    import stat

    from crmbridge.sandbox.store import Store

    db = tmp_path / "org.db"
    Store(db).close()
    os.chmod(db, 0o644)
    Store(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
