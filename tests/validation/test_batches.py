"""Validate in batches gives exactly what validate on the whole entity gives: the same counts per rule
(``mostly`` judged on the totals), the same valid rows in the same order, the same quarantine file and
reasons, the same report samples and disagreement report, whatever the batch size."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from crmbridge.mappings.keyindex import KeyCollector
from crmbridge.validation import checks
from crmbridge.validation.definition import Definition
from crmbridge.validation.gxsuite import ResultTotals, SuiteRunner, run_rules
from crmbridge.validation.rules import RuleContext, compile_rules

WHOLE = 10 ** 9  # one batch per extracted file: what validate did before it streamed


def _validate(project, run, batch_rows: int, keep):
    from crmbridge.validation.stage import run_validate

    report = run_validate(project, run, batch_rows=batch_rows)
    dest = keep / str(batch_rows)
    shutil.copytree(run.dir / "validate", dest)
    return report, dest


def _parquet(path):
    df = pd.read_parquet(path)
    return df.astype(object).where(df.notna(), None)


def _assert_same_outputs(a, b, entities):
    sa, sb = json.loads((a / "summary.json").read_text("utf-8")), json.loads((b / "summary.json").read_text("utf-8"))
    assert sa["entities"] == sb["entities"]
    assert sa["blocking_failed"] == sb["blocking_failed"]
    for e in entities:
        pa_, pb = _parquet(a / f"{e}.parquet"), _parquet(b / f"{e}.parquet")
        assert list(pa_.columns) == list(pb.columns)
        pd.testing.assert_frame_equal(pa_, pb)  # the same rows in the same (row id) order
        assert (a / "quarantine" / f"{e}.csv").read_bytes() == (b / "quarantine" / f"{e}.csv").read_bytes()
    for f in ("disagreement.json", "disagreement.html", "report.html", "data_docs/index.html"):
        assert (a / f).read_text("utf-8") == (b / f).read_text("utf-8"), f


def test_case_files_in_batches_of_7_and_1000_equal_one_batch(case_run, tmp_path, monkeypatch):
    from crmbridge.validation import parquetsink

    project, run = case_run
    whole, w = _validate(project, run, WHOLE, tmp_path)
    counts = whole.counts()
    assert counts["customers"]["rows_quarantined"] and counts["contacts"]["rows_quarantined"]
    for size in (7, 1000):
        if size == 1000:  # a batch bigger than a Parquet row group is spilled as several and read back whole
            monkeypatch.setattr(parquetsink, "ROW_GROUP", 3)
        rep, d = _validate(project, run, size, tmp_path)
        assert rep.counts() == counts
        _assert_same_outputs(w, d, list(counts))
    # the cross-row rules really crossed batches: duplicates and orphans are found with 7 rows at a time
    s = json.loads((tmp_path / "7" / "summary.json").read_text("utf-8"))
    by_rule = {(e, r["rule_id"]): r for e, v in s["entities"].items() for r in v["rules"]}
    assert by_rule[("customers", "unique.customer_no")]["unexpected_count"] == 2
    assert by_rule[("contacts", "unique.contact_no")]["unexpected_count"] == 2
    assert by_rule[("contacts", "ref.customer_no")]["unexpected_count"] > 0
    q = pd.read_csv(tmp_path / "7" / "quarantine" / "contacts.csv", dtype=str, keep_default_na=False,
                    encoding="utf-8-sig")
    assert q["_reasons"].str.contains("parent_quarantined").any()


def test_demo_data_in_batches_of_40_equals_one_batch(tmp_path, extracted_demo):
    project, run = extracted_demo(tmp_path / "demo", customers=150)
    whole, w = _validate(project, run, WHOLE, tmp_path)
    rep, d = _validate(project, run, 40, tmp_path)  # GX costs ~0.1 s a batch: 7 is for the case files
    assert rep.counts() == whole.counts()
    assert sum(c["rows_quarantined"] for c in whole.counts().values()) > 0
    _assert_same_outputs(w, d, list(whole.counts()))
    dis = json.loads((d / "disagreement.json").read_text("utf-8"))["report"]
    assert dis["rows"] == whole.entities["customers"]["rows_in"]


def _rules(entity_yaml: str):
    data = {"version": 1, "owners": [{"department": "sales", "person": "x"}],
            "entities": {"customers": yaml.safe_load(entity_yaml)}}
    return compile_rules("customers", Definition.model_validate(data).entities["customers"])


def test_mostly_is_judged_on_the_totals_not_per_batch():
    rules = _rules("""
identity: {key: customer_no, alternate_keys: [credit_code]}
formats: [{field: email, format: email, mostly: 0.7}]
""")
    # 3 bad e-mails among the first 7 rows (57% good there), 70% good overall: the rule passes.
    rows = [{"customer_no": f"C{i}", "credit_code": "X1" if i in (2, 9) else f"K{i}",
             "email": "bad@" if i < 3 else "ok@example.cn", "_department": "sales", "_row_id": f"r{i}"}
            for i in range(10)]
    df = pd.DataFrame(rows).astype(object)
    whole = {o.rule.rule_id: o.as_dict() for o in run_rules("customers", df, rules, RuleContext()).outcomes}
    ctx = RuleContext()
    for r in rules:
        if r.kind == "unique":
            f = checks.DuplicateFinder(list(r.unique_on))
            for part in (df.iloc[:7], df.iloc[7:]):
                f.add(part)
            for part in (df.iloc[:7], df.iloc[7:]):
                f.confirm(part)
            ctx.duplicates[("customers", r.rule_id)] = f.index()
    totals = ResultTotals(rules)
    with SuiteRunner("customers", rules) as runner:
        first = runner.run(df.iloc[:7].reset_index(drop=True), ctx)
        assert not {o.rule.rule_id: o for o in first.outcomes}["format.email"].success  # per batch: fails
        totals.add(first)
        totals.add(runner.run(df.iloc[7:].reset_index(drop=True), ctx))
    merged = {o.rule.rule_id: o.as_dict() for o in totals.outcomes()}
    assert merged == whole
    assert merged["format.email"]["passed"] and merged["format.email"]["unexpected_count"] == 3
    assert merged["unique.credit_code"]["unexpected_count"] == 2  # r2 and r9, in different batches
    page = totals.gx_result()
    assert page.statistics["evaluated_expectations"] == len(rules)
    assert [r.expectation_config.meta["rule_id"] for r in page.results] == [r.rule_id for r in rules]


def test_key_indexes_stay_exact_when_hashes_collide(monkeypatch):
    """With every hash equal, the values themselves decide (the index never trusts a hash alone)."""
    monkeypatch.setattr(checks, "_hash", lambda values: np.zeros(len(values), dtype=np.uint64))
    df = pd.DataFrame({"k": ["a", "b", "a", None, "c"], "_department": ["s", "s", "s", "s", "f"]}, dtype=object)
    f = checks.DuplicateFinder(["k"])
    f.add(df.iloc[:2])
    f.add(df.iloc[2:])
    assert f.needs_confirm
    f.confirm(df.iloc[:2])
    f.confirm(df.iloc[2:])
    got = checks.unique_check(df, ["k"], f.index())
    assert got.tolist() == [False, True, False, None, True]
    assert got.tolist() == checks.unique_check(df, ["k"]).tolist()  # the same as on the whole frame
    collect = KeyCollector()
    collect.add(["C1", "C2"])
    collect.add(["C2", None, "C3"])
    keys = collect.freeze()
    assert keys.contains(np.array(["C3", "C9", "C1", "C2"], dtype=object)).tolist() == [True, False, True, True]


def test_compound_key_text_cannot_be_faked_by_a_separator():
    df = pd.DataFrame({"a": ["x1:", "x"], "b": ["y", "1:y"]}, dtype=object)
    _, text = checks.key_text(df, ["a", "b"])
    assert text[0] != text[1]


@pytest.mark.parametrize("size", [1, 3])
def test_reference_check_with_a_key_index_equals_the_series_path(size):
    keys = pd.Series(["C1", "C2", "C3", "C2"], dtype=object)
    collect = KeyCollector()
    for i in range(0, len(keys), size):
        collect.add(keys.iloc[i:i + size].to_numpy(dtype=object))
    idx = collect.freeze()
    child = pd.Series(["C1", None, "C4", "C3"], dtype=object)
    assert checks.reference_check(child, idx).tolist() == checks.reference_check(child, keys).tolist()


def test_distinct_keys_whose_32_bit_hashes_collide_stay_unique():
    """The uniqueness index keeps 32-bit hashes: real collisions among distinct keys happen at this size
    (birthday bound) and are settled on the values."""
    keys = np.array([f"C{i:07d}" for i in range(200_000)], dtype=object)
    h = checks.DuplicateFinder(["k"], hash_bits=32)._hash_of(keys)
    order = np.argsort(h, kind="stable")
    same = np.flatnonzero(h[order][1:] == h[order][:-1])
    assert len(same)  # the data really holds colliding hashes
    a, b = keys[order[same[0]]], keys[order[same[0] + 1]]
    df = pd.DataFrame({"k": [a, "x", b, "x", a + "!"]}, dtype=object)
    f = checks.DuplicateFinder(["k"], hash_bits=32)
    f.add(df.iloc[:2])
    f.add(df.iloc[2:])
    assert f.needs_confirm
    f.confirm(df.iloc[:2])
    f.confirm(df.iloc[2:])
    assert checks.unique_check(df, ["k"], f.index()).tolist() == [True, False, True, False, True]
