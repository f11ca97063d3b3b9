"""validation.parquetsink: valid batches written from the spill's Arrow tables give the same Parquet file
as the same frames converted by pandas (the previous path), byte for byte.

Tricky batches: an all-null column in the first batch (text from then on) and values later, ``_warnings``
all missing in some batches and text in others, an empty batch, Arrow-backed ``str`` columns with
missing values, numbers, and batches larger than a row group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmbridge.validation import parquetsink
from crmbridge.validation.outcome import Split
from crmbridge.validation.parquetsink import ParquetSink, valid_table


def _batches(seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    texts = np.array([None, "", "a", "甲乙丙", "x; y", "line\nbreak", "   "], dtype=object)
    out = []
    for b, n in enumerate((6, 0, 9, 1, 12)):
        df = pd.DataFrame({
            "name": pd.Series(texts[rng.integers(0, len(texts), n)], dtype=object),
            "empty_first": pd.Series([None] * n if b == 0 else texts[rng.integers(0, len(texts), n)], dtype=object),
            "_row_id": pd.Series([f"r{b}-{i}" for i in range(n)], dtype="str"),
            "_source": pd.Series([None if i % 3 == 0 else "crm" for i in range(n)], dtype="str"),
            "_line": np.arange(n, dtype=np.int64),
        })
        out.append(df)
    return out


def _split(frame: pd.DataFrame, rng, warn: bool) -> Split:
    keep = rng.random(len(frame)) < 0.7
    valid = frame.loc[keep].copy()
    valid["_warnings"] = np.array([("w1: odd" if warn and i % 2 else None) for i in range(len(valid))], dtype=object)
    return Split(valid=valid, quarantine=frame.loc[~keep].copy(), rows_warned=0, quarantined_by_rule={})


@pytest.mark.parametrize("seed,row_group", [(0, 1 << 20), (1, 1 << 20), (2, 4)])
def test_valid_file_from_arrow_equals_the_pandas_path(tmp_path, monkeypatch, seed, row_group):
    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    spill = ParquetSink(tmp_path / "spill.parquet", dictionary=False)
    for df in _batches(seed):
        spill.write(df)
    spill.close()
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    by_pandas, by_arrow = ParquetSink(tmp_path / "pandas.parquet"), ParquetSink(tmp_path / "arrow.parquet")
    for i, (frame, table) in enumerate(spill.batches(tables=True)):
        warn = i >= 2  # _warnings all missing in the first batches (null in Arrow), text later
        split_a, split_b = _split(frame, rng_a, warn), _split(frame, rng_b, warn)
        by_pandas.write(split_a.valid.reset_index(drop=True))
        arrow = valid_table(table, split_b)
        if by_arrow.schema is not None:  # the Arrow path really runs
            assert parquetsink._fits(arrow.schema, by_arrow.schema), (arrow.schema, by_arrow.schema)
        by_arrow.write(split_b.valid.reset_index(drop=True), arrow)
    by_pandas.close()
    by_arrow.close()
    assert (tmp_path / "arrow.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    a, p = pq.read_table(tmp_path / "arrow.parquet"), pq.read_table(tmp_path / "pandas.parquet")
    assert a.equals(p) and a.num_rows > 0
    assert a.schema.field("empty_first").type == "string" and a.column("_warnings").null_count < a.num_rows
    assert by_arrow.lengths == by_pandas.lengths


def test_batches_give_the_written_frames_back(tmp_path):
    sink = ParquetSink(tmp_path / "s.parquet", dictionary=False)
    frames = _batches(3)
    for df in frames:
        sink.write(df)
    back = list(sink.batches())
    assert [len(b) for b in back] == [len(f) for f in frames]
    for got, want in zip(back[2:], frames[2:]):
        for c in want.columns:
            assert [None if v is None or v != v else v for v in got[c]] == \
                [None if v is None or v != v else v for v in want[c]], c
