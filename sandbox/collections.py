"""sObject Collections: ``composite/sobjects`` create/update/delete/retrieve and the upsert collection
``composite/sobjects/{Object}/{ExtIdField}``. Up to 200 records a call; HTTP 200 with one result per
record; ``allOrNone`` rolls everything back when one record fails."""

from __future__ import annotations

from crmbridge.sandbox import dml, ids
from crmbridge.sandbox.server import Request, Response, SandboxApp, json_response

MAX_RECORDS = 200  # Salesforce's limit per sObject Collections call


class _Rollback(Exception):
    pass


def _limit_error() -> Response:
    return json_response(400, [{"message": "record limit reached. cannot submit more than 200 records into this call",
                                "errorCode": "EXCEEDED_ID_LIMIT"}])


def _bool(value) -> bool:
    return value is True or str(value).lower() == "true"


def collections(app: SandboxApp, req: Request, p: list[str]) -> Response:
    """Dispatch ``composite/sobjects[/...]``; ``p`` is the path after ``composite/sobjects``."""
    if req.method == "DELETE" and not p:
        return _delete(app, req)
    if req.method == "GET" and len(p) == 1:
        return _retrieve(app, req, p[0])
    if req.method == "POST" and len(p) == 1:  # retrieve with a body: {"ids": [...], "fields": [...]}
        body = req.json() or {}
        req.query.update({"ids": ",".join(body.get("ids") or []), "fields": ",".join(body.get("fields") or [])})
        return _retrieve(app, req, p[0])
    if req.method not in ("POST", "PATCH") or len(p) not in (0, 2):
        return json_response(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise dml.RequestError("JSON_PARSER_ERROR", "The request body must be {\"allOrNone\": ..., \"records\": [...]}")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        return _limit_error()
    if p:
        obj = app.store.schema.get(p[0])
        f = obj.field(p[1]) if obj else None
        if obj is None or f is None or not f.id_lookup:
            return json_response(404, [{"errorCode": "NOT_FOUND", "message": "Provided external ID field does not "
                                                                             f"exist or is not accessible: {p[1]}"}])
        op, ext = "upsert", f.name
    else:
        op, ext = ("insert" if req.method == "POST" else "update"), None
    results = _save(app, req, records, op, ext, _bool(body.get("allOrNone", False)))
    return json_response(200, [_result_json(r, op == "upsert") for r in results])


def _type_of(app: SandboxApp, rec) -> str:
    if not isinstance(rec, dict):
        raise dml.RequestError("JSON_PARSER_ERROR", "each record must be a JSON object")
    name = (rec.get("attributes") or {}).get("type")
    if not name:
        raise dml.RequestError("INVALID_FIELD", "No SObject Type defined in the record's attributes")
    obj = app.store.schema.get(name)
    if obj is None:
        raise dml.RequestError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
    return obj.name


def _save(app: SandboxApp, req: Request, records: list, op: str, ext: str | None, all_or_none: bool):
    """Save records grouped by type, in one transaction so all-or-none spans every type."""
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(_type_of(app, rec), []).append(i)
    results: list = [None] * len(records)
    try:
        with app.store.write() as c:
            for name, idx in groups.items():
                obj = app.store.schema.get(name)
                rows = [records[i] for i in idx]
                for i, r in zip(idx, dml.save(app.store, obj, op, rows, user_id=req.user_id, ext_field=ext,
                                              lock_fault=app.faults.lock_row, conn=c)):
                    results[i] = r
            if all_or_none and any(not r.success for r in results):
                raise _Rollback
    except _Rollback:
        dml.roll_back(results)
    return results


def _result_json(r: dml.RowResult, upsert: bool) -> dict:
    out: dict = {"id": r.id, "success": r.success, "errors": [e.collection() for e in r.errors]}
    if not r.success and r.id is None:
        del out["id"]
    if upsert and r.success:
        out["created"] = r.created
    return out


def _delete(app: SandboxApp, req: Request) -> Response:
    raw = [i for i in (req.query.get("ids") or "").split(",") if i]
    if not raw:
        raise dml.RequestError("MISSING_ARGUMENT", "ids parameter is required")
    if len(raw) > MAX_RECORDS:
        return _limit_error()
    all_or_none = _bool(req.query.get("allOrNone", "false"))
    results: list = [None] * len(raw)
    try:
        with app.store.write() as c:
            groups: dict[str, list[int]] = {}
            for i, value in enumerate(raw):
                obj = app.store.schema.by_prefix(value[:3]) if ids.to18(value) else None
                if obj is None:
                    results[i] = dml.RowResult(id=None)
                    results[i].fail("MALFORMED_ID", f"malformed id {value}", [])
                else:
                    groups.setdefault(obj.name, []).append(i)
            for name, idx in groups.items():
                obj = app.store.schema.get(name)
                res = dml.save(app.store, obj, "delete", [{"Id": raw[i]} for i in idx], user_id=req.user_id,
                               lock_fault=app.faults.lock_row, conn=c)
                for i, r in zip(idx, res):
                    results[i] = r
            if all_or_none and any(not r.success for r in results):
                raise _Rollback
    except _Rollback:
        dml.roll_back(results)
    return json_response(200, [_result_json(r, False) for r in results])


def _retrieve(app: SandboxApp, req: Request, name: str) -> Response:
    from crmbridge.sandbox.rest import _fetch, record_json

    obj = app.store.schema.get(name)
    if obj is None:
        return json_response(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    raw = [i for i in (req.query.get("ids") or "").split(",") if i]
    if len(raw) > 2000:
        return _limit_error()
    out = []
    for value in raw:
        rid = ids.to18(value)
        rows = _fetch(app, obj, "Id", rid) if rid else []
        out.append(record_json(obj, rows[0], req.version, req.query.get("fields") or None) if rows else None)
    return json_response(200, out)
