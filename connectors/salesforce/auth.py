"""Logging in: one requests session per connector, and one simple-salesforce client per target.

Every auth mode goes through simple-salesforce. The embedded sandbox is logged into with the OAuth
password grant exactly as a real org would be; only the transport differs: a requests adapter
mounted on ``https://login.salesforce.com`` / ``https://test.salesforce.com`` forwards those
requests to the sandbox's loopback address (sf-wire.md).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from requests.adapters import HTTPAdapter

from crmbridge.errors import UsageError
from crmbridge.secretref import redact, register

LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")
# The sandbox accepts any connected app; these name crmbridge in its login history.
SANDBOX_CONSUMER_KEY = "crmbridge"
SANDBOX_CONSUMER_SECRET = "crmbridge-sandbox"


class TimeoutAdapter(HTTPAdapter):
    """Applies a default timeout (simple-salesforce passes none, and a hung socket would block
    forever) and, when set, the CA bundle to trust.

    The CA bundle is applied here as well as on ``session.verify`` because requests lets the
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables override ``session.verify``
    (psf/requests#3829), which would make the sandbox's own CA untrusted on many machines.
    """

    def __init__(self, timeout: float, ca_bundle: str | None = None, **kw):
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        super().__init__(**kw)

    def send(self, request, **kw):
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        if self.ca_bundle and kw.get("verify") is not False:
            kw["verify"] = self.ca_bundle
        return super().send(request, **kw)


class ForwardAdapter(TimeoutAdapter):
    """Sends requests for ``prefix`` to ``target`` instead (sandbox login through the real login URL)."""

    def __init__(self, prefix: str, target: str, timeout: float, ca_bundle: str | None = None):
        super().__init__(timeout, ca_bundle)
        self.prefix = prefix.rstrip("/")
        self.target = target.rstrip("/")

    def send(self, request, **kw):
        if request.url.startswith(self.prefix):
            request.url = self.target + request.url[len(self.prefix):]
        return super().send(request, **kw)


def make_session(*, ca_bundle: str | Path | None, timeout: float,
                 on_response: Callable[[requests.Response], None] | None = None) -> requests.Session:
    """A requests session with a default timeout, the CA bundle to trust, and a response hook."""
    s = requests.Session()
    adapter = TimeoutAdapter(timeout)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    if ca_bundle:
        trust(s, ca_bundle)
    if on_response is not None:
        s.hooks["response"].append(lambda r, *a, **k: on_response(r))
    return s


def trust(session: requests.Session, ca_bundle: str | Path) -> None:
    """Make ``session`` verify TLS against ``ca_bundle`` (the sandbox's local CA)."""
    session.verify = str(ca_bundle)
    adapters = [a for a in session.adapters.values() if isinstance(a, TimeoutAdapter)]
    if not adapters:
        a = TimeoutAdapter(120.0)
        session.mount("https://", a)
        adapters = [a]
    for a in adapters:
        a.ca_bundle = str(ca_bundle)


def forward_login(session: requests.Session, instance_url: str, timeout: float) -> None:
    """Route the standard login hosts of ``session`` to ``instance_url`` (sandbox only)."""
    ca = session.verify if isinstance(session.verify, str) else None
    for host in LOGIN_HOSTS:
        session.mount(host, ForwardAdapter(host, instance_url, timeout, ca))


# --------------------------------------------------------------------------- embedded sandbox

_sandboxes: dict[str, object] = {}
_sandbox_lock = threading.Lock()


def embedded_sandbox(db_path: Path, schema_files: list[Path], username: str, password: str):
    """The embedded sandbox for ``db_path``: one server per database per process, stopped at exit."""
    key = str(Path(db_path).resolve())
    with _sandbox_lock:
        handle = _sandboxes.get(key)
        if handle is None:
            from crmbridge.sandbox.server import start_sandbox

            Path(key).parent.mkdir(parents=True, exist_ok=True)
            handle = start_sandbox(key, schema_files=[str(p) for p in schema_files],
                                   username=username, password=password)
            if not _sandboxes:
                atexit.register(stop_embedded_sandboxes)
            _sandboxes[key] = handle
        return handle


def stop_embedded_sandboxes() -> None:
    with _sandbox_lock:
        handles = list(_sandboxes.values())
        _sandboxes.clear()
    for h in handles:
        try:
            h.stop()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass


# --------------------------------------------------------------------------- login per target


@dataclass
class Login:
    """What a connector needs to (re)build its simple-salesforce client."""

    build: Callable[[requests.Session], object]   # -> simple_salesforce.Salesforce (logs in)
    can_relogin: bool
    ca_bundle: str | None
    describe: str                                  # "sandbox at https://127.0.0.1:5xxxx" (no secrets)


def _auth_error(what: str, exc: Exception) -> UsageError:
    code = getattr(exc, "code", None) or type(exc).__name__
    msg = getattr(exc, "auth_message", None) or str(exc)
    return UsageError(redact(f"Salesforce login failed for {what}: {code}: {msg}"),
                      hint="check the salesforce: section of crmbridge.yml and the environment variables it names")


def _register_tokens(sf) -> None:
    """Treat the live session id as a secret, now and after every re-login simple-salesforce does."""
    register(getattr(sf, "session_id", None))
    partial = getattr(sf, "_salesforce_login_partial", None)
    if partial is not None and not getattr(partial, "_crmbridge_wrapped", False):
        def login_and_register():
            sid, instance = partial()
            register(sid)
            return sid, instance

        login_and_register._crmbridge_wrapped = True  # type: ignore[attr-defined]
        sf._salesforce_login_partial = login_and_register


def login_for(target, *, api_version: str, base_dir: Path, timeout: float) -> Login:
    """A :class:`Login` for a SandboxTarget, PasswordTarget, TokenTarget or JwtTarget."""
    from simple_salesforce import Salesforce
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    kind = getattr(target, "target", None)
    if kind == "sandbox":
        # The sandbox password is a plain value in crmbridge.yml (default "sandbox"), not a secret;
        # registering it would mask every occurrence of that word in logs. Its session ids are secrets.
        if target.instance_url:
            instance_url, ca = target.instance_url, target.ca_bundle
            if ca:
                ca = str(base_dir / ca) if not Path(ca).is_absolute() else ca
        else:
            handle = embedded_sandbox(base_dir / target.db, [base_dir / f for f in target.schema_files],
                                      target.username, target.password)
            instance_url, ca = handle.instance_url, str(handle.ca_bundle)

        def build(session):
            if ca:
                trust(session, ca)
            forward_login(session, instance_url, timeout)
            return Salesforce(username=target.username, password=target.password,
                              consumer_key=SANDBOX_CONSUMER_KEY, consumer_secret=SANDBOX_CONSUMER_SECRET,
                              domain="login", version=api_version, session=session)

        return Login(_guard(build, f"sandbox {instance_url}", SalesforceAuthenticationFailed), True, ca,
                     f"sandbox at {instance_url}")

    if kind == "password":
        password = target.password.resolve(what="salesforce.password")
        token = target.security_token.resolve(what="salesforce.security_token") if target.security_token else ""
        secret = target.consumer_secret.resolve(what="salesforce.consumer_secret") if target.consumer_secret else None

        def build(session):
            if target.consumer_key and secret:
                # OAuth password grant: Salesforce wants the security token appended to the password.
                return Salesforce(username=target.username, password=password + token,
                                  consumer_key=target.consumer_key, consumer_secret=secret,
                                  domain=target.domain, version=api_version, session=session)
            return Salesforce(username=target.username, password=password, security_token=token,
                              domain=target.domain, version=api_version, session=session)

        return Login(_guard(build, f"{target.username} at {target.domain}", SalesforceAuthenticationFailed),
                     True, None, f"{target.username} at {target.domain}.salesforce.com")

    if kind == "token":
        token = target.access_token.resolve(what="salesforce.access_token")

        def build(session):
            return Salesforce(instance_url=target.instance_url, session_id=token, version=api_version,
                              session=session)

        return Login(build, False, None, f"token for {target.instance_url}")

    if kind == "jwt":
        key_file = Path(target.private_key_file)
        key_file = key_file if key_file.is_absolute() else base_dir / key_file
        if not key_file.is_file():
            raise UsageError(f"salesforce.private_key_file: {key_file} does not exist",
                             hint="point private_key_file at the connected app's PEM private key")

        def build(session):
            return Salesforce(username=target.username, consumer_key=target.consumer_key,
                              privatekey_file=str(key_file), domain=target.domain, version=api_version,
                              session=session)

        return Login(_guard(build, f"{target.username} (JWT) at {target.domain}", SalesforceAuthenticationFailed),
                     True, None, f"{target.username} (JWT) at {target.domain}.salesforce.com")

    raise UsageError(f"salesforce.target: unknown target {kind!r}",
                     hint="use one of sandbox, password, token, jwt")


def _guard(build, what: str, auth_exc: type):
    def guarded(session):
        try:
            return build(session)
        except auth_exc as exc:
            raise _auth_error(what, exc) from None
        except requests.ConnectionError as exc:
            raise UsageError(redact(f"cannot reach Salesforce for {what}: {type(exc).__name__}"),
                             hint="check the network, the domain/instance_url, and that the sandbox runs") from None
    return guarded


def finish_login(sf) -> None:
    _register_tokens(sf)
