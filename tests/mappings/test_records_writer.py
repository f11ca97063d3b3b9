"""The map stage's records writer converts each batch to Arrow as it comes (no pickle of the records in
between): its Parquet file must be the one the previous writer gave, which held every batch as pandas
until all their value types were known, then converted them. Compared by content (rows, types, row groups,
schema and key-value metadata: ``assert_same_content``; the bytes differ since the writer keeps dictionary
pages and statistics only where ``parquetopts.writer_options`` puts them) on batches whose object columns mix text, ints, floats (NaN, numpy floats), decimals, dates, booleans, values Arrow
cannot take, all-missing columns, pandas text columns and empty batches, across and within batches."""

from __future__ import annotations

import datetime as dt
import decimal
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmbridge.mappings.output import RecordsWriter, _mixed, _value_types, write_records
from tests.validation.test_parquetsink import assert_same_content


class _PreviousWriter:
    """The previous code: ``note`` every batch, then ``stage`` each (text where any batch mixes types)."""

    def __init__(self):
        self.types: dict[str, set] = {}
        self.tables: list = []

    def note(self, df):
        for c in df.columns:
            s = df[c]
            seen = self.types.setdefault(c, set())
            if s.dtype == object:
                seen.update({type(v) for v in s.to_numpy(dtype=object)
                             if v is not None and not (isinstance(v, float) and v != v)})
            elif pd.api.types.is_string_dtype(s.dtype) and s.notna().any():
                seen.add(str)

    def stage(self, df):
        out = df
        text = [c for c in df.columns if df[c].dtype == object and _mixed(self.types.get(c, set()))]
        if text:
            out = df.copy()
            for c in text:
                out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        self.tables.append(pa.Table.from_pandas(out, preserve_index=False))

    def write(self, path):
        from crmbridge.mappings.output import _pandas_metadata

        schemas = [t.schema for t in self.tables]
        unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
        meta = _pandas_metadata(schemas, unified)
        schema = unified.with_metadata(meta) if meta else unified
        with pq.ParquetWriter(path, schema) as w:
            for t in self.tables:
                if len(t) or len(self.tables) == 1:
                    w.write_table(t.select(schema.names).cast(schema))


class Odd:
    """A value Arrow cannot convert; its text is stable."""

    def __repr__(self):
        return "Odd()"


KINDS = {
    "text": lambda r: r.choice(["C1", "上海", "", " x ", "😀"]),
    "int": lambda r: r.randint(-5, 10**12),
    "float": lambda r: r.choice([1.5, -0.0, 1e20, float("nan")]),
    "npfloat": lambda r: np.float64(r.choice([2.25, float("nan")])),
    "decimal": lambda r: decimal.Decimal(r.choice(["1.10", "3"])),
    "date": lambda r: dt.date(2023, r.randint(1, 12), 1),
    "bool": lambda r: r.random() < 0.5,
    "none": lambda r: None,
    "na": lambda r: pd.NA,
    "odd": lambda r: Odd(),
}


def _column(rng, n):
    kinds = rng.sample(sorted(KINDS), rng.choice([1, 1, 1, 2]))
    return pd.Series([KINDS[rng.choice(kinds)](rng) if rng.random() > 0.2 else None for _ in range(n)], dtype=object)


def _batches(seed):
    rng = random.Random(seed)
    cols = [f"F{j}" for j in range(8)]
    out = []
    for _ in range(rng.randint(1, 5)):
        n = rng.choice([0, 1, 7, 30])
        df = pd.DataFrame({c: _column(rng, n) for c in cols})
        df["Text"] = pd.Series([rng.choice(["a", "b", None]) for _ in range(n)], dtype="str")
        df["Num"] = pd.Series([float(i) for i in range(n)], dtype="float64")
        out.append(df)
    return out


def _write_both(batches, tmp_path, in_memory):
    ref = _PreviousWriter()
    for b in batches:
        ref.note(b)
    try:
        for b in batches:
            ref.stage(b)
        ref.write(tmp_path / "old.parquet")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        ref = exc
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    new = RecordsWriter(tmp_path / "new.parquet", spill)
    try:
        for i, b in enumerate(batches):
            new.add(i, b, in_memory=in_memory)
        new.write(len(batches))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        new = exc
    return ref, new


@pytest.mark.parametrize("seed", range(60))
def test_records_file_equals_the_previous_writer(seed, tmp_path):
    batches = _batches(seed)
    ref, new = _write_both(batches, tmp_path, in_memory=len(batches) == 1)
    if isinstance(ref, Exception):  # the same batches refused the same way
        assert type(new) is type(ref)
        return
    assert not isinstance(new, Exception), new
    assert_same_content(tmp_path / "new.parquet", tmp_path / "old.parquet")
    assert not list((tmp_path / "spill").iterdir())  # nothing left behind


def test_a_column_made_text_by_a_later_batch(tmp_path):
    """Floats (and an unconvertible value) in the first batch, text in the second: text in both."""
    first = pd.DataFrame({"A": pd.Series([1.5, None, float("nan")], dtype=object),
                          "B": pd.Series([Odd(), None, 2], dtype=object),
                          "C": pd.Series(["x", None, "y"], dtype=object)})
    second = pd.DataFrame({"A": pd.Series(["t", None, "u"], dtype=object),
                           "B": pd.Series(["v", "w", None], dtype=object),
                           "C": pd.Series([3, 4, None], dtype=object)})
    ref, new = _write_both([first, second], tmp_path, in_memory=False)
    assert_same_content(tmp_path / "new.parquet", tmp_path / "old.parquet")
    got = pq.read_table(tmp_path / "new.parquet").to_pydict()
    assert got["A"] == ["1.5", None, None, "t", None, "u"]
    assert got["B"] == ["Odd()", None, "2", "v", "w", None]
    assert got["C"] == ["x", None, "y", "3", "4", None]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "new.parquet"),
                                  _written(pd.concat([first, second], ignore_index=True), tmp_path))


def _written(df, tmp_path):
    write_records(df, tmp_path / "whole.parquet")
    return pd.read_parquet(tmp_path / "whole.parquet")


@pytest.mark.parametrize("values", [[1.5, None], [None, float("nan")], [np.float64("nan"), 2.0], [1.0, "x"],
                                    [pd.NA, 1.0], [None, None], [float("nan"), np.float64(1.0)]])
def test_value_types_equal_the_value_by_value_reading(values):
    s = pd.Series(values * 50, dtype=object)
    assert _value_types(s) == {type(v) for v in values if v is not None and not (isinstance(v, float) and v != v)}
