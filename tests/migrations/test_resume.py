"""Crash a load from outside (a hard exit at journal points, and kill -9 while a Bulk job runs), then
run the same command again: the run continues, nothing is duplicated, nothing is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

N_ACCOUNTS, N_CONTACTS, BATCH = 4400, 2200, 2200  # two Bulk batches of accounts, one of contacts


def _check_complete(project, helpers, run):
    from crmbridge.connectors.salesforce import connect
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    r = helpers.cli(project.root, "reconcile", "--run", run.run_id)
    assert r.returncode == 0, r.stdout + r.stderr
    conn = connect(project)
    try:
        keys = helpers.org_keys(conn, "Account")
        assert len(keys) == len(set(keys)) == N_ACCOUNTS  # no duplicates, nothing missing
        assert conn.count("SELECT COUNT() FROM Account") == N_ACCOUNTS
        assert conn.count("SELECT COUNT() FROM Contact") == N_CONTACTS
    finally:
        conn.close()
    counts = L.action_counts(open_state(project.state_url), run.run_id)
    # every record was created by this run, even those whose result was fetched after the crash
    assert counts["Account"]["created"] == N_ACCOUNTS + len(range(0, N_ACCOUNTS, 3))
    assert counts["Contact"] == {"created": N_CONTACTS, "updated": 0, "unchanged": 0, "failed": 0}


@pytest.mark.parametrize("point", ["load:after_intent", "load:after_job_created", "load:after_dml",
                                   "load:after_batch@1", "load:after_job_created@3"])
def test_resume_after_crash_at(point, project, mapped_run, helpers):
    run = mapped_run(helpers.accounts(N_ACCOUNTS), helpers.contacts(N_CONTACTS, accounts=N_ACCOUNTS))
    args = ("load", "--run", run.run_id, "--batch-rows", str(BATCH))
    crashed = helpers.cli(project.root, *args, env_extra={"CRMBRIDGE_TEST_CRASH_AT": point})
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    resumed = helpers.cli(project.root, *args, "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _check_complete(project, helpers, run)


def test_resume_after_kill_9_during_bulk_job(project, mapped_run, helpers):
    run = mapped_run(helpers.accounts(N_ACCOUNTS), helpers.contacts(N_CONTACTS, accounts=N_ACCOUNTS))
    args = [sys.executable, "-m", "crmbridge", "--project", str(project.root), "load", "--run", run.run_id,
            "--batch-rows", str(BATCH)]
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    engine = create_engine(project.state_url)
    deadline, killed = time.monotonic() + 120, False
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                with engine.connect() as c:
                    n = c.execute(text("SELECT COUNT(*) FROM load_journal WHERE job_id IS NOT NULL")).scalar()
            except Exception:  # table not created yet
                n = 0
            if n >= 2:  # the second Bulk job (accounts, batch 2) was submitted: kill while it runs
                os.kill(child.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
    finally:
        child.wait(timeout=60)
        engine.dispose()
    assert killed, "the load finished before it could be killed"
    assert child.returncode == -signal.SIGKILL
    resumed = helpers.cli(project.root, "load", "--run", run.run_id, "--batch-rows", str(BATCH))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _check_complete(project, helpers, run)
