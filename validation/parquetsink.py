"""Validate's Parquet files written batch by batch: the normalised spill it reads back, the valid rows.

Each batch becomes one row group (several past ``ROW_GROUP`` rows), so ``batches()`` gives the same
batches back. The schema is the first batch's (all-null columns as text). A batch read back from the
spill comes with its Arrow table, and a valid batch taken from it is written from Arrow: its rows
are not converted from Python objects again (``tests/validation/test_parquetsink.py`` checks the
files equal the pandas path's).
"""

from __future__ import annotations

from pathlib import Path

ROW_GROUP = 1 << 20  # rows per Parquet row group at most (pyarrow's default limit)


class ParquetSink:
    """A Parquet file written batch by batch with one schema (the first batch's; all-null columns as
    text). ``dictionary=False`` for a file only validate reads back (the spill): Parquet's dictionary
    pages cost more to write than they save on mostly distinct values."""

    def __init__(self, path: Path, *, dictionary: bool = True):
        self.path = path
        self.schema = None
        self.lengths: list[int] = []
        self._writer = None
        self._object_cols: set[str] = set()
        self._dictionary = dictionary

    def write(self, df, table=None) -> None:
        """Append ``df``. ``table``: the same rows already in Arrow (as ``batches(tables=True)`` reads
        them, filtered), used when its columns have this file's types; else ``df`` is converted."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = None
        if self.schema is None:
            t = pa.Table.from_pandas(df, preserve_index=False)
            self.schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else
                                     pa.field(f.name, f.type) for f in t.schema])
            self._object_cols = {c for c in df.columns if df[c].dtype == object}
            self._writer = pq.ParquetWriter(self.path, self.schema, use_dictionary=self._dictionary)
            t = t.cast(self.schema)  # all-null columns to text: the values stay (all missing)
        elif table is not None and _fits(table.schema, self.schema):
            t = table.cast(self.schema)
        self.lengths.append(len(df))
        if len(df):
            if t is None:
                t = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
            self._writer.write_table(t.replace_schema_metadata(None), row_group_size=min(len(df), ROW_GROUP))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def rows(self) -> int:
        return sum(self.lengths)

    def batches(self, columns: list[str] | None = None, *, tables: bool = False):
        """The written batches again, in order, with the dtypes they were written with (text columns
        as object holding str/None, as normalisation leaves them); ``tables=True``: ``(frame, column)``
        pairs, ``column(name)`` reading that column of the batch again, in Arrow."""
        import pandas as pd
        import pyarrow.parquet as pq

        self.close()
        pf = pq.ParquetFile(self.path) if self.rows else None

        def read(groups: list[int], cols: list[str] | None):
            if not groups:
                t = self.schema.empty_table()
                return t if cols is None else t.select(cols)
            return pf.read_row_groups(groups, columns=cols)

        group = 0
        for n in self.lengths:
            count = -(-n // ROW_GROUP)  # a batch over ROW_GROUP rows was written as several groups
            groups = list(range(group, group + count))
            group += count
            t = read(groups, columns)
            frame = pd.DataFrame({name: (pd.Series(t.column(name).to_numpy(zero_copy_only=False), dtype=object)
                                         if name in self._object_cols else t.column(name).to_pandas())
                                  for name in t.column_names})
            del t  # not held while the batch is validated: read again when asked for (Arrow, no Python objects)
            yield (frame, lambda name, groups=groups: read(groups, [name]).column(0)) if tables else frame


def _fits(have, want) -> bool:
    """``have``'s columns are ``want``'s, each of its type, all null, or text of the other offset width
    (pandas' Arrow-backed ``str`` is ``large_string``): ``from_pandas`` with ``want`` casts those the same
    way, to the same values."""
    import pyarrow as pa

    text = (pa.string(), pa.large_string())
    return have.names == want.names and all(h.type == w.type or pa.types.is_null(h.type) or
                                            (h.type in text and w.type in text) for h, w in zip(have, want))


def valid_table(column, split):
    """The valid rows of a spilled batch (``column(name)`` reads one of its columns, the batch
    ``split_rows`` split) with their ``_warnings``, in Arrow: the rows taken by position (the batch's
    index is 0..n-1) one column at a time (the batch is never held twice), ``_warnings`` converted as
    ``Table.from_pandas`` converts it."""
    import pyarrow as pa

    rows = pa.array(split.valid.index.to_numpy(), type=pa.int64())
    names = [c for c in split.valid.columns if c != "_warnings"]
    warnings = pa.Table.from_pandas(split.valid[["_warnings"]], preserve_index=False).column(0)
    return pa.Table.from_arrays([column(c).take(rows) for c in names] + [warnings], names=[*names, "_warnings"])
