"""Validate's Parquet files written batch by batch: the normalised spill it reads back, the valid rows.

Each batch becomes one row group (several past ``ROW_GROUP`` rows), so ``batches()`` gives the same
batches back. The schema is the first batch's (all-null columns as text).
"""

from __future__ import annotations

from pathlib import Path

ROW_GROUP = 1 << 20  # rows per Parquet row group at most (pyarrow's default limit)


class ParquetSink:
    """A Parquet file written batch by batch with one schema (the first batch's; all-null columns as
    text). ``dictionary=False`` for a file only validate reads back (the spill): Parquet's dictionary
    pages cost more to write than they save on mostly distinct values. Frames are converted on one
    thread: pyarrow's thread pool cost a third more CPU for the same table on a 50k-row batch."""

    def __init__(self, path: Path, *, dictionary: bool = True):
        self.path = path
        self.schema = None
        self.lengths: list[int] = []
        self._writer = None
        self._object_cols: set[str] = set()
        self._dictionary = dictionary

    def write(self, df) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = None
        if self.schema is None:
            t = pa.Table.from_pandas(df, preserve_index=False, nthreads=1)
            self.schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else
                                     pa.field(f.name, f.type) for f in t.schema])
            self._object_cols = {c for c in df.columns if df[c].dtype == object}
            self._writer = pq.ParquetWriter(self.path, self.schema, use_dictionary=self._dictionary)
            t = t.cast(self.schema)  # all-null columns to text (still all missing): not converted twice
        self.lengths.append(len(df))
        if len(df):
            if t is None:
                t = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False, nthreads=1)
            self._writer.write_table(t.replace_schema_metadata(None), row_group_size=min(len(df), ROW_GROUP))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def rows(self) -> int:
        return sum(self.lengths)

    def batches(self, columns: list[str] | None = None):
        """The written batches again, in order, with the dtypes they were written with (text columns
        as object holding str/None, as normalisation leaves them)."""
        return (b.frame() for b in self.lazy_batches(columns))

    def lazy_batches(self, columns: list[str] | None = None):
        """``batches()`` unread: each a ``LazyBatch`` whose ``frame()`` reads it (once), so a reader that
        takes every other batch (validate's worker processes) skips the rest for free."""
        import pyarrow.parquet as pq

        self.close()
        pf = pq.ParquetFile(self.path) if self.rows else None
        group = 0
        for n in self.lengths:
            count = -(-n // ROW_GROUP)  # a batch over ROW_GROUP rows was written as several groups
            yield LazyBatch(self, pf, list(range(group, group + count)), columns)
            group += count

    def _frame(self, pf, groups: list[int], columns: list[str] | None):
        import pandas as pd

        if groups:
            t = pf.read_row_groups(groups, columns=columns)
        else:
            t = self.schema.empty_table()
            if columns is not None:
                t = t.select(columns)
        return pd.DataFrame({name: (pd.Series(t.column(name).to_numpy(zero_copy_only=False), dtype=object)
                                    if name in self._object_cols else t.column(name).to_pandas())
                             for name in t.column_names})


class LazyBatch:
    """One written batch of a ``ParquetSink``, read on the first ``frame()``."""

    def __init__(self, sink: ParquetSink, pf, groups: list[int], columns: list[str] | None):
        self._args = (pf, groups, columns)
        self._sink = sink
        self._frame = None

    def frame(self):
        if self._frame is None:
            self._frame = self._sink._frame(*self._args)
        return self._frame
