"""The Parquet writer's options for the run files validate and map write (valid rows, records): which
columns get dictionary pages and which keep min/max statistics. One rule for both stages, so their files
are written alike; extract's ``source_writer`` follows the same idea for its own files (its rule also always
encodes its two lineage columns, see there).
"""

from __future__ import annotations

STATISTICS = ["_line"]  # the columns whose min/max a file's footer keeps (``writer_options``)


def dictionary_columns(t) -> list[str] | bool:
    """The columns of a file whose first batch is ``t`` worth a dictionary page: those with fewer distinct
    values than half its rows (every column for a batch of no rows). A column of mostly distinct values (ids,
    keys, phones) overflows the writer's dictionary page limit (1 MiB) after some thousand rows and falls
    back to plain pages, having hashed every value: on validate's 1M rows over a quarter of the write's CPU, and
    the file larger than with plain pages from the start. The values read back the same either way. A column
    Arrow cannot count (all-null, nested) keeps the writer's default, a dictionary."""
    if not len(t):
        return True
    return [name for name in t.column_names if _repeats(t.column(name), len(t))]


def _repeats(column, rows: int) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return 2 * pc.count_distinct(column).as_py() < rows
    except pa.ArrowNotImplementedError:
        return True


def writer_options(first) -> dict:
    """``pq.ParquetWriter``'s options for a file of validate's or map's rows whose first batch is ``first``:
    dictionary pages where values repeat (``dictionary_columns``) and min/max statistics only for ``_line``,
    as extract writes its files. Statistics on the text columns cost a third of the write (0.25 CPU-s per
    million rows for validate's valid rows, docs/performance.md) and no reader of these files filters on them;
    the values, types and metadata read back the same."""
    names = first.schema.names
    return {"use_dictionary": dictionary_columns(first),
            "write_statistics": [c for c in STATISTICS if c in names] or False}
