"""Authentication: OAuth 2.0 token endpoint (password, JWT bearer, refresh token), SOAP partner login,
and the bearer sessions every other call presents.

Sessions and refresh tokens live in the database, so a client keeps its session when the CLI starts
a new sandbox process on the same db. Connected apps (client id, optional secret, optional
certificate for JWT) are registered with ``register_app``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from html import escape
from typing import Any

from crmbridge.sandbox.store import Store

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


class AuthError(Exception):
    """A refused login: ``error`` / ``description`` as the OAuth endpoint reports them."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def token_hash(token: str) -> str:
    """What the db keeps of a session or refresh token: its SHA-256, so a copied db file grants no session.

    Tokens carry 288 (access) or 320 (refresh) random bits, so an unsalted fast hash is enough here.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_session(store: Store, user_id: str, kind: str = "access", client_id: str | None = None) -> str:
    token = f"{store.org_id[:15]}!AQ{secrets.token_urlsafe(48)}" if kind == "access" else secrets.token_urlsafe(40)
    with store.write() as c:
        c.execute("INSERT INTO _sandbox_sessions(token, kind, user_id, client_id, issued_at) VALUES (?,?,?,?,?)",
                  (token_hash(token), kind, user_id, client_id, time.time()))
    return token


def session_user(store: Store, token: str, kind: str = "access") -> tuple[str, float] | None:
    """(user Id, issued at) of a live session token, or None."""
    row = store.conn().execute("SELECT user_id, issued_at FROM _sandbox_sessions WHERE token=? AND kind=?",
                               (token_hash(token), kind)).fetchone()
    return (row[0], row[1]) if row else None


def register_app(store: Store, client_id: str, *, client_secret: str | None = None,
                 certificate: str | None = None) -> None:
    """Register (or replace) a connected app; ``certificate`` is a PEM certificate or public key for JWT."""
    if certificate:
        _public_key(certificate)  # reject an unreadable certificate now, not at the first login
    with store.write() as c:
        c.execute("INSERT OR REPLACE INTO _sandbox_apps(client_id, client_secret, certificate) VALUES (?,?,?)",
                  (client_id, client_secret, certificate))


def _app(store: Store, client_id: str | None) -> tuple[str | None, str | None] | None:
    row = store.conn().execute("SELECT client_secret, certificate FROM _sandbox_apps WHERE client_id=?",
                               (client_id,)).fetchone()
    return (row[0], row[1]) if row else None


def _public_key(pem: str):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = pem.encode() if isinstance(pem, str) else pem
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return load_pem_public_key(data)


def token_grant(store: Store, form: dict[str, str], instance_url: str) -> dict[str, Any]:
    """Answer ``POST /services/oauth2/token``; raises AuthError like Salesforce refuses."""
    grant = form.get("grant_type")
    refresh = None
    if grant == "password":
        app = _app(store, form.get("client_id"))
        if app and app[0] is not None and not hmac.compare_digest(app[0], form.get("client_secret") or ""):
            raise AuthError("invalid_client", "invalid client credentials")
        user_id = store.check_password(form.get("username") or "", form.get("password") or "")
        if user_id is None:
            raise AuthError("invalid_grant", "authentication failure")
        refresh = new_session(store, user_id, "refresh", form.get("client_id"))
    elif grant == JWT_BEARER:
        user_id = _jwt_user(store, form.get("assertion") or "", instance_url)
    elif grant == "refresh_token":
        found = session_user(store, form.get("refresh_token") or "", "refresh")
        if found is None:
            raise AuthError("invalid_grant", "expired access/refresh token")
        user_id = found[0]
    else:
        raise AuthError("unsupported_grant_type", "grant type not supported")
    token = new_session(store, user_id, "access", form.get("client_id"))
    issued = str(int(time.time() * 1000))
    ident = f"{instance_url}/id/{store.org_id}/{user_id}"
    sig = base64.b64encode(hmac.new(store.org_id.encode(), (ident + issued).encode(), hashlib.sha256).digest()).decode()
    body = {"access_token": token, "instance_url": instance_url, "id": ident, "token_type": "Bearer",
            "issued_at": issued, "signature": sig, "scope": "api refresh_token"}
    if refresh:
        body["refresh_token"] = refresh
    return body


def _jwt_user(store: Store, assertion: str, instance_url: str) -> str:
    import jwt

    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("invalid_grant", "invalid assertion") from None
    app = _app(store, claims.get("iss"))
    if app is None or not app[1]:
        raise AuthError("invalid_client_id", "client identifier invalid")
    audiences = ["https://login.salesforce.com", "https://test.salesforce.com", instance_url]
    try:
        claims = jwt.decode(assertion, _public_key(app[1]), algorithms=["RS256"], audience=audiences,
                            options={"require": ["exp", "sub", "aud", "iss"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("invalid_grant", "expired authorization code") from None
    except jwt.InvalidAudienceError:
        raise AuthError("invalid_grant", "audience is invalid") from None
    except jwt.PyJWTError:
        raise AuthError("invalid_grant", "invalid assertion") from None
    user_id = store.user_id(str(claims.get("sub") or ""))
    if user_id is None:
        raise AuthError("invalid_grant", "user hasn't approved this consumer")
    return user_id


def soap_login(store: Store, body: str, instance_url: str, version: str) -> tuple[int, str]:
    """Answer the partner API ``login`` call: (HTTP status, SOAP envelope)."""
    username = _xml_value(body, "username")
    password = _xml_value(body, "password")
    user_id = store.check_password(username or "", password or "") if username is not None else None
    if user_id is None:
        return 500, _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    token = new_session(store, user_id)
    server = f"{instance_url}/services/Soap/u/{version}/{store.org_id[:15]}"
    return 200, (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
        'envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soapenv:Body><loginResponse><result><metadataServerUrl>{instance_url}/services/Soap/m/{version}/'
        f'{store.org_id[:15]}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>true</sandbox>'
        f'<serverUrl>{server}</serverUrl><sessionId>{token}</sessionId><userId>{user_id}</userId><userInfo>'
        f'<organizationId>{store.org_id}</organizationId><userName>{escape(username)}</userName></userInfo>'
        '</result></loginResponse></soapenv:Body></soapenv:Envelope>')


def _xml_value(body: str, tag: str) -> str | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if re.sub(r"^\{.*\}", "", el.tag) == tag:
            return el.text or ""
    return None


def _soap_fault(code: str, message: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
            'envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
            f'instance"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {message}'
            f'</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}'
            f'</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault></detail>'
            '</soapenv:Fault></soapenv:Body></soapenv:Envelope>')
