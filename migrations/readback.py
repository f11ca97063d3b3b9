"""Read back from the org the records a run loaded, for reconcile, in as few API calls as possible.

Only the run's records are read, never the whole object:

- by external ID: ``WHERE ext IN (...)``, in statements cut to the SOQL length limit. Over REST for
  a few hundred keys (one call per 200), otherwise as Bulk API 2.0 query jobs (create, status,
  one results page per 200,000 rows, whatever the number of rows);
- by time window, when that is cheaper: every record this run wrote was stamped ``LastModifiedDate``
  at or after the run's first journaled batch, so one Bulk query ``WHERE ext != null AND
  LastModifiedDate >= <that moment>`` returns them all (and perhaps a few records others touched
  since, dropped here). Only the run's *unchanged* records, which it did not write, are then read
  by external ID. The moment is taken on the org's clock (our clock plus the skew seen in the
  HTTP ``Date`` header) minus a margin, so a clock off by a few seconds cannot hide a record.

A record the run wrote that someone deleted or re-keyed since is absent from both reads, which is
what reconcile must report. Duplicates are still seen: an upsert succeeds only when at most one
record holds the key, so a second holder of a written key is newer than the write (in the window);
unchanged keys are read by key, every holder included.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Callable, Iterable, Iterator

from crmbridge.connectors.salesforce.results import REST_BATCH

# "By default, SOQL statements cannot exceed 100,000 characters" (SOQL and SOSL Reference, SOQL
# Limits); keep 10,000 for the SELECT list and the rest of the WHERE clause.
SOQL_IN_CHARS = 90_000
# A REST query URL stays short at 200 quoted keys; a Bulk query job costs at least three calls, so
# up to three REST calls' worth of keys are read over REST.
REST_KEYS = 3 * REST_BATCH
# How far before the run's first batch the time window opens (clock skew, request latency).
WINDOW_MARGIN = timedelta(minutes=2)


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_chunks(keys: Iterable[str], budget: int | None = None) -> list[list[str]]:
    """The keys cut into lists whose quoted, comma-joined form fits ``budget`` characters."""
    budget = budget or SOQL_IN_CHARS
    out: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for k in keys:
        n = len(quote(k)) + 1
        if cur and size + n > budget:
            out.append(cur)
            cur, size = [], 0
        cur.append(k)
        size += n
    if cur:
        out.append(cur)
    return out


def _jobs(keys: list[str]) -> int:
    """API calls-ish cost unit of reading ``keys`` by key: one per REST page or per Bulk job."""
    if not keys:
        return 0
    if len(keys) <= REST_KEYS:
        return -(-len(keys) // REST_BATCH)
    return 3 * len(in_chunks(keys))


def by_keys(conn, sobject: str, select: str, ext: str, keys: list[str],
            cols: list[str] | None = None) -> Iterator[tuple]:
    """Records whose ``ext`` is one of ``keys`` (REST for a few, Bulk query jobs for many), as tuples
    ``(Id, ext, *cols)``; ``cols``: the fields after Id and ext in ``select`` (default: read from it)."""
    if cols is None:
        cols = [c.strip() for c in select.split(",")][2:]
    if len(keys) <= REST_KEYS:
        for i in range(0, len(keys), REST_BATCH):
            part = keys[i:i + REST_BATCH]
            soql = f"SELECT {select} FROM {sobject} WHERE {ext} IN ({','.join(map(quote, part))})"
            yield from (_as_tuple(rec, ext, cols) for rec in conn.query(soql))
        return
    for part in in_chunks(keys):
        yield from _bulk(conn, f"SELECT {select} FROM {sobject} WHERE {ext} IN ({','.join(map(quote, part))})",
                         len(part), ext, cols)


def _as_tuple(rec: dict, ext: str, cols: list[str]) -> tuple:
    return (rec.get("Id"), rec.get(ext), *(rec[f] if f in rec else _nested(rec, f) for f in cols))


def _bulk(conn, soql: str, expect: int, ext: str, cols: list[str]) -> Iterator[tuple]:
    """A Bulk query's rows as tuples ``(Id, ext, *cols)``, taken from the CSV by column position."""
    want = ["Id", ext, *cols]
    columns = getattr(conn, "query_bulk_columns", None)
    if columns is not None:  # the wanted columns of each page (None where the org returned no such column)
        for page in columns(soql, want, expect_rows=expect):
            yield from zip(*page)
        return
    pages = getattr(conn, "query_bulk_pages", None)
    if pages is None:  # a connector without raw pages: one dict per row
        yield from (_as_tuple(rec, ext, cols) for rec in conn.query_bulk(soql, expect_rows=expect))
        return
    for header, rows in pages(soql, expect_rows=expect):
        pos = {c: i for i, c in enumerate(header)}
        idx = [pos.get(c) for c in want]
        if None in idx:  # a column the org did not return (as the dict path: Id/ext None, a field nested or None)
            yield from (_as_tuple(dict(zip(header, r)), ext, cols) for r in rows)
        else:
            get = itemgetter(*idx)
            yield from map(get, rows)


def window_start(first_write: datetime | None, clock_skew: float | None) -> datetime | None:
    """The org-clock moment from which every record of the run's writes carries its LastModifiedDate."""
    if first_write is None:
        return None
    if first_write.tzinfo is None:
        first_write = first_write.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
    return first_write + timedelta(seconds=clock_skew or 0.0) - WINDOW_MARGIN


def window_query(conn, sobject: str, ext: str, cols: list[str], written: list[str], unchanged: list[str],
                 first_write: datetime | None) -> tuple[str, str] | None:
    """(SOQL, UTC stamp) of the time-window read when it is cheaper than reading every key (else None)."""
    start = window_start(first_write, getattr(conn, "clock_skew", None))
    if not written or start is None or 3 + _jobs(unchanged) >= _jobs(written + unchanged):
        return None
    stamp = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    select = ", ".join(["Id", ext] + cols)
    return f"SELECT {select} FROM {sobject} WHERE {ext} != null AND LastModifiedDate >= {stamp}", stamp


def read_back(conn, sobject: str, ext: str, cols: list[str], written: list[str], unchanged: list[str],
              first_write: datetime | None, keys_of: Callable[[list], list[str]]) -> tuple[list[tuple], str]:
    """The org's records for the run's keys (``written`` + ``unchanged``), and how they were read.

    Records come back as tuples ``(Id, ext, *cols)`` (parent fields read by their dotted name).
    Records whose key is not one of the run's keys are dropped; ``keys_of``: the comparison form of a
    list of external IDs (applied to the run's keys before the org is waited for, to the org's after).
    """
    select = ", ".join(["Id", ext] + cols)
    all_keys = written + unchanged
    wanted = set(keys_of(all_keys))  # before the reads: the org runs the (prefetched) query meanwhile
    window = window_query(conn, sobject, ext, cols, written, unchanged, first_write)
    if window is not None:
        soql, stamp = window
        rows = list(_bulk(conn, soql, len(written), ext, cols))
        rows += list(by_keys(conn, sobject, select, ext, unchanged, cols))
        how = f"window LastModifiedDate >= {stamp} + {len(unchanged)} unchanged by key"
    else:
        rows = list(by_keys(conn, sobject, select, ext, all_keys, cols))
        how = f"{len(all_keys)} by key"
    seen: set[str] = set()
    out = []
    for rec, key in zip(rows, keys_of([r[1] for r in rows])):
        rid = rec[0]
        if rid in seen or key not in wanted:
            continue  # outside the run, or an unchanged record someone edited since (in both reads)
        seen.add(rid)
        out.append(rec)
    return out, how


def _nested(rec: dict, dotted: str):
    v = rec
    for part in dotted.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v
