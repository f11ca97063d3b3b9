"""Transforms computed once per distinct value must give exactly what the whole-column functions give.

The reference is the previous implementation: each transform function run on the whole column
(``apply_transform(..., distinct=False)``), and the per-cell helpers of transforms_base as they were
(copied below). Compared value by value (type included), with the changed and failed flags, on the
demo project's messy legacy exports and on a column of hand-picked awkward values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings import engine as engine_mod
from crmbridge.mappings import transforms as T
from crmbridge.mappings.distinct import encode
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.transforms_base import as_text, finish, is_missing
from crmbridge.migrations.demo_data import write_demo_data
from crmbridge.validation.definition import load_definition, split_step

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "project"

AWKWARD = [None, float("nan"), "", "   ", "C000\x00123", "上海\r\n浦东\x1b",
           "\u3000", "N/A", "无", "-", "Ｃ０００１２３ ", " c000123", "<b>Evil</b> Corp",
           "&amp; Co", "２００１２０", "200120", "中国", "china", "CN", "US", "美国", "潜在", "Active", "PROSPECT",
           "2023-01-05", "2023/1/5", "2023年1月5日", "二〇二三年一月五日", "2023年1月5号", "44931", "0203-01-05",
           "¥1,234,500.00", "(1,234)", "12.5万", "１２３４５００", "1.5", "1e3", "-7", "12%", "abc",
           "021-6234 5678", "6234 5678", "13800138000", "+86 138 0013 8000", "13800138000 转 123",
           "（010）88886666", "+1 650 253 0000", "INFO@Example.CN ", "bad@", "a..b@example.cn", "用户@例子.中国",
           "欧阳娜娜", "张伟", "买买提·吐尔逊", "Smith, John", "John Smith", "上海;浦东", "a" * 300,
           "91310000MA1FL2XQ3A", "9131 0000 MA1F L2XQ 3A", "x\x00y", "2023-01-05 13:04:05"]

EXTRA_CONFIGS: list[tuple[str, dict]] = [
    ("trim", {}), ("trim", {"collapse": True}), ("case", {"to": "upper"}), ("case", {"to": "lower"}),
    ("case", {"to": "title"}), ("nfkc", {}), ("strip_html", {}),
    ("strip_control", {}), ("strip_control", {"keep_line_breaks": True}), ("replace", {"pattern": r"[\s-]", "replacement": ""}),
    ("null_if", {"values": ["N/A", "-", "无"]}), ("value_map", {"map": {"中国": "CN", "china": "CN"}, "on_missing": "keep"}),
    ("value_map", {"map": {"潜在": "Prospect"}, "on_missing": "error"}), ("value_map", {"map": {"CN": 1}, "default": 0}),
    ("truncate", {"length": 5}), ("truncate", {"length": 8, "ellipsis": "..."}), ("split", {"sep": ";", "index": 1}),
    ("split", {"sep": ";", "index": 3, "strict": True}), ("default", {"value": "n/a"}), ("required", {}),
    ("affix", {"prefix": "LEG-"}), ("phone", {"region": "CN"}), ("phone", {"region": "CN", "format": "national"}),
    ("phone", {"region": "CN", "city_column": "city"}), ("email", {}), ("email", {"lowercase": False}),
    ("date", {"formats": ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日"], "excel_serial": True}),
    ("datetime", {"formats": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]}), ("number", {}), ("number", {"integer": True}),
    ("number", {"cn_units": True, "percent": True, "scale": 2}), ("number", {"decimal": ",", "thousands": "."}),
    ("name_part", {"part": "last"}), ("name_part", {"part": "first"}), ("months_between", {"start_column": "start"}),
]


# ------------------------------------------------------------------ the previous per-cell helpers


def _old_is_missing(series: pd.Series) -> pd.Series:
    miss = series.isna()
    obj = series[~miss]
    if len(obj):
        blank = obj.map(lambda v: isinstance(v, str) and not v.strip())
        miss = miss.copy()
        miss.loc[blank[blank].index] = True
    return miss


def _old_as_text(series: pd.Series) -> pd.Series:
    out = series.astype(object)
    na = out.isna()
    if na.any():
        out = out.where(~na, None)

    def _s(v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    if len(out) and not out.map(lambda v: v is None or isinstance(v, str)).all():
        out = out.map(_s)
    return out


def _old_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def _old_changed(original: pd.Series, values: pd.Series, failed: pd.Series) -> pd.Series:
    o = original.astype(object).where(original.notna(), None)
    v = values.astype(object).where(values.notna(), None)
    failed = failed.fillna(False).astype(bool)
    v = v.where(~failed, o)
    same = pd.Series([_old_equal(a, b) for a, b in zip(o.array, v.array)], index=original.index, dtype=bool)
    return ~(same | (o.isna() & v.isna())) & ~failed


# ------------------------------------------------------------------ data and configurations


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[pd.DataFrame]:
    d = tmp_path_factory.mktemp("demo")
    info = write_demo_data(d, customers=250, erp=False)
    out = []
    for name in ("sales_customers", "service_customers", "contracts"):
        path = Path(info["files"][name])
        raw = path.read_bytes()
        enc = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else ("utf-8" if _utf8(raw) else "gb18030")
        sep = ";" if raw[:400].count(b";") > raw[:400].count(b",") else ","
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc, sep=sep).astype(object)
        df = df.where(df != "", None)
        out.append(df)
    awkward = pd.DataFrame({"v": pd.Series(AWKWARD * 3, dtype=object)})
    out.append(awkward)
    for df in out:  # the columns *_column parameters point at: repeated, missing and odd values
        n = len(df)
        df["city"] = pd.Series(["上海", "北京", None, "深圳市", "Shanghai", "nowhere"] * (n // 6 + 1), dtype=object)[:n].values
        df["start"] = pd.Series(["2023-01-05", "2022-12-31", None, "bad"] * (n // 4 + 1), dtype=object)[:n].values
    return out


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _configs() -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []

    def add(name, params):
        if (name, params) not in seen:
            seen.append((name, params))

    for name, params in EXTRA_CONFIGS:
        add(name, params)
    for s in load_mappings(TEMPLATES / "mappings").steps:
        specs = list(s.step.fields.values()) + list(s.step.lookups.values()) + ([s.step.owner] if s.step.owner else [])
        for spec in specs:
            for t in spec.transforms:
                if t.kind != "frame":
                    add(t.name, dict(t.params))
    definition = load_definition(TEMPLATES / "definitions" / "customer.yml")
    for rules in definition.entities.values():
        for steps in rules.normalise.values():
            for step in steps:
                add(*split_step(step))
    assert {n for n, _ in seen} >= set(T.TRANSFORMS) - {"concat"}  # every series transform is covered
    return seen


def _params(name: str, params: dict) -> dict:
    # columns named by *_column parameters: the test frames' city and start columns
    p = dict(params)
    if "city_column" in p and p["city_column"]:
        p["city_column"] = "city"
    if "start_column" in p:
        p["start_column"] = "start"
    return p


def _assert_same_values(a: pd.Series, b: pd.Series, what: str) -> None:
    assert list(a.index) == list(b.index), what
    for i, (x, y) in enumerate(zip(a.array, b.array)):
        same = (x is None and y is None) or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                                             and math.isnan(y)) or (type(x) is type(y) and x == y)
        assert same, f"{what} row {i}: {x!r} != {y!r}"


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("name,params", _configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_distinct_equals_whole_column(frames, name, params):
    p = _params(name, params)
    for df in frames:
        cols = [c for c in df.columns if c not in ("city", "start")]
        for col, series in [(c, df[c]) for c in cols] + [(c + " as str", df[c].astype("str")) for c in cols[:6]]:
            if len(df) > 200:  # a shuffled, re-indexed slice: positions and labels must both survive
                series = series.sample(frac=1.0, random_state=3)
            frame = df.loc[series.index]
            assert encode(series) is not None  # the distinct path really runs
            new = T.apply_transform(name, series, p, frame=frame)
            old = T.apply_transform(name, series, p, frame=frame, distinct=False)
            what = f"{name} {params} on {col}"
            _assert_same_values(new.values, old.values, what)
            assert new.changed.tolist() == old.changed.tolist(), what
            assert new.failed.tolist() == old.failed.tolist(), what
            assert new.n_changed == int(_old_changed(series, old.values, old.failed).sum()), what


def test_vectorised_helpers_equal_the_per_cell_ones(frames):
    cols = [df[c] for df in frames for c in df.columns] + [df[c].astype("str") for df in frames for c in df.columns]
    cols += [pd.Series([1, 2.0, None, "x", " ", 3.5], dtype=object), pd.Series([1.0, np.nan, 2.5]),
             pd.Series([], dtype=object), pd.Series([None, None], dtype=object)]
    for s in cols:
        assert is_missing(s).tolist() == _old_is_missing(s).tolist()
        _assert_same_values(as_text(s), _old_as_text(s), "as_text")
        for other in (as_text(s), as_text(s).str.upper(), pd.Series(range(len(s)), index=s.index, dtype=object)):
            failed = pd.Series([i % 7 == 0 for i in range(len(s))], index=s.index)
            assert finish(s, other, failed).changed.tolist() == _old_changed(s, other, failed).tolist()


class _Raises:
    """A value whose comparison raises (``_equal`` calls it not the same)."""

    def __eq__(self, other):
        raise ValueError("no comparison")

    __hash__ = object.__hash__


def test_finish_changed_on_mixed_types_equals_per_cell():
    """``changed`` where the new values are not text: only equal values of one type are unchanged."""
    from decimal import Decimal

    odd = _Raises()
    original = pd.Series(["1", "1.5", None, "x", np.str_("y"), "y", 2, 2.0, Decimal("3"), odd, True, "", 7, None],
                         dtype=object)
    for new in ([1.0, 1.5, None, "x", "y", np.str_("y"), 2.0, 2.0, Decimal("3.0"), odd, 1, "", 7.0, "z"],
                [None, "1.5", 1.5, "x ", "y", "y", 2, 2, 3, 1, True, None, 7, None]):
        values = pd.Series(new, dtype=object)
        for failed in (pd.Series(False, index=original.index), pd.Series([i % 3 == 0 for i in range(14)])):
            assert finish(original, values, failed).changed.tolist() == \
                _old_changed(original, values, failed).tolist(), (new, failed.tolist())


def test_encode_keeps_missing_and_refuses_non_text():
    enc = encode(pd.Series(["a", None, "b", float("nan"), "a"], dtype=object))
    assert enc.series().tolist() == ["a", None, "b", None, "a"]
    assert enc.counts.tolist() == [2, 1, 2]
    assert encode(pd.Series([1, "a"], dtype=object)) is None
    assert encode(pd.Series([1.5, 2.5])) is None


def test_normalise_and_map_step_equal_the_whole_column_path(frames, monkeypatch):
    """The chains of validation and mapping (which keep columns encoded between steps) against the
    same chains run column by column."""
    from crmbridge.validation.normalise import normalise

    definition = load_definition(TEMPLATES / "definitions" / "customer.yml")
    rules = definition.entities["customers"]
    step = load_mappings(TEMPLATES / "mappings").by_name("Account")
    src = frames[0].copy()
    src.columns = [f"c{i}" for i in range(len(src.columns))]
    names = ["customer_no", "name", "credit_code", "phone", "email", "address", "city", "province", "postal_code",
             "country", "industry", "status", "sales_rep", "created_on", "annual_revenue"]
    src = src.iloc[:, : len(names)].set_axis(names, axis=1)
    src["_department"], src["_row_id"] = "sales", [f"s:{i}" for i in range(len(src))]
    src["_source_key"] = src["customer_no"]
    refs = engine_mod.OrgRefs(owners={"R001": "rep1@x"}, users={"rep1@x": "005A", "admin@sandbox.crmbridge": "005B"})

    src_arrow = src.astype("str")  # as extract's Parquet reads back: Arrow-backed text, NaN for missing
    new_norm = [normalise(df, rules, ["phone", "email"]) for df in (src, src_arrow)]
    new_map = engine_mod.map_step(step, src, refs=refs)
    monkeypatch.setattr(T, "apply_encoded", lambda *a, **k: None)
    monkeypatch.setattr(engine_mod, "apply_encoded", lambda *a, **k: None)
    old_norm = [normalise(df, rules, ["phone", "email"]) for df in (src, src_arrow)]
    old_map = engine_mod.map_step(step, src, refs=refs)

    for new, old in zip(new_norm, old_norm):
        assert new.fixed == old.fixed and new.failed == old.failed
        assert list(new.frame.columns) == list(old.frame.columns)
        for c in new.frame.columns:
            assert new.frame[c].dtype == old.frame[c].dtype, c  # numbers turned to text become pandas' str
            _assert_same_values(new.frame[c], old.frame[c], f"normalise {c}")
    assert new_map.stats == old_map.stats and new_map.reasons == old_map.reasons
    pd.testing.assert_frame_equal(new_map.records, old_map.records)
    pd.testing.assert_frame_equal(new_map.quarantine, old_map.quarantine)


@pytest.mark.parametrize("n", [0, 1, 7, 3000])
def test_join_groups_equals_pandas_agg(n):
    from crmbridge.mappings.merge import join_groups

    rng = np.random.default_rng(n)
    groups = pd.Series(rng.choice(["C1", "C2", None, "C3", "Ｃ4"], size=n), dtype=object)
    values = pd.Series(rng.choice(["sales", "finance", "service"], size=n), dtype=object)
    pd.testing.assert_series_equal(join_groups(values, groups, ";"), values.groupby(groups, sort=False).agg(";".join))
    pd.testing.assert_series_equal(join_groups(values, groups, "|", distinct=True),
                                   values.groupby(groups, sort=False).agg(lambda s: "|".join(dict.fromkeys(s))))


def test_strip_html_equals_the_per_value_function(frames):
    """strip_html trims the values without ``<`` or ``&`` in one pass: equal to the previous per-value
    function (tags removed, entities decoded, stripped, empty -> missing) on every value."""
    import html
    import re

    from crmbridge.mappings.transforms_base import map_unique

    tag = re.compile(r"<[^>]*>")
    odd = pd.Series(AWKWARD + ["<", "&", "a < b", "&lt;b&gt;", " <i></i> ", "x&y", "\u3000<b>中</b>\u3000", "<br>",
                               "&nbsp;", "&#32;", "a\x1c", "\x1c", 12.0, 7], dtype=object)
    cols = [df[c] for df in frames for c in df.columns] + [odd, odd.astype(str), odd.set_axis([0] * len(odd))]
    for s in cols:
        new = T.apply_transform("strip_html", s, {}, distinct=False)
        old = map_unique(s, lambda v: html.unescape(tag.sub("", v)).strip() or None)
        _assert_same_values(new.values, old.values, "strip_html")
        assert new.changed.tolist() == old.changed.tolist() and new.failed.tolist() == old.failed.tolist()


# the previous parse_number (every value through every rewriting step), kept as the reference
import re  # noqa: E402

from crmbridge.mappings.transforms_numbers import _CURRENCY, _UNITS  # noqa: E402


def _old_parse_number(series: pd.Series, *, decimal: str = ".", thousands: str = ",", cn_units: bool = False,
                 integer: bool = False, scale: int | None = None, percent: bool = False) -> Applied:
    """Amounts and counts to numbers (float, or int with ``integer: true``); unparseable values fail."""
    src = as_text(series)
    present = ~is_missing(src)
    t = src.str.normalize("NFKC").str.strip()
    t = t.str.replace(_CURRENCY, "", regex=True, flags=re.IGNORECASE)
    neg = t.str.match(r"^\s*\(.*\)\s*$").fillna(False).astype(bool)
    t = t.str.replace(r"^\s*\((.*)\)\s*$", r"\1", regex=True)
    mult = pd.Series(1.0, index=series.index)
    if cn_units:
        for unit, factor in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
            has = t.str.endswith(unit).fillna(False).astype(bool)
            mult = mult.where(~has, factor)
            t = t.where(~has, t.str.slice(0, -len(unit)))
    is_pct = t.str.endswith("%").fillna(False).astype(bool) if percent else pd.Series(False, index=series.index)
    if percent:
        t = t.str.rstrip("%")
    if thousands:
        # Thousands separators only between digit groups, so "1.5" is not mangled when thousands="."
        t = t.str.replace(rf"(?<=\d){re.escape(thousands)}(?=\d{{3}}(?!\d))", "", regex=True)
        if thousands == " ":
            t = t.str.replace(r"(?<=\d)[ \u00a0\u202f](?=\d)", "", regex=True)
    if decimal == ",":
        t = t.str.replace(",", ".", regex=False)
    t = t.str.strip().str.replace(r"^\+", "", regex=True)
    ok_shape = t.str.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?").fillna(False).astype(bool)
    num = pd.to_numeric(t.where(ok_shape), errors="coerce") * mult
    num = num.where(~neg, -num)
    num = num.where(~is_pct, num / 100)
    if scale is not None:
        num = num.round(scale)
    failed = present & num.isna()
    if integer:
        whole = num.notna() & (num == num.round(0))
        failed = failed | (present & num.notna() & ~whole)
        out = num.where(whole).astype("Int64").astype(object)
    else:
        out = num.astype(object)
    out = out.where(num.notna() & ~failed, None)
    return finish(series, out, failed)


NUMBERS = ["1234500", "12.5", "0", "007", "1.", ".5", "1.234", "1.234.567", "1,234", "1 234,50", "١٢٣", "１２３", "12%",
           "(1,234)", "12.5万", "3亿", "¥1,234,500.00", "RMB 1 234,50", "+5", "-7", "1e3", "1E-2", "1.5.", "", " ", "\u3000", None, float("nan"), "abc", "12 ", " 12", "1_000", "0x10",
           "12\n", "1.0", "2.50"]
HUGE = ["99999999999999999999", "12345678901234567890.5", "9" * 400]  # too big for Int64: not with integer


@pytest.mark.parametrize("params", [p for n, p in EXTRA_CONFIGS if n == "number"]
                         + [{"thousands": ".", "decimal": ","}, {"thousands": " ", "decimal": ","}, {"thousands": ""},
                            {"thousands": "'", "integer": True, "scale": 0}])
def test_number_equals_the_previous_whole_column_function(frames, params):
    cols = [df[c] for df in frames for c in df.columns if c in ("v", "annual_revenue", "amount", "credit_limit")]
    if not params.get("integer"):
        cols.append(pd.Series(NUMBERS + HUGE, dtype=object))
    cols += [pd.Series(NUMBERS * 3, dtype=object), pd.Series(NUMBERS, dtype=object).astype("str"),
             pd.Series(NUMBERS, dtype=object).set_axis([1] * len(NUMBERS)), pd.Series(["1", "2", "3"], dtype=object),
             pd.Series([12.0, 3, None, "4"], dtype=object)]
    for s in cols:
        new = T.apply_transform("number", s, params, distinct=False)
        old = _old_parse_number(s, **params)
        _assert_same_values(new.values, old.values, f"number {params}")
        assert new.changed.tolist() == old.changed.tolist() and new.failed.tolist() == old.failed.tolist()


def _amounts(n=5000, seed=23):
    """Amounts as exports write them, and near misses of the simple shapes (odd groups, signs, spaces,
    full-width and Arabic-Indic digits, CJK, emoji, line breaks)."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        digits = str(rnd.choice([0, 7, 12, 999, 1000, 12345, 1234567, 10 ** 12 + 3, rnd.randint(0, 10 ** 9)]))
        groups = f"{int(digits):,}" if rnd.random() < 0.6 else digits
        if rnd.random() < 0.1:
            groups = groups.replace(",", rnd.choice([".", " ", "'", ",,", ""]), 1)
        frac = rnd.choice(["", "", ".00", ".5", ".", ",50", ".123456"])
        sign = rnd.choice(["", "", "¥", "￥", "$", "€", "£", "RMB ", "rmb", "CNY", "元", "(", "-", "+", " ", "¥-"])
        value = sign + groups + frac
        value += rnd.choice(["", "", "", "万", "%", ")", " ", "\n", "元", "😀", "\u3000"])
        if rnd.random() < 0.05:
            value = value.translate(str.maketrans("0123456789", rnd.choice(["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩"])))
        out.append(value)
    return out + ["¥", "$,", ",123", "1,23", "1,2345", "12,345", "¥1,234,567.89", "$0.5", "€.5", "£1.", "¥¥1",
                  "1,000,00"]


@pytest.mark.parametrize("params", [{}, {"scale": 0}, {"integer": True}, {"cn_units": True, "percent": True},
                                    {"decimal": ",", "thousands": "."}, {"thousands": ""}, {"thousands": " "}])
def test_number_simple_shapes_equal_the_previous_function_on_generated_amounts(params):
    s = pd.Series(_amounts() + [None, "", " "], dtype=object)
    new = T.apply_transform("number", s, params, distinct=False)
    old = _old_parse_number(s, **params)
    _assert_same_values(new.values, old.values, f"number {params}")
    assert new.changed.tolist() == old.changed.tolist() and new.failed.tolist() == old.failed.tolist()
    assert (~new.failed & s.notna()).sum() > 1500 and new.failed.sum() > 300  # both outcomes occur


def _old_parse_dates(series, formats, excel_serial, min_year, max_year):
    """The previous ``transforms_dates._parse`` (rows looked up in a dict of the parsed distinct values), the
    reference for the codes it now spreads the results back with."""
    from crmbridge.mappings.transforms_dates import _EXCEL_EPOCH, _SERIAL, _prepass

    src = as_text(series)
    present = ~is_missing(src)
    uniq = pd.Series(pd.unique(src[present]), dtype=object)
    prepped = uniq.map(_prepass)
    parsed = pd.Series(pd.NaT, index=uniq.index, dtype="datetime64[us]")
    for fmt in formats:
        todo = parsed.isna()
        if not todo.any():
            break
        parsed.loc[todo] = pd.to_datetime(prepped[todo], format=fmt, errors="coerce").astype("datetime64[us]")
    if excel_serial:
        todo = parsed.isna() & prepped.str.match(_SERIAL)
        if todo.any():
            days = pd.to_numeric(prepped[todo], errors="coerce")
            parsed.loc[todo] = (pd.Timestamp(_EXCEL_EPOCH) + pd.to_timedelta(days, unit="D")).astype("datetime64[us]")
    years = parsed.dt.year
    parsed = parsed.where((years >= min_year) & (years <= max_year))
    lookup = dict(zip(uniq.array, parsed.array))
    full = src.where(present).map(lambda v: lookup.get(v, pd.NaT) if v is not None else pd.NaT)
    return pd.to_datetime(full), present


def _date_texts(n=3000, seed=29):
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        y, m, d = rnd.randint(1850, 2150), rnd.randint(0, 13), rnd.randint(0, 32)
        out.append(rnd.choice([f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{y}年{m}月{d}日", f"{y}年{m}月{d}号",
                               str(rnd.randint(1000, 99999)), f"{y}{m:02d}{d:02d}", "二〇二三年一月五日", "bad", "",
                               " ", "\u3000", f"２０２３-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}", "😀",
                               f"{y}-{m}-{d} 12:30:00"]))
    return out


@pytest.mark.parametrize("excel", [True, False])
def test_dates_spread_by_codes_equal_the_previous_lookup(excel):
    from crmbridge.mappings.transforms_dates import _parse

    formats = ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y%m%d", "%Y-%m-%d %H:%M:%S"]
    texts = _date_texts()
    cases = [pd.Series(texts + [None, float("nan")], dtype=object, name="created_on"),
             pd.Series(texts, dtype=object).astype("str").set_axis([i // 3 for i in range(len(texts))]),
             pd.Series([None, "", "bad"], dtype=object), pd.Series([], dtype=object), pd.Series(["2023-01-05"] * 4)]
    for s in cases:
        got, present = _parse(s, formats, excel, 1900, 2100)
        want, want_present = _old_parse_dates(s, formats, excel, 1900, 2100)
        assert got.dtype == want.dtype and got.name == want.name and got.index.equals(want.index)
        assert got.isna().tolist() == want.isna().tolist() and (got[got.notna()] == want[want.notna()]).all()
        assert present.tolist() == want_present.tolist()
    assert _parse(cases[0], formats, excel, 1900, 2100)[0].notna().sum() > 800  # dates really parsed
