"""The Salesforce connector: one object over simple-salesforce for describe, query and DML."""

from __future__ import annotations

import logging
import threading
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable, Iterator

from crmbridge.connectors.salesforce import auth, bulk, query as q, rest
from crmbridge.connectors.salesforce.describe import DescribeCache
from crmbridge.connectors.salesforce.polling import Pace
from crmbridge.connectors.salesforce.results import RowResult, choose_api, failed
from crmbridge.connectors.salesforce.retry import GaveUp, RetryPolicy, SessionLost
from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact

log = logging.getLogger("crmbridge.salesforce")
OPERATIONS = ("insert", "update", "upsert", "delete")
LOCK_ERROR = "UNABLE_TO_LOCK_ROW"
# Rows per page of Bulk 2.0 query results. Salesforce sets no ceiling on maxRecords (only a timeout
# risk on very large pages), and every page is an API call: 200,000 rows of a few hundred bytes is a
# page of tens of MB, read once, so reconciling 100k records costs one results call.
BULK_PAGE_ROWS = 200_000
# A Bulk query started ahead of its reader (``prefetch_bulk_query``) is read only this soon after its
# creation: later, the org may have changed since, and the reader runs the query afresh.
PREFETCH_SECONDS = 300.0


class SalesforceConnector:
    """A logged-in Salesforce org (real or the sandbox) with retries, describe cache and DML.

    ``api_calls`` counts every HTTP response received (logins included).
    """

    def __init__(self, login: auth.Login, *, api_version: str, timeout: float, max_retries: int,
                 session=None, bulk_jobs_in_flight: int = 1):
        self.api_version = api_version
        self.api_calls = 0
        self._count_lock = threading.Lock()
        self._login_lock = threading.Lock()
        self.timeout = timeout
        self.job_timeout = max(600.0, timeout * 10)
        self.bulk_page_size = BULK_PAGE_ROWS
        self.bulk_jobs_in_flight = max(1, int(bulk_jobs_in_flight))
        self.pace = Pace()
        self.clock_skew: float | None = None  # the org's clock minus ours, seconds (from the Date header)
        self._prefetched: dict[str, tuple[str, float]] = {}  # SOQL -> (Bulk query job id, monotonic start)
        self.retry = RetryPolicy(max_retries=max_retries)
        self._login = login
        self.description = login.describe
        if session is None:
            session = auth.make_session(ca_bundle=login.ca_bundle, timeout=timeout)
        elif login.ca_bundle:
            auth.trust(session, login.ca_bundle)
        session.hooks["response"].append(self._count)
        self.session = session
        self.sf = login.build(session)
        auth.finish_login(self.sf)
        self._describe = DescribeCache(self.call, lambda: self.sf)

    def _count(self, response, *args, **kwargs):
        with self._count_lock:
            self.api_calls += 1
        if self.clock_skew is None:
            self._note_clock(response)
        # Bulk CSV comes as "text/csv" without a charset; requests would then decode it as
        # ISO-8859-1 (RFC 2616) and turn 公司 into mojibake. Salesforce's CSV is always UTF-8.
        ctype = response.headers.get("Content-Type", "")
        if "csv" in ctype and "charset" not in ctype.lower():
            response.encoding = "utf-8"

    def _note_clock(self, response) -> None:
        # Salesforce stamps LastModifiedDate with its own clock; reconcile scopes its read-back by that
        # stamp, so it needs to know how far our clock is from the org's (HTTP Date: 1 s resolution).
        import time

        try:
            server = parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return
        self.clock_skew = server - time.time()

    # ----------------------------------------------------------------- plumbing
    def _relogin(self) -> bool:
        if not self._login.can_relogin:
            return False
        with self._login_lock:  # several Bulk jobs in flight may find the session expired at once
            try:
                self.sf._refresh_session()
            except Exception as exc:  # noqa: BLE001 - a failed re-login means the session is lost
                log.warning("salesforce re-login failed: %s", redact(type(exc).__name__))
                return False
            auth.finish_login(self.sf)
        return True

    def call(self, fn: Callable[[], object], what: str, *, idempotent: bool = True):
        """Run one Salesforce call with retries and one re-login on an expired session."""
        return self.retry.run(fn, what=what, relogin=self._relogin, idempotent=idempotent)

    def _call_or_fail(self, fn, what: str):
        """``call`` for reads: exhausted retries or a lost session end the run with a clear message."""
        try:
            return self.call(fn, what)
        except GaveUp as exc:
            raise RunFailed(redact(f"Salesforce {what} failed: {exc}"),
                            hint="the org is busy or unreachable; run the command again later") from None
        except SessionLost as exc:
            raise UsageError(redact(str(exc)), hint="log in again (for a token target: a fresh access token)") from None

    def bulk_client(self, sobject: str):
        """simple-salesforce's Bulk 2.0 client for ``sobject``, built with the current session id."""
        return getattr(self.sf.bulk2, sobject)._client

    # ----------------------------------------------------------------- metadata
    def describe_global(self) -> dict:
        """The org's ``GET sobjects`` result (cached)."""
        return self._describe.describe_global()

    def describe(self, sobject: str) -> dict:
        """``sobjects/{sobject}/describe`` (cached); an unknown object is a UsageError."""
        return self._describe.describe(sobject)

    def field_map(self, sobject: str) -> dict[str, dict]:
        """Describe field entries by API name."""
        return self._describe.field_map(sobject)

    def limits(self) -> dict:
        return dict(self._call_or_fail(lambda: self.sf.limits(), "limits"))

    # ----------------------------------------------------------------- queries
    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict]:
        """Stream records (without ``attributes``) page by page; memory stays at one page."""
        yield from q.rest_query(self._call_or_fail, lambda: self.sf, soql, include_deleted)

    def query_bulk(self, soql: str, *, expect_rows: int | None = None) -> Iterator[dict]:
        """Stream a Bulk 2.0 query job's rows as dicts of strings (CSV pages by Sforce-Locator).

        ``expect_rows``: about how many rows to expect, which paces the job's status polls.
        """
        yield from q.bulk_query(self._call_or_fail, lambda: self.bulk_client("Account"), soql,
                                page_size=self.bulk_page_size, timeout=self.job_timeout,
                                expect_rows=expect_rows, pace=self.pace)

    def query_bulk_pages(self, soql: str, *, expect_rows: int | None = None) -> Iterator[tuple[list, list]]:
        """Like ``query_bulk``, one (header, rows as lists of strings) per results page: for many rows.

        Reads the job ``prefetch_bulk_query`` started for the same ``soql`` (once, if recent enough)."""
        for text in self._bulk_texts(soql, expect_rows):
            header, rows = q.page_rows(text)
            if header is not None:
                yield header, rows

    def _bulk_texts(self, soql: str, expect_rows: int | None) -> Iterator[str]:
        """The CSV text of each results page of a Bulk query of ``soql`` (the prefetched job, if any)."""
        import time

        with self._count_lock:
            started = self._prefetched.pop(soql, None)
        if started is not None and time.monotonic() - started[1] > PREFETCH_SECONDS:
            started = None
        yield from q.bulk_query_texts(self._call_or_fail, lambda: self.bulk_client("Account"), soql,
                                      page_size=self.bulk_page_size, timeout=self.job_timeout,
                                      expect_rows=expect_rows, pace=self.pace, started=started)

    def query_bulk_columns(self, soql: str, names: list[str], *,
                           expect_rows: int | None = None) -> Iterator[list[list]]:
        """Like ``query_bulk_pages``, the cells of the columns ``names`` per results page, column by column
        (``query.page_columns``: None for a name the results lack): for many rows of a few known fields."""
        for text in self._bulk_texts(soql, expect_rows):
            yield q.page_columns(text, names)

    def prefetch_bulk_query(self, soql: str) -> bool:
        """Start a Bulk query job now for a ``query_bulk_pages(soql)`` that comes later, so that the org
        runs it while this process does other work (the same API calls, less waiting). Best effort:
        False when the job could not be created (the later read then creates its own)."""
        import time

        try:
            job_id = q.start_bulk_query(self._call_or_fail, lambda: self.bulk_client("Account"), soql)
        except Exception as exc:  # noqa: BLE001 - a lost head start is no failure of the caller's work
            log.info("salesforce: bulk query not started ahead (%s)", redact(type(exc).__name__))
            return False
        with self._count_lock:
            self._prefetched[soql] = (job_id, time.monotonic())
        return True

    def count(self, soql: str) -> int:
        """``totalSize`` of a ``SELECT COUNT() ...`` query."""
        return q.rest_count(self._call_or_fail, lambda: self.sf, soql)

    # ----------------------------------------------------------------- DML
    def dml(self, operation: str, sobject: str, records: list[dict], *, keys: list[str] | None = None,
            external_id_field: str | None = None, api: str = "auto",
            on_job: Callable[[str], None] | None = None,
            on_sent: Callable[[], None] | None = None,
            on_done: Callable[[], None] | None = None) -> list[RowResult]:
        """insert/update/upsert/delete ``records``; exactly one RowResult per record, in input order.

        Bulk: ``on_job`` gets the job's id before any data goes up, ``on_sent`` is called once the job
        is closed (the org processing it), ``on_done`` once the job is known done with every row of it
        succeeded, before its results are matched.

        ``api``: "rest", "bulk" or "auto" (:func:`choose_api`). Rows that fail with
        UNABLE_TO_LOCK_ROW are sent again (REST) with backoff; other errors are per-row results.
        """
        keys = self._check(operation, sobject, records, keys, external_id_field, api)
        results: list[RowResult | None] = [None] * len(records)
        todo = []
        for i, r in enumerate(records):
            problem = _missing_argument(operation, r, external_id_field)
            if problem:
                results[i] = failed(keys[i], "MISSING_ARGUMENT", problem)
            else:
                todo.append(i)
        chosen = choose_api(len(todo)) if api == "auto" else api
        every = len(todo) == len(records)  # (the records as given: they may hold their columns too)
        sub = records if every else [records[i] for i in todo]
        subkeys = keys if every else [keys[i] for i in todo]
        if not todo:
            out = []
        elif chosen == "bulk":
            out = bulk.bulk_dml(self, operation, sobject, sub, subkeys, external_id_field=external_id_field,
                                on_job=on_job, timeout=self.job_timeout, on_sent=on_sent, on_done=on_done)
        else:
            out = self._rest(operation, sobject, sub, subkeys, external_id_field)
        for i, res in zip(todo, out):
            results[i] = res
        self._retry_locked(operation, sobject, records, results, external_id_field)
        return results  # type: ignore[return-value]

    def resume_job(self, job_id: str, operation: str, sobject: str, records: list[dict], *, keys: list[str],
                   external_id_field: str | None = None) -> list[RowResult]:
        """Finish a Bulk job created earlier (perhaps by a killed process) and match its results.

        Open: upload the rows and close it; in progress: wait; then fetch results. Rows without a
        result come back as UNPROCESSED; a Failed/Aborted job's unprocessed rows as JOB_FAILED and
        an unknown job's as JOB_NOT_FOUND, so the caller resubmits exactly those rows.
        """
        keys = self._check(operation, sobject, records, keys, external_id_field, "bulk")
        payload = bulk.Payload(operation, records, external_id_field)
        results = bulk.run_job(self, job_id, operation, sobject, payload, keys, timeout=self.job_timeout)
        self._retry_locked(operation, sobject, records, results, external_id_field)
        return results

    def settle_job(self, job_id: str, sobject: str) -> str:
        """Abort a Bulk job left Open, or wait for a closed one to finish; its final state (no data sent)."""
        return bulk.settle_job(self, sobject, job_id, timeout=self.job_timeout)

    def _rest(self, operation, sobject, records, keys, external_id_field):
        return rest.rest_dml(self, operation, sobject, records, keys, external_id_field=external_id_field,
                             rel_fields=lambda: self._describe.relationship_fields(sobject))

    def _retry_locked(self, operation, sobject, records, results, external_id_field) -> None:
        # Row locks clear within seconds (another transaction on the same parent): send just those
        # rows again, with backoff, up to max_retries times.
        for attempt in range(self.retry.max_retries):
            locked = [i for i, r in enumerate(results) if r is not None and r.error_code == LOCK_ERROR]
            if not locked:
                return
            wait = self.retry.delay(attempt)
            log.warning("salesforce %s %s: %d rows hit %s, retry %d/%d in %.2fs", operation, sobject,
                        len(locked), LOCK_ERROR, attempt + 1, self.retry.max_retries, wait)
            self.retry.sleep(wait)
            again = self._rest(operation, sobject, [records[i] for i in locked],
                               [results[i].key for i in locked], external_id_field)
            for i, res in zip(locked, again):
                results[i] = res

    def _check(self, operation, sobject, records, keys, external_id_field, api) -> list[str]:
        if operation not in OPERATIONS:
            raise UsageError(f"unknown DML operation '{operation}'", hint=f"use one of {', '.join(OPERATIONS)}")
        if api not in ("auto", "rest", "bulk"):
            raise UsageError(f"unknown api '{api}'", hint="use auto, rest or bulk")
        if operation == "upsert" and not external_id_field:
            raise UsageError(f"upsert into {sobject} needs external_id_field", hint="e.g. Legacy_Id__c")
        if not isinstance(sobject, str) or not sobject.replace("_", "").isalnum():
            raise UsageError(f"'{sobject}' is not a Salesforce object API name")
        keys = [str(i) for i in range(len(records))] if keys is None else [str(k) for k in keys]
        if len(keys) != len(records):
            raise UsageError(f"{len(keys)} keys for {len(records)} {sobject} records: give one key per record")
        return keys

    def close(self) -> None:
        """Release the HTTP connections (the embedded sandbox keeps running until exit)."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _missing_argument(operation: str, record: dict, external_id_field: str | None) -> str | None:
    if operation in ("update", "delete") and not record.get("Id"):
        return f"Id not specified in an {operation} call"
    if operation == "upsert" and record.get(external_id_field) in (None, ""):
        return f"{external_id_field} not specified in an upsert call"
    return None


def connect_settings(target, settings, *, base_dir: Path, session=None) -> SalesforceConnector:
    """A connector for ``target`` (a Sandbox/Password/Token/JwtTarget) with ``settings``.

    ``session``: an optional pre-built requests session (tests mount transport adapters on it).
    """
    login = auth.login_for(target, api_version=settings.api_version, base_dir=Path(base_dir),
                           timeout=settings.timeout_seconds)
    return SalesforceConnector(login, api_version=settings.api_version, timeout=settings.timeout_seconds,
                               max_retries=settings.max_retries, session=session,
                               bulk_jobs_in_flight=getattr(settings, "bulk_jobs_in_flight", 1))


def connect(project) -> SalesforceConnector:
    """The connector for ``project.config.salesforce`` (the embedded sandbox by default)."""
    return connect_settings(project.config.salesforce, project.config.salesforce_settings, base_dir=project.root)
