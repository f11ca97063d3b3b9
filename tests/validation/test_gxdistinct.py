"""great-expectations on a batch's distinct values (``gxdistinct``) gives what GX on every row gives:
the same result per expectation (counts, percents, success, the partial and complete unexpected lists
with their value types, the row ids), the same outcomes, and the same validate outputs byte for byte."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from crmbridge.validation import gxcache, gxdistinct, gxsuite
from crmbridge.validation.definition import Definition
from crmbridge.validation.gxsuite import ResultTotals, SuiteRunner
from crmbridge.validation.rules import RuleContext, compile_rules

ENTITY = """
identity: {key: customer_no, alternate_keys: [credit_code], scope: department}
required: [name]
formats:
  - {field: email, format: email}
  - {field: credit_code, format: uscc}
  - {field: name, format: no_markup}
  - {field: created_on, format: date}
  - {field: amount, format: number}
  - {field: visits, format: integer, mostly: 0.6}
  - {field: country, format: iso_country}
  - {field: code, format: regex, pattern: "^[A-Z]{2}\\\\d$"}
  - {field: postal_code, format: postal_code, region: CN, country_field: country}
allowed_values:
  - {field: status, values: [Active, Blocked, "1", "True"]}
cross_field:
  - {left: amount, op: ge, value: 0}
  - {left: amount, op: ne, value: 0, severity: warning}
  - {left: end_on, op: ge, right: created_on, type: date}
  - {left: amount, op: eq, right: limit}
"""


def _rules(entity_yaml: str = ENTITY):
    data = {"version": 1, "owners": [{"department": "sales", "person": "x"}],
            "entities": {"customers": yaml.safe_load(entity_yaml)}}
    return compile_rules("customers", Definition.model_validate(data).entities["customers"])


def _frame(n: int = 900, seed: int = 3) -> pd.DataFrame:
    """Repeated and unique values, missing ones as None and NaN, -0.0 and 0.0, and an object column
    mixing ``"1"``, ``1``, ``1.0`` and ``True`` (equal under hashing, different values for GX)."""
    rng = np.random.default_rng(seed)

    def pick(values):
        return pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype=object)

    df = pd.DataFrame({
        "customer_no": pd.Series([f"C{i % 200}" if i % 17 else None for i in range(n)], dtype=object),
        "credit_code": pick(["91310000MA1FL8L87R", "91310000MA1FL8L870", None, "X"]),
        "name": pick(["Acme", "<b>x</b>", None, "北京华信", "a<br>b"]),
        "email": pick(["info@a.cn", "bad@", None, "INFO@b.cn", "x@y"]),
        "created_on": pick(["2020-01-02", "2020-13-01", None, "2021/01/01", "2019-12-31"]),
        "end_on": pick(["2020-01-01", "2022-05-05", None, "nope"]),
        "amount": pick(["12.5", "-3", "0", "-0", None, "abc", "1e3"]),
        "limit": pick(["12.5", "0", None, "-0.0", "7"]),
        "visits": pick(["1", "2", "x", None, "-4"]),
        "country": pick(["CN", "US", "ZZ", None, "cn"]),
        "code": pd.Series([f"Q{i}" if i % 3 == 0 else v for i, v in enumerate(pick(["AB1", "ab1", "XY9", None]))],
                          dtype=object),  # over 200 failing values, most of them unique
        "postal_code": pick(["200120", "10001", "2001", None]),
        "status": pick(["Active", "1", 1, 1.0, True, None, float("nan"), "Gone"]),
        "_department": pick(["sales", "finance"]),
    })
    df["_row_id"] = [f"src:{i + 2}" for i in range(n)]
    return df


def _canon(x):
    """A comparable form that keeps types apart (1, 1.0 and True differ) and treats NaN as equal to NaN."""
    if isinstance(x, dict):
        return ("dict", sorted((str(k), _canon(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_canon(v) for v in x])
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    return (type(x).__name__, repr(x))


def _both(rules, df, ctx=None):
    ctx = ctx or RuleContext()
    with SuiteRunner("customers", rules, distinct=False) as every, SuiteRunner("customers", rules) as distinct:
        assert distinct.distinct and not every.distinct
        return every.run(df, ctx), distinct.run(df, ctx)


def _assert_same_run(a, b):
    assert [r.expectation_config.meta["rule_id"] for r in a.gx_result.results] == \
        [r.expectation_config.meta["rule_id"] for r in b.gx_result.results]
    for x, y in zip(a.gx_result.results, b.gx_result.results):
        assert x.success == y.success, x.expectation_config.meta["rule_id"]
        assert _canon(x.result) == _canon(y.result), x.expectation_config.meta["rule_id"]
    assert a.gx_result.success == b.gx_result.success
    assert _canon(dict(a.gx_result.statistics)) == _canon(dict(b.gx_result.statistics))
    for o, p in zip(a.outcomes, b.outcomes):
        assert o.as_dict() == p.as_dict()
        assert o.failing_row_ids.tolist() == p.failing_row_ids.tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_expectation_gives_the_all_rows_result(seed):
    rules = _rules()
    assert gxdistinct.supported(rules)
    df = _frame(seed=seed)
    every, distinct = _both(rules, df)
    _assert_same_run(every, distinct)
    by_rule = {o.rule.rule_id: o for o in distinct.outcomes}
    # the cases are really exercised: failures with repeated values, and more than 20 of them
    assert by_rule["format.email"].unexpected_count > 20
    assert by_rule["allowed.status"].unexpected_count > 0
    assert by_rule["cross.end_on_ge_created_on"].unexpected_count > 0
    assert by_rule["cross.amount_eq_limit"].unexpected_count > 0
    assert not by_rule["format.visits"].success or by_rule["format.visits"].unexpected_count > 0
    assert by_rule["format.code"].unexpected_count > 300  # more than GX's 200 listed values


def test_padding_that_fails_is_ignored():
    """A not-null column mostly empty: its padding (the most frequent row, a missing value) fails too."""
    rules = _rules()
    df = _frame(n=300)
    df["name"] = [None if i % 5 else "Acme" for i in range(len(df))]
    _assert_same_run(*_both(rules, df))


def test_totals_and_data_docs_result_equal_over_batches():
    rules = _rules()
    df = _frame(n=1000, seed=9)
    totals = {False: ResultTotals(rules), True: ResultTotals(rules)}
    for start in range(0, len(df), 330):
        every, distinct = _both(rules, df.iloc[start:start + 330].reset_index(drop=True))
        totals[False].add(every)
        totals[True].add(distinct)
    assert [o.as_dict() for o in totals[False].outcomes()] == [o.as_dict() for o in totals[True].outcomes()]
    a, b = totals[False].gx_result(), totals[True].gx_result()
    for x, y in zip(a.results, b.results):
        assert x.success == y.success and _canon(x.result) == _canon(y.result)


def test_all_missing_and_single_row_batches():
    rules = _rules()
    df = _frame(n=30)
    for col in ("email", "amount", "limit", "created_on", "end_on"):
        df[col] = None
    for part in (df, df.iloc[:1].reset_index(drop=True), df.iloc[5:7].reset_index(drop=True)):
        _assert_same_run(*_both(rules, part))


def test_column_codes_never_merge_different_values():
    s = pd.Series(["1", 1, 1.0, True, None, float("nan"), "1", 1], dtype=object)
    codes = gxdistinct.column_codes(s)
    assert len(set(codes[:6].tolist())) == 6 and codes[6] == codes[0] and codes[7] == codes[1]
    f = gxdistinct.column_codes(pd.Series([0.0, -0.0, np.nan, 0.0]))
    assert f[0] != f[1] and f[0] == f[3] and f[2] not in (f[0], f[1])


def test_a_rule_that_is_not_row_local_keeps_every_row():
    rules = _rules("identity: {key: customer_no}\n")
    unique = type(rules[0])(**{**rules[0].__dict__, "rule_id": "u", "expectation": "ExpectColumnValuesToBeUnique",
                               "kwargs": {"column": "customer_no"}})
    assert not gxdistinct.supported([*rules, unique])
    with SuiteRunner("customers", [*rules, unique]) as runner:
        assert not runner.distinct


def _validate_both(project, run, tmp_path, monkeypatch):
    from crmbridge.validation.stage import run_validate

    out = {}
    for distinct in (False, True):
        monkeypatch.setattr(gxsuite, "DISTINCT_VALUES", distinct)
        report = run_validate(project, run, batch_rows=50)
        out[distinct] = (report, tmp_path / f"out-{distinct}")
        shutil.copytree(run.dir / "validate", out[distinct][1])
    return out


# What differs between any two runs of a Data Docs page: run time, GX's random ids, batch and run
# hashes, the suite's per-process counter (``contacts-2``).
_PER_RUN = [re.compile(p) for p in (rb"\d{4}-?\d{2}-?\d{2}T[\d:.]+Z?", rb"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}",
                                    rb"[0-9a-f]{32}", rb"(?<=s-)\d+(?=<| /)")]


def _per_run_free(page: bytes) -> bytes:
    for p in _PER_RUN:
        page = p.sub(b"~", page)
    return page


def _assert_same_tree(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        x, y = (a / f).read_bytes(), (b / f).read_bytes()
        if f.parent.name == "data_docs" and f.name != "index.html":
            assert b"unexpected" in x  # the pages list failing values: they are compared, not skipped
            x, y = _per_run_free(x), _per_run_free(y)
        assert x == y, f


def test_stage_outputs_equal_on_the_case_files(case_run, tmp_path, monkeypatch):
    project, run = case_run
    out = _validate_both(project, run, tmp_path, monkeypatch)
    assert out[False][0].counts() == out[True][0].counts()
    assert sum(c["rows_quarantined"] for c in out[True][0].counts().values()) > 0
    _assert_same_tree(out[False][1], out[True][1])


def test_stage_outputs_equal_on_the_demo_project(tmp_path, extracted_demo, monkeypatch):
    project, run = extracted_demo(tmp_path / "demo", customers=150)
    out = _validate_both(project, run, tmp_path, monkeypatch)
    assert out[False][0].counts() == out[True][0].counts()
    _assert_same_tree(out[False][1], out[True][1])


def test_column_codes_equal_exactly_where_type_and_value_are():
    """Codes are equal exactly where (type, value) are, also on the one-type shortcut."""
    cases = [["a", "b", "a", "中", "a "], ["a", None, "b", None, "a"], [True, False, None, True],
             ["a", np.str_("a"), "a", np.str_("a")], [1, np.int64(1), 1, 2], [None, float("nan"), None],
             [1.0, -0.0, 0.0, float("nan"), 1.0], [None, "a", float("nan"), "a"], [True, None, np.True_, 1, None],
             [None, None], ["x"], [False, None, False, 0.0]]
    for values in cases:
        codes = gxdistinct.column_codes(pd.Series(values, dtype=object))
        keys = [(type(v), "nan" if v != v else v) for v in values]
        for i in range(len(values)):
            for j in range(len(values)):
                assert (codes[i] == codes[j]) == (keys[i] == keys[j]), (values, i, j)


def test_check_column_codes_equal_the_hashed_codes():
    """A derived check column's codes (True/False/None, read by address) are the codes hashing the values
    gives, numbered in order of first appearance; any other value leaves the column to hashing."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 1000):
        for kinds in ([True], [False], [None], [True, False], [None, True], [False, None, True]):
            arr = np.array([kinds[i] for i in rng.integers(0, len(kinds), n)], dtype=object)
            for a in (arr, arr[::2], arr[::-1]):
                expected = pd.factorize(a, use_na_sentinel=False)[0]
                assert gxdistinct.check_codes(a).tolist() == expected.tolist(), a
                assert gxdistinct.column_codes(pd.Series(a, dtype=object)).tolist() == expected.tolist()
    for other in ([True, np.True_], [None, 1], [False, 0.0], [True, "True"], [None, float("nan")], ["a", None]):
        assert gxdistinct.check_codes(np.array(other * 3, dtype=object)) is None, other
    assert gxdistinct.check_codes(np.zeros(0, dtype=object)) is None


def test_size_classes_and_not_null_only_columns():
    """Groups of 1 to 2,000 distinct values run on frames of their own size class; columns only not-null
    reads (object with None, NaN, NaT and pd.NA; Arrow-backed text with missing values) count present
    values as one and keep each kind of missing value apart, as GX lists them."""
    rules = _rules(ENTITY.replace("required: [name]", "required: [name, note, memo]"))
    df = _frame(n=2400, seed=5)
    missing = [None, float("nan"), pd.NaT, pd.NA]
    df["customer_no"] = pd.Series([missing[i % 4] if i % 9 == 0 else f"C{i}" for i in range(len(df))], dtype=object)
    df["note"] = pd.Series([None if i % 7 == 0 else f"n{i}" for i in range(len(df))], dtype="string[pyarrow]")
    df["memo"] = pd.Series([f"全角{i}" for i in range(len(df))], dtype=object)
    df["code"] = [f"Q{i}" if i % 2 else "AB1" for i in range(len(df))]
    data = gxsuite.derive_columns(df, rules, RuleContext()).reset_index(drop=True)
    dframe = gxdistinct.distinct_frame(data, rules)
    assert len(dframe.frames) >= 3 and len(dframe.frames[-1]) == 1201  # code: 1,200 Qs and AB1
    assert [dframe.sizes[dframe.group_of[c]] for c in ("customer_no", "note", "memo")] == [5, 2, 1]
    rules_of = gxdistinct.frames_and_rules(dframe, rules)
    assert sorted(r.rule_id for _, rs in rules_of for r in rs) == sorted(r.rule_id for r in rules)
    every, distinct = _both(rules, df)
    _assert_same_run(every, distinct)
    by_rule = {o.rule.rule_id: o for o in distinct.outcomes}
    assert by_rule["required.customer_no"].unexpected_count == 267 and by_rule["required.note"].unexpected_count == 343


def test_size_class_bounds():
    assert [gxdistinct._tier(n) for n in (1, 2, 16, 17, 256, 257, 4096, 4097, 65536, 65537)] == \
        [1, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def _batches() -> list[pd.DataFrame]:
    """Batches of one entity: values repeating from batch to batch and new ones, a batch of only known
    values (GX runs nothing), columns whose dtype changes (all missing, float), each kind of missing value
    (None, NaN, NaT, pd.NA) in columns only not-null reads, unicode, over 200 failing values in an order
    that brings values GX did not list first, and a pair rule."""
    missing = [None, float("nan"), pd.NaT, pd.NA]
    out = []
    for b, (n, seed) in enumerate([(400, 1), (400, 2), (400, 1), (300, 4), (400, 1), (350, 6), (200, 7)]):
        df = _frame(n=n, seed=seed)
        df["note"] = pd.Series([missing[(i + b) % 4] if i % 7 == 0 else f"n{i % 5}" for i in range(n)], dtype=object)
        df["memo"] = pd.Series([f"全角{i % 3}" for i in range(n)], dtype=object)
        if b == 2:  # the first batch's rows backwards: failing code values GX did not list come first
            df = df.iloc[::-1].reset_index(drop=True)
        if b == 3:  # dtypes change: amount all missing, status float, email unicode and new
            df["amount"] = None
            df["status"] = [[1.0, np.nan, -0.0, 0.0][i % 4] for i in range(n)]
            df["email"] = [f"用户{i % 9}@例子.中国" if i % 2 else "info@a.cn" for i in range(n)]
            df["note"] = pd.Series([None if i % 3 else f"n{i}" for i in range(n)], dtype="string[pyarrow]")
        if b == 4:  # only values seen before
            df = out[0].sample(frac=1.0, random_state=4).reset_index(drop=True)
        if b == 5:
            df["created_on"] = [pd.NaT if i % 5 == 0 else f"2021-02-{i % 28 + 1:02d}" for i in range(n)]
        if b in (5, 6):  # 1 in one batch, True (equal to it, and its hash) in the next, never together
            df["status"] = pd.Series([[1, "Gone", None][i % 3] if b == 5 else [True, "Active", None][i % 3]
                                      for i in range(n)], dtype=object)
        out.append(df)
    return out


def _assert_same_results(a, b):
    """Everything of each expectation's result beyond ``_assert_same_run``: configuration (its batch id names
    the runner's asset: ``customers-<n>``), meta, exception info."""
    def config(res):
        c = res.expectation_config.to_json_dict()
        return {**c, "kwargs": {**c["kwargs"], "batch_id": re.sub(r"-\d+$", "", c["kwargs"]["batch_id"])}}

    for x, y in zip(a.gx_result.results, b.gx_result.results):
        assert config(x) == config(y)
        assert _canon(x.meta) == _canon(y.meta) and _canon(x.exception_info) == _canon(y.exception_info)


@pytest.mark.parametrize("limit", [gxcache.CACHE_VALUES, 6])
def test_cached_verdicts_give_the_all_rows_result_batch_after_batch(limit, monkeypatch):
    """One runner over several batches (its verdict cache filling, and with ``limit`` 6 dropping groups)
    gives on every batch what GX gives on the batch's rows, and GX runs nothing on a batch of known values."""
    monkeypatch.setattr(gxcache, "CACHE_VALUES", limit)
    rules = _rules(ENTITY.replace("required: [name]", "required: [name, note, memo]"))
    ctx = RuleContext()
    runs: list[int] = []
    totals = {False: ResultTotals(rules), True: ResultTotals(rules)}
    with SuiteRunner("customers", rules, distinct=False) as every, SuiteRunner("customers", rules) as cached:
        validate = cached._validate
        monkeypatch.setattr(cached, "_validate", lambda *a, **k: runs.append(1) or validate(*a, **k))
        for df in _batches():
            x, y = every.run(df, ctx), cached.run(df, ctx)
            runs.append(0)
            _assert_same_run(x, y)
            _assert_same_results(x, y)
            totals[False].add(x)
            totals[True].add(y)
    gx_runs = "".join(map(str, runs)).split("0")  # GX's runs per batch
    assert len(gx_runs[0]) > 1 and (gx_runs[4] == "") == (limit > 6)  # batch 5: known values only
    assert [o.as_dict() for o in totals[False].outcomes()] == [o.as_dict() for o in totals[True].outcomes()]
    for x, y in zip(totals[False].gx_result().results, totals[True].gx_result().results):
        assert x.success == y.success and _canon(x.result) == _canon(y.result)


def test_cache_keys_tell_apart_what_gx_tells_apart():
    values = ["1", 1, 1.0, True, None, float("nan"), pd.NaT, pd.NA, 0.0, -0.0, np.str_("1"), np.float32(1.0),
              pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2020-01-01 01:00", tz="Europe/Berlin")]
    keys = [gxcache.value_key(v) for v in values]
    assert len(set(keys)) == len(values)
    assert gxcache.value_key("中") == gxcache.value_key("中") and gxcache.value_key(2.5) == gxcache.value_key(2.5)
