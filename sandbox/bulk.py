"""Bulk API 2.0: ingest jobs (insert, update, upsert, delete, hardDelete) and query jobs (query, queryAll).

Jobs live in the database (``_sandbox_jobs``, query answers in ``_sandbox_job_chunks``, see bulk_query) so a client that
crashed can poll the same job from a new process, and one worker thread per server processes them
asynchronously (Open -> UploadComplete -> InProgress -> JobComplete). Ingest data is validated and
written through ``dml.save`` in chunks of 10,000 rows, like Salesforce's internal batches.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
import time

from crmbridge.sandbox import ids
from crmbridge.sandbox import bulk_query
from crmbridge.sandbox.bulk_io import DELIMITERS, ENDINGS, job_info, process_ingest, results_csv
from crmbridge.sandbox.server import Request, Response, json_response
from crmbridge.sandbox.values import now_stamp

INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPS = ("query", "queryAll")
TERMINAL = ("JobComplete", "Failed", "Aborted")
_DDL = [
    """CREATE TABLE IF NOT EXISTS _sandbox_jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, object TEXT,
    operation TEXT NOT NULL, ext_field TEXT, state TEXT NOT NULL, created_by TEXT, created_date TEXT,
    system_modstamp TEXT, column_delimiter TEXT, line_ending TEXT, api_version TEXT, query TEXT, error_message TEXT,
    processed INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, processing_ms INTEGER DEFAULT 0, worker TEXT,
    data BLOB, success BLOB, failure BLOB, unprocessed BLOB, header TEXT)""",
    "CREATE TABLE IF NOT EXISTS _sandbox_job_rows (job_id TEXT NOT NULL, n INTEGER NOT NULL, line TEXT NOT NULL, "
    "PRIMARY KEY (job_id, n))",  # query answers of databases written before bulk_query's chunks
    bulk_query.DDL,
]


def _err(status: int, code: str, message: str) -> Response:
    return json_response(status, [{"errorCode": code, "message": message}])


class BulkJobs:
    """Bulk 2.0 endpoints and the worker thread of one server."""

    def __init__(self, app):
        self.app, self.store = app, app.store
        with self.store.write() as c:
            for ddl in _DDL:
                c.execute(ddl)
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}"
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-bulk", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ worker
    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=1.0)
            except queue.Empty:
                job_id = self._claimable()
            if job_id and self._claim(job_id):
                try:
                    self._process(job_id)
                except Exception as exc:  # a bug fails the job instead of killing the worker
                    self._finish(job_id, "Failed", f"UNKNOWN_EXCEPTION : {type(exc).__name__}: {exc}")

    def _claimable(self) -> str | None:
        """A job left waiting, also by a process that died (its worker is not alive)."""
        c = self.store.conn()
        for job_id, state, worker in c.execute("SELECT id, state, worker FROM _sandbox_jobs WHERE state IN "
                                               "('UploadComplete', 'InProgress') ORDER BY created_date LIMIT 20"):
            if state == "UploadComplete" or not _alive(worker):
                return job_id
        return None

    def _claim(self, job_id: str) -> bool:
        with self.store.write() as c:
            row = c.execute("SELECT state, worker FROM _sandbox_jobs WHERE id=?", (job_id,)).fetchone()
            if not row or not (row[0] == "UploadComplete" or (row[0] == "InProgress" and not _alive(row[1]))):
                return False
            c.execute("UPDATE _sandbox_jobs SET state='InProgress', worker=?, system_modstamp=? WHERE id=?",
                      (self.worker_id, now_stamp(), job_id))
        return True

    def _process(self, job_id: str) -> None:
        started = time.monotonic()
        job = self._job(job_id)
        if job["kind"] == "ingest":
            error = process_ingest(self, job)
        else:
            error = bulk_query.process_query(self, job)
            self.app.faults.bulk_pace("query", started, self._job(job_id)["processed"] or 0)
        state = self._job(job_id)["state"]
        ms = int((time.monotonic() - started) * 1000)
        if state == "Aborted":
            return
        self._finish(job_id, "Failed" if error else "JobComplete", error, ms)

    def _finish(self, job_id: str, state: str, error: str | None, ms: int = 0) -> None:
        with self.store.write() as c:
            c.execute("UPDATE _sandbox_jobs SET state=?, error_message=?, processing_ms=?, system_modstamp=? "
                      "WHERE id=? AND state != 'Aborted'", (state, error, ms, now_stamp(), job_id))

    def update(self, job_id: str, **cols) -> None:
        sets = ", ".join(f"{k}=?" for k in cols)
        with self.store.write() as c:
            c.execute(f"UPDATE _sandbox_jobs SET {sets} WHERE id=?", [*cols.values(), job_id])

    def _job(self, job_id: str) -> dict | None:
        cur = self.store.conn().execute("SELECT * FROM _sandbox_jobs WHERE id=?", (job_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    def usage(self) -> dict[str, int]:
        today = now_stamp()[:10]
        rows = self.store.conn().execute("SELECT kind, COUNT(*) FROM _sandbox_jobs WHERE created_date >= ? "
                                         "GROUP BY kind", (today,)).fetchall()
        counts = dict(rows)
        return {"ingest": counts.get("ingest", 0), "query": counts.get("query", 0)}

    # ------------------------------------------------------------------ endpoints
    def dispatch(self, req: Request, p: list[str]) -> Response:
        """``p`` is the path after ``jobs/``: ``ingest``/``query``, then a job id and a sub-resource."""
        if not p or p[0] not in ("ingest", "query"):
            return _err(404, "NOT_FOUND", "The requested resource does not exist")
        kind, rest = p[0], p[1:]
        if not rest:
            if req.method == "POST":
                return self._create(req, kind)
            if req.method == "GET":
                return self._list(req, kind)
        job = self._job(rest[0]) if rest else None
        if job is None or job["kind"] != kind:
            return _err(404, "NOT_FOUND", "The requested resource does not exist")
        if len(rest) == 1:
            if req.method == "GET":
                return json_response(200, job_info(job))
            if req.method == "PATCH":
                return self._set_state(req, job)
            if req.method == "DELETE":
                return self._delete(job)
        elif kind == "ingest" and rest[1] == "batches" and req.method == "PUT":
            return self._upload(req, job)
        elif kind == "ingest" and req.method == "GET":
            which = rest[1].lower()
            if which in ("successfulresults", "failedresults", "unprocessedrecords"):
                return Response(200, results_csv(job, which), "text/csv")
        elif kind == "query" and rest[1] == "results" and req.method == "GET":
            return self._results(req, job)
        return _err(404, "NOT_FOUND", "The requested resource does not exist")

    def _create(self, req: Request, kind: str) -> Response:
        data = None
        if kind == "ingest" and (req.headers.get("Content-Type") or "").lower().startswith("multipart/"):
            try:
                body, data = _multipart_job(req)
            except ValueError as e:
                return _err(400, "INVALIDJOB", f"InvalidJob : {e}")
        else:
            body = req.json() or {}
        if not isinstance(body, dict):
            return _err(400, "JSON_PARSER_ERROR", "The job definition must be a JSON object")
        op = body.get("operation")
        if kind == "ingest" and op not in INGEST_OPS or kind == "query" and op not in QUERY_OPS:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
        delim = body.get("columnDelimiter") or "COMMA"
        ending = body.get("lineEnding") or "LF"
        if delim not in DELIMITERS or ending not in ENDINGS:
            return _err(400, "INVALIDJOB", "InvalidJob : columnDelimiter or lineEnding is not valid")
        if (body.get("contentType") or "CSV") != "CSV":
            return _err(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        obj, ext = None, None
        if kind == "ingest":
            objdef = self.store.schema.get(body.get("object") or "")
            if objdef is None:
                return _err(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {body.get('object')}")
            obj = objdef.name
            if op == "upsert":
                f = objdef.field(body.get("externalIdFieldName") or "")
                if f is None or not f.id_lookup:
                    return _err(400, "INVALIDJOB", "InvalidJob : The field provided as externalIdFieldName, "
                                f"{body.get('externalIdFieldName')}, is not an external ID field of {obj}")
                ext = f.name
        elif not (body.get("query") or "").strip():
            return _err(400, "INVALIDJOB", "InvalidJob : query is required")
        else:
            refused = _unsupported_in_bulk_query(body["query"])
            if refused:
                return _err(400, "API_ERROR", refused)
        if data is not None:
            too_big = _upload_too_large(data)
            if too_big:
                return too_big
        with self.store.write() as c:
            job_id = ids.make_id("750", self.store.bump(c, "id:750"))
            stamp = now_stamp()
            c.execute("INSERT INTO _sandbox_jobs(id, kind, object, operation, ext_field, state, created_by, "
                      "created_date, system_modstamp, column_delimiter, line_ending, api_version, query) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (job_id, kind, obj, op, ext, "Open" if kind == "ingest" and data is None else "UploadComplete",
                       req.user_id, stamp, stamp, delim, ending, req.version, body.get("query")))
            if data is not None:  # the CSV came in the same multipart request: the job is UploadComplete
                c.execute("UPDATE _sandbox_jobs SET data=? WHERE id=?", (data, job_id))
        info = job_info(self._job(job_id))  # the state as created, before the worker can take the job
        if kind == "query" or data is not None:
            self._queue.put(job_id)
        return json_response(200, info)

    def _list(self, req: Request, kind: str) -> Response:
        rows = self.store.conn().execute("SELECT id FROM _sandbox_jobs WHERE kind=? ORDER BY created_date",
                                         (kind,)).fetchall()
        return json_response(200, {"done": True, "records": [job_info(self._job(r[0])) for r in rows],
                                   "nextRecordsUrl": None})

    def _upload(self, req: Request, job: dict) -> Response:
        if job["state"] != "Open":
            return _err(409, "INVALIDJOBSTATE", f"Job is in state {job['state']}; data can only be uploaded to an "
                                                "Open job")
        if job["data"] is not None:
            return _err(400, "BULK_API_ERROR", "Found multiple uploads for the job: only one upload is allowed")
        too_big = _upload_too_large(req.body)
        if too_big:
            return too_big
        self.update(job["id"], data=req.body, system_modstamp=now_stamp())
        return Response(201)

    def _set_state(self, req: Request, job: dict) -> Response:
        state = (req.json() or {}).get("state")
        allowed = {"UploadComplete": ("Open",), "Aborted": ("Open", "UploadComplete", "InProgress")}
        if state not in allowed or job["state"] not in allowed[state] or (job["kind"] == "query" and
                                                                          state != "Aborted"):
            return _err(400, "INVALIDJOBSTATE", f"Can't change the state of job {job['id']} from {job['state']} to "
                                                f"{state}")
        if state == "UploadComplete" and job["data"] is None:
            self.update(job["id"], state="Failed", error_message="InvalidBatch : No data was uploaded for the job",
                        system_modstamp=now_stamp())
        else:
            self.update(job["id"], state=state, system_modstamp=now_stamp())
            if state == "UploadComplete":
                self._queue.put(job["id"])
        return json_response(200, job_info(self._job(job["id"])))

    def _delete(self, job: dict) -> Response:
        # The Bulk 2.0 guide: a job can be deleted in UploadComplete, JobComplete, Aborted or Failed.
        if job["state"] not in TERMINAL + ("UploadComplete",):
            return _err(400, "INVALIDJOBSTATE", f"Job {job['id']} is {job['state']}; only an UploadComplete, "
                                                "completed, failed or aborted job can be deleted")
        with self.store.write() as c:
            state = c.execute("SELECT state FROM _sandbox_jobs WHERE id=?", (job["id"],)).fetchone()
            if state and state[0] == "InProgress":  # the worker claimed it meanwhile
                return _err(400, "INVALIDJOBSTATE", f"Job {job['id']} is InProgress; wait until it completes")
            bulk_query.delete_rows(c, job["id"])
            c.execute("DELETE FROM _sandbox_jobs WHERE id=?", (job["id"],))
        return Response(204)

    def _results(self, req: Request, job: dict) -> Response:
        if job["state"] != "JobComplete":
            return _err(400, "INVALIDJOBSTATE", f"Query job {job['id']} is {job['state']}, not JobComplete")
        try:
            start = int(base64.b64decode(req.query["locator"]).decode()) if req.query.get("locator") else 0
            size = int(req.query.get("maxRecords") or 0) or 50_000
        except ValueError:
            return _err(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
        body, count = bulk_query.page(self.store.conn(), job, start, size)
        end = start + count
        more = end < job["processed"]
        locator = base64.b64encode(str(end).encode()).decode() if more else "null"
        return Response(200, body, "text/csv", {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})


# Bulk 2.0 takes at most 150 MB of base64-encoded CSV per job ("Upload Job Data"): about 112 MiB of raw CSV.
MAX_UPLOAD_BASE64 = 150 * 1024 * 1024


def _upload_too_large(data: bytes) -> Response | None:
    encoded = (len(data) + 2) // 3 * 4
    if encoded <= MAX_UPLOAD_BASE64:
        return None
    return _err(400, "INVALIDBATCH", f"InvalidBatch : the upload is {len(data) / 1024 / 1024:.0f} MiB, "
                                     f"{encoded / 1024 / 1024:.0f} MiB once base64-encoded, over the limit of 150 MB "
                                     "per job; split the data over several jobs of at most 100 MB")


def _multipart_job(req: Request) -> tuple[dict, bytes]:
    """The ``job`` (JSON) and ``content`` (CSV) parts of a multipart create-job request."""
    import email.parser
    import email.policy
    import json

    head = f"Content-Type: {req.headers.get('Content-Type')}\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    if not msg.is_multipart():
        raise ValueError("the multipart body could not be read (check the boundary)")
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
    if "job" not in parts or "content" not in parts:
        raise ValueError("a multipart job request needs a 'job' part (JSON) and a 'content' part (CSV)")
    try:
        job = json.loads(parts["job"].get_payload(decode=True) or b"null")
    except ValueError as e:
        raise ValueError(f"the 'job' part is not JSON: {e}") from None
    return job, parts["content"].get_payload(decode=True) or b""


def _unsupported_in_bulk_query(soql_text: str) -> str | None:
    """Clauses the Bulk 2.0 guide lists as not supported in query jobs (checked when the job is created)."""
    from crmbridge.sandbox import soql_parse

    try:
        q = soql_parse.parse(soql_text)
    except soql_parse.SoqlError:
        return None  # a malformed query fails the job with the parser's message, as before
    if q.offset is not None:
        return "OFFSET is not supported in Bulk API 2.0 query jobs; page with the results locator instead"
    if q.group_by or any(isinstance(it, soql_parse.Aggregate) for it in q.items):
        return "Aggregate functions and GROUP BY are not supported in Bulk API 2.0 query jobs"
    if any(isinstance(it, soql_parse.TypeOf) for it in q.items):
        return "TYPEOF is not supported in Bulk API 2.0 query jobs"
    if any(isinstance(it, soql_parse.SubQuery) for it in q.items):
        return "Parent-to-child (nested) queries are not supported in Bulk API 2.0 query jobs"
    return None


def _alive(worker: str | None) -> bool:
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != os.uname().nodename:
        return True  # another machine's worker: assume it is alive
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True
