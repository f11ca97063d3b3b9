"""SOQL over REST (streamed page by page) and over a Bulk 2.0 query job (CSV pages)."""

from __future__ import annotations

import csv
import io
from typing import Iterator

from crmbridge.connectors.salesforce.polling import Pace, wait_for_job  # noqa: F401 (wait_for_job re-exported)
from crmbridge.errors import RunFailed


def strip_attributes(value):
    """A record without Salesforce's ``attributes`` entries, nested parents and child lists included."""
    if isinstance(value, dict):
        if set(value) >= {"records", "done", "totalSize"}:   # a child sub-query result
            return [strip_attributes(r) for r in value.get("records") or []]
        return {k: strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [strip_attributes(v) for v in value]
    return value


def rest_query(call, sf_getter, soql: str, include_deleted: bool) -> Iterator[dict]:
    """Yield records one page (2,000 by default) at a time, following ``nextRecordsUrl``.

    Only one page is held in memory; each page is fetched with retries of its own.
    """
    page = call(lambda: sf_getter().query(soql, include_deleted=include_deleted), "query")
    while True:
        for rec in page.get("records") or []:
            yield strip_attributes(rec)
        nxt = page.get("nextRecordsUrl")
        if page.get("done", True) or not nxt:
            return
        page = call(lambda: sf_getter().query_more(nxt, identifier_is_url=True), "query more")


def rest_count(call, sf_getter, soql: str) -> int:
    return int(call(lambda: sf_getter().query(soql), "count").get("totalSize", 0))


def bulk_query(call, bulk_client_getter, soql: str, *, page_size: int, timeout: float,
               expect_rows: int | None = None, pace: Pace | None = None) -> Iterator[dict]:
    """Run a Bulk 2.0 query job and yield each CSV row as a dict of strings, page by page.

    ``expect_rows``: about how many rows the query returns (paces the status polls).
    """
    for header, rows in bulk_query_pages(call, bulk_client_getter, soql, page_size=page_size, timeout=timeout,
                                         expect_rows=expect_rows, pace=pace):
        for r in rows:
            yield dict(zip(header, r))


def start_bulk_query(call, bulk_client_getter, soql: str) -> str:
    """Create a Bulk 2.0 query job; returns its id (the org starts running it at once)."""
    from simple_salesforce.bulk2 import Operation

    return call(lambda: bulk_client_getter().create_job(Operation.query, soql), "bulk query create")["id"]


def bulk_query_pages(call, bulk_client_getter, soql: str, *, page_size: int, timeout: float,
                     expect_rows: int | None = None, pace: Pace | None = None,
                     started: tuple[str, float] | None = None) -> Iterator[tuple[list, list]]:
    """Run a Bulk 2.0 query job and yield each results page as (header, rows as lists of strings).

    One API call per page of ``page_size`` rows; the CSV is parsed by the C ``csv`` reader, no dict per row.
    ``started``: (job id, ``time.monotonic()`` at its creation) of a job of this ``soql`` created
    earlier with ``start_bulk_query``, read instead of creating one.
    """
    for text in bulk_query_texts(call, bulk_client_getter, soql, page_size=page_size, timeout=timeout,
                                 expect_rows=expect_rows, pace=pace, started=started):
        header, rows = page_rows(text)
        if header is not None:
            yield header, rows


def page_rows(text: str) -> tuple[list | None, list]:
    """A results page's header (None for an empty page) and rows as lists of strings; as ``csv.DictReader``
    reads it, blank lines are skipped and a short row is padded with None."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return None, []
    width = len(header)
    return header, [r if len(r) >= width else r + [None] * (width - len(r)) for r in reader if r]


def page_columns(text: str, names: list[str]) -> list[list]:
    """The cells of the columns ``names`` of a results page, column by column: what ``page_rows``'s rows
    hold under those names (None where the header lacks the name or a short row the cell; the last
    column of a name given twice). Parsed by Arrow's reader (``values.read_csv_columns``) when it reads
    the page exactly as the ``csv`` module does, else taken from ``page_rows``."""
    from crmbridge.connectors.salesforce.values import read_csv_columns

    header = next(csv.reader(io.StringIO(text, newline="")), None)
    if header is not None and all(n in header for n in names):
        cols = read_csv_columns(text, names)
        if cols is not None:
            return cols
    header, rows = page_rows(text)
    pos = {c: i for i, c in enumerate(header or ())}
    return [[r[p] for r in rows] if (p := pos.get(n)) is not None else [None] * len(rows) for n in names]


def bulk_query_texts(call, bulk_client_getter, soql: str, *, page_size: int, timeout: float,
                     expect_rows: int | None = None, pace: Pace | None = None,
                     started: tuple[str, float] | None = None) -> Iterator[str]:
    """Run a Bulk 2.0 query job and yield each results page's CSV text (see ``bulk_query_pages``)."""
    job_id, since = started if started is not None else (start_bulk_query(call, bulk_client_getter, soql), None)
    first: list[dict] = []

    def first_page() -> dict | None:
        """The first results page in place of a status look. Salesforce serves results only once the
        job is JobComplete and answers 400 before: then the job counts as seen in progress (a query
        job shows no progress figures), and the next look, a status look, comes as long again later."""
        from simple_salesforce.exceptions import SalesforceMalformedRequest

        try:
            first.append(call(lambda: bulk_client_getter().get_query_results(job_id, "", page_size),
                              "bulk query results"))
        except SalesforceMalformedRequest:
            return {"id": job_id, "state": "InProgress"}
        return {"id": job_id, "state": "JobComplete"}

    job = wait_for_job(call, lambda: bulk_client_getter().get_job(job_id, True), "bulk query status", timeout,
                       rows=expect_rows, pace=pace, kind="query", finish=first_page, since=since, finish_tries=2)
    if job.get("state") != "JobComplete":
        raise RunFailed(f"Bulk query job {job_id} {job.get('state')}: {job.get('errorMessage') or ''}".strip())
    locator = ""
    while True:
        page = first.pop() if first else call(
            lambda: bulk_client_getter().get_query_results(job_id, locator, page_size), "bulk query results")
        yield page["records"]
        locator = page.get("locator") or ""
        if not locator or locator == "null":
            return
