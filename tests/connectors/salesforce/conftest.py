"""Fixtures: connectors logged into the session's sandbox org over HTTPS.

The org is shared (started once per session); tests keep their data apart with a unique
``Legacy_Id__c`` prefix (``tag``) and reset fault injection when they finish.
"""

from __future__ import annotations

import uuid

import pytest
import requests


@pytest.fixture(scope="session")
def org(sandbox):
    """The session's sandbox org (SandboxHandle from tests/conftest.py)."""
    return sandbox


@pytest.fixture
def faults(org):
    """The org's fault injection, switched off again after the test."""
    org.faults.clear()
    yield org.faults
    org.faults.clear()


def _quick(conn):
    # Keep backoff waits in tests to milliseconds (the retry logic itself is unchanged).
    conn.retry.base_delay = 0.005
    conn.retry.max_delay = 0.05
    return conn


@pytest.fixture
def target(org):
    """The org as a SandboxTarget pointing at the running server."""
    from crmbridge.config import SandboxTarget

    return SandboxTarget(instance_url=org.instance_url, ca_bundle=org.ca_bundle, username=org.username,
                         password=org.password)


@pytest.fixture
def settings():
    from crmbridge.config import SalesforceSettings

    return SalesforceSettings(timeout_seconds=30, max_retries=6)


@pytest.fixture
def make_conn(settings, tmp_path):
    """connect_settings(target, settings) with quick backoff; connectors are closed afterwards."""
    from crmbridge.connectors.salesforce import connect_settings

    made = []

    def make(target, *, session=None, **overrides):
        s = settings.model_copy(update=overrides) if overrides else settings
        c = _quick(connect_settings(target, s, base_dir=tmp_path, session=session))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def conn(make_conn, target):
    """A connector logged into the org through simple-salesforce's OAuth password flow."""
    return make_conn(target)


@pytest.fixture
def tag():
    """A prefix unique to this test for external ids and names."""
    return "T" + uuid.uuid4().hex[:10]


@pytest.fixture
def login_session(org):
    """Factory of sessions that trust the org's CA and forward login.salesforce.com to it, so the
    password/JWT flows run exactly as against a real org."""
    from crmbridge.connectors.salesforce.auth import forward_login, make_session

    def make() -> requests.Session:
        s = make_session(ca_bundle=org.ca_bundle, timeout=30)
        forward_login(s, org.instance_url, 30)
        return s

    return make
