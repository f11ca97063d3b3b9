"""``parse_number`` with plain integers read by Arrow's casts (``_whole_numbers``) against the same function
reading every number with ``pd.to_numeric`` (the previous code: the fast path switched off), value by
value with types, changed and failed: integers of 1 to 20 digits, leading zeros, 2**53 and around,
decimals, currency, thousands, full-width digits, blanks and None; every parameter setting."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from crmbridge.mappings import transforms_numbers as N

EDGES = ["0", "00", "007", "9007199254740992", "9007199254740993", "999999999999999", "1000000000000000",
         "18446744073709551616", "1.5", "0.1", "2.675", "¥1,234", "1,000", "１２３", "12万", "(5)", "", " ", "x", None,
         "445200.00", "¥6,374,123.00", "1.0", "0.000", "1.", ".0", "1.50", "12345678901234.0", "123456789012345.0",
         "999999999999999.00", "9007199254740993.0", "1.00000000000000", "1.000000000000000", "１２３.００", "¥0.00"]
SETTINGS = [{}, {"scale": 0}, {"scale": 2}, {"integer": True}, {"percent": True}, {"cn_units": True},
            {"decimal": ",", "thousands": "."}]


def _values(n: int, seed: int, digits: int, extra: float, zeros: bool = False) -> list:
    """Integers of up to ``digits`` digits (with ``zeros``, half of them written as amounts with a fraction
    of zeros, ``¥1,234.00``) and a share ``extra`` of edge cases."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < extra:
            out.append(rng.choice(EDGES))
        elif zeros and rng.random() < 0.5:
            amount = f"{rng.randrange(10 ** rng.randint(1, digits)):,}"
            out.append(rng.choice(["", "¥"]) + amount + "." + "0" * rng.randint(1, 4))
        else:
            out.append(str(rng.randrange(10 ** rng.randint(1, digits))))
    return out


def _reference(series, **kw):
    keep, keep_missing = N._whole_numbers, N._all_missing
    N._whole_numbers, N._all_missing = (lambda t, ok: None), (lambda s: False)
    try:
        return N.parse_number(series, **kw)
    finally:
        N._whole_numbers, N._all_missing = keep, keep_missing


def _same(got, ref):
    assert [(type(v), v) for v in got.values.tolist()] == [(type(v), v) for v in ref.values.tolist()]
    assert got.values.dtype == ref.values.dtype and list(got.values.index) == list(ref.values.index)
    assert got.changed.dtype == ref.changed.dtype and got.failed.dtype == ref.failed.dtype
    assert got.changed.tolist() == ref.changed.tolist() and got.failed.tolist() == ref.failed.tolist()


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
@pytest.mark.parametrize("values,dtype", [([None], object), ([None, float("nan"), pd.NA], object),
                                          ([float("nan")] * 3, float), ([None, None], "str"), ([None, None], "string"),
                                          ([None, " "], object), ([None, "1"], object), ([], object)])
def test_columns_without_a_value_equal_the_whole_path(setting, values, dtype):
    series = pd.Series(values, dtype=dtype, index=[7 * i for i in range(len(values))])
    _same(N.parse_number(series, **SETTINGS[setting]), _reference(series, **SETTINGS[setting]))


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
@pytest.mark.parametrize("digits,extra,zeros", [(15, 0.0, False), (9, 0.02, False), (15, 0.3, False), (20, 0.0, False),
                                               (7, 0.0, True), (13, 0.0, True), (15, 0.1, True), (18, 0.0, True)])
@pytest.mark.parametrize("dtype", ["object", "str"])
def test_parse_number_equals_to_numeric(setting, digits, extra, zeros, dtype):
    series = pd.Series(_values(3000, setting + digits, digits, extra, zeros), dtype=dtype)
    ref = _reference(series, **SETTINGS[setting])
    got = N.parse_number(series, **SETTINGS[setting])
    assert [(type(v), v) for v in got.values.tolist()] == [(type(v), v) for v in ref.values.tolist()]
    assert got.values.dtype == ref.values.dtype
    assert got.changed.tolist() == ref.changed.tolist() and got.failed.tolist() == ref.failed.tolist()


@pytest.mark.parametrize("values", [["12", None, "7"], [None, None], ["123456789012345"] * 3, ["1.0"], [],
                                    ["445200.00", "7"], ["12345678901234.0"], ["123456789012345.0"], ["1.50"],
                                    ["1."], [".0"], ["1234567890123456"]])
def test_whole_numbers_taken_only_when_all_are_plain_integers(values):
    t = pd.Series(values, dtype=object)
    got = N._whole_numbers(t, pd.Series(True, index=t.index))
    # at most 15 digits in all, a fraction only of zeros
    plain = bool(values) and any(v is not None for v in values) and all(
        v is None or (re.fullmatch(r"[0-9]+(\.0+)?", v) and len(v.replace(".", "")) <= 15) for v in values)
    assert (got is not None) == plain
    if plain:
        assert got.tolist() == pd.to_numeric(t, errors="coerce").astype(float).tolist() or \
            got.isna().tolist() == t.isna().tolist()


@pytest.mark.parametrize("text", ["18446744073709551616", "9223372036854775808", "-9300000000000000000", "1e30"])
def test_integer_past_int64_fails_the_cell_instead_of_raising(text):
    series = pd.Series(["42", text, None], dtype=object)
    got = N.parse_number(series, integer=True)
    assert got.values.tolist() == [42, text, None]
    assert got.failed.tolist() == [False, True, False]
    assert got.changed.tolist() == [True, False, False]


def test_integer_just_inside_int64_is_kept():
    got = N.parse_number(pd.Series(["9223372036854774784"], dtype=object), integer=True)
    assert got.values.tolist() == [9223372036854774784] and got.failed.tolist() == [False]


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
@pytest.mark.parametrize("digits,extra,zeros,blank", [(15, 0.0, False, 0.0), (15, 0.0, True, 0.1),
                                                      (7, 0.0, True, 0.3), (16, 0.0, False, 0.0),
                                                      (13, 0.01, True, 0.05), (9, 0.0, False, 1.0)])
def test_amounts_read_in_arrow_equal_the_whole_path(setting, digits, extra, zeros, blank):
    """``arrow=`` given (as ``distinct.run_step`` hands it over): a column of only simple amounts, blanks and
    None is read without Python strings (``_plain_amounts``); the same column without ``arrow=`` takes the
    whole path. Value by value with types, changed and failed."""
    from crmbridge.mappings.transforms_arrow import strings

    rng = random.Random(setting * 100 + digits)
    values = [rng.choice(["", " ", "\u3000", None]) if rng.random() < blank else v
              for v in _values(3000, setting + digits, digits, extra, zeros)]
    series = pd.Series(values, dtype=object)
    _same(N.parse_number(series, **SETTINGS[setting], arrow=strings(series.to_numpy())),
          N.parse_number(series, **SETTINGS[setting]))
