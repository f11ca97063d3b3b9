"""One run-writing command at a time per project: a second process is refused with the holder's command,
pid, host and start time; the lock of a process killed with kill -9 is taken over by the next command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

N = 20_000  # small REST batches: the load runs long enough for the second commands and the kill


def _wait_for(engine, sql, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with engine.connect() as c:
                if c.execute(text(sql)).scalar():
                    return True
        except Exception:  # noqa: BLE001 - tables not created yet
            pass
        time.sleep(0.02)
    return False


def test_project_lock_is_reentrant_and_released(project):
    from crmbridge.locks import LockBusy, RunLock, project_lock, run_locks
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    with project_lock(project, "migrate"):
        with project_lock(project, "load"):  # the same process: migrate calls the stages
            pass
        with engine.connect() as c:
            row = c.execute(run_locks.select()).one()
        assert (row.name, row.command, row.pid) == ("migration", "crmbridge migrate", os.getpid())
        with pytest.raises(LockBusy, match=r"writing to this project: `crmbridge migrate`, pid \d+ on "):
            RunLock(engine, "other", name="migration").acquire()  # another holder (as a second process is)
    with engine.connect() as c:
        assert c.execute(run_locks.select()).first() is None


def test_second_process_refused_then_dead_holder_taken_over(project, mapped_run, helpers):
    # one small batch at a time, so that the load is still running when the other commands try
    (project.root / "crmbridge.yml").write_text("name: lock-test\nsalesforce_settings: {bulk_jobs_in_flight: 1}\n",
                                                encoding="utf-8")
    run = mapped_run(helpers.accounts(N))
    args = [sys.executable, "-m", "crmbridge", "--project", str(project.root), "load", "--run", run.run_id,
            "--batch-rows", "200"]
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    engine = create_engine(project.state_url)
    try:
        assert _wait_for(engine, "SELECT COUNT(*) FROM load_journal WHERE status = 'done'"), "the load never started"
        cmds = (["migrate"], ["reconcile", "--run", run.run_id], ["rollback", run.run_id], ["extract"])
        others = [subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(project.root), *cmd],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for cmd in cmds]
        for cmd, p in zip(cmds, others):
            _, stderr = p.communicate(timeout=120)
            second = subprocess.CompletedProcess(p.args, p.returncode, "", stderr)
            assert second.returncode == 1, (cmd, second.stderr)
            assert "another crmbridge command is writing to this project: `crmbridge --project" in second.stderr
            assert f"load --run {run.run_id} --batch-rows 200`, pid {child.pid} on {socket.gethostname()}, since " \
                   in second.stderr
            assert "Traceback" not in second.stderr
        assert child.poll() is None, "the load finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    with engine.connect() as c:
        assert c.execute(text("SELECT pid FROM run_locks")).scalar() == child.pid  # left behind by kill -9
        runs_before = c.execute(text("SELECT COUNT(*) FROM runs")).scalar()
    engine.dispose()
    again = helpers.cli(project.root, "load", "--run", run.run_id, "--batch-rows", "2000")
    assert again.returncode == 0, again.stderr
    rec = helpers.cli(project.root, "reconcile", "--run", run.run_id)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    engine = create_engine(project.state_url)
    with engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM run_locks")).scalar() == 0
        assert c.execute(text("SELECT COUNT(*) FROM runs")).scalar() == runs_before  # refusals created no run
    engine.dispose()
    from crmbridge.connectors.salesforce import connect

    conn = connect(project)
    try:
        keys = helpers.org_keys(conn, "Account")
        assert len(keys) == len(set(keys)) == N
    finally:
        conn.close()
