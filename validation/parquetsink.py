"""Validate's Parquet files written batch by batch (the valid rows), and what its scratch spills share with
them (``arrowspill.ArrowSpill``: the same batches, frames and dtypes in Arrow IPC).

Each batch becomes one row group (several past ``ROW_GROUP`` rows), so ``batches()`` gives the same
batches back. The schema is the first batch's (all-null columns as text).
"""

from __future__ import annotations

from pathlib import Path

from crmbridge.parquetopts import writer_options

ROW_GROUP = 1 << 20  # rows per Parquet row group at most (pyarrow's default limit)


class ParquetSink:
    """A Parquet file written batch by batch with one schema (the first batch's; all-null columns as
    text). Dictionary pages for the columns whose first batch repeats its values (``dictionary_columns``),
    none with ``dictionary=False``; statistics only for ``_line`` (``parquetopts.writer_options``). Frames
    are converted on one thread: pyarrow's thread pool cost a third more CPU for the same table on a 50k-row
    batch."""

    def __init__(self, path: Path, *, dictionary: bool = True):
        self.path = path
        self.schema = None
        self.lengths: list[int] = []
        self._writer = None
        self._object_cols: set[str] = set()
        self._dictionary = dictionary

    def write(self, df, arrays: dict | None = None) -> None:
        """``df`` appended. ``arrays``: some of its object columns already in Arrow, as ``from_pandas``
        converts them (``string``; ``normalise.Normalised.arrow``): only the other columns are converted."""
        if self.schema is None:
            self._object_cols = {c for c in df.columns if df[c].dtype == object}
            self._start(self._converted(df, arrays or {}, None))
        elif len(df):
            self._append(self._converted(df, arrays or {}, self.schema))
        else:
            self.lengths.append(0)

    @staticmethod
    def _converted(df, arrays: dict, schema):
        """``pa.Table.from_pandas(df, schema)`` taking the columns of ``arrays`` as they are."""
        import pyarrow as pa

        if not arrays:
            return pa.Table.from_pandas(df, schema=schema, preserve_index=False, nthreads=1)
        names = list(df.columns) if schema is None else schema.names  # from_pandas takes the schema's order
        rest = [c for c in names if c not in arrays]
        sub = None if schema is None else pa.schema([schema.field(c) for c in rest])
        part = pa.Table.from_pandas(df[rest], schema=sub, preserve_index=False, nthreads=1)
        columns = [arrays[c] if c in arrays else part.column(c) for c in names]
        return pa.Table.from_arrays(columns, names=names) if schema is None else \
            pa.Table.from_arrays(columns, schema=schema)

    def write_table(self, t) -> None:
        """``write`` for a batch already in Arrow, typed as ``write`` types the frame ``frame_of`` makes of
        it (which ``exact`` tells): no conversion. Its ``string`` columns read back as object columns."""
        if self.schema is None:
            self._object_cols = {f.name for f in t.schema if f.type == "string"}
            self._start(t)
        else:
            self._append(t)  # pyarrow refuses a table of another schema

    def _start(self, t) -> None:
        """The file opened with the first batch's schema (all-null columns as text), the batch written."""
        import pyarrow as pa

        self.schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else
                                 pa.field(f.name, f.type) for f in t.schema])
        t = t.cast(self.schema)  # all-null columns to text (still all missing): not converted twice
        self._open(t)
        self._append(t)

    def _open(self, first) -> None:
        import pyarrow.parquet as pq

        options = writer_options(first)
        if not self._dictionary:
            options["use_dictionary"] = False
        self._writer = pq.ParquetWriter(self.path, self.schema, **options)

    def _append(self, t) -> None:
        self.lengths.append(len(t))
        if len(t):
            self._writer.write_table(t.replace_schema_metadata(None), row_group_size=min(len(t), ROW_GROUP))

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

    def _table(self, pf, groups: list[int], columns: list[str] | None):
        if groups:
            return pf.read_row_groups(groups, columns=columns)
        t = self.schema.empty_table()
        return t.select(columns) if columns is not None else t

    def frame_of(self, t):
        """A batch read back (an Arrow table) as the frame that was written: text columns written from
        object columns as object holding str/None, the rest as pyarrow converts them (its rows even without
        columns, ``LazyBatch.narrow``). The text columns are the arrays just made, not copied: pandas copies a
        numpy array into a Series and a dict of them into a frame unless told not to (a third of the time)."""
        import pandas as pd

        def column(name: str):
            if name in self._object_cols:
                return pd.Series(t.column(name).to_numpy(zero_copy_only=False), dtype=object, copy=False)
            return t.column(name).to_pandas().copy()  # Arrow's numbers come read-only: writable, as before

        return pd.DataFrame({name: column(name) for name in t.column_names}, index=pd.RangeIndex(t.num_rows),
                            copy=False)

    def exact(self, t) -> bool:
        """Whether ``write`` of ``frame_of(t)`` (its rows or some of them) writes ``t``'s own types and values,
        so the batch can be written from ``t`` itself. True for the columns validate spills: text from object
        columns (``string``) and from pandas' ``str`` (``large_string``), integers without missing values
        (``_line``); anything else (a missing integer becomes a float in pandas) is left to the frame. One
        chunk per column, as the frame converts: the Parquet writer's pages restart at each chunk."""
        for f in t.schema:
            obj, col = f.name in self._object_cols, t.column(f.name)
            if col.num_chunks > 1 or not ((f.type == "string" and obj) or (f.type == "large_string" and not obj)
                                          or (f.type == "int64" and not obj and col.null_count == 0)):
                return False
        return True


class LazyBatch:
    """One written batch of a ``ParquetSink``, read on the first ``table()`` or ``frame()`` (both kept: the
    frame for the checks, the table for what can be done in Arrow). ``narrow`` and ``rows`` convert only
    some columns or rows where that gives what ``frame()`` holds there: validate's checks read a few columns,
    its quarantine a few rows."""

    def __init__(self, sink: ParquetSink, pf, groups: list[int], columns: list[str] | None):
        self._args = (pf, groups, columns)
        self.sink = sink
        self._table = None
        self._frame = None
        self._narrow = None

    def table(self):
        if self._table is None:
            self._table = self.sink._table(*self._args)
        return self._table

    def frame(self):
        if self._frame is None:
            self._frame = self.sink.frame_of(self.table())
        return self._frame

    def narrow(self, columns):
        """``frame()`` with only those of ``columns`` the batch has (in its order; kept), converted alone where
        that gives the same values and dtypes (``ParquetSink.exact``: a column's dtype then does not depend
        on which rows or columns are converted with it), else ``frame()`` whole."""
        if self._narrow is None:
            t = self.table()
            self._narrow = self.sink.frame_of(t.select([c for c in t.column_names if c in columns])) \
                if self._frame is None and self.sink.exact(t) else self.frame()
        return self._narrow

    def rows(self, positions):
        """``frame().iloc[positions]`` (every column; ``positions`` the index), converted alone
        where ``narrow`` would be."""
        import pandas as pd

        t = self.table()
        if self._frame is not None or not self.sink.exact(t):
            return self.frame().iloc[positions]
        out = self.sink.frame_of(t.take(positions))
        out.index = pd.Index(positions)
        return out
