"""`pip install -e .` must not warn (issue 16 point 8): the package sits in `.editable/` (a symlink to
the repository root), so setuptools writes one plain .pth entry instead of a meta path finder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_editable_folder_links_to_the_repository_root():
    link = REPO / ".editable" / "crmbridge"
    assert link.is_symlink() and Path(link.readlink()) == Path("..")
    assert (link / "cli.py").resolve() == (REPO / "cli.py").resolve()


@pytest.mark.slow
def test_pip_install_editable_prints_no_warning_and_installs_a_plain_pth(tmp_path):
    """A real `pip install -e .` (pip builds in isolation with a current setuptools, as `make` does)."""
    src = tmp_path / "any-checkout-name"  # the checkout folder need not be called crmbridge
    shutil.copytree(REPO, src, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "runs", ".crmbridge", "__pycache__", "*.egg-info",
                                                  "build", "demo-project"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-deps", "--disable-pip-version-check", "-e", str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    noise = [line for line in r.stderr.splitlines() if "is ignored: it is neither a file nor a directory" not in line]
    assert noise == [], r.stderr  # no BuildBackendWarning, no "Please be careful with folders ..."
    site = next((venv / "lib").glob("python3*/site-packages"))
    pth = sorted(p.name for p in site.glob("*.pth"))
    assert pth == ["__editable__.crmbridge-0.1.0.pth"] and not list(site.glob("__editable___*finder*.py"))
    assert (site / pth[0]).read_text().strip() == str((src / ".editable").resolve())
    # the installed script runs the package of this checkout (dependencies from the running environment)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; sys.path += sys.argv[1:]; "
                            "import crmbridge.cli; print(crmbridge.cli.__file__)", *deps],
                           capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).resolve() == (src / "cli.py").resolve()
    assert (venv / "bin" / "crmbridge").exists()
