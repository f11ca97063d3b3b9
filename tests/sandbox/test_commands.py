"""``crmbridge sandbox serve`` as a real subprocess: --json handshake line, HTTPS with its CA, faults
from flags, clean exit on SIGTERM; and its help."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from click.testing import CliRunner
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceRefusedRequest


def test_serve_json_subprocess(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "crmbridge", "sandbox", "serve", "--json", "--port", "0",
                             "--db", str(tmp_path / "org.db"), "--username", "ops@example.com", "--password", "pw",
                             "--limit-after", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert {"instance_url", "username", "password", "ca_bundle", "db", "admin_url"} <= set(info)
        assert info["username"] == "ops@example.com" and info["instance_url"].startswith("https://127.0.0.1:")
        import requests

        s = requests.Session()
        s.verify, s.trust_env = info["ca_bundle"], False
        token = s.post(info["instance_url"] + "/services/oauth2/token", data={
            "grant_type": "password", "client_id": "c", "client_secret": "s", "username": "ops@example.com",
            "password": "pw"}).json()["access_token"]
        sf = Salesforce(instance_url=info["instance_url"], session_id=token, session=s)
        sf.Account.create({"Name": "From subprocess"})
        assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "From subprocess"
        sf.limits()
        try:
            sf.limits()
            raise AssertionError("--limit-after 3 did not refuse the 4th call")
        except SalesforceRefusedRequest as e:
            assert e.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_serve_help():
    from crmbridge.sandbox.commands import sandbox

    result = CliRunner().invoke(sandbox, ["serve", "-h"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--lock-rate" in result.output


def test_bad_jwt_app_flag_is_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "crmbridge", "sandbox", "serve", "--db", str(tmp_path / "o.db"),
                           "--jwt-app", "noequals"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "CLIENT_ID=path/to/cert.pem" in proc.stderr
