"""Reconcile (source vs ledger vs org) and rollback (delete created, restore updated) on the sandbox."""

from __future__ import annotations

import csv

import pytest


def _load(project, run, sf):
    from crmbridge.migrations.load import run_load

    return run_load(project, run, connector=sf)


def test_reconcile_agrees_after_a_load(project, sf, mapped_run, helpers):
    from crmbridge.migrations.reconcile import run_reconcile

    accounts = helpers.accounts(25)
    accounts.loc[3, "Name"] = None
    run = mapped_run(accounts, helpers.contacts(30, accounts=25))
    _load(project, run, sf)
    rec = run_reconcile(project, run, connector=sf)
    assert rec.ok, rec.as_dict()
    acc = rec.steps[0]
    assert (acc.ledger_loaded, acc.ledger_failed, acc.org_found, acc.source_rows, acc.ledger_rows) == (24, 1, 24, 34, 34)
    assert acc.fields["Name"]["source_checksum"] == acc.fields["Name"]["org_checksum"]
    assert rec.steps[1].fields["Account.Legacy_Id__c"]["mismatches"] == 0


def test_reconcile_lists_every_mismatch(project, sf, mapped_run, helpers):
    from crmbridge.migrations.reconcile import run_reconcile

    run = mapped_run(helpers.accounts(10))
    _load(project, run, sf)
    # someone edits one record and deletes another in the org behind the migration's back
    ids = {r["Legacy_Id__c"]: r["Id"] for r in sf.query("SELECT Id, Legacy_Id__c FROM Account")}
    sf.dml("update", "Account", [{"Id": ids["C000002"], "Name": "手工修改"}])
    sf.dml("delete", "Account", [{"Id": ids["C000005"]}])
    rec = run_reconcile(project, run, connector=sf)
    assert not rec.ok
    step = rec.steps[0]
    assert (step.missing_in_org, step.field_mismatches, step.org_found) == (1, 1, 9)
    assert step.fields["Name"]["source_checksum"] != step.fields["Name"]["org_checksum"]
    with open(step.mismatch_file, encoding="utf-8-sig", newline="") as f:
        rows = sorted((r["external_id"], r["kind"], r["field"], r["source"], r["org"]) for r in csv.DictReader(f))
    assert rows == [("C000002", "field_mismatch", "Name", "公司2", "手工修改"), ("C000005", "missing_in_org", "", "", "")]


def test_rollback_deletes_created_and_restores_updated(project, sf, mapped_run, helpers):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.rollback import run_rollback
    from crmbridge.state import open_state

    run1 = mapped_run(helpers.accounts(20), helpers.contacts(10, accounts=20))
    _load(project, run1, sf)
    changed = helpers.accounts(25)
    changed.loc[1, "Name"] = "新名字"
    changed.loc[2, "BillingCity"] = "北京"
    run2 = mapped_run(changed, helpers.contacts(15, accounts=25))
    _load(project, run2, sf)
    assert sf.count("SELECT COUNT() FROM Account WHERE Legacy_Id__c != null") == 25

    # run 1 cannot be undone while run 2, which wrote after it, stands
    from crmbridge.errors import UsageError

    with pytest.raises(UsageError, match=f"newer run\\(s\\) {run2.run_id}"):
        run_rollback(project, run1.run_id, connector=sf)
    result = run_rollback(project, run2.run_id, connector=sf)
    by_step = {s.step: s for s in result.steps}
    assert (by_step["Account"].deleted, by_step["Account"].restored, by_step["Account"].failed) == (5, 2, 0)
    assert (by_step["Contact"].deleted, by_step["Contact"].restored) == (5, 0)
    assert result.steps[0].step == "Contact"  # children before parents
    recs = {r["Legacy_Id__c"]: r for r in sf.query("SELECT Legacy_Id__c, Name, BillingCity FROM Account")}
    assert sorted(recs) == [f"C{i:06d}" for i in range(20)]
    assert recs["C000001"]["Name"] == "公司1" and recs["C000002"]["BillingCity"] == "Shenzhen"
    assert sf.count("SELECT COUNT() FROM Contact WHERE Legacy_Id__c != null") == 10
    # the load map is back at run 1, so the next run is again a delta against run 1
    engine = open_state(project.state_url)
    m = L.map_for(engine, "Account")
    assert len(m) == 20
    from crmbridge.migrations.runinfo import show_run

    assert show_run(engine, project, run2.run_id)["status"] == "rolled_back"
    # rolling back again is a no-op (every batch is journaled as done)
    calls = sf.api_calls
    again = run_rollback(project, run2.run_id, connector=sf)
    assert again.failed == 0 and sf.api_calls == calls
    # and rolling back run 1 empties the org of everything migrated
    run_rollback(project, run1.run_id, connector=sf)
    assert sf.count("SELECT COUNT() FROM Account WHERE Legacy_Id__c != null") == 0
    assert sf.count("SELECT COUNT() FROM Contact WHERE Legacy_Id__c != null") == 0
    assert L.map_for(engine, "Account") == {}


def test_rollback_through_the_cli_resumes_after_a_crash(project, mapped_run, helpers):
    from crmbridge.connectors.salesforce import connect
    from crmbridge.migrations.load import run_load

    run = mapped_run(helpers.accounts(30), helpers.contacts(30, accounts=30))
    conn = connect(project)
    try:
        run_load(project, run, connector=conn)
    finally:
        conn.close()
    # crash after the first rollback batch (the contacts), then run the same command again
    crashed = helpers.cli(project.root, "rollback", run.run_id,
                          env_extra={"CRMBRIDGE_TEST_CRASH_AT": "rollback:after_batch@1"})
    assert crashed.returncode == 137, crashed.stderr
    done = helpers.cli(project.root, "rollback", run.run_id, "--json")
    assert done.returncode == 0, done.stderr
    import json

    out = json.loads(done.stdout)
    assert out["rollback_run_id"] == f"{run.run_id}.rb" and out["failed"] == 0
    # the contacts' batch was done before the crash: counted once, from its journal and ledger
    assert {s["step"]: s["deleted"] for s in out["steps"]} == {"Contact": 30, "Account": 30}
    conn = connect(project)
    try:
        assert conn.count("SELECT COUNT() FROM Account") == 0 and conn.count("SELECT COUNT() FROM Contact") == 0
    finally:
        conn.close()
    listed = json.loads(helpers.cli(project.root, "runs", "list", "--json").stdout)
    status = {r["run_id"]: (r["status"], r["actions"]) for r in listed}
    assert status[run.run_id][0] == "rolled_back"
    assert status[f"{run.run_id}.rb"][0] == "succeeded" and status[f"{run.run_id}.rb"][1]["deleted"] == 60


def test_rollback_of_unknown_run_is_a_usage_error(project, helpers):
    r = helpers.cli(project.root, "rollback", "20990101-000000-dead")
    assert r.returncode == 2 and "no run '20990101-000000-dead'" in r.stderr
