"""One Ctrl-C (one SIGINT) to ``crmbridge migrate`` at each moment of its start: exit 130, never 1 (click's
``Abort``) or -2 (a KeyboardInterrupt left to Python's exit), no traceback, a run that exists recorded as
interrupted, no process left; and a second Ctrl-C while the first is handled changes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for child processes")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path_factory.mktemp("ctrl_c") / "p"
    init_project(root)
    write_demo_data(root, customers=6000, erp=False)
    return root


def _state(root: Path, sql: str) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{root / '.crmbridge' / 'state.db'}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or busy
        return []


def _children(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def _reached(root: Path, moment: str, started: float) -> bool:
    if moment.startswith("after "):  # while Python imports the CLI and the libraries, or preflight runs
        return time.monotonic() - started >= float(moment.split()[1].rstrip("s"))
    if moment == "state opened":  # before the run exists: preflight, the sandbox's start
        return (root / ".crmbridge" / "state.db").exists()
    if moment == "run created":  # its folder is made, its row is being written
        return (root / "runs").exists() and any((root / "runs").iterdir())
    return ("extract", "running") in _state(root, "SELECT stage, status FROM run_stages")


@pytest.mark.parametrize("moment", ["after 0.3s", "after 0.8s", "state opened", "run created", "extract"])
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_at_the_start_of_migrate_exits_130(demo, tmp_path, moment, presses):
    root = tmp_path / "p"
    shutil.copytree(demo, root)
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(root), "migrate"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=str(root))
    deadline = started + 120
    while not _reached(root, moment, started) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert child.poll() is None, f"migrate ended before {moment}"
    child.send_signal(signal.SIGINT)
    if presses == 2:  # pressed again while the first is handled, or while the process exits
        time.sleep(0.05)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    kids = _children(child.pid)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "aborted" not in err, err[-3000:]
    runs = _state(root, "SELECT run_id, status FROM runs WHERE kind = 'migrate'")
    assert all(status == "interrupted" for _, status in runs), runs
    assert not _state(root, "SELECT stage FROM run_stages WHERE status = 'running'"), "a stage left running"
    if runs:
        assert f"run {runs[0][0]} interrupted (Ctrl-C) during" in err, err[-3000:]
    else:
        assert err.rstrip().endswith("interrupted"), err[-3000:]
    if moment in ("run created", "extract"):
        assert len(runs) == 1, runs
    assert not _state(root, "SELECT name FROM run_locks"), "the project lock was left behind"
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{k}").exists() for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{k}").exists() for k in kids), "a child process outlived migrate"


@pytest.mark.parametrize("exit_by", ["sys.exit(130)", "crmbridge.cli._interrupted(None, 'interrupted')"])
def test_a_ctrl_c_caught_in_source_built_code_still_exits_130_under_python_m(tmp_path, exit_by):
    """The -2 after "interrupted": a KeyboardInterrupt that ends an ``exec`` of a string (dataclasses,
    namedtuple, typing build code that way while modules are imported) marks the interpreter, even when it
    is caught; under ``python -m`` Python then ends the process by SIGINT whatever ``sys.exit`` said."""
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "__main__.py").write_text(
        "import sys\nimport crmbridge.cli\ntry:\n    exec('raise KeyboardInterrupt')\nexcept KeyboardInterrupt:\n"
        f"    {exit_by}\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code = subprocess.run([sys.executable, "-m", "kb"], cwd=str(tmp_path), env=env, capture_output=True).returncode
    assert code == (-signal.SIGINT if exit_by.startswith("sys.exit") else 130)  # CPython's behaviour, then ours


def test_processes_the_tests_start_get_ctrl_c_as_at_a_terminal():
    """The Ctrl-C tests above need a child that does not inherit SIGINT ignored (tests/conftest.py,
    ``pytest_configure``): a test run started as a background job would otherwise pass that on."""
    code = "import signal, sys; sys.exit(7 if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_migrate_started_with_ctrl_c_ignored_keeps_it_ignored(demo, tmp_path):
    """``nohup crmbridge migrate &`` from a script starts it with SIGINT ignored: a SIGINT sent to it (a
    Ctrl-C at the terminal it was started from) changes nothing, the run finishes."""
    root = tmp_path / "p"
    shutil.copytree(demo, root)
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(root), "migrate"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=str(root),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    started = time.monotonic()
    sent = 0
    for moment in ("after 0.5s", "state opened", "extract", "validate"):
        while child.poll() is None and time.monotonic() < started + 120 and not (
                _reached(root, moment, started) if moment != "validate"
                else ("validate", "running") in _state(root, "SELECT stage, status FROM run_stages")):
            time.sleep(0.002)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            sent += 1
    _, err = child.communicate(timeout=300)
    assert sent >= 3, "migrate ended before the SIGINTs could be sent"
    assert "interrupted" not in err, err[-3000:]
    assert _state(root, "SELECT status FROM runs WHERE kind = 'migrate'") == [("succeeded",)], err[-3000:]
