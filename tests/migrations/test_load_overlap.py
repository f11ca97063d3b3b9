"""What the load does while its Bulk job runs in the org: reconcile's source side computed ahead, the
quarantine recorded, and a failure of that work leaving the batch recorded and the run resumable."""

from __future__ import annotations

import pytest

EDGE = [None, "", "   ", "\u3000", "ＡＢＣ１２３", "公司", "😀 emoji", "1234", "000123", "1.50", "2026-12-04T08:00:00Z",
        "nan", "a\x1fb", " padded ", "Ｔｅｓｔ　全角"]


def _accounts(helpers, n: int):
    df = helpers.accounts(n, merged_every=4)
    df["Description"] = [EDGE[i % len(EDGE)] for i in range(n)]
    df["BillingCity"] = [EDGE[(i * 7) % len(EDGE)] if i % 3 else "上海" for i in range(n)]
    return df


def _strip(rec) -> dict:
    return {k: v for k, v in rec.as_dict().items() if k not in ("mismatch_file", "read_by")}


def test_reconcile_side_computed_while_the_load_waited_gives_the_same_report(project, sf, mapped_run, helpers,
                                                                             monkeypatch):
    import pandas as pd

    from crmbridge.migrations import reconcile
    from crmbridge.migrations.load import run_load

    run = mapped_run(_accounts(helpers, 1_200))
    run_load(project, run, connector=sf, reconcile_next=True)
    ahead = reconcile._AHEAD[(run.run_id, "Account")]
    assert len(ahead.keys) == 1_200 and set(ahead.fields) >= {"Name", "Description", "BillingCity"}
    # the org drifts from the source: one field changed, one record deleted
    ids = {r["Legacy_Id__c"]: r["Id"] for r in sf.query("SELECT Id, Legacy_Id__c FROM Account")}
    sf.dml("update", "Account", [{"Id": ids["C000007"], "Description": "手工"}, {"Id": ids["C000011"], "Name": "x"}])
    sf.dml("delete", "Account", [{"Id": ids["C000020"]}])
    used = []
    real = reconcile.source_side
    monkeypatch.setattr(reconcile, "source_side", lambda *a: used.append(real(*a)) or used[-1])
    first = reconcile.run_reconcile(project, run, connector=sf)
    assert used[0] is ahead and reconcile._AHEAD == {}
    again = reconcile.run_reconcile(project, run, connector=sf)  # a recheck: computed afresh
    assert used[1] is not ahead and used[1] == ahead
    assert _strip(first.steps[0]) == _strip(again.steps[0])
    s = first.steps[0]
    assert (s.missing_in_org, s.field_mismatches, s.org_found) == (1, 2, 1_199)
    a, b = (pd.read_csv(x.steps[0].mismatch_file, dtype=str, keep_default_na=False) for x in (first, again))
    pd.testing.assert_frame_equal(a, b)
    assert sorted(a["external_id"]) == ["C000007", "C000011", "C000020"]


def test_a_side_computed_for_another_file_or_fields_is_not_used(project, sf, mapped_run, helpers):
    from crmbridge.migrations import reconcile
    from crmbridge.migrations.mapped import read_step_frame, read_plan

    run = mapped_run(_accounts(helpers, 50))
    step = read_plan(run)[0]
    df, fields = read_step_frame(run, step, hashes=False)
    reconcile.prepare(sf, run, step, df, fields)
    ahead = reconcile._AHEAD[(run.run_id, "Account")]
    assert reconcile.source_side(run, step, df, ["Name"]) is not ahead  # other fields: computed afresh
    reconcile.prepare(sf, run, step, df, fields)
    df.head(10).to_parquet(run.dir / "map" / "Account.parquet")  # the load file rewritten since
    side = reconcile.source_side(run, step, df.head(10), reconcile._compared(sf, step, fields))
    assert len(side.keys) == 10 and reconcile._AHEAD == {}


def test_a_failure_of_the_work_done_while_waiting_leaves_the_batch_recorded(project, sf, mapped_run, helpers,
                                                                             monkeypatch):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations import quarantine
    from crmbridge.migrations.load import run_load
    from crmbridge.state import open_state

    run = mapped_run(helpers.accounts(1_000, merged_every=0))

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(quarantine, "record_quarantine", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_load(project, run, connector=sf)
    engine = open_state(project.state_url)
    (entry,) = L.journal_entries(engine, run.run_id)
    assert entry.status == "done" and len(L.ledger_row_ids(engine, run.run_id, "Account")) == 1_000
    monkeypatch.undo()
    step = run_load(project, run, connector=sf).steps[0]  # resumed: nothing sent again
    assert (step.created, step.failed) == (1_000, 0)
    assert len(L.journal_entries(engine, run.run_id)) == 1
    assert sf.count("SELECT COUNT() FROM Account") == 1_000


@pytest.mark.parametrize("n", [40, 2_500])  # sent over REST (no Bulk job to wait for) and as a Bulk job
def test_hashes_computed_while_waiting_are_those_of_the_load_file(project, sf, mapped_run, helpers, n):
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.load import run_load
    from crmbridge.migrations.mapped import read_plan, read_step_frame
    from crmbridge.state import open_state

    run = mapped_run(_accounts(helpers, n))
    assert run_load(project, run, connector=sf).steps[0].created == n
    df, _ = read_step_frame(run, read_plan(run)[0])  # hashes computed as before, from the file
    expected = {rid: h for rows, h in zip(df["_rows"], df["_hash"]) for rid in rows}
    engine = open_state(project.state_url)
    led = L.ledger_frame(engine, run.run_id, "Account", ["row_id", "content_hash"])
    assert dict(zip(led["row_id"], led["content_hash"])) == expected and len(expected) > n
    assert {h for _, h in L.map_for(engine, "Account").values()} == set(df["_hash"])
    again = run_load(project, mapped_run(_accounts(helpers, n)), connector=sf).steps[0]  # hashes known first
    assert (again.unchanged, again.created, again.updated) == (n, 0, 0)


def test_a_load_on_its_own_starts_nothing_for_reconcile(project, sf, mapped_run, helpers):
    """`crmbridge load` alone: reconcile runs in another process, so no query of it is started (no API
    call spent) and nothing is kept for it."""
    from crmbridge.migrations import reconcile
    from crmbridge.migrations.load import run_load

    run = mapped_run(helpers.accounts(2_500, merged_every=0))
    assert run_load(project, run, connector=sf).steps[0].created == 2_500
    assert sf._prefetched == {} and (run.run_id, "Account") not in reconcile._AHEAD
