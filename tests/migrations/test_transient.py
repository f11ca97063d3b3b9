"""A temporary outage is not a rejection: rows that meet a fault outlasting the retries (the sandbox's
REQUEST_LIMIT_EXCEEDED for longer than the retry budget, then clearing) stay pending, the load fails
with exit 1 and the command that loads them, and running it again loads them: org and ledger agree,
no duplicates, no leftovers."""

from __future__ import annotations

import pytest

from crmbridge.connectors.salesforce.results import is_transient


@pytest.mark.parametrize("code", ["REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "HTTP_502",
                                  "TIMEOUT", "CONNECTION_ERROR", "INVALID_SESSION_ID", "OUTCOME_UNKNOWN",
                                  "UNPROCESSED", "JOB_FAILED"])
def test_transient_codes(code):
    assert is_transient(code)


@pytest.mark.parametrize("code", ["REQUIRED_FIELD_MISSING", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "DUPLICATE_VALUE",
                                  "INVALID_FIELD", "STRING_TOO_LONG", "HTTP_400", None])
def test_record_level_codes(code):
    assert not is_transient(code)


def _quick_retries(sf, n=2):
    from crmbridge.connectors.salesforce.retry import RetryPolicy

    sf.retry = RetryPolicy(max_retries=n, base_delay=0.01, max_delay=0.05)


def _assert_complete(project, sf, run, n_accounts, n_contacts=0):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.reconcile import run_reconcile
    from crmbridge.state import open_state

    keys = [r["Legacy_Id__c"] for r in sf.query("SELECT Legacy_Id__c FROM Account")]
    assert len(keys) == len(set(keys)) == n_accounts
    assert sf.count("SELECT COUNT() FROM Contact") == n_contacts
    counts = L.action_counts(open_state(project.state_url), run.run_id)
    assert counts["Account"]["failed"] == 0 and counts["Account"]["updated"] == 0
    assert counts["Account"]["created"] == n_accounts + len(range(0, n_accounts, 3))  # merged rows: one per source row
    rec = run_reconcile(project, run, connector=sf)
    assert rec.ok, rec.as_dict()


def test_rest_limit_outlasting_retries_leaves_rows_pending(project, sf, org, mapped_run, helpers):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.load import RowsPending, run_load
    from crmbridge.state import open_state

    run = mapped_run(helpers.accounts(500))  # REST: three calls of 200 records
    _quick_retries(sf)
    # the COUNT() and the first collection call pass, then 3 calls (1 + 2 retries) are refused: the
    # second chunk gives up; the limit has cleared by the third chunk
    org.faults.set(request_limit_after=2, request_limit_calls=3)
    with pytest.raises(RowsPending) as err:
        run_load(project, run, connector=sf)
    assert org.faults.as_dict()["refused"] == 3
    msg = str(err.value)
    assert "REQUEST_LIMIT_EXCEEDED" in msg and "pending, not rejected" in msg and "crmbridge migrate" in msg
    led = L.ledger_frame(open_state(project.state_url), run.run_id)
    assert set(led["action"]) == {"created"}  # nothing recorded as rejected
    sent = [*range(200), *range(400, 500)]  # chunks 1 and 3 only; every third record merges two source rows
    assert len(led) == len(sent) + sum(1 for i in sent if i % 3 == 0)
    assert sf.count("SELECT COUNT() FROM Account") == 300

    result = run_load(project, run, connector=sf)  # the limit has passed: the same call loads the rest
    assert (result.steps[0].created, result.steps[0].failed) == (500, 0)
    _assert_complete(project, sf, run, 500)


def test_bulk_limit_outlasting_retries_then_migrate_loads_them(project, sf, org, mapped_run, helpers, capsys):
    """Through the CLI: exit 1 with the next step, then the same command loads everything."""
    from crmbridge.cli import main
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    (project.root / "crmbridge.yml").write_text("name: migration-test\nsalesforce_settings: {max_retries: 1}\n",
                                                encoding="utf-8")
    run = mapped_run(helpers.accounts(2100), helpers.contacts(300, accounts=2100))  # Bulk, then REST
    # login, COUNT() pass; then the Bulk job creation is refused twice (the whole retry budget)
    org.faults.set(request_limit_after=2, request_limit_calls=2)
    with pytest.raises(SystemExit) as ex:
        main(["--project", str(project.root), "load", "--run", run.run_id])
    err = capsys.readouterr().err
    assert ex.value.code == 1, err
    assert "REQUEST_LIMIT_EXCEEDED (2800)" in err and "pending, not rejected" in err, err
    assert "crmbridge migrate" in err and f"crmbridge load --run {run.run_id}" in err
    engine = open_state(project.state_url)
    assert len(L.ledger_frame(engine, run.run_id)) == 0  # no row rejected, none loaded
    assert sf.count("SELECT COUNT() FROM Account") == 0
    assert org.faults.as_dict()["refused"] == 2

    with pytest.raises(SystemExit) as ex:
        main(["--project", str(project.root), "load", "--run", run.run_id])
    assert ex.value.code == 0, capsys.readouterr().err
    _assert_complete(project, sf, run, 2100, 300)
    counts = L.action_counts(engine, run.run_id)
    assert counts["Contact"] == {"created": 300, "updated": 0, "unchanged": 0, "failed": 0}


def test_migrate_rerun_loads_rows_a_limit_kept_pending(tmp_path):
    """The documented recovery: `migrate` fails with exit 1 while the limit lasts, then the same command
    finishes the run; reconcile agrees, no record is missing or doubled."""
    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce import connect
    from crmbridge.connectors.salesforce.auth import embedded_sandbox
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.load import RowsPending
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.state import dispose_all, open_state
    from crmbridge.templates.commands import init_project

    init_project(tmp_path)
    write_demo_data(tmp_path, customers=120)
    cfg = tmp_path / "crmbridge.yml"
    cfg.write_text(cfg.read_text("utf-8") + "\nsalesforce_settings: {max_retries: 1}\n", "utf-8")
    project = load_project(tmp_path)
    t = project.config.salesforce
    org = embedded_sandbox(project.path(t.db), [], t.username, t.password)

    def limit_during_load(stage):
        if stage == "load":  # the COUNT() passes, then two refusals: the first upsert call gives up
            org.faults.set(request_limit_after=1, request_limit_calls=2)

    try:
        with pytest.raises(RowsPending) as err:
            run_migrate(project, on_stage=limit_during_load)
        assert err.value.exit_code == 1 and "`crmbridge migrate`" in str(err.value)
        assert "REQUEST_LIMIT_EXCEEDED" in err.value.message and "pending, not rejected" in err.value.message
        run_id = err.value.message.split()[1]
        engine = open_state(project.state_url)
        assert not L.ledger_frame(engine, run_id)["error_code"].isin(["REQUEST_LIMIT_EXCEEDED"]).any()
        assert org.faults.as_dict()["refused"] == 2

        result = run_migrate(project)  # the limit has passed
        assert result.run_id == run_id and result.resumed and result.reconcile_ok and result.balanced
        sf = connect(project)
        try:
            keys = [r["Legacy_Id__c"] for r in sf.query("SELECT Legacy_Id__c FROM Account")]
            led = L.ledger_frame(engine, run_id, "Account")
            loaded = led[led["action"].isin(["created", "updated", "unchanged"])]["external_id"].nunique()
            assert len(keys) == len(set(keys)) == loaded
            assert not led["error_code"].isin(["REQUEST_LIMIT_EXCEEDED"]).any()
        finally:
            sf.close()
    finally:
        org.faults.clear()
        dispose_all()
