"""``POST /composite``: up to 25 REST subrequests in one call, run in order, later ones referring to
earlier results with ``@{referenceId.path}``; ``allOrNone`` rolls every write back when one fails.

Each subrequest goes through the same REST routing as a top-level call (same user, same API version
rules), so it answers with the same status and body.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from crmbridge.sandbox.server import NOT_FOUND, Request, Response, SandboxApp, json_response

MAX_SUBREQUESTS = 25  # Salesforce's limit per composite request
MAX_QUERIES = 5  # ... of which at most 5 may be query / sObject Collections GET operations
_REF = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
HALTED = [{"errorCode": "PROCESSING_HALTED",
           "message": "The transaction was rolled back since another operation in the same transaction failed."}]


class _Rollback(Exception):
    pass


def _bad(message: str) -> Response:
    return json_response(400, [{"message": message, "errorCode": "INVALID_BATCH_REQUEST"}])


def composite(app: SandboxApp, req: Request, rest: list[str]) -> Response:
    if rest:
        return json_response(404, NOT_FOUND)
    if req.method != "POST":
        return json_response(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                    "message": f"HTTP Method '{req.method}' not allowed. Allowed are POST"}])
    body = req.json()
    subs = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subs, list) or not subs:
        return json_response(400, [{"message": "compositeRequest: a non-empty list of subrequests is required",
                                    "errorCode": "JSON_PARSER_ERROR"}])
    if len(subs) > MAX_SUBREQUESTS:
        return _bad(f"Limit exceeded: a composite request may contain at most {MAX_SUBREQUESTS} subrequests")
    queries = sum(1 for s in subs if isinstance(s, dict) and "/query" in str(s.get("url", "")).split("?")[0])
    if queries > MAX_QUERIES:
        return _bad(f"Limit exceeded: a composite request may contain at most {MAX_QUERIES} query operations")
    seen: set[str] = set()
    for s in subs:
        if not isinstance(s, dict) or not all(isinstance(s.get(k), str) and s.get(k) for k in
                                              ("method", "url", "referenceId")):
            return _bad("Each subrequest needs method, url and referenceId")
        if s["referenceId"] in seen:
            return _bad(f"Duplicate referenceId provided in the request: {s['referenceId']}")
        seen.add(s["referenceId"])
    all_or_none = bool(body.get("allOrNone"))
    results: list[dict[str, Any]] = []
    if not all_or_none:
        _run(app, req, subs, results, stop_on_error=False)
    else:
        try:
            with app.store.write():
                if _run(app, req, subs, results, stop_on_error=True):
                    raise _Rollback
        except _Rollback:
            failed = next(i for i, r in enumerate(results) if r["httpStatusCode"] >= 400)
            for i, sub in enumerate(subs):
                if i != failed:
                    entry = {"body": HALTED, "httpHeaders": {}, "httpStatusCode": 400,
                             "referenceId": sub["referenceId"]}
                    if i < len(results):
                        results[i] = entry
                    else:
                        results.append(entry)
    return json_response(200, {"compositeResponse": results})


def _run(app: SandboxApp, outer: Request, subs: list[dict], results: list[dict], *, stop_on_error: bool) -> bool:
    """Run the subrequests into ``results``; True when one failed and ``stop_on_error`` stopped the run."""
    bodies: dict[str, Any] = {}
    for sub in subs:
        try:
            url = _resolve(sub["url"], bodies, in_url=True)
            payload = _resolve_json(sub.get("body"), bodies)
        except KeyError as e:
            resp = json_response(400, [{"errorCode": "INVALID_REFERENCE",
                                        "message": f"Invalid reference specified. No value for {e.args[0]} found"}])
        else:
            resp = _call(app, outer, sub, url, payload)
        parsed = json.loads(resp.body) if resp.body and resp.content_type.startswith("application/json") else None
        bodies[sub["referenceId"]] = parsed
        headers = {k: v for k, v in resp.headers.items() if k in ("Location", "ETag", "Last-Modified")}
        if resp.status == 201 and isinstance(parsed, dict) and parsed.get("id"):
            headers["Location"] = f"{url.split('?')[0].rstrip('/')}/{parsed['id']}"
        results.append({"body": parsed if resp.body else None, "httpHeaders": headers,
                        "httpStatusCode": resp.status, "referenceId": sub["referenceId"]})
        if resp.status >= 400 and stop_on_error:
            return True
    return False


def _call(app: SandboxApp, outer: Request, sub: dict, url: str, payload: Any) -> Response:
    from crmbridge.sandbox import rest

    u = urlsplit(url)
    parts = [p for p in u.path.split("/") if p]
    version = parts[2][1:] if len(parts) > 2 and parts[:2] == ["services", "data"] else ""
    from crmbridge.sandbox.server import VERSIONS

    if parts[:2] != ["services", "data"] or version not in VERSIONS:
        return json_response(404, NOT_FOUND)
    if parts[3:4] in (["composite"], ["jobs"]):
        return json_response(400, [{"errorCode": "INVALID_BATCH_REQUEST",
                                    "message": f"{u.path} is not supported as a composite subrequest"}])
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    headers = outer.headers
    if isinstance(sub.get("httpHeaders"), dict):  # e.g. If-Modified-Since on a describe subrequest
        from crmbridge.sandbox.wsgi import Headers

        headers = Headers([*outer.headers.items(), *((str(k), str(v)) for k, v in sub["httpHeaders"].items())])
    req = Request(sub["method"].upper(), u.path, parts,
                  {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}, headers, body,
                  version=version, user_id=outer.user_id)
    from crmbridge.sandbox.dml import RequestError

    try:
        return rest.dispatch(app, req, parts[3:])
    except RequestError as e:
        return json_response(e.status, [{"message": e.message, "errorCode": e.code}])


def _lookup(ref: str, path: str, bodies: dict[str, Any]) -> Any:
    if ref not in bodies:
        raise KeyError(f"{ref}.{path}")
    value: Any = bodies[ref]
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise KeyError(f"{ref}.{path}") from None
    return value


def _resolve(text: str, bodies: dict[str, Any], in_url: bool = False) -> str:
    from urllib.parse import quote

    def sub(m: re.Match) -> str:
        value = _lookup(m.group(1), m.group(2), bodies)
        value = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        return quote(value, safe="") if in_url and "?" not in text[:m.start()] else value

    return _REF.sub(sub, text)


def _resolve_json(value: Any, bodies: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:  # a whole-value reference keeps the referenced value's JSON type
            return _lookup(whole.group(1), whole.group(2), bodies)
        return _resolve(value, bodies)
    if isinstance(value, dict):
        return {k: _resolve_json(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_json(v, bodies) for v in value]
    return value
