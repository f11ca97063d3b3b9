"""The load and reconcile build their rows with the cyclic garbage collector paused (``gcscope.paused``):
the collector is back on afterwards, a caller's own choice is left alone, and they write exactly what
they wrote with the collector running (ledger, load map, Data Loader files byte for byte, reconcile)."""

from __future__ import annotations

import contextlib
import gc

import pytest

from crmbridge.gcscope import paused as gc_paused

EDGE = [None, "", "   ", "\u3000", "ＡＢＣ１２３", "公司", "😀 emoji", "1234", "000123", "1.50", "2026-12-04T08:00:00Z",
        "nan", "a\x1fb", " padded ", "Ｔｅｓｔ　全角", "true", "FALSE", "=1+1", 'say "hi", then\nnewline']


def test_collector_is_off_in_the_block_and_on_after_it_even_on_error():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("a failed batch")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            with gc_paused():  # nested (another batch's block): the outer one decides
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def _frames(helpers):
    n = 2_600  # over the REST threshold: one Bulk job per step
    acc = helpers.accounts(n, merged_every=4)
    acc["Description"] = [EDGE[i % len(EDGE)] for i in range(n)]
    acc["BillingCity"] = [EDGE[(i * 7) % len(EDGE)] if i % 3 else "上海" for i in range(n)]
    acc["AnnualRevenue"] = [None if i % 11 == 0 else float(i * 1000) for i in range(n)]  # Currency(18, 0)
    con = helpers.contacts(300, accounts=n)
    con.loc[con.index % 50 == 0, "Account.Legacy_Id__c"] = "NO_SUCH_PARENT"  # failed rows: an error file
    con["Description"] = [EDGE[i % len(EDGE)] for i in range(len(con))]
    return acc, con


def _load(project, run, monkeypatch, paused: bool):
    """Load ``run`` of ``project`` (own sandbox org, own state); what it wrote, Ids as external ids."""
    from crmbridge.connectors.salesforce import connect
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations import load as load_mod
    from crmbridge.migrations import reconcile
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    if not paused:  # the code path before the pause: the collector runs throughout
        monkeypatch.setattr(load_mod, "gc_paused", contextlib.nullcontext)
        monkeypatch.setattr(reconcile, "gc_paused", contextlib.nullcontext)
    conn = connect(project)
    try:
        result = load_mod.run_load(project, run, connector=conn, reconcile_next=True)
        # the org drifts, the same way in both: a mismatch and a record missing
        ids = {r["Legacy_Id__c"]: r["Id"] for r in conn.query("SELECT Id, Legacy_Id__c FROM Account")}
        conn.dml("update", "Account", [{"Id": ids["C000007"], "Description": "手工 😀"}])
        conn.dml("delete", "Account", [{"Id": ids["C000020"]}])
        rec = reconcile.run_reconcile(project, run, connector=conn)
    finally:
        conn.close()
        monkeypatch.undo()
    assert gc.isenabled()
    ids = {}  # Salesforce Id -> external id, so that two orgs' Ids compare
    for obj in ("Account", "Contact"):
        ids.update({sf_id: f"{obj}:{ext}" for ext, (sf_id, _) in L.map_for(engine, obj).items()})
    led = L.ledger_frame(engine, run.run_id, None, ["row_id", "object", "source_key", "external_id", "sf_id",
                                                     "action", "error_code", "message", "content_hash", "batch_no"])
    led["sf_id"] = led["sf_id"].map(lambda v: ids.get(v, v))
    led = led.sort_values(["object", "row_id"]).reset_index(drop=True)
    lmap = {obj: {k: (ids[s], h) for k, (s, h) in L.map_for(engine, obj).items()} for obj in ("Account", "Contact")}
    files = {}
    paths = [p for s in result.steps for p in (s.success_file, s.error_file)] + [s.mismatch_file for s in rec.steps]
    for path in paths:
        with open(path, "rb") as f:
            text = f.read()
        for sf_id, name in ids.items():  # the files' exact bytes, but for the org's Ids
            text = text.replace(sf_id.encode(), name.encode())
        files[path.rsplit("/", 1)[-1]] = text
    steps = [s.as_dict() | {"success_file": None, "error_file": None} for s in result.steps]
    steps += [s.as_dict() | {"mismatch_file": None, "read_by": None} for s in rec.steps]  # read_by: a time
    return steps, led, lmap, files


def test_the_load_writes_what_it_wrote_with_the_collector_running(tmp_path, project, mapped_run, helpers,
                                                                 monkeypatch):
    import shutil

    import pandas as pd

    from crmbridge.config import load_project
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    run_a = mapped_run(*_frames(helpers))
    other = tmp_path / "running"  # a second project: its own embedded sandbox org and state
    other.mkdir()
    (other / "crmbridge.yml").write_text("name: migration-test\n", encoding="utf-8")
    project_b = load_project(other)
    engine_b = open_state(project_b.state_url)
    run_b = R.create_run(engine_b, project_b.runs_dir, "migrate", command="test")
    shutil.copytree(run_a.stage_dir("map"), run_b.stage_dir("map"), dirs_exist_ok=True)
    R.start_stage(engine_b, run_b.run_id, "map")
    R.finish_stage(engine_b, run_b.run_id, "map", {"steps": 2})
    steps_a, led_a, map_a, files_a = _load(project, run_a, monkeypatch, paused=True)
    steps_b, led_b, map_b, files_b = _load(project_b, run_b, monkeypatch, paused=False)
    assert steps_a == steps_b
    assert steps_a[0]["created"] == 2_600 and steps_a[1]["failed"] == 6 and steps_a[1]["created"] == 294
    assert (steps_a[2]["missing_in_org"], steps_a[2]["field_mismatches"]) == (1, 1)
    pd.testing.assert_frame_equal(led_a, led_b)
    assert map_a == map_b and len(map_a["Account"]) == 2_600
    assert files_a == files_b and set(files_a) == {"Account_success.csv", "Account_error.csv", "Contact_success.csv",
                                                   "Contact_error.csv", "Account_mismatches.csv",
                                                   "Contact_mismatches.csv"}
    assert "😀 emoji".encode() in files_a["Account_success.csv"] and b"NO_SUCH_PARENT" in files_a["Contact_error.csv"]
