"""REST API handlers under ``/services/data/vXX.X/``: resources, sObjects (describe, CRUD, upsert,
updated/deleted), query/queryAll with paging, and limits. sObject Collections live in ``collections.py``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from crmbridge.sandbox import dml, ids
from crmbridge.sandbox.describe import describe, global_entry
from crmbridge.sandbox.schema import ObjectDef
from crmbridge.sandbox.server import DAILY_API_MAX, NOT_FOUND, Request, Response, SandboxApp, json_response
from crmbridge.sandbox.values import parse_datetime, to_json

PAGE_SIZE = 2000  # Salesforce's default query batch; Sforce-Query-Options: batchSize=200..2000 changes it
MAX_CURSORS = 200
ENTITY_DELETED = [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]


def err(status: int, code: str, message: str, fields=()) -> Response:
    return json_response(status, [{"message": message, "errorCode": code, "fields": list(fields)}])


def dispatch(app: SandboxApp, req: Request, p: list[str]) -> Response:
    """Route a REST call; ``p`` is the path after ``/services/data/vXX.X/``."""
    if not p:
        return json_response(200, _resources(req.version))
    head = p[0]
    if head == "sobjects":
        return _sobjects(app, req, p[1:])
    if head in ("query", "queryAll") and req.method == "GET":
        return _query(app, req, head == "queryAll", p[1] if len(p) > 1 else None)
    if head == "composite" and p[1:2] == ["sobjects"]:
        from crmbridge.sandbox.collections import collections

        return collections(app, req, p[2:])
    if head == "composite":
        from crmbridge.sandbox.composite import composite

        return composite(app, req, p[1:])
    if head == "limits" and req.method == "GET" and p[1:] == ["recordCount"]:
        return _record_count(app, req)
    if head == "limits" and req.method == "GET" and len(p) == 1:
        return json_response(200, limits(app))
    return json_response(404, NOT_FOUND)


def _resources(version: str) -> dict[str, str]:
    base = f"/services/data/v{version}"
    return {k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "limits", "composite", "jobs", "search")}


def limits(app: SandboxApp) -> dict[str, Any]:
    """``GET /limits``: the org's limits with what is left of them."""
    used = app.api_calls
    bulk = app.bulk.usage()

    def lim(mx: int, used_: int = 0) -> dict[str, int]:
        return {"Max": mx, "Remaining": max(mx - used_, 0)}

    return {
        "ConcurrentAsyncGetReportInstances": lim(200), "ConcurrentSyncReportRuns": lim(20),
        "DailyApiRequests": lim(DAILY_API_MAX, used), "DailyAsyncApexExecutions": lim(250000),
        "DailyBulkApiBatches": lim(15000, bulk["ingest"]), "DailyBulkV2QueryFileStorageMB": lim(976562),
        "DailyBulkV2QueryJobs": lim(10000, bulk["query"]), "DailyStreamingApiEvents": lim(10000),
        "DataStorageMB": lim(1024, app.store.db_path.stat().st_size // (1024 * 1024)), "FileStorageMB": lim(1024),
        "HourlyTimeBasedWorkflow": lim(1000), "MassEmail": lim(5000), "SingleEmail": lim(5000),
    }


def _record_count(app: SandboxApp, req: Request) -> Response:
    """``GET limits/recordCount?sObjects=A,B``: live (not deleted) records per object; all objects without
    ``sObjects``. Unknown names are left out, as Salesforce does."""
    schema = app.store.schema
    wanted = req.query.get("sObjects")
    objs = [schema.get(n.strip()) for n in wanted.split(",")] if wanted is not None else list(schema.objects.values())
    conn = app.store.conn()
    out = [{"count": conn.execute(f'SELECT COUNT(*) FROM "{o.name}" WHERE IsDeleted = 0').fetchone()[0],
            "name": o.name} for o in objs if o is not None]
    return json_response(200, {"sObjects": out})


# ---------------------------------------------------------------------------- sObjects
def _sobjects(app: SandboxApp, req: Request, p: list[str]) -> Response:
    schema = app.store.schema
    if not p and req.method == "GET":
        return _cacheable(app, req, lambda: {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            global_entry(o, req.version) for o in schema.objects.values()]})
    obj = schema.get(p[0])
    if obj is None:
        return json_response(404, NOT_FOUND)
    if len(p) == 1:
        if req.method == "POST":
            return _create(app, req, obj)
        if req.method == "GET":
            return json_response(200, {"objectDescribe": global_entry(obj, req.version), "recentItems": []})
    elif len(p) == 2 and p[1] == "describe" and req.method == "GET":
        rts = app.store.conn().execute('SELECT Id, Name, DeveloperName FROM "RecordType" WHERE SobjectType = ? AND '
                                       'IsDeleted = 0 AND IsActive = 1 ORDER BY Name', (obj.name,)).fetchall()
        return _cacheable(app, req, lambda: describe(schema, obj, req.version, rts))
    elif len(p) == 2 and p[1] in ("updated", "deleted") and req.method == "GET":
        return _changes(app, req, obj, p[1])
    elif len(p) == 2:
        return _by_id(app, req, obj, p[1])
    elif len(p) == 3:
        return _by_external(app, req, obj, p[1], p[2])
    return json_response(404, NOT_FOUND)


def _cacheable(app: SandboxApp, req: Request, build) -> Response:
    """A describe answer with ``Last-Modified`` / ``ETag`` (when the schema last changed); ``If-Modified-Since``
    or ``If-None-Match`` that is still current gets 304 without a body, as Salesforce answers describe."""
    from email.utils import formatdate, parsedate_to_datetime

    headers = {"Last-Modified": formatdate(app.store.schema_modified, usegmt=True), "ETag": app.store.schema_etag}
    since, tag = req.headers.get("If-Modified-Since"), req.headers.get("If-None-Match")
    if tag is not None and tag.strip() == app.store.schema_etag:
        return Response(304, headers=headers)
    if since and tag is None:
        try:
            if parsedate_to_datetime(since).timestamp() >= app.store.schema_modified:
                return Response(304, headers=headers)
        except (TypeError, ValueError):
            pass  # an unreadable date is ignored, as HTTP says
    return json_response(200, build(), headers)


def _single(app: SandboxApp, req: Request, obj: ObjectDef, op: str, row: dict, ext: str | None = None):
    if not isinstance(row, dict):
        raise dml.RequestError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {obj.name} from the request body")
    return dml.save(app.store, obj, op, [row], user_id=req.user_id, ext_field=ext,
                    lock_fault=app.faults.lock_row)[0]


def _row_error(result: dml.RowResult) -> Response:
    first = result.errors[0]
    if first.code == "ENTITY_IS_DELETED":
        return json_response(404, ENTITY_DELETED)
    if first.code in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID") and first.fields == ("Id",):
        return json_response(404, NOT_FOUND)
    return json_response(400, [e.rest() for e in result.errors])


def _create(app: SandboxApp, req: Request, obj: ObjectDef) -> Response:
    res = _single(app, req, obj, "insert", req.json())
    if not res.success:
        return _row_error(res)
    return json_response(201, {"id": res.id, "success": True, "errors": []})


def _by_id(app: SandboxApp, req: Request, obj: ObjectDef, raw_id: str) -> Response:
    rid = ids.to18(raw_id)
    if rid is None or rid[:3] != obj.key_prefix:
        if req.method == "GET" and obj.field(raw_id) is None:
            return err(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {raw_id}")
        return json_response(404, NOT_FOUND)
    if req.method == "GET":
        row = _fetch(app, obj, "Id", rid, live=False)
        if not row:
            return json_response(404, NOT_FOUND)
        if row[0]["IsDeleted"]:
            return json_response(404, ENTITY_DELETED)
        return json_response(200, record_json(obj, row[0], req.version, req.query.get("fields")))
    if req.method == "PATCH":
        res = _single(app, req, obj, "update", {**(req.json() or {}), "Id": rid})
        return _row_error(res) if not res.success else Response(204)
    if req.method == "DELETE":
        res = dml.save(app.store, obj, "delete", [{"Id": rid}], user_id=req.user_id, lock_fault=app.faults.lock_row)[0]
        return _row_error(res) if not res.success else Response(204)
    return json_response(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{req.method}' not "
                                                                               f"allowed. Allowed are GET,PATCH,DELETE"}])


def _by_external(app: SandboxApp, req: Request, obj: ObjectDef, ext: str, value: str) -> Response:
    f = obj.field(ext)
    if f is None or not (f.id_lookup or (f.unique and req.method == "GET")):
        return err(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {ext}")
    if f.name == "Id":
        if req.method == "PATCH" and ids.to18(value) is None:
            return json_response(404, NOT_FOUND)
        if req.method == "PATCH":
            res = _single(app, req, obj, "update", {**(req.json() or {}), "Id": value})
            return _upserted(req, obj, res)
        return _by_id(app, req, obj, value)
    if req.method == "PATCH":
        body = req.json() or {}
        if not isinstance(body, dict):
            raise dml.RequestError("JSON_PARSER_ERROR", "Cannot deserialize the request body")
        body = {k: v for k, v in body.items() if k.lower() != f.name.lower()}
        res = _single(app, req, obj, "upsert", {**body, f.name: value}, ext=f.name)
        return _upserted(req, obj, res)
    rows = _fetch(app, obj, f.name, value)
    if len(rows) > 1:
        return json_response(300, [f"/services/data/v{req.version}/sobjects/{obj.name}/{r['Id']}" for r in rows])
    if not rows:
        return json_response(404, NOT_FOUND)
    if req.method == "DELETE":
        return _by_id(app, req, obj, rows[0]["Id"])
    return json_response(200, record_json(obj, rows[0], req.version, req.query.get("fields")))


def _upserted(req: Request, obj: ObjectDef, res: dml.RowResult) -> Response:
    if not res.success:
        first = res.errors[0]
        if first.code == "DUPLICATE_EXTERNAL_ID" and "more than one record" in first.message:
            found = first.message.rsplit("[", 1)[1].rstrip("]").split(", ")
            return json_response(300, [f"/services/data/v{req.version}/sobjects/{obj.name}/{i}" for i in found])
        return _row_error(res)
    if res.created:
        return json_response(201, {"id": res.id, "success": True, "errors": [], "created": True})
    if float(req.version) < 46.0:
        return Response(204)  # before API 46.0 an upsert that updated answered 204 No Content
    return json_response(200, {"id": res.id, "success": True, "errors": [], "created": False})


def _fetch(app: SandboxApp, obj: ObjectDef, column: str, value: str, live: bool = True) -> list[dict]:
    coll = " COLLATE NOCASE" if column != "Id" else ""
    extra = ' AND "IsDeleted" = 0' if live else ""
    cur = app.store.conn().execute(f'SELECT * FROM "{obj.name}" WHERE "{column}" = ?{coll}{extra}', (value,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def record_json(obj: ObjectDef, row: dict, version: str, fields: str | None = None) -> dict[str, Any]:
    """A stored row as the REST API returns a record (all fields, or the comma-separated ``fields``)."""
    if fields:
        wanted = []
        for name in (n.strip() for n in fields.split(",") if n.strip()):
            f = obj.field(name)
            if f is None:
                raise dml.RequestError("INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'. If you are "
                                                        "attempting to use a custom field, be sure to append the '__c' "
                                                        "after the custom field name.")
            wanted.append(f)
    else:
        wanted = list(obj.fields.values())
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
    for f in wanted:
        out[f.name] = to_json(f, row.get(f.name))
    if not fields:
        out.update(compound_addresses(obj, out))
    return out


_ADDRESS_PARTS = (("street", "Street"), ("city", "City"), ("state", "State"), ("postalCode", "PostalCode"),
                  ("country", "Country"), ("latitude", "Latitude"), ("longitude", "Longitude"),
                  ("geocodeAccuracy", "GeocodeAccuracy"))


def compound_addresses(obj: ObjectDef, rec: dict[str, Any]) -> dict[str, Any]:
    """Compound address fields (BillingAddress, MailingAddress, Organization's Address) that a full-record
    GET returns beside their parts: a prefix with both ``Street`` and ``City`` fields makes one."""
    out = {}
    for f in obj.fields.values():
        if f.name.endswith("Street") and obj.field(f.name[:-6] + "City") is not None:
            prefix = f.name[:-6]
            out[f"{prefix}Address"] = {key: rec.get(prefix + part) for key, part in _ADDRESS_PARTS}
    return out


def _changes(app: SandboxApp, req: Request, obj: ObjectDef, kind: str) -> Response:
    start, end = parse_datetime(req.query.get("start", "")), parse_datetime(req.query.get("end", ""))
    if start is None or end is None:
        return err(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 datetimes")
    from crmbridge.sandbox.values import now_stamp

    lo, hi = now_stamp(start), now_stamp(end)
    rows = app.store.conn().execute(f'SELECT Id, SystemModstamp FROM "{obj.name}" WHERE SystemModstamp >= ? AND '
                                    f'SystemModstamp <= ? AND IsDeleted = ? ORDER BY SystemModstamp',
                                    (lo, hi, 1 if kind == "deleted" else 0)).fetchall()
    if kind == "updated":
        return json_response(200, {"ids": [r[0] for r in rows], "latestDateCovered": hi})
    return json_response(200, {"deletedRecords": [{"id": r[0], "deletedDate": r[1]} for r in rows],
                               "earliestDateAvailable": lo, "latestDateCovered": hi})


# ---------------------------------------------------------------------------- query
def _query(app: SandboxApp, req: Request, include_deleted: bool, locator: str | None) -> Response:
    if locator:
        return _next_page(app, req, locator)
    q = req.query.get("q")
    if not q:
        return err(400, "MALFORMED_QUERY", "A query string must be provided with the q parameter")
    from crmbridge.sandbox import soql

    try:
        result = soql.execute(app.store.conn(), app.store.schema, q, include_deleted=include_deleted,
                              api_version=req.version)
    except soql.SoqlError as e:
        return json_response(400, [{"message": e.message, "errorCode": e.error_code}])
    if result.is_count:
        return json_response(200, {"totalSize": result.total_size, "done": True, "records": []})
    return json_response(200, _page(app, req, list(result.records), result.total_size, 0, None))


def _batch_size(req: Request) -> int:
    opts = req.headers.get("Sforce-Query-Options") or ""
    for part in opts.split(","):
        k, _, v = part.strip().partition("=")
        if k.strip() == "batchSize" and v.strip().isdigit():
            return min(max(int(v), 200), PAGE_SIZE)
    return PAGE_SIZE


def _page(app: SandboxApp, req: Request, records: list, total: int, pos: int, locator: str | None) -> dict:
    size = _batch_size(req)
    page = records[pos:pos + size]
    out: dict[str, Any] = {"totalSize": total, "done": pos + size >= len(records), "records": page}
    if not out["done"]:
        if locator is None:
            locator = "01g" + ids.INSTANCE + secrets.token_hex(6)
            with app.lock:
                if len(app.cursors) >= MAX_CURSORS:  # drop the oldest cursor, like an expired locator
                    app.cursors.pop(next(iter(app.cursors)))
                app.cursors[locator] = (records, total, time.time())
        out["nextRecordsUrl"] = f"/services/data/v{req.version}/query/{locator}-{pos + size}"
    return out


def _next_page(app: SandboxApp, req: Request, locator: str) -> Response:
    loc, _, pos = locator.rpartition("-")
    cursor = app.cursors.get(loc)
    if cursor is None or not pos.isdigit() or int(pos) > len(cursor[0]):
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return json_response(200, _page(app, req, cursor[0], cursor[1], int(pos), loc))
