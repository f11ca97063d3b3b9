"""Arrow twins of mapped text columns (``mappings/twins.py``): a twin holds the column's values row for
row, and the records table built with twins is ``pa.Table.from_pandas`` of the records (schema, pandas
metadata, values); the records file is byte for byte the one written without twins. On every text
chain the engine runs (unchanged rows, distinct values, failures blanked, kept or quarantined) over
CJK, full-width, emoji, trailing NULs, blanks, None/NaN/NA, and numpy text (never twinned)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmbridge.mappings.engine import _chain, _Reasons
from crmbridge.mappings.output import RecordsWriter
from crmbridge.mappings.twins import twin_rows, twin_table
from tests.mappings.test_unchanged_rows import TEXT_CHAINS, _column, _phones, _spec, _texts

CHAINS = [*TEXT_CHAINS, ["strip_html", {"trim": {"collapse": True}}],
          [{"value_map": {"map": {"C": "Ｃ", "x": None}, "on_missing": "keep"}}],
          [{"value_map": {"map": {"a": "b"}, "on_missing": "error"}}]]
TRICKY = ["trailing\x00\x00", "ｆｕｌｌ　ｗｉｄｔｈ", "名字 🙂", "", " ", None, "12345678901234567890", "a\u0301"]


def _series(n: int, seed: int, dtype: str, repeated: bool) -> pd.Series:
    values = _texts(n, seed)
    if repeated:  # few distinct values: the chain runs on them (distinct.Encoded)
        values = [values[i % 40] for i in range(n)]
    values[::13] = [TRICKY[i % len(TRICKY)] for i in range(len(values[::13]))]
    return _column(values, dtype)


def _twin(spec, series: pd.Series):
    frame = pd.DataFrame({"v": series, "city": ["上海", None, "北京"] * (len(series) // 3) + ["成都"] * (len(series) % 3)},
                         index=series.index)
    twins: dict = {}
    values = _chain("F", spec, series, frame, _Reasons(frame.index), {}, twins)
    return values, twins.get("F")


def _assert_twin(values: pd.Series, twin):
    assert len(twin) == len(values) and twin.type == pa.string()
    assert twin.to_pylist() == [v for v in values.tolist()]
    assert all(type(v) is str or v is None for v in values.tolist())


@pytest.mark.parametrize("dtype", ["str", "object"])
@pytest.mark.parametrize("repeated", [False, True])
@pytest.mark.parametrize("chain", range(len(CHAINS)))
def test_text_chain_twins_hold_the_values(chain, repeated, dtype):
    series = _series(3000, chain, dtype, repeated)
    series.index = pd.RangeIndex(3000) * 2 + 7
    values, twin = _twin(_spec(CHAINS[chain]), series)
    if twin is not None:
        _assert_twin(values, twin)
    elif dtype == "str":
        assert CHAINS[chain][0] == "strip_html" and not repeated  # mostly distinct, no unchanged-rows path


@pytest.mark.parametrize("dtype", ["str", "object"])
@pytest.mark.parametrize("on_failure", ["quarantine", "blank", "keep"])
def test_phone_twins_hold_the_values(on_failure, dtype):
    series = _column(_phones(4000, 5), dtype)
    values, twin = _twin(_spec([{"phone": {"region": "CN", "city_column": "city"}}], on_failure), series)
    if dtype == "str":
        assert twin is not None
    if twin is not None:
        _assert_twin(values, twin)


def test_numpy_text_is_not_twinned():
    series = pd.Series([np.str_("上海"), np.str_("北京")] * 50, dtype=object)
    _, twin = _twin(_spec([{"value_map": {"map": {"x": "y"}, "on_missing": "keep"}}]), series)
    assert twin is None


def _records(n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    text = [TRICKY[i % len(TRICKY)] if i % 5 == 0 else f"客户{rng.integers(1e9)}" for i in range(n)]
    df = pd.DataFrame({
        "Name": pd.Series(text, dtype=object),
        "Empty": pd.Series([None] * n, dtype=object),
        "Num": pd.Series([1.5 if i % 2 else None for i in range(n)], dtype=object),
        "City": pd.Series([["上海", "北京", None][i % 3] for i in range(n)], dtype=object),
        "_row_id": pd.Series([f"c:{i}" for i in range(n)], dtype="str"),
        "Mixed": pd.Series([i if i % 2 else "x" for i in range(n)], dtype=object),
    })
    twins = {c: pa.array(df[c].to_numpy(dtype=object), type=pa.string()) for c in ("Name", "Empty", "City")}
    twins["Num"] = pa.array(df["Num"].to_numpy(dtype=object), type=pa.float64(), from_pandas=True)  # plainnumbers'
    return df, twins


@pytest.mark.parametrize("n", [0, 1, 9, 500])
def test_twin_table_equals_from_pandas(n):
    df, twins = _records(n, n)
    df = df.drop(columns="Mixed")
    twins = {c: a for c, a in twins.items() if a.null_count < len(a)}
    got = twin_table(df, twins)
    want = pa.Table.from_pandas(df, preserve_index=False)
    assert got.schema.equals(want.schema, check_metadata=True)
    assert got.schema.metadata == want.schema.metadata
    assert got.equals(want)


def test_twin_rows_take_the_records_rows():
    twins = {"A": pa.array(["a", None, "c", "d"])}
    index = pd.Index([3, 5, 8, 9])
    assert twin_rows(twins, index, pd.Index([3, 5, 8, 9])) is twins
    assert twin_rows(twins, index, pd.Index([5, 9]))["A"].to_pylist() == [None, "d"]


@pytest.mark.parametrize("num_text", [False, True])
@pytest.mark.parametrize("in_memory", [False, True])
def test_records_file_with_twins_is_the_same_file(tmp_path, in_memory, num_text):
    """Batches with twins (an all-missing one left to from_pandas), an empty batch, a column another batch
    makes text (a text twin's, and with ``num_text`` a float twin's), against the writer given no twins."""
    batches = [_records(300, 1), _records(0, 2), _records(50, 3)]
    batches[2][0]["Name"] = pd.Series([7] * 50, dtype=object)  # ints: Name is text in every batch
    batches[2][1].pop("Name")
    if num_text:  # floats and text: Num is text in every batch, the twinned batches' floats made text too
        batches[2][0]["Num"] = pd.Series(["y" if i % 3 else 2.25 for i in range(50)], dtype=object)
        batches[2][1].pop("Num")
    if in_memory:
        df = pd.concat([b for b, _ in batches], ignore_index=True).drop(columns="Mixed")
        batches = [(df, {c: pa.array(df[c].to_numpy(dtype=object), type=pa.string()) for c in ("City", "Empty")})]
        if not num_text:
            batches[0][1]["Num"] = pa.array(df["Num"].to_numpy(dtype=object), type=pa.float64(), from_pandas=True)
    files = []
    for use in (False, True):
        spill = tmp_path / f"spill{use}"
        spill.mkdir()
        w = RecordsWriter(tmp_path / f"r{use}.parquet", spill)
        for i, (df, twins) in enumerate(batches):
            w.add(i, df, in_memory=in_memory, twins=twins if use else None)
        w.write(len(batches))
        files.append((tmp_path / f"r{use}.parquet").read_bytes())
    assert files[0] == files[1]
    assert pq.read_schema(tmp_path / "rTrue.parquet").field("Num").type == (pa.large_string() if num_text else pa.float64())


KEYS = ["C1", " C1", "C1 ", "\u3000C2\u3000", "\x1cC3\x1f", "C4\x00", "trailing\x00\x00", "ｆｕｌｌ", "客户 🙂", "",
        "  ", None, "C1", "\u2028C5\u2029", "\x85C6\xa0", "C7\u200b", "x" * 70]


@pytest.mark.parametrize("clean", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_keys_from_the_twin_equal_the_stripped_keys(seed, clean):
    """``Partial.candidate_keys`` and ``key_strings`` from the external ID's twin == ``strip_text`` and
    ``_strings`` of the column, with reasons holding some rows back; ``clean``: keys with nothing to strip
    (the column's own strings are taken)."""
    from crmbridge.mappings.engine import Partial
    from crmbridge.mappings.keyindex import _strings, arrow_keys
    from crmbridge.mappings.textops import strip_text

    rng = np.random.default_rng(seed)
    n = 200
    index = pd.Index(np.sort(rng.choice(1000, n, replace=False)))
    ext = pd.Series([KEYS[i] for i in rng.integers(len(KEYS), size=n)], index=index, dtype=object)
    if clean:
        ext = pd.Series([v.strip() if isinstance(v, str) else v for v in ext], index=index, dtype=object)
    out = pd.DataFrame({"K": ext})
    df = pd.DataFrame(index=pd.RangeIndex(1000))
    held = rng.choice(1000, 300 * (seed % 2), replace=False)  # no row, or some of ``out``
    got, want = [], []
    for twin in (pa.array(ext.to_numpy(dtype=object), type=pa.string()), None):
        reasons = _Reasons(df.index)
        reasons.text.iloc[held] = "r"
        part = Partial(df, out, reasons, {}, {}, "K", key_twin=twin)
        (got if twin is not None else want).append((part.candidate_keys(), part.key_strings()))
    (keys, strings), (ref_keys, ref_strings) = got[0], want[0]
    pd.testing.assert_series_equal(keys, ref_keys, check_exact=True)
    assert [type(v) for v in keys] == [type(v) for v in ref_keys]
    assert strings.dtype == ref_strings.dtype and (strings == ref_strings).all()
    assert (arrow_keys(pa.array(ext.tolist())) == _strings(ext)).all()
    assert keys.tolist() == strip_text(ext.loc[keys.index]).tolist()


def test_missing_external_ids_from_the_twin():
    from crmbridge.mappings.transforms import as_text, is_missing
    from crmbridge.mappings.twins import missing_twin

    for values in (KEYS, [], [None], ["\u3000"], ["x"]):
        s = pd.Series(values * 3, dtype=object)
        assert missing_twin(pa.array(values * 3, type=pa.string())).tolist() == is_missing(as_text(s)).tolist()


def test_bad_rows_are_the_ones_with_a_reason():
    reasons = _Reasons(pd.Index([4, 2, 9, 7]))
    reasons.add(pd.Series([True, False, False, True], index=reasons.text.index), "r1")
    reasons.add(pd.Series([True, False, True, False], index=reasons.text.index), "r2")
    bad = reasons.bad
    assert bad.index.equals(reasons.text.index) and bad.dtype == bool
    assert bad.tolist() == (reasons.text != "").tolist() == [True, False, True, True]
