"""DML through Bulk API 2.0 ingest jobs, including picking up a job a killed process left behind.

Results CSVs (successful, failed, unprocessed) are not in input order, and Salesforce rejects
columns it does not know, so no row number can travel with the data. Rows are matched back by what
Salesforce echoes: the Id for update/delete, the external id for upsert, the whole row for insert
(identical insert rows are interchangeable, so a queue per key is enough).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Callable

from crmbridge.connectors.salesforce.query import wait_for_job
from crmbridge.connectors.salesforce.rest import TRANSPORT_ERRORS, chunk_failure
from crmbridge.errors import RunFailed
from crmbridge.connectors.salesforce.results import RowResult, failed, parse_bulk_error
from crmbridge.connectors.salesforce.values import BULK_NULL, csv_header, csv_rows, read_csv, to_csv

# Bulk API 2.0 accepts up to 150 MB of base64-encoded data per job, i.e. about 100 MB of CSV
# (simple-salesforce's MAX_INGEST_JOB_FILE_SIZE); stay a little under it.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024 - 1024 * 1024


class Payload:
    """The CSV for one job and how to recognise each input row in the results."""

    def __init__(self, operation: str, records: list[dict], external_id_field: str | None):
        self.operation = operation
        self.header = ["Id"] if operation in ("delete", "hardDelete") else csv_header(records)
        self.rows = csv_rows(records, self.header)
        if operation in ("delete", "hardDelete", "update"):
            self.key_cols = ["Id"]
        elif operation == "upsert":
            self.key_cols = [external_id_field or "Id"]
        else:
            self.key_cols = list(self.header)

    def csv(self) -> str:
        return to_csv(self.header, self.rows)

    def input_key(self, i: int) -> tuple:
        row = dict(zip(self.header, self.rows[i]))
        return tuple(row.get(c, "") for c in self.key_cols)

    def result_key(self, row: dict) -> tuple:
        return tuple(row.get(c, "") for c in self.key_cols)


def _norm(key: tuple) -> tuple:
    # Fallback when Salesforce echoes a value normalised (case of booleans, trimmed blanks, nulls).
    return tuple("" if v.strip().upper() == BULK_NULL else v.strip().casefold() for v in key)


class Matcher:
    def __init__(self, payload: Payload, keys: list[str]):
        self.payload = payload
        self.keys = keys
        self.results: list[RowResult | None] = [None] * len(keys)
        self.exact: dict[tuple, deque] = defaultdict(deque)
        self.loose: dict[tuple, deque] = defaultdict(deque)
        for i in range(len(keys)):
            k = payload.input_key(i)
            self.exact[k].append(i)
            self.loose[_norm(k)].append(i)

    def _take(self, row: dict) -> int | None:
        k = self.payload.result_key(row)
        for table, key in ((self.exact, k), (self.loose, _norm(k))):
            q = table.get(key)
            while q:
                i = q.popleft()
                if self.results[i] is None:
                    return i
        return None

    def add_success(self, row: dict) -> None:
        i = self._take(row)
        if i is not None:
            created = str(row.get("sf__Created", "")).strip().lower()
            self.results[i] = RowResult(key=self.keys[i], success=True, id=row.get("sf__Id") or None,
                                        created=True if created == "true" else False if created == "false" else None,
                                        error_code=None, message=None, fields=())

    def add_failure(self, row: dict) -> None:
        i = self._take(row)
        if i is not None:
            code, msg, fields = parse_bulk_error(row.get("sf__Error", ""))
            # A failed insert/upsert created nothing: an sf__Id there is not a record to remember.
            rid = row.get("sf__Id") if self.payload.operation in ("update", "delete", "hardDelete") else None
            self.results[i] = failed(self.keys[i], code, msg, fields, id=rid)

    def finish(self, code: str, message: str) -> list[RowResult]:
        return [r if r is not None else failed(self.keys[i], code, message) for i, r in enumerate(self.results)]


def _rows(text: str) -> list[dict]:
    header, rows = read_csv(text)
    return [dict(zip(header, r)) for r in rows]


def fetch_results(api, sobject: str, job_id: str, matcher: Matcher) -> None:
    client = lambda: api.bulk_client(sobject)  # noqa: E731 - re-read after a re-login
    ok = api.call(lambda: client().get_ingest_results(job_id, "successfulResults"), "bulk successful results")
    for row in _rows(ok):
        matcher.add_success(row)
    bad = api.call(lambda: client().get_ingest_results(job_id, "failedResults"), "bulk failed results")
    for row in _rows(bad):
        matcher.add_failure(row)


def create_job(api, operation: str, sobject: str, external_id_field: str | None) -> str:
    from simple_salesforce.bulk2 import Operation

    op = Operation(operation)
    job = api.call(lambda: api.bulk_client(sobject).create_job(op, external_id_field=external_id_field),
                   f"bulk {operation} {sobject} create")
    return job["id"]


def upload_and_close(api, sobject: str, job_id: str, data: str) -> None:
    api.call(lambda: api.bulk_client(sobject).upload_job_data(job_id, data), f"bulk upload {job_id}")
    api.call(lambda: api.bulk_client(sobject).close_job(job_id), f"bulk close {job_id}")


def _finish_upload(api, sobject: str, job_id: str, data: str) -> None:
    """Upload and close an Open job that a killed process may already have uploaded to."""
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    try:
        api.call(lambda: api.bulk_client(sobject).upload_job_data(job_id, data), f"bulk upload {job_id}")
    except SalesforceMalformedRequest as exc:
        # Bulk 2.0 takes one upload per job (BULK_API_ERROR "multiple uploads"): the data is
        # already there, the process died before closing the job.
        if "upload" not in str(getattr(exc, "content", "")).lower():
            raise
    api.call(lambda: api.bulk_client(sobject).close_job(job_id), f"bulk close {job_id}")


def run_job(api, job_id: str, operation: str, sobject: str, payload: Payload, keys: list[str], *,
            timeout: float, upload_if_open: bool = True) -> list[RowResult]:
    """Drive job ``job_id`` to its end (upload/close if still Open) and match its results to the rows."""
    from simple_salesforce.exceptions import SalesforceResourceNotFound

    client = lambda: api.bulk_client(sobject)  # noqa: E731
    matcher = Matcher(payload, keys)
    try:
        job = api.call(lambda: client().get_job(job_id, False), f"bulk status {job_id}")
    except SalesforceResourceNotFound:
        return matcher.finish("JOB_NOT_FOUND", f"Bulk job {job_id} does not exist in this org; submit the rows again")
    if job.get("state") == "Open" and upload_if_open:
        _finish_upload(api, sobject, job_id, payload.csv())
    job = wait_for_job(api.call, lambda: client().get_job(job_id, False), f"bulk status {job_id}", timeout)
    state = job.get("state")
    try:
        fetch_results(api, sobject, job_id, matcher)
    except Exception:  # noqa: BLE001 - an aborted job may have no results; rows fall to JOB_FAILED
        if state == "JobComplete":
            raise
    if state != "JobComplete":
        # Rows the job did process keep their real outcome (a created record must not be resent).
        return matcher.finish("JOB_FAILED", f"Bulk job {job_id} {state}: {job.get('errorMessage') or 'no message'}")
    return matcher.finish("UNPROCESSED", f"Bulk job {job_id} has no result for this row; submit it again")


def bulk_dml(api, operation: str, sobject: str, records: list[dict], keys: list[str], *,
             external_id_field: str | None, on_job: Callable[[str], None] | None,
             timeout: float) -> list[RowResult]:
    """Create a job, tell ``on_job`` its id before any data goes up, then upload, close, wait, match."""
    from crmbridge.errors import UsageError

    payload = Payload(operation, records, external_id_field)
    data = payload.csv()
    if len(data.encode("utf-8")) > MAX_UPLOAD_BYTES:
        raise UsageError(f"{len(records)} {sobject} rows make more than 100 MB of CSV, over the Bulk API 2.0 "
                         "upload limit", hint="pass fewer rows per call (lower chunk_rows in crmbridge.yml)")
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
    try:
        return run_job(api, job_id, operation, sobject, payload, keys, timeout=timeout, upload_if_open=False)
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
