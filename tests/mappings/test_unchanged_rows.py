"""A field's chain run only on the rows it may change (``engine._chain`` with ``mappings/unchanged.py``)
against the chain on every row (``engine._chain_rows``, what ``_chain`` was): the same values (type
included), the same stats and the same reasons, on mostly distinct generated values (what the skip
takes) mixed with the shapes each transform changes or fails on: whitespace Arrow and Python disagree
on, full-width, CJK, emoji, letters ``str.upper`` changes, E.164 numbers valid and not, national numbers
a prefix pattern strips, extensions, None, NaN, NA and blanks."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings.engine import _chain, _chain_rows, _Reasons
from crmbridge.mappings.models import FieldSpec
from crmbridge.mappings.unchanged import unchanged_rows

PIECES = ["C", "c", "Ｃ", "０", "1", "9", "x", "ß", "ﬁ", "İ", "ǅ", "Σ", "ς", "é", "e\u0301", "中", "客户", "😀", "-", "_",
          " ", "\u3000", "\t", "\x1c", "\x85", "\u200b", "\u180e", "\xa0", "\n", "①", "㎡", "Ⅻ", "ｶ", "\u1100\u1161"]
PHONES = ["+8613800138000", "+8613912345678", "+862155065012", "+861031429110", "+8675512345678", "+86123",
          "+8612345678901", "+8601012345678", "+8610123", "+86 13800138000", "+86-21-5506-5012",
          "+8613800138000 ext. 12", "+861380013800x",
          "+8613800138000\n", " +8613800138000", "+852 2123 4567", "+12025550123", "021-5506 5012", "13800138000",
          "5506 5012", "(021)55065012", "０２１－５５０６５０１２", "+８６13800138000", "+8617951234567", "+8612593123456",
          "+86400123456", "+8695511234", "+86106912345678", "+8613800138000 转 123", "", " ", None]


def _texts(n: int, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.85:  # distinct plain values: what the skip gives back as they are
            out.append(f"C{i:07d}{rng.choice(['', 'A', 'Z9'])}")
        elif r < 0.97:
            out.append(f"C{i}" + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4))))
        else:
            out.append(rng.choice([None, np.nan, pd.NA, "", " ", "\u3000", "\t"]))
    return out


def _phones(n: int, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.94:  # distinct E.164 mobiles and landlines, valid or not
            out.append(rng.choice(["+86138", "+86139", "+8621", "+8610", "+86755", "+86571", "+86199", "+86120"])
                       + f"{i:08d}")
        else:
            out.append(rng.choice(PHONES))
    return out


def _column(values: list, dtype: str) -> pd.Series:
    if dtype == "str":
        return pd.Series([None if v is pd.NA or (isinstance(v, float) and v != v) else v for v in values], dtype="str")
    return pd.Series(values, dtype=object)


def _spec(transforms: list, on_failure: str = "quarantine") -> FieldSpec:
    return FieldSpec.model_validate({"column": "v", "transforms": transforms, "on_failure": on_failure})


def _both(spec: FieldSpec, series: pd.Series, frame: pd.DataFrame):
    """(values, stats, reasons) of ``_chain`` and of ``_chain_rows`` on the same rows."""
    out = []
    for run in (_chain, _chain_rows):
        stats: dict = {}
        reasons = _Reasons(frame.index)
        reasons.text.loc[frame.index[::7]] = "earlier: reason"  # reasons of other fields come first
        values = run("F", spec, series, frame, reasons, stats)
        out.append((values, stats, reasons.text))
    return out


def _assert_same(got, ref):
    (values, stats, reasons), (rvalues, rstats, rreasons) = got, ref
    assert values.dtype == rvalues.dtype and values.index.equals(rvalues.index)
    assert [(type(v), v) for v in values.tolist()] == [(type(v), v) for v in rvalues.tolist()]
    assert stats == rstats
    assert reasons.tolist() == rreasons.tolist()


TEXT_CHAINS = [["trim"], ["nfkc"], [{"case": {"to": "upper"}}], [{"case": {"to": "lower"}}],
               [{"trim": {"collapse": True}}], ["trim", "nfkc", {"case": {"to": "upper"}}],
               [{"case": {"to": "lower"}}, {"trim": {"collapse": True}}, "nfkc"]]


@pytest.mark.parametrize("dtype", ["object", "str"])
@pytest.mark.parametrize("chain", range(len(TEXT_CHAINS)))
@pytest.mark.parametrize("seed", range(2))
def test_text_chains_equal_the_chain_on_every_row(chain, dtype, seed):
    series = _column(_texts(6000, seed), dtype)
    series.index = pd.RangeIndex(6000) * 3 + 5  # not the positions
    frame = pd.DataFrame({"v": series})
    spec = _spec(TEXT_CHAINS[chain])
    values, same, _ = unchanged_rows(spec.transforms, series)
    assert same.any() and (~same).any()  # both paths taken
    got, ref = _both(spec, series, frame)
    _assert_same(got, ref)


@pytest.mark.parametrize("dtype", ["object", "str"])
@pytest.mark.parametrize("params", [{"region": "CN", "city_column": "city"}, {"region": "CN", "keep_extension": False},
                                    {"region": "cn"}])
@pytest.mark.parametrize("on_failure", ["quarantine", "blank", "keep"])
def test_phone_chains_equal_the_chain_on_every_row(params, dtype, on_failure):
    rng = random.Random(7)
    series = _column(_phones(5000, 3), dtype)
    frame = pd.DataFrame({"v": series, "city": [rng.choice(["上海", "北京", "成都", None, "nowhere"]) for _ in range(5000)]})
    spec = _spec([{"phone": params}], on_failure)
    values, same, _ = unchanged_rows(spec.transforms, series)
    assert same.any() and (~same).any()
    got, ref = _both(spec, series, frame)
    _assert_same(got, ref)
    assert (ref[2] != "earlier: reason").sum() > 0 if on_failure == "quarantine" else True


def test_every_e164_value_taken_is_one_the_phone_transform_gives_back():
    """The values the skip takes are exactly ones ``phone`` leaves unchanged (changed False, failed False)."""
    from crmbridge.mappings.transforms import apply_transform

    series = pd.Series(_phones(5000, 11), dtype=object)
    _, same, _ = unchanged_rows(_spec([{"phone": {"region": "CN"}}]).transforms, series)
    res = apply_transform("phone", series, {"region": "CN"})
    taken = np.flatnonzero(same)
    assert len(taken) > 1000
    assert not res.changed.to_numpy()[taken].any() and not res.failed.to_numpy()[taken].any()
    assert res.values.to_numpy(dtype=object)[taken].tolist() == [
        None if v is None else v for v in series.to_numpy(dtype=object)[taken].tolist()]


@pytest.mark.parametrize("transforms", [["trim", "strip_html"], [{"case": {"to": "title"}}],
                                        [{"phone": {"region": "US"}}], [{"phone": {"format": "national"}}], []])
def test_chains_not_covered_run_on_every_row(transforms):
    series = pd.Series(_texts(3000, 1), dtype=object)
    assert unchanged_rows(_spec(transforms).transforms, series) is None


def test_repeated_values_go_through_the_chain_once_per_distinct_value():
    series = pd.Series(["上海", " 北京", "成都"] * 2000, dtype="str")
    assert unchanged_rows(_spec(["trim"]).transforms, series) is None
    got, ref = _both(_spec(["trim"]), series, pd.DataFrame({"v": series}))
    _assert_same(got, ref)


def test_all_rows_unchanged_still_count_every_transform():
    series = pd.Series([f"K{i}" for i in range(5000)], dtype="str")
    got, ref = _both(_spec(["trim", "nfkc"]), series, pd.DataFrame({"v": series}))
    _assert_same(got, ref)
    assert got[1] == {"F": {"trim": {"changed": 0, "failed": 0}, "nfkc": {"changed": 0, "failed": 0}}}


def test_reasons_merged_as_if_added_in_place():
    main = _Reasons(pd.Index([10, 11, 12, 13]))
    main.add(pd.Series([True, False, True, False], index=main.text.index), "a")
    ref = _Reasons(main.text.index)
    ref.text = main.text.copy()
    sub = _Reasons(pd.Index([11, 12]))
    for r in ("x", "y"):
        m = pd.Series([True, r == "y"], index=sub.text.index)
        sub.add(m, r)
        ref.add(m.reindex(ref.text.index, fill_value=False), r)
    main.merge(sub)
    assert main.text.tolist() == ref.text.tolist() == ["a", "x; y", "a; y", ""]


@pytest.mark.parametrize("chain", range(len(TEXT_CHAINS)))
def test_the_chain_patterns_searched_as_one_pick_the_rows_each_pick_gives(chain):
    """nfkc's and case's patterns searched for in one pass: the rows of ``textfast``'s picks, one pass each."""
    import pyarrow as pa

    from crmbridge.mappings import textfast

    series = _column(_texts(6000, chain), "str")
    spec = _spec(TEXT_CHAINS[chain])
    arr = pa.array(series.array)
    want = np.zeros(len(arr), dtype=bool)
    for t in spec.transforms:
        params = t.model
        pick = {"trim": lambda: textfast.trim_pick(arr, params.collapse), "nfkc": lambda: textfast.nfkc_pick(arr),
                "case": lambda: textfast.case_pick(arr, params.to)}[t.name]()
        want |= textfast.flags(pick)
    _, same, _ = unchanged_rows(spec.transforms, series)
    assert want.any() and (~same == want).all()


@pytest.mark.parametrize("chain", [i for i, c in enumerate(TEXT_CHAINS) if "nfkc" in c or any("case" in t for t in c)])
@pytest.mark.parametrize("kind", ["string", "large_string", "sliced", "chunked"])
def test_class_hits_are_re2s_matches(chain, kind):
    """``class_hits`` (the ASCII characters looked for in the bytes, RE2 on the other values) against RE2 on
    every value: the chain's classes as ``unchanged_rows`` joins them, over ASCII, wide, empty and null values,
    and nulls whose offsets span bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from crmbridge.mappings import textfast
    from crmbridge.mappings.unchanged import MAY_CHANGE, class_hits

    spec = _spec(TEXT_CHAINS[chain])
    picks = [MAY_CHANGE[t.name](None, t.model) for t in spec.transforms if t.name in ("nfkc", "case")]
    patterns = [p for p in picks if isinstance(p, str)]
    pattern = "|".join(f"(?:{p})" for p in patterns)
    rng = random.Random(chain)
    values = [v if isinstance(v, str) else None for v in _texts(3000, chain)]
    values += ["".join(chr(rng.randrange(128)) for _ in range(rng.randint(0, 6))) for _ in range(2000)]
    arr = pa.array(values, type=pa.large_string() if kind == "large_string" else pa.string())
    # nulls over bytes: a null put where a value was keeps its offsets
    masked = pa.Array.from_buffers(arr.type, len(arr), [pc.is_valid(pc.if_else(
        pa.array([i % 7 == 3 for i in range(len(arr))]), pa.scalar(None, arr.type), arr)).buffers()[1], *arr.buffers()[1:]])
    for a in (arr, masked):
        if kind == "sliced":
            a = a.slice(17, len(a) - 40)
        if kind == "chunked":
            a = pa.chunked_array([a.slice(0, 1000), a.slice(1000)])
        want = textfast.flags(pc.match_substring_regex(a, pattern))
        assert want.any() and not want.all()
        assert (class_hits(a, pattern) == want).all()
