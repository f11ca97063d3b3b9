"""Validate's pass 1 fast paths give exactly what the previous code gave, on tricky generated data:
missing values of every kind, empty strings, full-width digits, CJK, mixed types in object columns,
NUL characters, all-missing batches and single rows.

The references below are the previous code's formulas, written out: keys as pandas' ``astype(str)``
texts (a one-column key went through numpy's, which drops trailing NULs, until that was fixed), uniqueness as the texts counted over the whole frame, pandas' siphash
with ``categorize=True``."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation import checks

ODD = [None, np.nan, pd.NA, "", " ", "C001", "C001", "Ｃ００１", "c001", "客户", "客户 ", "C001\x00", "C001\x00\x00",
       "\x00", "a\x00b", 1, 1.0, True, 2.5, "1", "1.0", "x:1", "1:x", "😀", "\u3000", "C002", "C002"]


def tricky_frame(seed: int, n: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    pool = ODD + [f"K{rnd.randint(0, n // 3 + 1)}" for _ in range(40)]
    cols = {c: [rnd.choice(pool) for _ in range(n)] for c in ("a", "b")}
    cols["t"] = [rnd.choice(["Ｃ001", "C001", "客户", "", None, f"T{rnd.randint(0, 5)}"]) for _ in range(n)]
    cols["z"] = [rnd.choice([v for v in pool if isinstance(v, str)] + [None]) for _ in range(n)]  # text only
    cols["_department"] = [rnd.choice(["sales", "finance", None]) for _ in range(n)]
    df = pd.DataFrame(cols, dtype=object)
    df["s"] = pd.array([rnd.choice(["x", "y", None, "客户"]) for _ in range(n)], dtype="str")  # Arrow-backed text
    df["none"] = pd.Series(None, index=df.index, dtype=object)
    return df


def reference_key_text(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The previous ``key_text``: every column through ``astype(str)``."""
    cols = [df[c] if c in df.columns else pd.Series(None, index=df.index, dtype=object) for c in columns]
    present = np.logical_and.reduce([c.notna().to_numpy() for c in cols])
    if len(cols) == 1:
        return present, cols[0][present].astype(str).to_numpy(dtype=object)
    texts = [c[present].astype(str) for c in cols]
    joined = texts[0].str.len().astype(str) + ":" + texts[0]
    for t in texts[1:]:
        joined = joined + (t.str.len().astype(str) + ":" + t)
    return present, joined.to_numpy(dtype=object)


KEYS = [["a"], ["b"], ["t"], ["z"], ["z", "t"], ["s"], ["none"], ["missing"], ["_department", "a"], ["a", "b"], ["s", "t"],
        ["_department", "none"], ["a", "b", "t"]]


@pytest.mark.parametrize("seed,n", [(1, 1), (2, 7), (3, 400), (4, 3000)])
@pytest.mark.parametrize("columns", KEYS)
def test_key_text_equals_the_astype_str_texts(seed, n, columns):
    df = tricky_frame(seed, n)
    present, text = checks.key_text(df, columns)
    want_present, want = reference_key_text(df, columns)
    assert present.tolist() == want_present.tolist()
    assert text.dtype == want.dtype == object
    assert [type(v) for v in text] == [type(v) for v in want] and text.tolist() == want.tolist()


def test_hash_is_the_categorized_siphash():
    df = tricky_frame(5, 2000)
    for columns in KEYS:
        text = checks.key_text(df, columns)[1]
        assert checks._hash(text).tolist() == pd.util.hash_array(text, categorize=True).tolist()


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("seed,n,batch", [(6, 1, 1), (7, 50, 7), (8, 3000, 1000), (9, 3000, 3000)])
def test_duplicate_finder_over_batches_equals_counting_the_whole_frame(bits, seed, n, batch):
    df = tricky_frame(seed, n)
    parts = [df.iloc[i:i + batch] for i in range(0, n, batch)] + [df.iloc[:0]]  # an empty batch too
    parts.insert(1, pd.DataFrame({c: pd.Series([None] * 3, dtype=object) for c in df.columns}))  # all missing
    for columns in KEYS:
        f = checks.DuplicateFinder(columns, hash_bits=bits)
        for p in parts:
            f.add(p)
        if f.needs_confirm:
            for p in parts:
                f.confirm(p)
        got = f.index().values
        counts = pd.Series(np.concatenate([reference_key_text(p, columns)[1] for p in parts]), dtype=object).value_counts()
        want = set(counts.index[counts.to_numpy() > 1])
        assert sorted(got) == sorted(want) and got.dtype == object, columns
        assert checks.unique_check(df, columns, f.index()).tolist() == checks.unique_check(df, columns).tolist()


def test_compound_keys_collide_only_through_the_values(monkeypatch):
    """Forced equal hashes: a compound key is still settled on its exact text."""
    monkeypatch.setattr(checks, "_hash", lambda values: np.zeros(len(values), dtype=np.uint64))
    df = pd.DataFrame({"a": ["x1:", "x", "x1:", "y"], "b": ["y", "1:y", "y", None]}, dtype=object)
    f = checks.DuplicateFinder(["a", "b"], hash_bits=32)
    f.add(df)
    assert f.needs_confirm
    f.confirm(df)
    assert f.index().values.tolist() == ["3:x1:1:y"]


def test_spill_bytes_equal_pyarrows_default_conversion(tmp_path):
    """The sink converts on one thread: the file is byte for byte the one the threaded conversion wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crmbridge.validation.parquetsink import ParquetSink

    def text(df):  # a spill holds text, missing values and the integer _line
        out = df.drop(columns=["a", "b"]).assign(_line=np.arange(len(df), dtype=np.int64))
        return out.assign(a=pd.Series([None if pd.isna(v) else str(v) for v in df["a"]], index=df.index, dtype=object))

    frames = [text(tricky_frame(10, 5000)), text(tricky_frame(11, 1)), text(tricky_frame(12, 0)), text(tricky_frame(13, 300))]
    sink = ParquetSink(tmp_path / "new.parquet", dictionary=False)
    for f in frames:
        sink.write(f)
    sink.close()
    first = pa.Table.from_pandas(frames[0], preserve_index=False)
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in first.schema])
    # the sink's writer options (statistics for _line only): only the conversion is compared
    with pq.ParquetWriter(tmp_path / "old.parquet", schema, use_dictionary=False, write_statistics=["_line"]) as w:
        for f in frames:
            if len(f):
                t = pa.Table.from_pandas(f, schema=schema, preserve_index=False)
                w.write_table(t.replace_schema_metadata(None), row_group_size=len(f))
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()
    back = pd.concat(list(sink.batches()), ignore_index=True)
    assert back.dtypes.to_dict() == pd.concat(frames, ignore_index=True).dtypes.to_dict()


FIELD_VALUES = {
    "customer_no": ["C0001", "Ｃ０００１", "c0001 ", "客户1", "C-1", 1, 1.0],
    "credit_code": ["9131 0000-0000 0000 1Y", "9131\x1c0000\u20280001Y", "91310000000000001Y", "９１３１００００００００００００１Ｙ", "\u3000 - ", "a-b\u2003c", 5],
    "phone": ["021-6234 5678", "（010）26753883", "13800138000", "+86 21 6234 5678", "6234 5678", "转 123", 13800138000],
    "email": ["INFO@EXAMPLE.CN ", "a@b", "用户@例子.中国", "ａ@example.cn", 3.5],
    "country": ["中国", "CN", "cn", "China", "Ｃｈｉｎａ", "XX", "美国 "],
    "status": ["潜在", "Active", "active", "黑名单", "x", 0],
    "created_on": ["2023年4月17日", "2023/4/17", "20230417", "2023.04.17", "45000", "2023-02-30", 45000.0],
    "annual_revenue": ["¥445,200.00", "€1,234.00", "£12", "１２３４", "$1,234", "(1,234)", "12.5万", "1e3", "--", 1234.5, 7],
    "service_contracts": ["0", "3", "１", "2.5", "-1", "x", 4],
    "city": ["上海", "北京", "成都", "", None],
    "name": ["成都华信贸易有限公司", "<b>x</b>", "N/A", "暂无", "  "],
}


def customers_frame(seed: int, n: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    missing = [None, np.nan, pd.NA, "", " ", "\u3000", "NULL", "-"]
    cols = {f: pd.Series([rnd.choice(pool + missing) for _ in range(n)], dtype=object) for f, pool in FIELD_VALUES.items()}
    df = pd.DataFrame(cols)
    for c in ("_row_id", "_source", "_department", "_source_key"):
        df[c] = pd.array([f"{c}{i}" if c == "_row_id" else rnd.choice(["sales", "finance"]) for i in range(n)], dtype="str")
    df["_line"] = np.arange(n, dtype=np.int64)
    return df


def assert_same_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same columns, dtypes and values with their types (NaN equal to NaN)."""
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    for c in a.columns:
        x, y = a[c].to_numpy(dtype=object), b[c].to_numpy(dtype=object)
        assert [type(v) for v in x] == [type(v) for v in y], c
        assert [v if v == v else "nan" for v in x] == [v if v == v else "nan" for v in y], c


@pytest.mark.parametrize("seed,n", [(20, 1), (21, 40), (22, 3000)])
def test_normalise_equals_the_previous_transforms(monkeypatch, tmp_path, seed, n):
    """normalise() with the fast paths against the same with the previous ``replace``, number text,
    computed character classes, text of the distinct values, trim's stripping in Python and no Arrow
    form kept between steps: values, types, dtypes, fixed and failed counts; then the spill's bytes."""
    import pyarrow.compute as pc

    import dataclasses

    from crmbridge.mappings import textfast, transforms, transforms_numbers, transforms_text
    from crmbridge.validation.definition import load_definition
    from crmbridge.mappings.transforms_base import as_text
    from crmbridge.validation import normalise as N
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.rules import compile_rules, referenced_columns
    from tests.validation.conftest import TEMPLATE_DEFINITION

    rules = load_definition(TEMPLATE_DEFINITION).entities["customers"]
    extra = referenced_columns(compile_rules("customers", rules))
    frames = [customers_frame(seed, n), customers_frame(seed + 100, n).iloc[:0],
              pd.DataFrame({c: pd.Series([None] * 3, dtype=object) for c in customers_frame(0, 1).columns})]

    def run():
        return [normalise(f.copy(), rules, extra, prune=False) for f in frames]

    new = run()
    with monkeypatch.context() as m:
        m.setattr(transforms_text, "replace", lambda series, *, pattern, replacement="": transforms_text._replace_python(
            series, transforms_text.as_text(series), pattern, replacement))
        m.setattr(transforms_text, "_match_chars", lambda pattern: None)
        m.setattr(transforms_numbers, "_simple_text", lambda arr: pc.replace_substring_regex(
            arr, "[¥$€£,]", "").to_numpy(zero_copy_only=False))
        m.setattr(textfast, "_stored", lambda name: None)
        for name, spec in transforms.TRANSFORMS.items():  # every step converts its column itself
            m.setitem(transforms.TRANSFORMS, name, dataclasses.replace(spec, arrow=False))
        m.setattr(textfast, "trimmed", lambda series, values, arr: textfast.patched(
            series, values, arr, textfast.flags(textfast.trim_pick(arr)), lambda v: v.strip() or None))
        m.setattr(N, "_as_text_rows", lambda column: (lambda text: (pd.Series(
            text.array.take(column.codes), index=column.index, dtype=text.dtype), None))(as_text(column.uniques)))
        textfast.nfkc_class.cache_clear()
        textfast.case_class.cache_clear()
        old = run()
    textfast.nfkc_class.cache_clear()
    textfast.case_class.cache_clear()
    for a, b in zip(new, old):
        assert a.fixed == b.fixed and a.failed == b.failed
        assert_same_frames(a.frame, b.frame)
    from crmbridge.validation.parquetsink import ParquetSink

    for name, res in (("new", new), ("old", old)):
        sink = ParquetSink(tmp_path / f"{name}.parquet", dictionary=False)
        for r in res:
            sink.write(r.frame)
        sink.close()
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()
    if n > 1:
        assert new[0].fixed["credit_code:replace"] and new[0].fixed["annual_revenue:number"]  # the paths ran


@pytest.mark.parametrize("bits", [32, 64])
def test_trailing_nul_is_part_of_a_one_column_key(bits):
    """``C001\\0`` and ``C001`` are different loaded values: neither is the other's duplicate (numpy's
    ``astype(str)`` used to drop the NUL and judge both rows duplicates); two ``C001\\0`` still are."""
    df = pd.DataFrame({"k": ["C001", "C001\x00", "C002\x00", "C002\x00", "\x00", "", "C003\x00\x00", "C003\x00"]},
                      dtype=object)
    f = checks.DuplicateFinder(["k"], hash_bits=bits)
    for part in (df.iloc[:3], df.iloc[3:]):
        f.add(part)
    if f.needs_confirm:
        for part in (df.iloc[:3], df.iloc[3:]):
            f.confirm(part)
    assert f.index().values.tolist() == ["C002\x00"]
    assert checks.unique_check(df, ["k"], f.index()).tolist() == [True, True, False, False, True, True, True, True]
    assert checks.unique_check(df, ["k"]).tolist() == [True, True, False, False, True, True, True, True]


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("seed,n,batch,again", [(10, 1, 1, 1), (11, 50, 7, 5), (12, 3000, 1000, 700), (13, 3000, 3000, 997)])
def test_same_rows_finder_equals_hashing_again(bits, seed, n, batch, again):
    """``same_rows=True`` (confirm reuses add's hashes; the spill's batches may be cut elsewhere) gives the
    index the finder that hashes every confirmed batch again gives, key by key."""
    df = tricky_frame(seed, n)
    for columns in KEYS:
        got, want = (checks.DuplicateFinder(columns, hash_bits=bits, same_rows=s) for s in (True, False))
        for f in (got, want):
            for i in range(0, n, batch):
                f.add(df.iloc[i:i + batch])
        assert got.needs_confirm == want.needs_confirm
        for f in (got, want):
            if f.needs_confirm:
                for i in range(0, n, again):
                    f.confirm(df.iloc[i:i + again])
        assert got.index().values.tolist() == want.index().values.tolist(), columns


def test_same_rows_finder_refuses_other_rows():
    df = pd.DataFrame({"k": ["a", "b", "a", None]}, dtype=object)
    f = checks.DuplicateFinder(["k"], same_rows=True)
    f.add(df)
    assert f.needs_confirm
    f.confirm(df.iloc[:2])  # the last rows never confirmed
    with pytest.raises(RuntimeError, match="confirm saw 2 keys, add 3"):
        f.index()


FLOATS = [0.0, -0.0, 1.0, -7.0, 445200.0, 1e15, 1e16, 2.0 ** 53 + 2, 2.0 ** 63, -(2.0 ** 63), 2.0 ** 63 - 1024, 1e300,
          float("nan"), float("inf"), float("-inf"), 1.5, 0.1, -2.25, 5e-324, 123456789.125, 1e-7]
TEXTS = [None, "", "C001", "C001\x00", "\x00", "客户", "Ｃ００１", "😀", "1.0", " "]


@pytest.mark.parametrize("seed,n", [(30, 1), (31, 9), (32, 500), (33, 4000)])
@pytest.mark.parametrize("extra", [[], [np.float64(2.0)], [3], [pd.NA], [True]])
def test_number_text_of_distinct_values_equals_as_text(seed, n, extra):
    """``_as_text_rows`` (whole floats through Arrow's int64-to-text cast) gives what ``as_text`` of the
    rows gives: values, their types and the dtype, for floats among text, NUL, CJK, emoji and None (and
    the other values that take as_text's own path)."""
    from crmbridge.mappings.distinct import Encoded
    from crmbridge.mappings.transforms_base import as_text
    from crmbridge.validation.normalise import _as_text_rows

    rnd = random.Random(seed)
    pool = [*FLOATS, *TEXTS, *(float(rnd.randint(-10 ** 9, 10 ** 9)) for _ in range(50)),
            *(rnd.uniform(-1e6, 1e6) for _ in range(20))]
    for floats_only in (False, True):
        uniq = [rnd.choice(FLOATS if floats_only else pool) for _ in range(max(1, n // 3))] + extra
        codes = [*range(len(uniq)), *(rnd.randrange(len(uniq)) for _ in range(n))]  # every distinct value used
        rnd.shuffle(codes)
        column = Encoded(np.array(codes, dtype=np.intp), pd.Series(uniq, dtype=object), pd.RangeIndex(len(codes)))
        (got, arrow), want = _as_text_rows(column), as_text(column.series())
        assert arrow is None  # the column has no values in Arrow
        assert got.dtype == want.dtype
        x, y = got.to_numpy(dtype=object), want.to_numpy(dtype=object)
        assert [type(v) for v in x] == [type(v) for v in y]
        assert [v if v == v else "nan" for v in x] == [v if v == v else "nan" for v in y]
