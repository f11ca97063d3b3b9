"""Bulk API 2.0 query jobs: run the query into stored CSV chunks, and cut results pages from them.

A query job's answer is stored once, as CSV, in ``_sandbox_job_chunks``: the UTF-8 bytes of up to
``CHUNK_ROWS`` records each (every line with the job's line ending) and the byte offset where each
record ends, so a results page of any ``maxRecords`` from any locator is a few slices, and a job
survives a restart of the server. Databases written before the chunks kept one row per record in
``_sandbox_job_rows``; their jobs are still served from there.

For the plain ``SELECT fields FROM object WHERE ...`` that reconcile sends, the CSV cells come from the
SQL rows column by column (``soql.flat_rows``); other shapes (TYPEOF, sub-queries, anything
``flat_rows`` declines) build the REST records and flatten them, as before.
"""

from __future__ import annotations

import csv
import sys
from array import array
from itertools import accumulate
from types import SimpleNamespace

from crmbridge.sandbox.bulk_io import DELIMITERS, ENDINGS

CHUNK_ROWS = 10_000
DDL = ("CREATE TABLE IF NOT EXISTS _sandbox_job_chunks (job_id TEXT NOT NULL, first INTEGER NOT NULL, "
       "n INTEGER NOT NULL, body BLOB NOT NULL, ends BLOB NOT NULL, PRIMARY KEY (job_id, first))")


def process_query(bulk, job: dict) -> str | None:
    """Run a query job into ``_sandbox_job_chunks``; returns the error message if the query fails."""
    from crmbridge.sandbox import soql

    conn, schema = bulk.store.conn(), bulk.store.schema
    try:
        compiled, rows = soql.run(conn, schema, job["query"], include_deleted=job["operation"] == "queryAll")
        cells = soql.flat_rows(compiled, rows)
        result = None if cells is not None else soql.shape(conn, schema, compiled, rows, job["api_version"])
    except soql.SoqlError as e:
        return f"{e.error_code} : {e.message}"
    if result is not None and result.is_count:
        return "InvalidJob : Aggregate queries (COUNT()) are not supported by Bulk API 2.0 query"
    if result is None:
        names, count = compiled.plan.columns, len(rows)
        obj = compiled.plan.root.obj if rows else None
    else:
        names, count = result.columns, len(result.records)
        cells = (soql.flatten(rec, names) for rec in result.records)
        obj = result.records[0]["attributes"]["type"] if result.records else None
    delim, eol = DELIMITERS[job["column_delimiter"]], ENDINGS[job["line_ending"]]
    lines: list[str] = []
    # csv.writer calls write() once per row: the records' lines, each with its line ending, at C speed
    # (None is written as "" under QUOTE_ALL, as the empty string the old per-row path passed).
    csv.writer(SimpleNamespace(write=lines.append), delimiter=delim, lineterminator=eol,
               quoting=csv.QUOTE_ALL).writerows(cells)
    header: list[str] = []
    csv.writer(SimpleNamespace(write=header.append), delimiter=delim, lineterminator="",
               quoting=csv.QUOTE_ALL).writerow(names)
    encoded = list(map(str.encode, lines))
    chunks = [(job["id"], first, len(part), b"".join(part), _pack(accumulate(map(len, part))))
              for first in range(0, len(encoded), CHUNK_ROWS) for part in [encoded[first:first + CHUNK_ROWS]]]
    with bulk.store.write() as c:
        delete_rows(c, job["id"])
        c.executemany("INSERT INTO _sandbox_job_chunks(job_id, first, n, body, ends) VALUES (?,?,?,?,?)", chunks)
        c.execute("UPDATE _sandbox_jobs SET header=?, processed=?, object=COALESCE(object, ?) WHERE id=?",
                  (header[0], count, obj, job["id"]))
    return None


def delete_rows(c, job_id: str) -> None:
    """Forget a query job's stored answer (both layouts)."""
    c.execute("DELETE FROM _sandbox_job_chunks WHERE job_id=?", (job_id,))
    c.execute("DELETE FROM _sandbox_job_rows WHERE job_id=?", (job_id,))


def page(conn, job: dict, start: int, size: int) -> tuple[bytes, int]:
    """The CSV of up to ``size`` records from record ``start`` (a negative size: all the rest), header
    first, and how many records it holds. Same answers as the old ``n >= start ... LIMIT size``."""
    eol = ENDINGS[job["line_ending"]]
    head = (job["header"] + eol).encode("utf-8")
    lo = max(start, 0)
    hi = job["processed"] if size < 0 else min(lo + size, job["processed"])
    if hi <= lo:
        return head, 0
    parts = [head]
    for first, n, body, ends in conn.execute(
            "SELECT first, n, body, ends FROM _sandbox_job_chunks WHERE job_id=? AND first < ? AND first + n > ? "
            "ORDER BY first", (job["id"], hi, lo)):
        offsets = _unpack(ends)
        a, b = max(lo - first, 0), min(hi - first, n)
        parts.append(memoryview(body)[offsets[a - 1] if a else 0:offsets[b - 1]])
    if len(parts) > 1:
        return b"".join(parts), hi - lo
    return _legacy_page(conn, job, start, size, eol)


def _legacy_page(conn, job: dict, start: int, size: int, eol: str) -> tuple[bytes, int]:
    # A job stored by an older sandbox: one row per record.
    lines = [r[0] for r in conn.execute("SELECT line FROM _sandbox_job_rows WHERE job_id=? AND n >= ? ORDER BY n "
                                        "LIMIT ?", (job["id"], start, size))]
    return (job["header"] + eol + "".join(line + eol for line in lines)).encode("utf-8"), len(lines)


def _pack(offsets) -> bytes:
    a = array("q", offsets)
    if sys.byteorder == "big":  # stored little-endian, so a database file moves between machines
        a.byteswap()
    return a.tobytes()


def _unpack(blob: bytes) -> array:
    a = array("q")
    a.frombytes(blob)
    if sys.byteorder == "big":
        a.byteswap()
    return a
