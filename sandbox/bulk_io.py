"""Bulk API 2.0 data handling: job info JSON, CSV parsing, chunked ingest processing and result CSVs
(query jobs: bulk_query)."""

from __future__ import annotations

import csv
import io
import time

from crmbridge.sandbox import dml

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
CHUNK_ROWS = 10_000  # Salesforce processes an ingest job in internal batches of 10,000 records


def job_info(job: dict) -> dict:
    """The job as ``GET jobs/ingest/{id}`` / ``jobs/query/{id}`` returns it."""
    info = {"id": job["id"], "operation": job["operation"], "object": job["object"],
            "createdById": job["created_by"], "createdDate": job["created_date"],
            "systemModstamp": job["system_modstamp"], "state": job["state"], "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": float(job["api_version"]), "lineEnding": job["line_ending"],
            "columnDelimiter": job["column_delimiter"], "retries": 0,
            "totalProcessingTime": job["processing_ms"] or 0}
    if job["kind"] == "ingest":
        info.update({"jobType": "V2Ingest", "externalIdFieldName": job["ext_field"],
                     "numberRecordsProcessed": job["processed"] or 0, "numberRecordsFailed": job["failed"] or 0,
                     "apiActiveProcessingTime": job["processing_ms"] or 0, "apexProcessingTime": 0})
        if info["externalIdFieldName"] is None:
            del info["externalIdFieldName"]
        info["contentUrl"] = f"services/data/v{job['api_version']}/jobs/ingest/{job['id']}/batches"
    else:
        info.update({"jobType": "V2Query", "numberRecordsProcessed": job["processed"] or 0, "query": job["query"]})
        if job["object"] is None:
            info["object"] = None
    if job["error_message"]:
        info["errorMessage"] = job["error_message"]
    return info


def _writer(job: dict) -> tuple[io.StringIO, csv.writer]:
    buf = io.StringIO()
    return buf, csv.writer(buf, delimiter=DELIMITERS[job["column_delimiter"]], lineterminator=ENDINGS[job["line_ending"]])


def _check_header(bulk, job: dict, header: list[str]) -> str | None:
    obj = bulk.store.schema.get(job["object"])
    if job["operation"] in ("delete", "hardDelete"):
        extra = [h for h in header if h.lower() != "id"]
        return f"InvalidBatch : Field name not found : {extra[0]}" if extra or not header else None
    for h in header:
        rel, dot, _ = h.partition(".")
        if (obj.field(h) if not dot else obj.relationship(rel)) is None and h.lower() != "id":
            return f"InvalidBatch : Field name not found : {h}"
    if len({h.lower() for h in header}) != len(header):
        return "InvalidBatch : Duplicate field names in the header"
    ext = job["ext_field"]
    if ext and ext.lower() not in {h.lower() for h in header}:
        return f"InvalidBatch : Field name not found : {ext}"
    return None


def process_ingest(bulk, job: dict) -> str | None:
    """Run an ingest job; returns the job's error message if the whole job fails."""
    started = time.monotonic()
    text = bytes(job["data"] or b"").decode("utf-8-sig", errors="replace")
    first_eol = text.find("\n")
    if first_eol > 0 and (text[first_eol - 1] == "\r") != (job["line_ending"] == "CRLF"):
        # Salesforce checks the data against the job's lineEnding instead of guessing.
        return f"ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {job['line_ending']}"
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job["column_delimiter"]]))
    rows = [r for r in rows if r]
    if not rows:
        return "InvalidBatch : No data was uploaded for the job"
    header, data = rows[0], rows[1:]
    problem = _check_header(bulk, job, header)
    if problem:
        return problem
    obj = bulk.store.schema.get(job["object"])
    ok_buf, ok = _writer(job)
    bad_buf, bad = _writer(job)
    _result_header(ok_buf, ok, job, "sf__Created", header)
    _result_header(bad_buf, bad, job, "sf__Error", header)
    processed = failed = 0
    for start in range(0, len(data), CHUNK_ROWS):
        if bulk._job(job["id"])["state"] == "Aborted":
            _unprocessed(bulk, job, header, data[start:])
            break
        chunk = data[start:start + CHUNK_ROWS]
        records = [dict(zip(header, r)) for r in chunk]
        try:
            results = dml.save(bulk.store, obj, job["operation"], records, user_id=job["created_by"],
                               ext_field=job["ext_field"], source="csv", lock_fault=bulk.app.faults.lock_row)
        except dml.RequestError as e:
            return f"InvalidBatch : {e.message}"
        for row, res in zip(chunk, results):
            if res.success:
                ok.writerow([res.id, "true" if res.created else "false", *row])
            else:
                failed += 1
                bad.writerow([res.id or "", " ".join(e.bulk() for e in res.errors), *row])
        processed += len(chunk)
        bulk.app.faults.bulk_pace("ingest", started, processed)
        bulk.update(job["id"], processed=processed, failed=failed,
                    success=ok_buf.getvalue().encode("utf-8"), failure=bad_buf.getvalue().encode("utf-8"))
    return None


def _result_header(buf: io.StringIO, w, job: dict, second: str, header: list[str]) -> None:
    # Salesforce quotes its own two result columns and echoes the input header after them.
    d = DELIMITERS[job["column_delimiter"]]
    buf.write(f'"sf__Id"{d}"{second}"{d}')
    w.writerow(header)


def _unprocessed(bulk, job: dict, header: list[str], rows: list[list[str]]) -> None:
    buf, w = _writer(job)
    w.writerow(header)
    w.writerows(rows)
    bulk.update(job["id"], unprocessed=buf.getvalue().encode("utf-8"))


def results_csv(job: dict, which: str) -> bytes:
    """The stored successful / failed / unprocessed CSV (header only when there is nothing yet)."""
    if which == "successfulresults":
        return bytes(job["success"] or b'"sf__Id","sf__Created"\n')
    if which == "failedresults":
        return bytes(job["failure"] or b'"sf__Id","sf__Error"\n')
    if job["unprocessed"]:
        return bytes(job["unprocessed"])
    if job["state"] in ("Open", "Aborted") and job["data"] and not job["processed"]:
        return bytes(job["data"])  # nothing was processed: every uploaded row is unprocessed
    first = bytes(job["data"] or b"").split(b"\n", 1)[0]
    return first + b"\n" if first else b""
