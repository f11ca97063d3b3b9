"""Shared fixtures: real PostgreSQL and MariaDB databases on loopback, and the sandbox org.

Outside CI a test whose server is unreachable is skipped with the reason; under CI
(CRMBRIDGE_CI=1, set by .ci/run) it fails instead, because .ci/run has made sure they run.
"""

from __future__ import annotations

import os
import secrets

import pytest

IN_CI = os.environ.get("CRMBRIDGE_CI") == "1"
PG_ADMIN_URL = os.environ.get("CRMBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIA_ADMIN_URL = os.environ.get("CRMBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")


def pytest_configure(config):
    """Ctrl-C as a terminal gives it, for the tests and the processes they start. A test run started in the
    background by a non-interactive shell (``nohup sh -c '... &'``, some CI runners) inherits SIGINT ignored,
    and so would every ``crmbridge`` the tests start: their Ctrl-C tests would then see a Ctrl-C ignored, as
    POSIX asks of a background job, instead of what a user at a terminal gets. Python's own handler here
    means a child starts with SIGINT at its default again (exec resets a caught signal)."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _unreachable(what: str, exc: Exception):
    msg = f"{what} is not reachable: {type(exc).__name__}: {exc}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def _fresh_database(admin_url: str, what: str, url_for):
    from sqlalchemy import create_engine, text

    name = "crmbridge_t_" + secrets.token_hex(4)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # server down or no permission
        _unreachable(what, exc)
    try:
        yield url_for(name)
    finally:
        from crmbridge.state import dispose_all

        dispose_all()
        with admin.connect() as c:
            if admin.dialect.name == "postgresql":
                c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def pg_url():
    """URL of a new, empty PostgreSQL database (dropped afterwards)."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield from _fresh_database(PG_ADMIN_URL, "PostgreSQL on 127.0.0.1:5432", lambda n: f"{base}/{n}")


@pytest.fixture
def mariadb_url():
    """URL of a new, empty MariaDB database (dropped afterwards)."""
    base = MARIA_ADMIN_URL.rstrip("/")
    yield from _fresh_database(MARIA_ADMIN_URL, "MariaDB on 127.0.0.1:3306",
                               lambda n: f"{base}/{n}?charset=utf8mb4")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_db_url(request, tmp_path):
    """The same test against SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
    elif request.param == "postgresql":
        yield from _pg(request)
    else:
        yield from _maria(request)


def _pg(request):
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield from _fresh_database(PG_ADMIN_URL, "PostgreSQL on 127.0.0.1:5432", lambda n: f"{base}/{n}")


def _maria(request):
    base = MARIA_ADMIN_URL.rstrip("/")
    yield from _fresh_database(MARIA_ADMIN_URL, "MariaDB on 127.0.0.1:3306", lambda n: f"{base}/{n}?charset=utf8mb4")


# ----------------------------------------------------------------------------- sandbox org
# The `sandbox` fixtures are added here by the sandbox work (issue 2).


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """A running sandbox org (SandboxHandle) on a session-wide temporary db.

    Tests share it: write data with unique external ids (see ``uid``), or use ``fresh_sandbox``.
    """
    from crmbridge.sandbox.server import start_sandbox

    handle = start_sandbox(tmp_path_factory.mktemp("sandbox") / "org.db")
    yield handle
    handle.stop()


@pytest.fixture
def fresh_sandbox(tmp_path):
    """A sandbox org of its own on a new db, for tests that need isolation (faults, counts, limits)."""
    from crmbridge.sandbox.server import start_sandbox

    handle = start_sandbox(tmp_path / "org.db")
    yield handle
    handle.faults.clear()
    handle.stop()


def _client(handle):
    from simple_salesforce import Salesforce

    return Salesforce(instance_url=handle.instance_url, session_id=handle.new_session(), session=handle.session(),
                      version="62.0")


@pytest.fixture
def sf(sandbox):
    """A simple-salesforce client logged in to the session sandbox over HTTPS."""
    return _client(sandbox)


@pytest.fixture
def fresh_sf(fresh_sandbox):
    """A simple-salesforce client logged in to ``fresh_sandbox``."""
    return _client(fresh_sandbox)


@pytest.fixture
def uid():
    """A short unique token for external ids, so tests sharing the session sandbox never collide."""
    return secrets.token_hex(4).upper()


@pytest.fixture
def chromium() -> str:
    """Path of Debian's chromium for the browser checks (skipped outside CI when absent; CI installs it)."""
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if IN_CI:
            pytest.fail("chromium is not installed (CI installs Debian's chromium in .ci/run)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return exe
