"""DML through Bulk API 2.0 ingest jobs, including picking up a job a killed process left behind.

Results CSVs (successful, failed, unprocessed) are not in input order, and Salesforce rejects
columns it does not know, so no row number can travel with the data. Rows are matched back by what
Salesforce echoes: the Id for update/delete, the external id for upsert, the whole row for insert
(identical insert rows are interchangeable, so a queue per key is enough).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Callable

from crmbridge.connectors.salesforce.polling import wait_for_job
from crmbridge.connectors.salesforce.rest import TRANSPORT_ERRORS, chunk_failure
from crmbridge.errors import RunFailed
from crmbridge.gcscope import paused as gc_paused
from crmbridge.connectors.salesforce.results import RowResult, failed, parse_bulk_error
from crmbridge.connectors.salesforce.values import (BULK_NULL, csv_columns, csv_header, csv_value, read_csv,
                                                    read_csv_columns, to_csv)

# "A request can provide CSV data that does not in total exceed 150 MB of base64 encoded content"
# (Bulk API 2.0 Developer Guide, Upload Job Data). Base64 turns every 3 bytes into 4, so the CSV
# itself may hold up to 112.5 MB; keep 1 MB of headroom. simple-salesforce stops at 100 MB of CSV
# (its MAX_INGEST_JOB_FILE_SIZE), which is why ``upload`` sends the bytes itself.
MAX_ENCODED_BYTES = 150_000_000
MAX_UPLOAD_BYTES = MAX_ENCODED_BYTES * 3 // 4 - 1024 * 1024


def encoded_size(csv_bytes: int) -> int:
    """The size of ``csv_bytes`` bytes of CSV once base64-encoded, the measure of the upload limit."""
    return 4 * ((csv_bytes + 2) // 3)


def row_bytes(record: dict) -> int:
    """An upper bound of the UTF-8 bytes ``record`` takes as one CSV line (every cell quoted, quotes
    doubled), for cutting a load into jobs as large as the upload limit allows."""
    cells = [csv_value(v) for v in record.values()]
    text = "".join(cells)
    return len(text.encode("utf-8")) + text.count('"') + 3 * len(cells) + 1


class Payload:
    """The CSV for one job and how to recognise each input row in the results."""

    def __init__(self, operation: str, records: list[dict], external_id_field: str | None):
        self.operation = operation
        self.header = ["Id"] if operation in ("delete", "hardDelete") else csv_header(records)
        self.columns = csv_columns(records, self.header)  # the CSV cells, column by column
        self._n = len(records)
        self._rows: list[tuple] | None = None
        if operation in ("delete", "hardDelete", "update"):
            self.key_cols = ["Id"]
        elif operation == "upsert":
            self.key_cols = [external_id_field or "Id"]
        else:
            self.key_cols = list(self.header)
        pos = {c: i for i, c in enumerate(self.header)}
        self._key_pos = [pos.get(c) for c in self.key_cols]
        self._data: bytes | None = None

    @property
    def rows(self) -> list[tuple[str, ...]]:
        """Each record's CSV cells (built when first asked for: the upload and the keys need none)."""
        if self._rows is None:
            self._rows = list(zip(*self.columns)) if self.columns else [() for _ in range(self._n)]
        return self._rows

    def csv(self) -> str:
        return to_csv(self.header, self.rows)

    def data(self) -> bytes:
        """The CSV as the UTF-8 bytes that go up (built once)."""
        if self._data is None:
            self._data = self.csv().encode("utf-8")
        return self._data

    def input_key(self, i: int) -> tuple:
        return tuple("" if p is None else self.columns[p][i] for p in self._key_pos)

    def input_keys(self) -> list[tuple]:
        """``input_key`` of every row (same result), in one pass."""
        if len(self._key_pos) == 1 and self._key_pos[0] is not None:
            return list(zip(self.columns[self._key_pos[0]]))
        return [self.input_key(i) for i in range(self._n)]


def _norm(key: tuple) -> tuple:
    # Fallback when Salesforce echoes a value normalised (case of booleans, trimmed blanks, nulls).
    return tuple("" if v.strip().upper() == BULK_NULL else v.strip().casefold() for v in key)


class Matcher:
    """Each input row's result, found by the key Salesforce echoes (exact first, then normalised)."""

    def __init__(self, payload: Payload, keys: list[str]):
        self.payload = payload
        self.keys = keys
        self.results: list[RowResult | None] = [None] * len(keys)
        inputs = payload.input_keys()
        # the rows whose key no other row has (every row of an upsert): found by one look-up
        first = dict(zip(inputs, range(len(inputs))))
        self._exact: dict[tuple, deque] | None = None
        if len(first) == len(inputs):
            self.unique: dict[tuple, int] = first  # no key twice: the queues below wait for a repeated result
        else:
            self.unique = {k: q[0] for k, q in self.exact.items() if len(q) == 1}
        self._loose: dict[tuple, deque] | None = None

    @property
    def exact(self) -> dict[tuple, deque]:
        # each key's rows in input order (built when first needed: an upsert's keys are all unique)
        if self._exact is None:
            self._exact = defaultdict(deque)
            for i, key in enumerate(self.payload.input_keys()):
                self._exact[key].append(i)
        return self._exact

    @property
    def loose(self) -> dict[tuple, deque]:
        # built on the first miss only: Salesforce echoes most values exactly as sent
        if self._loose is None:
            self._loose = defaultdict(deque)
            for i, key in enumerate(self.payload.input_keys()):
                self._loose[_norm(key)].append(i)
        return self._loose

    def _take(self, key: tuple) -> int | None:
        i = self.unique.get(key)
        if i is not None and self.results[i] is None:
            return i  # what the queue below gives (its only index, not taken yet)
        q = self.exact.get(key)
        while q:
            i = q.popleft()
            if self.results[i] is None:
                return i
        q = self.loose.get(_norm(key))
        while q:
            i = q.popleft()
            if self.results[i] is None:
                return i
        return None

    def _succeed(self, i: int, sf_id: str | None, created: str | None) -> None:
        created = (created or "").strip().lower()
        self.results[i] = RowResult(key=self.keys[i], success=True, id=sf_id or None,
                                    created=True if created == "true" else False if created == "false" else None,
                                    error_code=None, message=None, fields=())

    def add_success(self, key: tuple, sf_id: str | None, created: str | None) -> None:
        i = self._take(key)
        if i is not None:
            self._succeed(i, sf_id, created)

    def add_successes(self, rows) -> int:
        """``add_success`` of every ``(key, sf_id, created)`` of ``rows`` (same result), a key seen once
        (every row of a clean upsert) found by one look-up; returns the number of rows."""
        unique, results = self.unique, self.results
        n = 0
        for key, sf_id, created in rows:
            n += 1
            i = unique.get(key)
            if i is None or results[i] is not None:
                i = self._take(key)
                if i is None:
                    continue
            self._succeed(i, sf_id, created)
        return n

    def add_failure(self, key: tuple, sf_id: str | None, error: str | None) -> None:
        i = self._take(key)
        if i is not None:
            code, msg, fields = parse_bulk_error(error or "")
            # A failed insert/upsert created nothing: an sf__Id there is not a record to remember.
            rid = sf_id if self.payload.operation in ("update", "delete", "hardDelete") else None
            self.results[i] = failed(self.keys[i], code, msg, fields, id=rid)

    def finish(self, code: str, message: str) -> list[RowResult]:
        return [r if r is not None else failed(self.keys[i], code, message) for i, r in enumerate(self.results)]


def _each(text: str, key_cols: list[str], *extra: str):
    """(key tuple, extra cells...) for each row of a results CSV, by column position."""
    if len(key_cols) == 1:  # upsert, update, delete: three columns of many, read column-wise
        cols = read_csv_columns(text, [key_cols[0], *extra])
        if cols is not None:
            yield from zip(zip(cols[0]), *cols[1:])
            return
    header, rows = read_csv(text)
    pos = {c: i for i, c in enumerate(header)}
    kp = [pos.get(c) for c in key_cols]
    xp = [pos.get(c) for c in extra]
    width = len(header)
    for r in rows:
        if len(r) < width:
            r = r + [""] * (width - len(r))
        yield (tuple("" if p is None else r[p] for p in kp), *("" if p is None else r[p] for p in xp))


def _add_successes(api, sobject: str, job_id: str, matcher: Matcher,
                   on_all: Callable[[], None] | None = None) -> int:
    """Fetch the job's successful results into ``matcher``; returns how many rows the file held.
    ``on_all``: called before they are matched when the file holds a row for every record (the job is
    done and every row succeeded)."""
    text = api.call(lambda: api.bulk_client(sobject).get_ingest_results(job_id, "successfulResults"),
                    "bulk successful results")
    rows = _each(text, matcher.payload.key_cols, "sf__Id", "sf__Created")
    if on_all is not None:
        rows = list(rows)
        if len(rows) == len(matcher.keys):
            on_all()
    return matcher.add_successes(rows)


class EarlyResults:
    """``finish`` for ``wait_for_job``: the successful results fetched at the job's expected end, in
    place of a status look. When they hold every row, every row is done and succeeded (the job's
    final info is implied, no failed results to fetch); otherwise the successes found are kept, so
    that a job that ends with failures does not download them twice."""

    def __init__(self, api, sobject: str, job_id: str, payload: Payload, keys: list[str],
                 on_done: Callable[[], None] | None = None):
        self.api, self.sobject, self.job_id = api, sobject, job_id
        self.payload, self.keys, self.on_done = payload, keys, on_done
        self.matcher: Matcher | None = None
        self.found = 0  # rows in the successful results file fetched
        self.done = False

    def __call__(self) -> dict | None:
        from simple_salesforce.exceptions import SalesforceMalformedRequest

        try:
            with gc_paused():  # a RowResult per record, no cycles
                matcher = Matcher(self.payload, self.keys)
                found = _add_successes(self.api, self.sobject, self.job_id, matcher, self.on_done)
        except SalesforceMalformedRequest:
            return None  # an org that serves no results before the job's end: look at its status
        self.matcher, self.found = matcher, found
        self.done = found == len(self.keys) and all(r is not None for r in matcher.results)
        if not self.done:
            return None
        return {"id": self.job_id, "state": "JobComplete", "numberRecordsProcessed": found, "numberRecordsFailed": 0}

    def all_successes(self, job: dict) -> bool:
        """Whether the successes fetched early are all the finished ``job``'s (then kept, not fetched again)."""
        processed, bad_n = _count(job, "numberRecordsProcessed"), _count(job, "numberRecordsFailed")
        return (self.matcher is not None and job.get("state") == "JobComplete" and processed is not None
                and bad_n is not None and processed - bad_n == self.found)


def fetch_results(api, sobject: str, job_id: str, matcher: Matcher, job: dict | None = None,
                  have_successes: int | None = None) -> None:
    """Match the job's successful and failed rows. ``job``: its final info; a result file the job's
    counts say is empty is not fetched (one API call saved per clean job), nor the successful results
    when ``matcher`` already holds all ``have_successes`` of them."""
    client = lambda: api.bulk_client(sobject)  # noqa: E731 - re-read after a re-login
    processed, bad_n = _count(job, "numberRecordsProcessed"), _count(job, "numberRecordsFailed")
    trust = job is not None and job.get("state") == "JobComplete" and processed is not None and bad_n is not None
    if not trust or (processed - bad_n > 0 and processed - bad_n != have_successes):
        _add_successes(api, sobject, job_id, matcher)
    if not trust or bad_n > 0:
        bad = api.call(lambda: client().get_ingest_results(job_id, "failedResults"), "bulk failed results")
        for key, sf_id, error in _each(bad, matcher.payload.key_cols, "sf__Id", "sf__Error"):
            matcher.add_failure(key, sf_id, error)


def _once(f: Callable[[], None] | None) -> Callable[[], None]:
    """``f`` (if any) called the first time only."""
    called: list = []

    def once() -> None:
        if f is not None and not called:
            called.append(True)
            f()

    return once


def _count(job: dict | None, name: str) -> int | None:
    try:
        return int(job[name]) if job is not None and job.get(name) is not None else None
    except (TypeError, ValueError):
        return None


def create_job(api, operation: str, sobject: str, external_id_field: str | None) -> str:
    from simple_salesforce.bulk2 import Operation

    op = Operation(operation)
    job = api.call(lambda: api.bulk_client(sobject).create_job(op, external_id_field=external_id_field),
                   f"bulk {operation} {sobject} create")
    return job["id"]


def upload(api, sobject: str, job_id: str, data: bytes | str) -> None:
    """``PUT`` the job's CSV, through simple-salesforce's request helper but without its 100 MB cap
    (and without encoding the text twice, as its ``upload_job_data`` does)."""
    from simple_salesforce.util import call_salesforce

    body = data.encode("utf-8") if isinstance(data, str) else data
    if encoded_size(len(body)) > MAX_ENCODED_BYTES:
        raise ValueError(f"{len(body)} bytes of CSV exceed the Bulk API 2.0 upload limit")

    def put():
        client = api.bulk_client(sobject)
        url = client._construct_request_url(job_id, False) + "/batches"
        headers = client._get_headers(client.CSV_CONTENT_TYPE, client.JSON_CONTENT_TYPE)
        return call_salesforce(url=url, method="PUT", session=client.session, headers=headers, data=body)

    api.call(put, f"bulk upload {job_id}")


def upload_and_close(api, sobject: str, job_id: str, data: bytes | str) -> dict:
    """Upload the CSV and close the job; returns the job info Salesforce answers the close with."""
    upload(api, sobject, job_id, data)
    return dict(api.call(lambda: api.bulk_client(sobject).close_job(job_id), f"bulk close {job_id}") or {})


def _finish_upload(api, sobject: str, job_id: str, data: bytes) -> None:
    """Upload and close an Open job that a killed process may already have uploaded to."""
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    try:
        upload(api, sobject, job_id, data)
    except SalesforceMalformedRequest as exc:
        # Bulk 2.0 takes one upload per job (BULK_API_ERROR "multiple uploads"): the data is
        # already there, the process died before closing the job.
        if "upload" not in str(getattr(exc, "content", "")).lower():
            raise
    api.call(lambda: api.bulk_client(sobject).close_job(job_id), f"bulk close {job_id}")


def run_job(api, job_id: str, operation: str, sobject: str, payload: Payload, keys: list[str], *,
            timeout: float, upload_if_open: bool = True, submitted: bool = False,
            on_done: Callable[[], None] | None = None) -> list[RowResult]:
    """Drive job ``job_id`` to its end (upload/close if still Open) and match its results to the rows.

    ``submitted``: this process just uploaded and closed the job (no need to look at it first).
    ``on_done``: called once, before the results are matched, when the job is known done with every
    row succeeded (from its final info or from its successful results).
    """
    from simple_salesforce.exceptions import SalesforceResourceNotFound

    client = lambda: api.bulk_client(sobject)  # noqa: E731
    look_first = not submitted
    if not submitted:
        try:
            job = api.call(lambda: client().get_job(job_id, False), f"bulk status {job_id}")
        except SalesforceResourceNotFound:
            return Matcher(payload, keys).finish(
                "JOB_NOT_FOUND", f"Bulk job {job_id} does not exist in this org; submit the rows again")
        if job.get("state") == "Open" and upload_if_open:
            _finish_upload(api, sobject, job_id, payload.data())
            look_first = False
    done = _once(on_done)
    early = EarlyResults(api, sobject, job_id, payload, keys, done)
    job = wait_for_job(api.call, lambda: client().get_job(job_id, False), f"bulk status {job_id}", timeout,
                       rows=len(keys), pace=getattr(api, "pace", None), kind="ingest", look_first=look_first,
                       finish=early)
    state = job.get("state")
    if state == "JobComplete" and _count(job, "numberRecordsFailed") == 0 \
            and _count(job, "numberRecordsProcessed") == len(keys):
        done()
    matcher = early.matcher if early.all_successes(job) else Matcher(payload, keys)
    try:
        if not early.done:
            fetch_results(api, sobject, job_id, matcher, job, early.found if matcher is early.matcher else None)
    except Exception:  # noqa: BLE001 - an aborted job may have no results; rows fall to JOB_FAILED
        if state == "JobComplete":
            raise
    if state != "JobComplete":
        # Rows the job did process keep their real outcome (a created record must not be resent).
        return matcher.finish("JOB_FAILED", f"Bulk job {job_id} {state}: {job.get('errorMessage') or 'no message'}")
    return matcher.finish("UNPROCESSED", f"Bulk job {job_id} has no result for this row; submit it again")


def bulk_dml(api, operation: str, sobject: str, records: list[dict], keys: list[str], *,
             external_id_field: str | None, on_job: Callable[[str], None] | None,
             timeout: float, on_sent: Callable[[], None] | None = None,
             on_done: Callable[[], None] | None = None) -> list[RowResult]:
    """Create a job, tell ``on_job`` its id before any data goes up, then upload, close, wait, match.
    ``on_sent``: called once the job is closed (its data up, the org at work on it); ``on_done``: see
    ``run_job``."""
    from crmbridge.errors import UsageError

    with gc_paused():  # a tuple of cells per record, no cycles: no collector passes over them
        payload = Payload(operation, records, external_id_field)
        data = payload.data()
    if encoded_size(len(data)) > MAX_ENCODED_BYTES:
        raise UsageError(f"{len(records)} {sobject} rows make {len(data) / 1e6:.1f} MB of CSV, "
                         f"{encoded_size(len(data)) / 1e6:.1f} MB base64-encoded: over the Bulk API 2.0 upload "
                         "limit of 150 MB", hint="pass fewer rows per call")
    try:
        job_id = create_job(api, operation, sobject, external_id_field)
    except TRANSPORT_ERRORS as exc:
        code, msg = chunk_failure(exc)
        return [failed(k, code, msg) for k in keys]
    if on_job is not None:
        on_job(job_id)
    try:
        upload_and_close(api, sobject, job_id, data)
    except TRANSPORT_ERRORS as exc:
        # Nothing was processed yet: abort so that a later resume cannot half-apply the job.
        code, msg = chunk_failure(exc)
        try:
            api.call(lambda: api.bulk_client(sobject).abort_job(job_id, False), f"bulk abort {job_id}")
        except Exception:  # noqa: BLE001 - best effort; resume_job reports the job's real state
            pass
        return [failed(k, code, f"{msg} (Bulk job {job_id} aborted)") for k in keys]
    if on_sent is not None:
        on_sent()
    try:
        return run_job(api, job_id, operation, sobject, payload, keys, timeout=timeout, upload_if_open=False,
                       submitted=True, on_done=on_done)
    except TRANSPORT_ERRORS as exc:
        # The data is with Salesforce and may be applied: resending would duplicate inserts.
        code, msg = chunk_failure(exc)
        raise RunFailed(f"Bulk job {job_id} ({operation} {sobject}): results could not be fetched: {code}: {msg}",
                        hint="run the same command again later: the load picks the job up from its journal "
                             "and does not resend its rows") from None


def settle_job(api, sobject: str, job_id: str, *, timeout: float) -> str:
    """Bring a job a killed process left behind to a final state without sending anything: an Open
    job (data perhaps uploaded, never closed) is aborted, a closed one is waited for. Returns the state
    (``NotFound`` for a job the org does not know)."""
    from simple_salesforce.exceptions import SalesforceResourceNotFound

    client = lambda: api.bulk_client(sobject)  # noqa: E731
    try:
        job = api.call(lambda: client().get_job(job_id, False), f"bulk status {job_id}")
    except SalesforceResourceNotFound:
        return "NotFound"
    if job.get("state") == "Open":
        api.call(lambda: client().abort_job(job_id, False), f"bulk abort {job_id}")
    job = wait_for_job(api.call, lambda: client().get_job(job_id, False), f"bulk status {job_id}", timeout)
    return str(job.get("state"))
