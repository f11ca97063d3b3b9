"""The rows the disagreement report reads: validate's spill (an Arrow IPC file, ``arrowspill``) or a Parquet
file (rows handed to ``disagreement.disagreement`` in memory, the tests' files), behind one interface.

``open_rows(path)`` tells them apart by their first bytes. Each gives its column names and row count, its
columns batch by batch as Arrow tables, some rows by position, and, for DuckDB, one column with each
row's position in the file (``rid``) as a relation DuckDB streams through: ``read_parquet`` for Parquet;
for Arrow IPC (which DuckDB reads only through an extension to download) a ``RecordBatchReader`` over the
file, handed over through Arrow's C stream interface and read a record batch at a time, never whole.
"""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from crmbridge.validation.arrowspill import is_arrow_file, open_spill

_NAMES = count()  # DuckDB names of the readers registered for one query


def open_rows(path):
    """``ArrowRows`` for an Arrow IPC file, ``ParquetRows`` for a Parquet file."""
    return ArrowRows(path) if is_arrow_file(path) else ParquetRows(path)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty_tables(n: int, batch_rows: int) -> Iterator[Any]:
    """Tables of no column, ``batch_rows`` rows each (the last fewer), ``n`` rows in all."""
    import pyarrow as pa

    for start in range(0, n, max(1, batch_rows)):
        yield pa.table({"_": pa.nulls(min(batch_rows, n - start))}).drop_columns(["_"])


class ParquetRows:
    def __init__(self, path):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self._pf = pq.ParquetFile(path)
        self.names: list[str] = self._pf.schema_arrow.names
        self.num_rows: int = self._pf.metadata.num_rows

    def relation(self, con, field: str) -> str:
        """SQL for ``(rid, v)``: each row's position and its value of ``field``."""
        return (f"(SELECT file_row_number AS rid, {sql_ident(field)} AS v FROM "
                f"read_parquet({sql_literal(str(self.path))}, file_row_number = true))")

    def tables(self, columns: list[str], batch_rows: int) -> Iterator[Any]:
        """The ``columns`` batch by batch, as Arrow tables (no column at all: tables of the batch's length)."""
        import pyarrow as pa

        if not columns:
            yield from _empty_tables(self.num_rows, batch_rows)
            return
        for batch in self._pf.iter_batches(batch_size=max(1, batch_rows), columns=columns):
            yield pa.Table.from_batches([batch])

    def take(self, columns: list[str], rows: np.ndarray):
        """``read_table(columns).take(rows)`` reading only the row groups that hold ``rows``."""
        pf = self._pf
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        return _take_pieces(sizes, rows, lambda g: pf.read_row_group(g, columns=columns))


def _take_pieces(sizes: list[int], rows: np.ndarray, read):
    """Rows at positions ``rows`` of a file in pieces of ``sizes`` rows, ``read(i)`` reading piece i, in the
    order of ``rows``: only the pieces that hold them are read."""
    import pyarrow as pa

    starts = np.concatenate([[0], np.cumsum(sizes)])
    groups = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(groups, kind="stable")
    pieces = [read(int(g)).take(pa.array(rows[order][groups[order] == g] - starts[g])) for g in np.unique(groups)]
    return pa.concat_tables(pieces).take(pa.array(np.argsort(order, kind="stable")))


class ArrowRows:
    def __init__(self, path):
        self.path = Path(path)
        reader = open_spill(path, [])
        self.names = open_spill(path).schema.names
        self._sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]  # one column read
        self.num_rows = sum(self._sizes)

    def relation(self, con, field: str) -> str:
        """``ParquetRows.relation``: a reader of that one column, registered in ``con`` (for one scan:
        each call registers a new one)."""
        import pyarrow as pa

        reader = open_spill(self.path, [field])
        schema = pa.schema([("rid", pa.int64()), ("v", reader.schema.field(0).type)])

        def batches():
            start = 0
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                yield pa.record_batch([pa.array(np.arange(start, start + b.num_rows)), b.column(0)], schema=schema)
                start += b.num_rows

        name = f"crmbridge_rows_{next(_NAMES)}"
        con.register(name, pa.RecordBatchReader.from_batches(schema, batches()))
        return name

    def tables(self, columns: list[str], batch_rows: int) -> Iterator[Any]:
        """``ParquetRows.tables``: each record batch in pieces of ``batch_rows`` rows at most (zero copy)."""
        import pyarrow as pa

        if not columns:
            yield from _empty_tables(self.num_rows, batch_rows)
            return
        reader, step = open_spill(self.path, columns), max(1, batch_rows)
        for i in range(reader.num_record_batches):
            t = pa.Table.from_batches([reader.get_batch(i)]).select(columns)
            for start in range(0, t.num_rows, step):
                yield t.slice(start, step)

    def take(self, columns: list[str], rows: np.ndarray):
        """``ParquetRows.take``: only the record batches that hold ``rows`` are read."""
        import pyarrow as pa

        reader = open_spill(self.path, columns)
        return _take_pieces(self._sizes, rows,
                            lambda i: pa.Table.from_batches([reader.get_batch(i)]).select(columns))
