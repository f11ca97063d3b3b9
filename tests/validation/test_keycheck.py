"""Validate's pass 2 fast paths give exactly what the code they replace gives: a unique rule's verdicts
per batch (``keycheck.unique_check`` against ``checks.unique_check``), each code's first row
(``gxdistinct.first_positions`` against ``np.unique``) and the rows GX judges per rule counted from the
distinct values (against ``gxdistinct._judged`` on every row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation import checks, gxdistinct, gxsuite, keycheck, regionchecks
from crmbridge.validation.rules import RuleContext

from .test_gxdistinct import _frame, _rules
from .test_pass1_equality import KEYS, tricky_frame


def _typed(values) -> list:
    return [(type(v), v) for v in values]


def _indexes(df: pd.DataFrame, columns: list[str]) -> list[checks.DuplicateIndex]:
    """The stage's index over the whole frame, a part of it, none of it, and texts of another layout."""
    finder = checks.DuplicateFinder(columns, hash_bits=32)
    finder.add(df)
    finder.confirm(df)
    whole = finder.index()
    some = whole.values[::2]
    other = pd.Index(["x", "3:abc", "1:a1:b", "2:ab:"] + list(whole.values[:3]), dtype=object)
    return [whole, checks.DuplicateIndex(columns, some), checks.DuplicateIndex(columns, pd.Index([], dtype=object)),
            checks.DuplicateIndex(columns, other)]


@pytest.mark.parametrize("seed,n", [(1, 1), (2, 7), (3, 400), (4, 3000)])
@pytest.mark.parametrize("columns", KEYS)
def test_unique_check_per_batch_equals_checks_unique_check(seed, n, columns):
    df = tricky_frame(seed, n)
    indexes = _indexes(df, columns)
    assert n < 400 or {"none", "missing"} & set(columns) or len(indexes[0].values)  # duplicates really occur
    for index in [*indexes, None]:
        for part in (df, df.iloc[n // 3:], df.iloc[[0] * min(n, 3)]):
            got = keycheck.unique_check(part, columns, index)
            want = checks.unique_check(part, columns, index)
            assert got.index.equals(want.index) and got.dtype == want.dtype == object
            assert _typed(got) == _typed(want), (columns, index)


def test_index_parts_read_back_only_the_compound_layout():
    assert keycheck._index_parts(pd.Index(["1:a2:bc", "0:3:x:y"]), 2) == [["a", ""], ["bc", "x:y"]]
    for bad in (["1:a"], ["x"], ["1:a2:bc9"], ["01:a1:b"], [5]):
        assert keycheck._index_parts(pd.Index(bad, dtype=object), 2) is None


@pytest.mark.parametrize("values", [[], [0], [3, 1, 2], [0, 0, 1, 0, 2, 2, 1], [0, 2, 1], [1, 0], [0, 1, 1, 3]])
def test_first_positions_equal_np_unique(values):
    codes = np.array(values, dtype=np.int64)
    assert gxdistinct.first_positions(codes).tolist() == np.unique(codes, return_index=True)[1].tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_positions_of_factorized_columns(seed):
    df = tricky_frame(seed, 2000)
    for col in df.columns:
        codes = gxdistinct.column_codes(df[col])
        assert gxdistinct.first_positions(codes).tolist() == np.unique(codes, return_index=True)[1].tolist()


@pytest.mark.parametrize("seed,n", [(1, 900), (2, 40), (3, 1)])
def test_rows_judged_counted_from_distinct_values(seed, n):
    rules = _rules()
    df = _frame(n=n, seed=seed)
    df.loc[df.index[::7], "limit"] = np.nan
    data = gxsuite.derive_columns(df, rules, RuleContext()).reset_index(drop=True)
    dframe = gxdistinct.distinct_frame(data, rules)
    assert dframe.row_ids.tolist() == data["_row_id"].tolist()
    for rule in rules:
        g = dframe.group_of[gxdistinct.rule_columns(rule)[0]]
        assert int(dframe.counts[g].sum()) == len(data)
        got = gxdistinct._considered_rows(data, rule, dframe, g)
        assert got == _considered(data, rule), rule.rule_id


def _considered(frame: pd.DataFrame, rule) -> int | None:
    """Rows GX's pandas engine judges for ``rule``, counted on every row (None for not-null)."""
    judged = gxdistinct._judged(frame, rule)
    return None if judged is None else int(judged.sum())


def _previous_column_codes(s: pd.Series) -> np.ndarray:
    """``gxdistinct.column_codes`` before the object codes were factorised with the sentinel."""
    arr = s.to_numpy()
    if arr.dtype != object:
        return gxdistinct.column_codes(s)
    values = pd.factorize(arr, use_na_sentinel=False)[0]
    kinds = set(map(type, arr))
    if len(kinds) < 2 or (len(kinds) == 2 and type(None) in kinds and kinds - {type(None)} <= {str, bool}):
        return values
    types, kinds = pd.factorize(np.frompyfunc(type, 1, 1)(arr))
    return pd.factorize(values.astype(np.int64) * len(kinds) + types)[0]


MISSING = [None, np.nan, pd.NA, pd.NaT, float("nan"), np.float64("nan")]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_column_codes_equal_the_previous_codes(seed):
    rng = np.random.default_rng(seed)
    df = tricky_frame(seed, 500)
    df["nulls"] = pd.Series([MISSING[i] for i in rng.integers(0, len(MISSING), 500)], dtype=object)
    df["late"] = pd.Series(["a"] * 250 + [None, "b", np.nan, "a", "c"] * 50, dtype=object)
    df["flags"] = pd.Series([[True, False, None][i] for i in rng.integers(0, 3, 500)], dtype=object)
    for col in df.columns:
        for part in (df[col], df[col].iloc[::-1], df[col].iloc[:1], df[col].iloc[:0]):
            got, want = gxdistinct.column_codes(part), _previous_column_codes(part)
            assert got.dtype == want.dtype and got.tolist() == want.tolist(), col



def test_row_values_taken_before_conversion_equal_the_converted_column():
    """``outcome.row_values`` (the failing rows' values in reasons) takes the rows before converting them."""
    from crmbridge.validation import outcome

    df = _frame(n=60, seed=5)
    df["text"] = pd.array([None if i % 5 == 0 else str(i) for i in range(60)], dtype="str")  # Arrow-backed
    df["float"] = pd.Series([np.nan if i % 4 == 0 else i / 2 for i in range(60)], dtype="float64")
    df["date"] = pd.to_datetime(pd.Series(["2020-01-02", None] * 30), errors="coerce")
    df["int"] = pd.array([None if i % 3 == 0 else i for i in range(60)], dtype="Int64")
    for positions in ([0, 3, 4, 5, 17, 59, 3], [], [59]):
        positions = np.array(positions, dtype=np.intp)
        for col in [*df.columns, "absent"]:
            got = outcome.row_values(df.iloc[::-1].reset_index(drop=True).iloc[::-1], col, positions)
            want = df[col].to_numpy(dtype=object)[positions] if col in df.columns else [None] * len(positions)
            assert got.dtype == object and len(got) == len(want)
            assert [(type(a), repr(a)) for a in got] == [(type(b), repr(b)) for b in want], col


def _previous_texts(series: pd.Series) -> np.ndarray:
    """The format checks' text before ``columntext.texts``: every present value through ``astype(str)``."""
    present = series.notna().to_numpy()
    text = np.full(len(series), None, dtype=object)
    text[present] = series[present].astype(str).to_numpy(dtype=object)
    return text


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_texts_equal_astype_str(seed):
    from crmbridge.validation.columntext import present_texts, texts

    df = tricky_frame(seed, 300)
    df["np_str"] = pd.Series([np.str_("a"), None, "b", np.str_("客户")] * 75, dtype=object)
    df["nan_text"] = pd.Series(["x", np.nan, "y", pd.NA] * 75, dtype=object)
    df["all_text"] = pd.Series(["x", "", np.str_("b"), "客户\x00"] * 75, dtype=object)  # none missing
    df["all_str"] = df["all_text"].astype("str")
    for col in df.columns:
        for part in (df[col], df[col].iloc[:0], df[col].iloc[5:6]):
            got, want = texts(part), _previous_texts(part)
            present, also = present_texts(part)
            assert present.dtype == bool and present.tolist() == part.notna().tolist()
            assert also.tolist() == got.tolist() and also is not part.to_numpy(dtype=object)
            assert got.dtype == want.dtype == object and len(got) == len(want)
            assert [(v is None, None if v is None else str(v)) for v in got] == \
                [(v is None, None if v is None else str(v)) for v in want], col
            assert all(v is None or type(v) in (str, np.str_) for v in got)


@pytest.mark.parametrize("seed", [1, 2])
def test_format_checks_on_text_columns_equal_their_per_value_functions(seed):
    """The e-mail and phone checks read ``texts``; their verdicts per row stay the libraries'."""
    df = tricky_frame(seed, 200)
    values = pd.Series(["91310000MA1FL8L87R", "91310000MA1FL8L870", None, "x@y.cn", "bad@", 1, 1.0,
                        "+8613812345678", "021-12345678", "Ｃ001", np.nan] * 20, dtype=object)
    for s in (values, df["a"], df["z"], df["s"]):
        got = checks.uscc_check(s)
        assert [None if pd.isna(v) else checks.uscc_valid(str(v)) for v in s] == got.tolist()
        got = checks.email_check(s)
        assert [None if pd.isna(v) else checks.email_valid(str(v)) for v in s] == got.tolist()
        got = regionchecks.phone_check(s)
        assert [None if pd.isna(v) else regionchecks.phone_valid(str(v), "CN") for v in s] == got.tolist()
