"""Issue 15 point 1 with the client that broke: jsforce's Bulk 2.0 loader streams its CSV upload with
Transfer-Encoding: chunked. Runs the real jsforce (npm) under node against the sandbox.

jsforce is installed once into ``$CRMBRIDGE_JSFORCE_DIR`` (default ``~/.cache/crmbridge/jsforce``) with
npm; the test is skipped, saying why, when node/npm or the npm registry is not available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JSFORCE = "jsforce@3.10.16"
SCRIPT = Path(__file__).parent / "cases" / "jsforce_bulk_load.js"


@pytest.fixture(scope="module")
def jsforce_dir() -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to run jsforce")
    where = Path(os.environ.get("CRMBRIDGE_JSFORCE_DIR", Path.home() / ".cache" / "crmbridge" / "jsforce"))
    if not (where / "node_modules" / "jsforce" / "package.json").exists():
        where.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["npm", "install", JSFORCE, "--no-audit", "--no-fund", "--prefix", str(where)],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            pytest.skip(f"npm install {JSFORCE} failed (registry unreachable?): {p.stderr[-300:]}")
    return where


def test_jsforce_bulk2_chunked_upload(fresh_sandbox, jsforce_dir):
    seen: list[tuple[str, str | None, str | None]] = []
    handle_request = fresh_sandbox.app.handle

    def recording(req):  # notes how each upload arrived, then serves it as usual
        if req.method == "PUT":
            seen.append((req.path, req.headers.get("Transfer-Encoding"), req.headers.get("Content-Length")))
        return handle_request(req)

    fresh_sandbox.app.handle = recording
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=fresh_sandbox.ca_bundle, NODE_PATH=str(jsforce_dir / "node_modules"))
    p = subprocess.run(["node", str(SCRIPT), fresh_sandbox.instance_url, fresh_sandbox.new_session(), "JSF", "2500"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout) == {"successful": 2500, "failed": 0, "unprocessed": 0, "counted": 2500}
    assert len(seen) == 1 and seen[0][0].endswith("/batches")
    assert seen[0][1] == "chunked" and seen[0][2] is None  # streamed, no Content-Length: what broke before
