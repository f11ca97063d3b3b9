"""The dashboard in headless Chromium: charts drawn (non-blank image regions), legacy markup shown as text."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dashboard(demo_project):
    """Three rehearsals of the demo project, then the dashboard."""
    from crmbridge.config import load_project
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.readiness.evaluate import run_readiness

    project = load_project(demo_project)
    for _ in range(3):
        run_migrate(project, new=True)
    ev = run_readiness(project, out=str(demo_project / "steering" / "readiness.html"))
    return demo_project, ev


def test_dashboard_escapes_legacy_markup(dashboard):
    root, ev = dashboard
    html = (root / "steering" / "readiness.html").read_text("utf-8")
    assert html.count('<img class="trend"') == 4
    # the demo data plants <script>/<b> in company names; validation quarantines them and the
    # dashboard lists them as examples: as text, never as markup
    assert "&lt;script&gt;" in html or "&lt;b&gt;Evil&lt;/b&gt;" in html
    assert "<script>" not in html and "<b>Evil</b>" not in html


def test_dashboard_screenshot_shows_charts(dashboard, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    from PIL import Image

    root, _ = dashboard
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2600",
                    (root / "steering" / "readiness.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2600)
    # the chart images draw the blue rehearsal line (#1f6feb); a page without charts has none of it
    blue = sum(1 for px in img.getdata() if abs(px[0] - 0x1f) < 40 and abs(px[1] - 0x6f) < 40 and abs(px[2] - 0xeb) < 40)
    assert blue > 500, blue
    colours = len(set(img.crop((0, 0, 1200, 2600)).getdata()))
    assert colours > 50
