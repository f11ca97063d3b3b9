"""The sandbox org's HTTPS server and the embeddable ``start_sandbox`` API.

Speaks Salesforce's wire protocol on loopback over HTTPS (cheroot's HTTP/1.1 server, see ``wsgi.py``)
so real clients (simple-salesforce, jsforce-style streaming uploads) work against it unchanged::

    handle = start_sandbox("org.db")
    sf = Salesforce(instance_url=handle.instance_url, session_id=handle.new_session(), session=handle.session())

(``handle.session()`` sets ``verify`` to the CA bundle and turns ``trust_env`` off: requests lets a
REQUESTS_CA_BUNDLE environment variable override ``session.verify``.)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from crmbridge.sandbox import auth
from crmbridge.sandbox.certs import tls_files
from crmbridge.sandbox.faults import Faults
from crmbridge.sandbox.store import DEFAULT_PASSWORD, DEFAULT_USERNAME, Store

MIN_VERSION, MAX_VERSION = 40, 62
VERSIONS = [f"{v}.0" for v in range(MIN_VERSION, MAX_VERSION + 1)]
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
DAILY_API_MAX = 100_000


@dataclass
class Request:
    method: str
    path: str
    parts: list[str]
    query: dict[str, str]
    headers: Any
    body: bytes
    version: str = ""
    user_id: str = ""

    def json(self) -> Any:
        from crmbridge.sandbox.dml import RequestError

        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise RequestError("JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}") from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(status, body, headers=headers or {})


BULK_V1_REFUSAL = ("Bulk API 1.0 (/services/async) is not emulated by the crmbridge sandbox org; use Bulk API 2.0 "
                   "(/services/data/vXX.X/jobs/ingest and jobs/query) or the REST API. See docs/sandbox.md.")


def _bulk_v1_refusal(req: Request) -> Response:
    """Bulk 1.0 answers in its own error format (XML, or JSON when the client sent JSON): FeatureNotEnabled."""
    if "json" in (req.headers.get("Content-Type") or "").lower():
        return json_response(400, {"exceptionCode": "FeatureNotEnabled", "exceptionMessage": BULK_V1_REFUSAL})
    xml = ('<?xml version="1.0" encoding="UTF-8"?><error xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
           f"<exceptionCode>FeatureNotEnabled</exceptionCode><exceptionMessage>{BULK_V1_REFUSAL}</exceptionMessage>"
           "</error>")
    return Response(400, xml.encode("utf-8"), "application/xml")


class SandboxApp:
    """Routes one request to the auth, REST, Bulk or admin handlers."""

    def __init__(self, store: Store, faults: Faults, instance_url: str):
        from crmbridge.sandbox.bulk import BulkJobs

        self.store, self.faults, self.instance_url = store, faults, instance_url
        self.api_calls = 0
        self.cursors: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.bulk = BulkJobs(self)

    def handle(self, req: Request) -> Response:
        from crmbridge.sandbox.dml import RequestError

        try:
            return self._route(req)
        except RequestError as e:
            return json_response(e.status, [{"message": e.message, "errorCode": e.code}])

    def _route(self, req: Request) -> Response:
        p = req.parts
        if p[:3] == ["services", "oauth2", "token"] and req.method == "POST":
            return self._token(req)
        if p[:3] == ["services", "Soap", "u"] and len(p) >= 4 and req.method == "POST":
            status, xml = auth.soap_login(self.store, req.body.decode("utf-8", "replace"), self.instance_url, p[3])
            return Response(status, xml.encode("utf-8"), "text/xml;charset=UTF-8")
        if p == ["services", "data"] and req.method == "GET":
            return json_response(200, [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v}
                                       for v in VERSIONS])
        if p[:1] == ["_sandbox"]:
            return self._admin(req)
        if p[:2] == ["services", "async"]:
            return _bulk_v1_refusal(req)
        if p[:2] != ["services", "data"] or len(p) < 3:
            return json_response(404, NOT_FOUND)
        refused = self._authenticate(req)
        if refused is not None:
            return refused
        version = p[2][1:] if p[2].startswith("v") else ""
        if version not in VERSIONS:
            return json_response(404, NOT_FOUND)
        req.version = version
        fault = self.faults.before_call()
        if fault is not None:
            return json_response(*fault)
        with self.lock:
            self.api_calls += 1
            used = self.api_calls
        if used > DAILY_API_MAX:
            return json_response(403, [{"message": "TotalRequests Limit exceeded.",
                                        "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        if p[3:4] == ["jobs"]:
            resp = self.bulk.dispatch(req, p[4:])
        else:
            from crmbridge.sandbox import rest

            resp = rest.dispatch(self, req, p[3:])
        resp.headers.setdefault("Sforce-Limit-Info", f"api-usage={used}/{DAILY_API_MAX}")
        return resp

    def _authenticate(self, req: Request) -> Response | None:
        header = req.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else (header[6:].strip() if header.lower()
                                                                               .startswith("oauth ") else "")
        found = auth.session_user(self.store, token) if token else None
        if found is None or self.faults.session_expired(found[1]):
            return json_response(401, INVALID_SESSION)
        req.user_id = found[0]
        return None

    def _token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        form.update({k: v for k, v in req.query.items() if k not in form})
        try:
            return json_response(200, auth.token_grant(self.store, form, self.instance_url))
        except auth.AuthError as e:
            return json_response(e.status, {"error": e.error, "error_description": e.description})

    def _admin(self, req: Request) -> Response:
        refused = self._authenticate(req)
        if refused is not None:
            return refused
        what = req.parts[1] if len(req.parts) > 1 else ""
        if what == "faults":
            if req.method == "DELETE":
                self.faults.clear()
            elif req.method in ("POST", "PATCH", "PUT"):
                body = req.json() or {}
                try:
                    if body.pop("clear", False):
                        self.faults.clear()
                    self.faults.set(**body)
                except (TypeError, ValueError) as e:
                    return json_response(400, [{"message": str(e), "errorCode": "INVALID_FIELD"}])
            return json_response(200, self.faults.as_dict())
        if what == "apps" and req.method == "POST":
            body = req.json() or {}
            try:
                auth.register_app(self.store, body["client_id"], client_secret=body.get("client_secret"),
                                  certificate=body.get("certificate"))
            except (KeyError, ValueError) as e:
                return json_response(400, [{"message": f"bad app registration: {e}", "errorCode": "INVALID_FIELD"}])
            return json_response(201, {"client_id": body["client_id"]})
        return json_response(404, NOT_FOUND)


@dataclass
class SandboxHandle:
    """A running sandbox org. ``faults`` changes fault injection live; ``stop()`` shuts it down."""

    instance_url: str
    ca_bundle: str
    username: str
    password: str
    db_path: str
    faults: Faults
    app: SandboxApp = field(repr=False)
    server: Any = field(repr=False)  # cheroot.wsgi.Server
    thread: threading.Thread = field(repr=False)

    @property
    def store(self) -> Store:
        return self.app.store

    def new_session(self, username: str | None = None) -> str:
        """A fresh access token for ``username`` (default: the admin), as a login would return."""
        user_id = self.store.user_id(username or self.username)
        if user_id is None:
            raise ValueError(f"no active user {username!r} in the sandbox")
        return auth.new_session(self.store, user_id)

    def session(self):
        """A requests session that trusts the sandbox CA.

        ``trust_env`` is off because requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the
        environment override ``session.verify``; loopback needs no proxy anyway.
        """
        import requests

        s = requests.Session()
        s.verify = self.ca_bundle
        s.trust_env = False
        return s

    def register_app(self, client_id: str, *, client_secret: str | None = None, certificate: str | None = None) -> None:
        """Register a connected app (a PEM certificate/public key enables the JWT bearer flow)."""
        auth.register_app(self.store, client_id, client_secret=client_secret, certificate=certificate)

    def as_dict(self) -> dict[str, Any]:
        return {"instance_url": self.instance_url, "username": self.username, "password": self.password,
                "ca_bundle": self.ca_bundle, "db": self.db_path, "admin_url": f"{self.instance_url}/_sandbox/faults"}

    def stop(self) -> None:
        """Stop serving and wait for the Bulk worker; the database stays as it is."""
        self.server.stop()
        self.thread.join(timeout=10)
        self.app.bulk.stop()


def start_sandbox(db_path: str | Path, *, host: str = "127.0.0.1", port: int = 0, schema_files=(),
                  username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD, faults: Faults | None = None,
                  verbose: bool = False) -> SandboxHandle:
    """Open (or create and seed) the org in ``db_path`` and serve it over HTTPS in a daemon thread."""
    from crmbridge.sandbox.wsgi import make_server, wsgi_app

    store = Store(db_path, schema_files, username=username, password=password)
    tls = tls_files(store.db_path)
    faults = faults or Faults()
    holder: dict[str, Any] = {}
    server = make_server(host, port, lambda environ, start: holder["wsgi"](environ, start), str(tls.cert),
                         str(tls.key))
    bound_host, bound_port = server.bind_addr[:2]
    shown = "localhost" if host == "localhost" else bound_host
    url = f"https://{shown}:{bound_port}"
    app = SandboxApp(store, faults, url)
    holder["wsgi"] = wsgi_app(app, Request, Response, verbose=verbose)
    thread = threading.Thread(target=server.serve, name=f"sandbox-{url}", daemon=True)
    thread.start()
    return SandboxHandle(url, str(tls.ca_bundle), username, password, str(store.db_path), faults, app, server, thread)
