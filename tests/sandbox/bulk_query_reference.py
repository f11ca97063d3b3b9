"""The Bulk 2.0 query job of the sandbox before bulk_query (main at 2d3b140), kept as the reference that
the faster path is compared with byte for byte: records built and flattened one by one, one CSV line
per record stored as one row of ``_sandbox_job_rows``, a results page read back row by row."""

from __future__ import annotations

import base64
import csv
import io

from crmbridge.sandbox.bulk_io import DELIMITERS, ENDINGS


def process_query(bulk, job: dict) -> str | None:
    """Run a query job into ``_sandbox_job_rows``; returns the error message if the query fails."""
    from crmbridge.sandbox import soql

    try:
        result = soql.execute(bulk.store.conn(), bulk.store.schema, job["query"],
                              include_deleted=job["operation"] == "queryAll", api_version=job["api_version"])
    except soql.SoqlError as e:
        return f"{e.error_code} : {e.message}"
    if result.is_count:
        return "InvalidJob : Aggregate queries (COUNT()) are not supported by Bulk API 2.0 query"
    delim = DELIMITERS[job["column_delimiter"]]
    obj = result.records[0]["attributes"]["type"] if result.records else None
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="", quoting=csv.QUOTE_ALL)
    lines = []
    for n, rec in enumerate(result.records):
        buf.seek(0)
        buf.truncate()
        w.writerow(["" if v is None else v for v in soql.flatten(rec, result.columns)])
        lines.append((job["id"], n, buf.getvalue()))
    buf.seek(0)
    buf.truncate()
    w.writerow(result.columns)
    with bulk.store.write() as c:
        c.execute("DELETE FROM _sandbox_job_rows WHERE job_id=?", (job["id"],))
        c.executemany("INSERT INTO _sandbox_job_rows(job_id, n, line) VALUES (?,?,?)", lines)
        c.execute("UPDATE _sandbox_jobs SET header=?, processed=?, object=COALESCE(object, ?) WHERE id=?",
                  (buf.getvalue(), len(lines), obj, job["id"]))
    return None


def results(conn, job: dict, locator: str | None, max_records: str | None) -> tuple[int, bytes, dict]:
    """``GET jobs/query/{id}/results`` of a JobComplete job: status, body and the two Sforce headers."""
    try:
        start = int(base64.b64decode(locator).decode()) if locator else 0
        size = int(max_records or 0) or 50_000
    except ValueError:
        return 400, b"", {}
    lines = [r[0] for r in conn.execute(
        "SELECT line FROM _sandbox_job_rows WHERE job_id=? AND n >= ? ORDER BY n LIMIT ?", (job["id"], start, size))]
    end = start + len(lines)
    more = end < job["processed"]
    eol = ENDINGS[job["line_ending"]]
    body = (job["header"] + eol + "".join(line + eol for line in lines)).encode("utf-8")
    locator = base64.b64encode(str(end).encode()).decode() if more else "null"
    return 200, body, {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(lines))}
