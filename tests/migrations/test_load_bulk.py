"""How the load uses Bulk API 2.0 (job size, jobs in flight) and how reconcile reads the org back."""

from __future__ import annotations

from datetime import datetime

import pytest


def _load(project, run, sf, **kw):
    from crmbridge.migrations.load import run_load

    return run_load(project, run, connector=sf, **kw)


def _journal(project, run):
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    return L.journal_entries(open_state(project.state_url), run.run_id)


def test_a_step_goes_in_one_job_as_large_as_the_upload_limit_allows(project, sf, mapped_run, helpers):
    run = mapped_run(helpers.accounts(12_000, merged_every=0))
    calls = sf.api_calls
    step = _load(project, run, sf).steps[0]
    assert (step.records, step.created, step.failed) == (12_000, 12_000, 0)
    (entry,) = _journal(project, run)  # more than the old 10,000-row batches, still one Bulk job
    assert entry.status == "done" and entry.job_id and len(entry.keys) == 12_000
    # a count for before-images, create, upload, close, a few status looks (their number depends on
    # how busy the machine is), successful results only (no failed results: the job says there are none)
    assert sf.api_calls - calls <= 14


def test_plan_batches_cuts_by_rows_and_by_bytes():
    from crmbridge.migrations.load import plan_batches

    records = [{"Name": "公司" * 50, "Legacy_Id__c": f"C{i}"} for i in range(100)]
    assert plan_batches(records, None) == [(0, 100)]
    assert plan_batches(records, 30) == [(0, 30), (30, 60), (60, 90), (90, 100)]
    cuts = plan_batches(records, None, max_bytes=65_536 + 3_500)  # about ten rows of 320 bytes
    assert cuts[0] == (0, cuts[0][1]) and cuts[-1][1] == 100 and 9 <= len(cuts) <= 12
    assert all(a < b for a, b in cuts) and all(x[1] == y[0] for x, y in zip(cuts, cuts[1:]))


def test_several_jobs_in_flight_at_once(project, sf, mapped_run, helpers):
    run = mapped_run(helpers.accounts(6_000, merged_every=0), helpers.contacts(2_000, accounts=6_000))
    sf.bulk_jobs_in_flight = 3
    result = _load(project, run, sf, batch_rows=2_000)  # 2,000 rows: Bulk API (choose_api), not REST
    acc, con = result.steps
    assert (acc.created, con.created, acc.failed, con.failed) == (6_000, 2_000, 0, 0)
    entries = [e for e in _journal(project, run) if e.step == "Account"]
    assert len(entries) == 3 and all(e.status == "done" and e.job_id for e in entries)
    jobs = [sf.bulk_client("Account").get_job(e.job_id, False) for e in entries]
    # the second job was created before the first had finished: they ran side by side
    assert jobs[1]["createdDate"] < jobs[0]["systemModstamp"]
    assert sf.count("SELECT COUNT() FROM Account") == 6_000 and sf.count("SELECT COUNT() FROM Contact") == 2_000


def _small_in_budget(monkeypatch):
    # make 700 keys need several IN statements, as ~8,000 keys do at the real SOQL length limit
    from crmbridge.migrations import readback

    monkeypatch.setattr(readback, "SOQL_IN_CHARS", 3_000)


def test_reconcile_reads_the_run_back_by_time_window(project, sf, mapped_run, helpers, monkeypatch):
    from crmbridge.migrations.reconcile import run_reconcile

    _small_in_budget(monkeypatch)
    other = mapped_run(helpers.accounts(50, start=5_000, merged_every=0))
    _load(project, other, sf)                 # records of another run: outside this run's scope
    run = mapped_run(helpers.accounts(700, merged_every=0))
    _load(project, run, sf)
    rec = run_reconcile(project, run, connector=sf).steps[0]
    assert rec.ok and rec.read_by.startswith("window LastModifiedDate >= "), rec.as_dict()
    assert (rec.org_found, rec.ledger_loaded) == (700, 700)

    ids = {r["Legacy_Id__c"]: r["Id"] for r in sf.query("SELECT Id, Legacy_Id__c FROM Account")}
    sf.dml("update", "Account", [{"Id": ids["C000002"], "Name": "手工修改"}])
    sf.dml("delete", "Account", [{"Id": ids["C000005"]}])
    sf.dml("update", "Account", [{"Id": ids["C005001"], "Name": "别的批次"}])  # in the window, not ours
    rec = run_reconcile(project, run, connector=sf).steps[0]
    assert not rec.ok and rec.read_by.startswith("window")
    assert (rec.org_found, rec.missing_in_org, rec.field_mismatches) == (699, 1, 1)


@pytest.mark.parametrize("bulk_from, started_early", [(None, []), (500, [1])])  # REST, then Bulk jobs
def test_the_load_starts_reconciles_read_of_its_last_step_and_reconcile_reads_that_job(project, sf, mapped_run,
                                                                                       helpers, monkeypatch,
                                                                                       bulk_from, started_early):
    from crmbridge.connectors.salesforce import connect, query, results
    from crmbridge.migrations import overlap
    from crmbridge.migrations.reconcile import run_reconcile

    _small_in_budget(monkeypatch)
    if bulk_from:
        monkeypatch.setattr(results, "BULK_THRESHOLD", bulk_from)
    run = mapped_run(helpers.accounts(700, merged_every=0), helpers.contacts(700, accounts=700))
    creates, real = [], query.start_bulk_query
    monkeypatch.setattr(query, "start_bulk_query", lambda *a, **k: creates.append(a[2]) or real(*a, **k))
    early, real_early = [], overlap.ReadAhead.all_succeeded
    monkeypatch.setattr(overlap.ReadAhead, "all_succeeded", lambda self: early.append(1) or real_early(self))
    _load(project, run, sf, reconcile_next=True)
    (soql,) = sf._prefetched  # the last step's, started once its write was done (Account's is read later)
    assert soql.startswith("SELECT Id, ") and " FROM Contact WHERE " in soql and "LastModifiedDate >= " in soql
    # started once: with a Bulk job when it was known all succeeded (before its results were matched), not
    # again with the results; with REST from the results
    assert creates == [soql] and early == started_early
    creates.clear()
    ahead = run_reconcile(project, run, connector=sf)
    assert ahead.ok and sf._prefetched == {}
    assert [c.split(" FROM ")[1].split()[0] for c in creates] == ["Account"]  # Contact's job was not created again
    with connect(project) as other:  # the same check afresh, every query its own job: the same outcome
        fresh = run_reconcile(project, run, connector=other)
    assert len(creates) == 3
    for a, b in zip(ahead.steps, fresh.steps):
        assert a.read_by.startswith("window") and b.read_by.startswith("window")
        strip = lambda d: {k: v for k, v in d.items() if k not in ("mismatch_file", "read_by")}  # noqa: E731
        assert strip(a.as_dict()) == strip(b.as_dict())
    assert ahead.steps[1].org_found == 700


def test_window_start_is_on_the_orgs_clock_with_a_margin():
    from datetime import timedelta, timezone

    from crmbridge.migrations import readback

    t = datetime(2026, 12, 3, 8, 0, 0)  # naive, as SQLite hands it back: UTC
    start = readback.window_start(t, clock_skew=-30.0)
    assert start == datetime(2026, 12, 3, 7, 59, 30, tzinfo=timezone.utc) - readback.WINDOW_MARGIN
    assert readback.window_start(None, 0) is None
    # quoted and escaped, 'a\\'b' is 6 characters, plus a comma
    assert readback.in_chunks(["a'b", "c", "d"], budget=11) == [["a'b", "c"], ["d"]]
    assert timedelta(0) < readback.WINDOW_MARGIN


def test_delta_run_reads_unchanged_records_by_key(project, sf, mapped_run, helpers, monkeypatch):
    from crmbridge.migrations.reconcile import run_reconcile

    _small_in_budget(monkeypatch)
    _load(project, mapped_run(helpers.accounts(100, merged_every=0)), sf)
    grown = helpers.accounts(700, merged_every=0)   # 100 unchanged, 600 new
    run2 = mapped_run(grown)
    step = _load(project, run2, sf).steps[0]
    assert (step.created, step.unchanged) == (600, 100)
    rec = run_reconcile(project, run2, connector=sf).steps[0]
    assert rec.ok, rec.as_dict()
    assert rec.org_found == 700 and rec.read_by.startswith("window") and "100 unchanged by key" in rec.read_by

    changed = helpers.accounts(700, merged_every=0)  # a few changes among many unchanged: by key is cheaper
    changed.loc[[3, 30, 300], "Name"] = ["甲", "乙", "丙"]
    run3 = mapped_run(changed)
    step = _load(project, run3, sf).steps[0]
    assert (step.updated, step.unchanged) == (3, 697)
    rec = run_reconcile(project, run3, connector=sf).steps[0]
    assert rec.ok and rec.org_found == 700 and rec.read_by == "700 by key", rec.as_dict()


def test_jobs_in_flight_is_configured_and_checked(tmp_path):
    import pytest

    from crmbridge.config import load_project
    from crmbridge.errors import UsageError

    (tmp_path / "crmbridge.yml").write_text("name: t\nsalesforce_settings: {bulk_jobs_in_flight: 5}\n", "utf-8")
    assert load_project(tmp_path).config.salesforce_settings.bulk_jobs_in_flight == 5
    (tmp_path / "crmbridge.yml").write_text("name: t\nsalesforce_settings:\n  bulk_jobs_in_flight: 0\n", "utf-8")
    with pytest.raises(UsageError) as err:
        load_project(tmp_path)
    assert "bulk_jobs_in_flight" in str(err.value) and "crmbridge.yml" in str(err.value)
