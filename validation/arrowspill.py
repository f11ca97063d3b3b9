"""Validate's private scratch files (the normalised spill, the quarantine spill) in Arrow's IPC file format.

A spill is written once, read back by validate batch by batch and by the disagreement report, and removed
with the entity: nothing outside validate reads it, so it need not be Parquet. An IPC record batch is the
Arrow columns as they are in memory: writing one costs about a copy (a Parquet page is encoded and
compressed), reading it back too, and its types come back exactly as written. Uncompressed: LZ4 made the
file 2.4 times smaller at 3 times the write and 4 times the read CPU (docs/performance.md).

The file is read through a regular file handle, never memory-mapped: mapped pages of a whole spill would
count in validate's peak RSS. Each walk over the batches opens its own handle, so a forked worker
process reads with its own file position.
"""

from __future__ import annotations

from crmbridge.validation.parquetsink import LazyBatch, ParquetSink

MAGIC = b"ARROW1"  # the first bytes of an Arrow IPC file (a Parquet file starts with b"PAR1")


class ArrowSpill(ParquetSink):
    """``ParquetSink``'s batches, frames and dtypes (the same ``write``, ``write_table``, ``batches``,
    ``lazy_batches``, ``exact``) in an Arrow IPC file: one record batch per written batch of rows (a batch
    of no rows writes none), read back whole and converted as the Parquet round trip converted it."""

    def _open(self, first) -> None:
        import pyarrow as pa

        self._file = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_file(self._file, self.schema)

    def _append(self, t) -> None:
        self.lengths.append(len(t))
        if len(t):  # one record batch: ``lazy_batches`` finds the written batches by their number
            self._writer.write_batch(t.replace_schema_metadata(None).combine_chunks().to_batches()[0])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._file.close()
            self._writer = None

    def lazy_batches(self, columns: list[str] | None = None):
        """``batches()`` unread, each a ``LazyBatch`` (see ``ParquetSink.lazy_batches``). The file is opened
        on the first batch of this walk, in the process that walks it."""
        self.close()
        reader = None
        number = 0
        for n in self.lengths:
            if n and reader is None:
                reader = open_spill(self.path)
            yield LazyBatch(self, reader, [number] if n else [], columns)
            number += 1 if n else 0

    def _table(self, reader, numbers: list[int], columns: list[str] | None):
        import pyarrow as pa

        t = pa.Table.from_batches([reader.get_batch(numbers[0])]) if numbers else self.schema.empty_table()
        return t.select(columns) if columns is not None else t


def open_spill(path, columns: list[str] | None = None):
    """An Arrow IPC file's reader on a regular file handle (not memory-mapped), reading only ``columns``
    (every column when None; the reader's schema is then theirs, in the file's order). For no column it
    reads the first one, the cheapest way to the batches' lengths: Arrow reads them all when given none."""
    import pyarrow as pa

    options = None
    if columns is not None:
        with pa.OSFile(str(path)) as f:
            names = pa.ipc.open_file(f).schema.names
        options = pa.ipc.IpcReadOptions(included_fields=[names.index(c) for c in columns] or [0][:len(names)])
    return pa.ipc.open_file(pa.OSFile(str(path)), options=options)


def is_arrow_file(path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC
