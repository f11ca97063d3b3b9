"""The map stage streams its input in batches: the files and the summary do not depend on the batch size.

Demo data mapped through the sandbox org twice per run: one batch (the default size is larger than
the demo) and batches of 5 and 100 rows. One run maps the extract directly (departments sharing a
customer number quarantined as duplicates across batches, contacts whose Account is quarantined), one
went through validate and resolve (golden records standing for several rows, re-pointed children).
"""

from __future__ import annotations

import filecmp
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmbridge.mappings.keyindex import KeyIndex


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from crmbridge.config import load_project
    from crmbridge.mappings.resolve import run_resolve
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state
    from crmbridge.templates.commands import init_project
    from crmbridge.validation.stage import run_validate

    root = tmp_path_factory.mktemp("stream") / "proj"
    init_project(root)
    write_demo_data(root, customers=300, erp=False)
    proj = load_project(root)
    engine = open_state(proj.state_url)
    raw_run = R.open_run(engine, proj.runs_dir, run_extract(proj).run_id)
    resolved = R.open_run(engine, proj.runs_dir, run_extract(proj, full=True).run_id)  # contacts again too
    run_validate(proj, resolved)
    run_resolve(proj, resolved)
    return proj, {"extract": raw_run, "resolve": resolved}


def _map(proj, run, out, batch_rows):
    from crmbridge.mappings.stage import run_map

    res = run_map(proj, run, skip_validation=True, preview=3, scratch=out, batch_rows=batch_rows)
    d = res.as_dict()
    d.pop("plan")  # the path of the scratch folder
    return d


def _same_files(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        if f.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(a / f), pd.read_parquet(b / f))
            assert pq.read_schema(a / f).remove_metadata() == pq.read_schema(b / f).remove_metadata(), f
        else:
            assert filecmp.cmp(a / f, b / f, shallow=False), f
    return files


@pytest.mark.parametrize("which", ["extract", "resolve"])
def test_batches_of_5_and_100_rows_give_the_one_batch_result(runs, which, tmp_path):
    proj, by = runs
    run = by[which]
    whole = _map(proj, run, tmp_path / "whole", None)
    assert whole["ok"]
    for size in (5, 100):
        part = _map(proj, run, tmp_path / f"b{size}", size)
        assert part == whole, size
        files = _same_files(tmp_path / "whole" / "map", tmp_path / f"b{size}" / "map")
    assert {str(f) for f in files} >= {"Account.parquet", "Contact.parquet", "quarantine/Account.csv",
                                       "quarantine/Contact.csv", "plan.json", "check.json"}
    steps = {s["step"]: s for s in whole["steps"]}
    acc = pd.read_parquet(tmp_path / "whole" / "map" / "Account.parquet")
    contacts_q = pd.read_csv(tmp_path / "whole" / "map" / "quarantine" / "Contact.csv", dtype=str,
                             encoding="utf-8-sig")
    assert len(pd.read_parquet(tmp_path / "whole" / "map" / "Contact.parquet"))  # children attached to parents
    if which == "extract":
        # a customer number shared by two departments: every row holding it, however far apart the batches
        assert steps["Account"]["reasons"]["duplicate_external_id: Legacy_Id__c"] > 0
        assert contacts_q["_reasons"].str.contains("is itself quarantined: duplicate_external_id").any()
        assert (contacts_q["contact_no (legacy)"].fillna("") != "").any()
    else:
        assert "duplicate_external_id: Legacy_Id__c" not in steps["Account"]["reasons"]
        assert acc["_merged_row_ids"].str.contains(";").any()  # golden records of several departments' rows
    assert all(s["balanced"] for s in whole["steps"]) and whole["preview"][0]["rows"]


def test_stream_equals_map_step_on_a_frame_without_row_ids(tmp_path):
    """map_step_stream over frames of 2 rows == map_step on the whole frame (row ids numbered on)."""
    from crmbridge.mappings.engine import OrgRefs, map_step
    from crmbridge.mappings.models import load_mappings
    from crmbridge.mappings.output import write_quarantine, write_records
    from crmbridge.mappings.stage import steward_view
    from crmbridge.mappings.stream import map_step_stream
    from crmbridge.templates import __file__ as tpl

    from pathlib import Path

    step = load_mappings(Path(tpl).parent / "project" / "mappings").by_name("Account")
    cols = ["customer_no", "name", "credit_code", "phone", "address", "city", "province", "postal_code", "country",
            "industry", "status", "sales_rep", "annual_revenue"]
    rows = [["C1", "甲公司", None, "021-62345678", None, "上海", None, None, "CN", "制造业", "活跃", "R001", "1,000"],
            ["C2", "乙公司", None, "bad", None, "北京", None, None, "CN", "零售", "活跃", "R002", "x"],
            [" C1 ", "甲公司二", None, None, None, "上海", None, None, "CN", None, "潜在", "R001", None],
            ["C3", None, None, None, None, None, None, None, "CN", None, "活跃", "R009", None],
            ["C4", "丁公司", None, "0755-26345678", None, "深圳", None, None, "中国", "IT", "停用", "R003", "2"]]
    df = pd.DataFrame(rows, columns=cols, dtype=object)
    users = {f"rep{i}@sandbox.crmbridge": f"005000000000{i:03d}AAA" for i in range(1, 6)}
    refs = OrgRefs(owners={f"R00{i}": f"rep{i}@sandbox.crmbridge" for i in range(1, 6)}, users=users)
    whole = map_step(step, df, refs=refs)
    write_records(whole.records, tmp_path / "whole.parquet")
    write_quarantine(steward_view(step, whole.quarantine, None, {}), tmp_path / "whole.csv")
    got = map_step_stream(step, (df.iloc[i:i + 2] for i in range(0, len(df), 2)), refs=refs,
                          records_path=tmp_path / "s.parquet", quarantine_path=tmp_path / "s.csv",
                          spill=tmp_path / "spill")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"), pd.read_parquet(tmp_path / "s.parquet"))
    assert filecmp.cmp(tmp_path / "whole.csv", tmp_path / "s.csv", shallow=False)
    assert (got.rows_in, got.rows_out, got.rows, got.rows_quarantined) == (
        whole.rows_in, whole.rows_out, len(whole.records), len(whole.quarantine))
    assert got.reasons == whole.reasons and got.stats == whole.stats and got.filtered == whole.filtered
    assert got.reasons["duplicate_external_id: Legacy_Id__c"] == 2  # rows 1 and 3: in different batches
    assert not list((tmp_path / "spill").iterdir())


def test_key_index_is_exact():
    k = KeyIndex.of(["C1", "a\x00", "中文", "C1"])
    assert len(k) == 3 and sorted(k) == sorted(["C1", "a\x00", "中文"])
    probe = pd.Series(["C1", "a", "a\x00", "中文", "C1 ", None, "x" * 50], dtype=object)
    assert k.contains(probe).tolist() == [True, False, True, True, False, False, False]
    dup = KeyIndex.duplicates([k.keys, KeyIndex.of(["中文", "z"]).keys])
    assert list(dup) == ["中文"] and "z" not in dup
    assert not KeyIndex.of([]).contains(probe).any()


def test_keyed_text_is_a_dict_with_later_values_winning():
    from crmbridge.mappings.keyindex import KeyedText, _strings

    def part(d):
        return _strings(pd.Series(list(d), dtype=object)), list(d.values())

    a, b = {"C1": "r1", "中文": "r2", "C3": "r3"}, {"C3": "r3b", "C4": "r4"}
    kt = KeyedText.build([part(a), part(b)])
    want = {**a, **b}
    assert len(kt) == len(want) and all(kt.get(k) == v for k, v in want.items())
    assert kt.get("C9") is None and kt.get("C1 ") is None and kt.get("x" * 40, "-") == "-"
    kt.update({"C1": "again"})
    assert kt.get("C1") == "again" and kt.get("C4") == "r4"
    assert sorted(kt.key_index()) == sorted(want)


def test_a_parent_of_the_step_own_object_names_its_reason_from_any_batch(tmp_path):
    """A self-lookup (Account.ParentId -> Account): a row whose parent this very step quarantines gets that
    parent's reason, known only once every batch is mapped; streamed 2 rows at a time == the whole frame."""
    from crmbridge.mappings.engine import ParentKeys, map_step
    from crmbridge.mappings.models import load_mappings
    from crmbridge.mappings.output import write_quarantine
    from crmbridge.mappings.stage import steward_view
    from crmbridge.mappings.stream import map_step_stream, quarantined_keys

    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "account.yml").write_text(
        "steps:\n  Account:\n    entity: customers\n    object: Account\n    external_id: Legacy_Id__c\n"
        "    fields:\n      Legacy_Id__c: {column: customer_no, required: true}\n"
        "      Name: {column: name, required: true}\n"
        "    lookups:\n      ParentId: {object: Account, external_id: Legacy_Id__c, column: parent_no}\n", "utf-8")
    step = load_mappings(tmp_path / "maps").by_name("Account")
    df = pd.DataFrame({"customer_no": ["C1", "C2", "C3", "C4", "C5"], "name": ["a", "b", None, "d", "e"],
                       "parent_no": [None, "C3", None, "C3", "C1"]}, dtype=object)
    parents = {("account", "Legacy_Id__c"): ParentKeys(frozenset({"C1", "C2", "C4", "C5"}), frozenset({"C3"}))}
    whole = map_step(step, df, parents=parents)
    write_quarantine(steward_view(step, whole.quarantine, None,
                                  {"Account.Legacy_Id__c": quarantined_keys(step, whole.quarantine)}),
                     tmp_path / "whole.csv")
    reasons: dict = {}
    map_step_stream(step, (df.iloc[i:i + 2] for i in range(0, len(df), 2)), parents=parents,
                    parent_reasons=reasons, records_path=tmp_path / "s.parquet", quarantine_path=tmp_path / "s.csv",
                    spill=tmp_path / "spill")
    assert filecmp.cmp(tmp_path / "whole.csv", tmp_path / "s.csv", shallow=False)
    q = pd.read_csv(tmp_path / "s.csv", dtype=str, encoding="utf-8-sig")
    assert q["_reasons"].str.contains(r"\[Account C3 is itself quarantined: required_missing: Name\]").sum() == 2
