"""Rolling back a killed run uses the journal: the Bulk batch that was in flight when the process died is
found in the org by its external IDs and deleted too; the run is marked rolled back only when nothing
it created is left, and the next load creates everything again (nothing counted as "updated")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

N, BATCH = 6600, 2200  # three Bulk batches of accounts


def _org(project):
    from crmbridge.connectors.salesforce import connect

    return connect(project)


def _rollback_and_check(project, helpers, run, *, expect_in_flight: bool):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.load import run_load
    from crmbridge.migrations.runinfo import show_run
    from crmbridge.state import open_state

    conn = _org(project)
    try:
        before = conn.count("SELECT COUNT() FROM Account")
        engine = open_state(project.state_url)
        in_ledger = int(L.ledger_frame(engine, run.run_id).drop_duplicates("external_id")["action"]
                        .eq("created").sum())
        assert before > in_ledger if expect_in_flight else before >= in_ledger

        r = helpers.cli(project.root, "rollback", run.run_id, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)
        step = out["steps"][0]
        # the in-flight records were found through the journal, not the ledger; a Bulk job still running at
        # the kill is waited for first, so it may have created more than the org held a moment ago
        assert step["in_flight"] == step["deleted"] - in_ledger
        assert step["deleted"] >= before and (step["failed"], step["left_in_org"]) == (0, 0)
        if expect_in_flight:
            assert step["in_flight"] > 0
        assert conn.count("SELECT COUNT() FROM Account") == 0  # zero leftovers
        assert show_run(engine, project, run.run_id)["status"] == "rolled_back"
        assert L.map_for(engine, "Account") == {}

        # the next run creates every record again: none is taken for an earlier record and "updated"
        again = run_load(project, helpers.mapped_run(helpers.accounts(N)), connector=conn)
        assert (again.steps[0].created, again.steps[0].updated, again.steps[0].failed) == (N, 0, 0)
        keys = helpers.org_keys(conn, "Account")
        assert len(keys) == len(set(keys)) == N
    finally:
        conn.close()


@pytest.fixture
def h(helpers, mapped_run):
    helpers.mapped_run = mapped_run
    return helpers


def test_rollback_after_a_crash_between_bulk_job_and_ledger(project, h):
    run = h.mapped_run(h.accounts(N))
    crashed = h.cli(project.root, "load", "--run", run.run_id, "--batch-rows", str(BATCH),
                    env_extra={"CRMBRIDGE_TEST_CRASH_AT": "load:after_dml@2"})
    assert crashed.returncode == 137, crashed.stderr
    _rollback_and_check(project, h, run, expect_in_flight=True)


def test_rollback_after_kill_9_during_a_bulk_load(project, h):
    run = h.mapped_run(h.accounts(N))
    args = [sys.executable, "-m", "crmbridge", "--project", str(project.root), "load", "--run", run.run_id,
            "--batch-rows", str(BATCH)]
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    engine = create_engine(project.state_url)
    conn = _org(project)
    killed = False
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and child.poll() is None:
            try:
                with engine.connect() as c:
                    job = c.execute(text("SELECT job_id FROM load_journal WHERE batch_no = 1")).scalar()
            except Exception:  # noqa: BLE001 - tables not created yet
                job = None
            # kill once the second batch's data is with Salesforce (the job was closed)
            if job and conn.bulk_client("Account").get_job(job, False)["state"] != "Open":
                os.kill(child.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
    finally:
        child.wait(timeout=60)
        engine.dispose()
        conn.close()
    assert killed and child.returncode == -signal.SIGKILL, "the load finished before it could be killed"
    _rollback_and_check(project, h, run, expect_in_flight=False)
