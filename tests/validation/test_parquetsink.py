"""validation.parquetsink: the sink converts a file's first batch once (its all-null columns cast to
text) and writes the spill without dictionary pages; the files hold what the previous sink wrote
(every batch converted with the file's schema by ``Table.from_pandas``): the same rows, types, row groups and
schema; the bytes differ where ``writer_options`` leaves out dictionary pages and statistics.

Tricky batches: an all-null column in the first batch (text from then on) and values later, an empty
batch, Arrow-backed ``str`` columns with missing values, numbers, and batches larger than a row group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmbridge import parquetopts
from crmbridge.validation import parquetsink
from crmbridge.validation.parquetsink import ParquetSink


def awkward_batches(seed: int) -> list[pd.DataFrame]:
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


def assert_same_content(new, old) -> None:
    """The same rows, types, row groups and schema (its key-value metadata included) read back."""
    a, b = pq.read_table(new), pq.read_table(old)
    assert a.equals(b) and a.schema.equals(b.schema, check_metadata=True)
    ma, mb = pq.read_metadata(new), pq.read_metadata(old)
    assert ma.metadata == mb.metadata and ma.schema.equals(mb.schema)
    assert [ma.row_group(i).num_rows for i in range(ma.num_row_groups)] == \
        [mb.row_group(i).num_rows for i in range(mb.num_row_groups)]


def _previous(path, frames, dictionary: bool) -> None:
    """The previous sink's way: the first batch's schema, then every batch converted with it."""
    import pyarrow as pa

    t = pa.Table.from_pandas(frames[0], preserve_index=False)
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in t.schema])
    with pq.ParquetWriter(path, schema.remove_metadata(), use_dictionary=dictionary) as w:
        for df in frames:
            if len(df):
                t = pa.Table.from_pandas(df, schema=schema, preserve_index=False).replace_schema_metadata(None)
                w.write_table(t, row_group_size=min(len(df), parquetsink.ROW_GROUP))


@pytest.mark.parametrize("seed,row_group", [(0, 1 << 20), (1, 1 << 20), (2, 4)])
@pytest.mark.parametrize("dictionary", [True, False])
def test_files_equal_the_previous_sink(tmp_path, monkeypatch, seed, row_group, dictionary):
    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    frames = awkward_batches(seed)
    sink = ParquetSink(tmp_path / "new.parquet", dictionary=dictionary)
    for df in frames:
        sink.write(df)
    sink.close()
    _previous(tmp_path / "old.parquet", frames, dictionary)
    # dictionary pages for some columns only, statistics for _line only (writer_options): the same values, schema
    assert_same_content(tmp_path / "new.parquet", tmp_path / "old.parquet")
    new = pq.read_table(tmp_path / "new.parquet")
    assert new.schema.field("empty_first").type == "string" and new.num_rows == sum(map(len, frames))
    assert sink.lengths == [len(f) for f in frames]


def test_batches_give_the_written_frames_back(tmp_path):
    sink = ParquetSink(tmp_path / "s.parquet", dictionary=False)
    frames = awkward_batches(3)
    for df in frames:
        sink.write(df)
    back = list(sink.batches())
    assert [len(b) for b in back] == [len(f) for f in frames]
    for got, want in zip(back[2:], frames[2:]):
        for c in want.columns:
            assert [None if v is None or v != v else v for v in got[c]] == \
                [None if v is None or v != v else v for v in want[c]], c


def test_dictionary_pages_only_for_columns_that_repeat(tmp_path):
    """A column whose first batch repeats its values keeps dictionary pages, a mostly distinct one gets plain
    pages (also in later batches, whatever they hold); the file reads back as with dictionaries everywhere."""
    n = 1000
    frames = [pd.DataFrame({"city": pd.Series([["甲", "b", None][i % 3] for i in range(n)], dtype=object),
                            "_row_id": pd.Series([f"r{b}-{i}" for i in range(n)], dtype="str"),
                            "later_repeats": pd.Series([f"v{i}" if b == 0 else "same" for i in range(n)], dtype=object),
                            "_line": np.arange(n, dtype=np.int64)}) for b in range(3)]
    sink = ParquetSink(tmp_path / "new.parquet")
    for df in frames:
        sink.write(df)
    sink.close()
    _previous(tmp_path / "old.parquet", frames, True)
    assert_same_content(tmp_path / "new.parquet", tmp_path / "old.parquet")
    meta = pq.read_metadata(tmp_path / "new.parquet")
    for g in range(meta.num_row_groups):
        chunks = {meta.schema.column(i).name: meta.row_group(g).column(i) for i in range(meta.num_columns)}
        assert {c for c, m in chunks.items() if m.has_dictionary_page} == {"city"}


def test_statistics_only_for_line_and_any_reader_reads_the_same(tmp_path):
    """min/max only in ``_line``'s column chunks (as extract writes its files), none in a file without it;
    pandas and DuckDB read the file as they read one written with pyarrow's defaults."""
    import duckdb

    frames = awkward_batches(4)
    sink = ParquetSink(tmp_path / "new.parquet")
    for df in frames:
        sink.write(df)
    sink.close()
    _previous(tmp_path / "old.parquet", frames, True)
    meta = pq.read_metadata(tmp_path / "new.parquet")
    for g in range(meta.num_row_groups):
        assert [meta.schema.column(i).name for i in range(meta.num_columns)
                if meta.row_group(g).column(i).is_stats_set] == ["_line"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "new.parquet"), pd.read_parquet(tmp_path / "old.parquet"))
    query = "SELECT * FROM read_parquet('{}') ORDER BY _row_id"
    assert duckdb.sql(query.format(tmp_path / "new.parquet")).fetchall() == \
        duckdb.sql(query.format(tmp_path / "old.parquet")).fetchall()
    opts = parquetopts.writer_options(pq.read_table(tmp_path / "new.parquet").drop(["_line"]))
    assert opts["write_statistics"] is False


def _previous_frame_of(sink, t) -> pd.DataFrame:
    """The previous ``frame_of``: every column copied into the frame (pandas' default for a dict)."""
    return pd.DataFrame({name: (pd.Series(t.column(name).to_numpy(zero_copy_only=False), dtype=object)
                                if name in sink._object_cols else t.column(name).to_pandas())
                         for name in t.column_names}, index=pd.RangeIndex(t.num_rows))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_of_gives_the_previous_frames_and_they_can_be_written_to(tmp_path, seed):
    sink = ParquetSink(tmp_path / "s.parquet")
    frames = awkward_batches(seed)
    for df in frames:
        sink.write(df)
    for b in sink.lazy_batches():
        t = b.table()
        for part in (t, t.select(["_line", "name"]), t.slice(0, 0)):
            got, want = sink.frame_of(part), _previous_frame_of(sink, part)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            assert [got[c].tolist() for c in got.columns] == [want[c].tolist() for c in want.columns]
        if t.num_rows:  # as the copied frame could: a number and a text changed in place
            got = sink.frame_of(t)
            got.loc[0, "_line"], got.loc[0, "name"] = 99, "changed"
            assert got["_line"].iloc[0] == 99 and got["name"].iloc[0] == "changed"
