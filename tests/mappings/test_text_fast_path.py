"""The Arrow fast paths of trim, case, nfkc, null_if and is_missing (mappings/textfast.py) must give
exactly what the pandas string methods give: values (type included), ``changed`` and ``failed``, on
every code point and on random strings of the characters where Python and Arrow disagree (whitespace,
case mappings, compatibility forms and composable pairs)."""

from __future__ import annotations

import math
import random
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from crmbridge.mappings import textfast
from crmbridge.mappings import transforms_text as tt
from crmbridge.mappings.distinct import encode
from crmbridge.mappings.transforms_base import as_text

ALL = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]  # surrogates cannot be UTF-8
BMP = [c for c in ALL if ord(c) < 0x10000]
# where Python and Arrow disagree or where a transform has work: whitespace Arrow does not know
# (U+001C-U+001F, U+0085) and the reverse (U+180E, U+200B, U+FEFF), case mappings that change the
# length (ß, ﬁ, İ, ŉ), title-case letters (ǅ), final sigma, full-width, CJK, emoji, combining marks
TRICKY = list(textfast.PY_WHITESPACE) + ["\u180e", "\u200b", "\ufeff", "\u2060", "ß", "ẞ", "ﬁ", "ﬃ", "İ", "ı", "ŉ",
                                         "ǅ", "ǆ", "Ǆ", "Σ", "σ", "ς", "ΐ", "Ａ", "ａ", "Ｃ", "０", "上", "海", "无", "😀", "𐐀",
                                         "𐐨", "\u0301", "e", "E", "a", "N", "/", "-", "x",
                                         # NFKC: compatibility forms, combining marks, composable pairs
                                         "①", "㎡", "\u212b", "é", "\u0327", "\u0323", "ᄀ", "ᅡ", "ᆨ", "가", "각",
                                         "\u0f73", "\u0b47", "\u0b3e", "\u0cc6", "\u0cd5", "\u1b05", "\u1b35"]
MARKERS = ["N/A", "-", "无", "ß", "SS", "İ", "ǅ", " ", "Σς"]


def _words(n: int, seed: int) -> list:
    rnd = random.Random(seed)
    out = ["".join(rnd.choice(TRICKY) for _ in range(rnd.randrange(0, 7))) for _ in range(n)]
    return out + [None, float("nan"), "", " ", "\u3000", "\x1c", " n/a ", "N/A", "無", "\u200b", "ß ", "\tSS\n"]


def _around(chars: list[str]) -> list[str]:
    """Each character alone, at either end, inside, doubled, and next to whitespace."""
    return [v for c in chars for v in (c, f" {c}", f"{c}\u3000", f"a{c}b", c + c, f"x {c}  y")]


def _same(new, old, what: str) -> None:
    assert new.values.dtype == old.values.dtype and new.changed.dtype == old.changed.dtype == bool, what
    assert list(new.values.index) == list(old.values.index), what
    for i, (x, y) in enumerate(zip(new.values.array, old.values.array)):
        nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        assert nan or (x is None and y is None) or (type(x) is type(y) and x == y), f"{what} #{i}: {x!r} != {y!r}"
    assert new.changed.tolist() == old.changed.tolist(), what
    assert new.failed.tolist() == old.failed.tolist(), what


def _fast_and_reference(series: pd.Series):
    s = as_text(series)
    yield "trim", tt.trim(series), tt._trim_python(series, s, False)
    yield "trim collapse", tt.trim(series, collapse=True), tt._trim_python(series, s, True)
    for to in ("upper", "lower"):
        yield to, tt.case(series, to=to), tt._case_python(series, s, to)
    yield "nfkc", tt.nfkc(series), tt._nfkc_python(series, s)
    for ignore_case in (True, False):
        markers = {m.strip().lower() if ignore_case else m.strip() for m in MARKERS}
        yield f"null_if {ignore_case}", tt.null_if(series, values=MARKERS, ignore_case=ignore_case), \
            tt._null_if_python(series, s, markers, ignore_case)


def test_whitespace_set_is_pythons():
    assert set(textfast.PY_WHITESPACE) == {c for c in ALL if c.isspace()}
    arr = pa.array(ALL, type=pa.large_string())
    assert pc.match_substring_regex(arr, f"^{textfast.WS_CLASS}$").to_pylist() == [c.isspace() for c in ALL]


@pytest.mark.parametrize("to", ["upper", "lower"])
def test_case_class_picks_every_character_the_case_change_changes(to):
    arr = pa.array(ALL, type=pa.large_string())
    picked = pc.match_substring_regex(arr, textfast.case_class(to)).to_pylist()
    assert picked == [getattr(c, to)() != c for c in ALL]


def test_nfkc_class_picks_every_character_nfkc_changes_and_the_rest_stays_normal():
    arr = pa.array(ALL, type=pa.large_string())
    picked = pc.match_substring_regex(arr, textfast.nfkc_class()).to_numpy(zero_copy_only=False)
    assert all(p for c, p in zip(ALL, picked) if unicodedata.normalize("NFKC", c) != c)
    # the quick-check argument: strings of unpicked characters are NFKC already, pairs included
    calm = [c for c, p in zip(ALL, picked) if not p]
    rnd = random.Random(9)
    strings = ["".join(rnd.choice(calm) for _ in range(rnd.randrange(2, 5))) for _ in range(200_000)]
    strings += [a + b for a in ("가", "a", "e", "\u0b47", "\u0cc6", "\u1b05") for b in calm[::7]]
    assert all(unicodedata.normalize("NFKC", s) == s for s in strings)


def test_no_character_lowers_to_fewer_characters():
    # null_if skips values longer than every marker: that needs len(v.strip().lower()) >= len(v.strip())
    assert min(len(c.lower()) for c in ALL) == 1


@pytest.mark.parametrize("part", range(4))
def test_every_bmp_character_same_as_pandas(part):
    chars = BMP[part::4]
    series = pd.Series(_around(chars), dtype=object)
    for what, new, old in _fast_and_reference(series):
        _same(new, old, what)


def test_characters_beyond_the_bmp_same_as_pandas():
    cased = [c for c in ALL if ord(c) >= 0x10000 and (c.upper() != c or c.lower() != c)]
    rnd = random.Random(5)
    series = pd.Series(_around(cased + rnd.sample([c for c in ALL if ord(c) >= 0x10000], 3000)), dtype=object)
    for what, new, old in _fast_and_reference(series):
        _same(new, old, what)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_strings_same_as_pandas_object_and_arrow_text(seed):
    words = _words(4000, seed)
    for series in (pd.Series(words, dtype=object), pd.Series(words, dtype=object).astype("str"),
                   pd.Series(words, dtype=object, index=np.arange(len(words))[::-1] * 3)):
        for what, new, old in _fast_and_reference(series):
            _same(new, old, what)


def test_values_arrow_cannot_hold_and_non_text_columns_take_the_pandas_path():
    lone_surrogate = pd.Series(["a\udc80 ", " b", None], dtype=object)
    assert textfast.arrow_text(lone_surrogate.to_numpy()) is None
    mixed = pd.Series([1.0, " a ", None, 2.5, "N/A"], dtype=object)
    assert textfast.text_column(mixed) is None
    odd_missing = pd.Series([" a", pd.NA, pd.NaT, np.nan, None, "N/A"], dtype=object)
    for series in (lone_surrogate, mixed, odd_missing, pd.Series([], dtype=object),
                   pd.Series([None, None], dtype=object), pd.Series([np.nan, " x"], dtype=object),
                   pd.Series([" x", None], dtype="string"), pd.Series([1, 2])):
        for what, new, old in _fast_and_reference(series):
            _same(new, old, what)
    assert tt.trim(lone_surrogate).values.tolist() == ["a\udc80", "b", None]


def test_fast_path_really_runs_and_changes_only_the_picked_values():
    series = pd.Series(["a", " b", "N/A", "c", "x" * 50], dtype=object)
    values, arr = textfast.text_column(series)
    pick = textfast.flags(pc.match_substring_regex(arr, textfast.case_class("upper")))
    assert pick.tolist() == [True, True, False, True, True]
    out = tt.trim(series)
    assert out.values[0] is series[0] and out.values.tolist() == ["a", "b", "N/A", "c", "x" * 50]
    assert tt.null_if(series, values=["n/a"]).values.tolist() == ["a", " b", None, "c", "x" * 50]
    assert tt.null_if(series, values=[]).values.tolist() == series.tolist()  # no marker: nothing picked


@pytest.mark.parametrize("seed", [1, 2])
def test_encode_of_arrow_text_equals_factorize(seed):
    words = _words(3000, seed)
    obj = pd.Series(words, dtype=object)
    for series in (obj.astype("str"), obj.astype("str").iloc[::-1], pd.Series([], dtype="str"),
                   pd.Series([None, None], dtype="str")):
        enc = encode(series)
        codes, uniq = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
        expect = list(uniq) + ([None] if (codes < 0).any() else [])
        assert enc.uniques.tolist() == expect and all(type(u) is str for u in enc.uniques[: len(uniq)])
        assert enc.codes.tolist() == np.where(codes < 0, len(uniq), codes).tolist()
        assert enc.series().tolist() == [None if v is None or v != v else v for v in series.to_numpy(dtype=object)]


def _is_missing_pandas(series: pd.Series) -> pd.Series:
    """is_missing's pandas path for object text columns (what it did before the Arrow one)."""
    miss = series.isna()
    blank = series.str.strip().to_numpy(dtype=object) == ""
    return miss | blank if blank.any() else miss


@pytest.mark.parametrize("seed", [1, 2])
def test_is_missing_same_as_pandas(seed):
    from crmbridge.mappings.transforms_base import is_missing

    words = _words(4000, seed) + _around(BMP[seed::50])
    series = pd.Series(words, dtype=object, index=np.arange(len(words)) * 2)
    assert textfast.missing(series) is not None  # the Arrow path really runs
    new, old = is_missing(series), _is_missing_pandas(series)
    assert new.dtype == old.dtype == bool and new.index.equals(old.index)
    assert new.tolist() == old.tolist()
    for odd in (pd.Series(["a\udc80", " ", None], dtype=object), pd.Series([" ", pd.NaT], dtype=object)):
        assert is_missing(odd).tolist() == _is_missing_pandas(odd).tolist()
    # the one difference: pd.NA in an object column of text made the pandas path raise ("boolean value of
    # NA is ambiguous"); it is missing now, as isna says
    assert is_missing(pd.Series([" x", pd.NA, ""], dtype=object)).tolist() == [False, True, True]


def test_stored_character_classes_equal_the_computed_ones():
    """textfast_tables holds the classes for this Python's Unicode version: the same as computing them."""
    import unicodedata

    from crmbridge.mappings import textfast_tables

    assert textfast_tables.UNIDATA_VERSION == unicodedata.unidata_version  # else the stored ones go unused
    assert textfast.case_class("upper") == textfast.computed_case_class("upper") == textfast_tables.UPPER_CLASS
    assert textfast.case_class("lower") == textfast.computed_case_class("lower") == textfast_tables.LOWER_CLASS
    assert textfast.nfkc_class() == textfast.computed_nfkc_class() == textfast_tables.NFKC_CLASS


@pytest.mark.parametrize("seed", [4, 5])
def test_arrow_handed_between_steps_is_the_values_and_changes_nothing(seed, monkeypatch):
    """A chain of steps on an encoded column hands each step's values in Arrow to the next
    (``Applied.arrow``): the text steps then convert nothing, the values handed are the column's
    distinct values at every step, and the chain gives what it gives when every step converts."""
    import dataclasses

    from crmbridge.mappings import transforms as T

    chain = [("trim", {}), ("null_if", {"values": MARKERS}), ("nfkc", {}), ("case", {"to": "upper"}),
             ("replace", {"pattern": r"[\s-]", "replacement": ""}), ("trim", {"collapse": True}),
             ("case", {"to": "lower"}), ("null_if", {"values": MARKERS, "ignore_case": False}), ("email", {}),
             ("number", {}), ("phone", {"region": "CN"})]
    words = _words(3000, seed) + ["１２３", " 021-6234 5678 ", "A@B.CN ", "¥1,234.00"]
    series = pd.Series(words, dtype=object).astype("str")  # as extract's Parquet reads back
    convert = textfast.arrow_text
    converted = []
    monkeypatch.setattr(textfast, "arrow_text", lambda values: converted.append(len(values)) or convert(values))

    def run() -> list:
        column, out = encode(series), []
        assert column.arrow is not None
        for name, params in chain:
            column = T.apply_encoded(name, params, column, lambda c: None).column
            if column.arrow is not None:
                assert column.arrow.to_pylist() == column.uniques.tolist(), name
            out.append((name, column.series().tolist(), column.arrow is not None))
            if name == "replace":  # the text steps so far
                out.append(len(converted))
        return out

    handed = run()
    for name, spec in T.TRANSFORMS.items():
        monkeypatch.setitem(T.TRANSFORMS, name, dataclasses.replace(spec, arrow=False))
    converted.clear()
    alone = run()
    assert handed[5] == 0 and alone[5] == 5  # converted by none of the five text steps, or by each
    assert handed[:5] + handed[6:] == alone[:5] + alone[6:]
