"""Only runs that did real work are rehearsals: a configuration error creates no run, Ctrl-C marks a run
``interrupted`` (exit 130, the command that resumes it) and it is not "the last rehearsal"; a rehearsal
rolled back afterwards still counts; every unknown gate says why; rows a mapping filter leaves out on
purpose are counted apart from data-quality quarantine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from crmbridge.config import load_project

PLAN = """
phases:
  - id: rehearsed
    gates:
      - {id: one_rehearsal, metric: rehearsals, op: ">=", target: 1, owner: {department: it}}
      - {id: quarantine, metric: rehearsal_quarantine_rate, entity: contracts, op: "<=", target: 0.5,
         owner: {department: it}}
      - {id: filtered, metric: rehearsal_filtered_rate, entity: contracts, op: "<=", target: 0.9,
         owner: {department: it}}
      - {id: reconciles, metric: rehearsal_reconcile_mismatches, op: "==", target: 0, owner: {department: it}}
      - {id: duration, metric: rehearsal_duration_hours, op: "<=", target: 1, owner: {department: it}}
      - {id: delta, metric: delta_run_hours, op: "<=", target: 1, priority: could, owner: {department: it}}
      - {id: conflicts, metric: open_sync_conflicts, op: "==", target: 0, priority: could, owner: {department: it}}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    d = tmp_path_factory.mktemp("evidence")
    init_project(d)
    write_demo_data(d, customers=120)
    (d / "readiness.yml").write_text(PLAN, "utf-8")
    yield d
    from crmbridge.state import dispose_all

    dispose_all()


def _gates(crm, root):
    code, body, err = crm(root, "readiness", "--json")
    assert code in (0, 1), err
    return {g["id"]: g for g in body["gates"]}


def _runs(root):
    eng = create_engine(load_project(root).state_url)
    try:
        with eng.connect() as c:
            return {r.run_id: r.status for r in c.execute(text("SELECT run_id, status FROM runs WHERE kind = 'migrate'"))}
    except Exception:  # noqa: BLE001 - no state database yet
        return {}
    finally:
        eng.dispose()


def test_runs_that_did_no_real_work_are_not_rehearsals(root, crm):
    # 1. nothing yet: every unknown gate says why
    g = _gates(crm, root)
    for gate in g.values():
        if gate["status"] == "unknown":
            assert gate["value_text"].startswith("unknown (") and len(gate["value_text"]) > 20, gate
    assert "no rehearsal yet" in g["quarantine"]["value_text"]
    assert "no sync has run yet" in g["conflicts"]["value_text"]

    # 2. a configuration error creates no run
    mapping = root / "mappings" / "account.yml"
    good = mapping.read_text("utf-8")
    mapping.write_text(good + "\nbogus_key: 1\n", "utf-8")
    code, _, err = crm(root, "migrate")
    assert code == 2 and "account.yml" in err, err
    assert _runs(root) == {}
    mapping.write_text(good, "utf-8")

    # 3. a rehearsal; rows a mapping filter leaves out are not data-quality quarantine
    code, out, err = crm(root, "migrate", "--json")
    assert code == 0, err
    first = out["run_id"]
    con = out["entities"]["contracts"]
    assert con["filtered"] > 0 and con["extracted"] == con["quarantined"] + con["filtered"] + con["loaded"] + \
        con["rejected"]
    g = _gates(crm, root)
    assert g["one_rehearsal"]["value"] == 1
    assert g["quarantine"]["value"] == pytest.approx(con["quarantined"] / con["extracted"])
    assert g["filtered"]["value"] == pytest.approx(con["filtered"] / con["extracted"])
    assert "no delta run yet" in g["delta"]["value_text"]

    # 4. rolled back, it still counts as evidence
    code, _, err = crm(root, "rollback", first)
    assert code == 0, err
    assert _runs(root)[first] == "rolled_back"
    g2 = _gates(crm, root)
    for gid in ("one_rehearsal", "quarantine", "filtered", "reconciles", "duration"):
        assert g2[gid]["value"] == g[gid]["value"] and g2[gid]["status"] != "unknown", gid

    # 5. Ctrl-C: interrupted, exit 130, the resume command printed; not the last rehearsal
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(root), "migrate"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None and len(_runs(root)) < 2:
        time.sleep(0.05)
    assert child.poll() is None, "migrate ended before it could be interrupted"
    time.sleep(0.5)  # well into the extract
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    second = next(r for r in _runs(root) if r != first)
    assert f"run {second} interrupted (Ctrl-C)" in err and f"`crmbridge migrate` resumes run {second}" in err, err
    assert "Traceback" not in err
    assert _runs(root)[second] == "interrupted"
    g3 = _gates(crm, root)
    assert g3["quarantine"]["value"] == g["quarantine"]["value"]  # still the rolled-back rehearsal's figure

    # 6. `migrate` resumes the interrupted run and finishes it: org and ledger agree, no duplicates
    code, out, err = crm(root, "migrate", "--json")
    assert code == 0 and out["run_id"] == second and out["resumed"] and out["reconcile_ok"], err
    assert _runs(root)[second] == "succeeded"
    from crmbridge.connectors.salesforce import connect

    conn = connect(load_project(root))
    try:
        keys = [r["Legacy_Id__c"] for r in conn.query("SELECT Legacy_Id__c FROM Account")]
        assert len(keys) == len(set(keys)) == _loaded_records(root, second)  # zero duplicates, zero leftovers
    finally:
        conn.close()
    assert _gates(crm, root)["one_rehearsal"]["value"] == 2


def _loaded_records(root, run_id) -> int:
    """Accounts the run's ledger says are in the org (merged source rows share one record)."""
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    led = L.ledger_frame(open_state(load_project(root).state_url), run_id, "Account")
    return led[led["action"].isin(["created", "updated", "unchanged"])]["external_id"].nunique()
