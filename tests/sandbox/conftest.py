"""Helpers for the sandbox tests: a requests session whose login.salesforce.com traffic reaches the sandbox."""

from __future__ import annotations

import pytest
import requests
from requests.adapters import HTTPAdapter


class ForwardAdapter(HTTPAdapter):
    """Sends requests for ``https://login.salesforce.com/...`` to the sandbox instead (same path)."""

    def __init__(self, instance_url: str, ca_bundle: str):
        super().__init__()
        self.instance_url, self.ca_bundle = instance_url, ca_bundle

    def send(self, request, **kwargs):
        request.url = self.instance_url + request.url.split(".salesforce.com", 1)[1]
        kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


@pytest.fixture
def login_session(sandbox):
    """A session for simple-salesforce's login helpers: login.salesforce.com is forwarded to the sandbox."""
    s = sandbox.session()
    s.mount("https://login.salesforce.com", ForwardAdapter(sandbox.instance_url, sandbox.ca_bundle))
    return s


def _raw(sandbox, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    """A plain HTTPS call to the sandbox (for wire details simple-salesforce hides)."""
    s = sandbox.session()
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return s.request(method, sandbox.instance_url + path, headers=headers, **kwargs)


@pytest.fixture
def raw():
    """``raw(handle, method, path, token=None, **requests_kwargs)``: a plain HTTPS call to a sandbox."""
    return _raw
