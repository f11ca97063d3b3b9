"""GX Data Docs are self-contained and inert (issue 16 point 5): no script, no URL leaving the machine,
checked in headless Chromium behind a recording proxy that must see no request at all."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


class RecordingProxy:
    """An HTTP proxy on loopback that answers nothing and records every request Chromium sends it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = "?"
                self.requests.append(first)
                try:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


# Chromium itself calls home (component updates, network time, account checks) whatever the page is:
# those requests are the browser's, to Google's service hosts, which no Data Docs page names.
_BROWSER_OWN = re.compile(r"^(?:CONNECT |[A-Z]+ https?://)(?:[a-z0-9-]+\.)*(?:google\.com|googleapis\.com|gstatic\.com|"
                          r"gvt1\.com)(?::443)?[/ ]")


def page_requests(proxy: RecordingProxy) -> list[str]:
    return [r for r in proxy.requests if not _BROWSER_OWN.match(r)]


def open_in_chromium(exe: str, page: Path, profile: Path, proxy: RecordingProxy) -> str:
    """Load ``page`` with every network request routed to ``proxy``; returns the DOM after scripts ran."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-domain-reliability",
           "--disable-client-side-phishing-detection", "--metrics-recording-only",
           # Chromium asks Google for the time by itself; that is the browser, not the page
           "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter", f"--user-data-dir={profile}",
           f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
           "--virtual-time-budget=3000", "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def data_docs(tmp_path_factory):
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import dispose_all, open_state
    from crmbridge.templates.commands import init_project
    from crmbridge.validation.stage import run_validate

    root = tmp_path_factory.mktemp("docs") / "p"
    init_project(root)
    write_demo_data(root, customers=60, seed=9, erp=False)
    project = load_project(root)
    run = open_run(open_state(project.state_url), project.runs_dir, run_extract(project).run_id)
    run_validate(project, run)
    dispose_all()
    return run.dir / "validate" / "data_docs"


def test_no_file_names_an_external_url(data_docs):
    pages = sorted(data_docs.glob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "customers.html", "contacts.html"}
    for p in pages:
        text = p.read_text("utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), p.name
        assert "<script" not in text.lower() and not re.search(r"\son[a-z]+\s*=", text), p.name
    assert "Content-Security-Policy" in (data_docs / "customers.html").read_text("utf-8")


def test_chromium_sends_no_request_and_the_page_is_styled(chromium, data_docs, tmp_path):
    exe = chromium
    proxy = RecordingProxy()
    try:
        # The control first: a page with one CDN script and one stylesheet reaches the proxy, so
        # silence below means nothing was asked for, not a blind instrument.
        control = tmp_path / "control.html"
        control.write_text('<html><head><link rel="stylesheet" href="https://cdn.example.com/x.css">'
                           '<script src="http://code.example.com/jquery.js"></script></head><body>x</body></html>')
        open_in_chromium(exe, control, tmp_path / "p0", proxy)
        assert any("cdn.example.com" in r or "code.example.com" in r for r in page_requests(proxy)), proxy.requests
        proxy.requests.clear()
        for i, name in enumerate(["customers.html", "contacts.html", "index.html"]):
            dom = open_in_chromium(exe, data_docs / name, tmp_path / f"p{i + 1}", proxy)
            assert page_requests(proxy) == [], (name, proxy.requests)
            assert "<script" not in dom.lower()
        dom = open_in_chromium(exe, data_docs / "customers.html", tmp_path / "p9", proxy)
        assert "Expectation Validation Result" in dom and "crmbridge's stylesheet" in dom
        assert page_requests(proxy) == []
    finally:
        proxy.close()


def test_self_contained_removes_what_gx_pulls_in_and_the_check_refuses_leftovers():
    from crmbridge.errors import RunFailed
    from crmbridge.validation import datadocs

    gx_like = ('<html><head><script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
               '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">'
               '<style>@import url("https://fonts.example.com/a.css"); .x{background:url(//cdn.example.com/i.png)}</style>'
               '</head><body><img src="https://great-expectations-web-assets.s3.amazonaws.com/logo.png">'
               '<a href="https://greatexpectations.io/newsletter">Subscribe</a><a href="../../../../index.html">Home</a>'
               '<label class="btn" onclick="hideSucceededValidations()"><input id="option2" type="radio"> Failed Only'
               '</label><script>$(function(){})</script><footer><p>newsletter</p></footer></body></html>')
    page = datadocs.self_contained(gx_like)
    datadocs.check_self_contained(page, "x.html")
    assert "Subscribe" in page and "Home" in page and "Failed Only" in page
    assert "http" not in page.replace("http-equiv", "") and "onclick" not in page and "<script" not in page
    with pytest.raises(RunFailed, match="external URL"):
        datadocs.check_self_contained(page.replace("</body>", '<img src="https://x.example/p.png"></body>'), "y.html")
    with pytest.raises(RunFailed, match="active content"):
        datadocs.check_self_contained(page.replace("</body>", "<script>1</script></body>"), "y.html")
