"""Progress (issue 16 point 2): one rich Progress with a task per stage and per object on a terminal,
stage lines through the same console; only stage lines without a terminal; nothing under --json."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _run_on_tty(cwd, *args):
    """Run the CLI with stderr on a pseudo-terminal (as a person sees it); stdout stays a pipe."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "crmbridge", *args], cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode()
    proc.wait(timeout=600)
    os.close(master)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    return proc.returncode, out, screen


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path_factory.mktemp("progress") / "p"
    init_project(root)
    write_demo_data(root, customers=80, seed=5)
    return root


def test_migrate_on_a_terminal_shows_stages_and_objects_with_totals(small_project):
    code, out, screen = _run_on_tty(small_project, "migrate")
    assert code == 0, screen
    lines = [line.strip() for line in re.split(r"[\r\n]", screen) if line.strip()]
    # stage lines are lines of their own, never glued to a bar
    for stage in ("extract", "validate", "map", "load", "reconcile"):
        assert f"-> {stage}" in lines, lines
    # a task per object, full at the end, with the total from the plan
    plan_rows = {}
    import json

    run_dir = next((small_project / "runs").iterdir())
    for step in json.loads((run_dir / "map" / "plan.json").read_text("utf-8"))["steps"]:
        plan_rows[step["object"]] = step["rows"]
    for obj, rows in plan_rows.items():
        assert any(re.match(rf"{obj} \(records\).* {rows:,}/{rows:,}\b", line) for line in lines), (obj, rows, lines)
    assert any(re.match(r"load .* 3/3\b", line) for line in lines), lines
    assert "0/?" not in screen
    # the summary tables are on stdout, not mixed into the terminal progress
    assert "rows extracted" in out and "-> " not in out


def test_json_is_silent_on_a_terminal_and_a_pipe_gets_stage_lines_only(small_project):
    code, out, screen = _run_on_tty(small_project, "--json", "migrate", "--new")
    assert code == 0
    assert screen.strip() == "" and json_ok(out)
    r = subprocess.run([sys.executable, "-m", "crmbridge", "rollback", "latest"], cwd=str(small_project),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["-> rollback"]


def json_ok(text: str) -> bool:
    import json

    return isinstance(json.loads(text), dict)
