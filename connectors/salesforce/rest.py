"""DML through REST sObject Collections: 200 records per call, ``allOrNone=false``.

Per-record errors come back in the HTTP 200 body and become RowResults. A whole request that fails
for a reason retries cannot fix (a malformed body, an unknown field) fails each of its rows with
Salesforce's error code, so every input row still gets exactly one result.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Callable

import requests

from crmbridge.connectors.salesforce.results import REST_BATCH, RowResult, failed, from_rest_item
from crmbridge.connectors.salesforce.retry import GaveUp, SessionLost, error_code, error_message
from crmbridge.connectors.salesforce.values import rest_record


_CREATED = {"insert": True, "update": False}


def _send(api, operation: str, sobject: str, chunk: list[dict], external_id_field: str | None,
          rel_fields: dict[str, str] | None):
    sf = lambda: api.sf  # noqa: E731 - re-read after a re-login
    if operation == "delete":
        ids = ",".join(str(r.get("Id")) for r in chunk)
        return api.call(lambda: sf().restful("composite/sobjects", params={"ids": ids, "allOrNone": "false"},
                                              method="DELETE"), f"delete {sobject}")
    body = json.dumps({"allOrNone": False,
                       "records": [rest_record(r, sobject, rel_fields) for r in chunk]}, default=str)
    if operation == "insert":
        # An insert that timed out after reaching Salesforce may have been applied: not retried.
        return api.call(lambda: sf().restful("composite/sobjects", method="POST", data=body),
                        f"insert {sobject}", idempotent=False)
    if operation == "update":
        return api.call(lambda: sf().restful("composite/sobjects", method="PATCH", data=body), f"update {sobject}")
    return api.call(lambda: sf().restful(f"composite/sobjects/{sobject}/{external_id_field}", method="PATCH",
                                         data=body), f"upsert {sobject}")


def _transport_errors() -> tuple:
    from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

    return (SalesforceError, SalesforceOperationError, GaveUp, SessionLost, requests.RequestException)


# Errors a whole request can end with; DML turns them into per-row results instead of raising.
TRANSPORT_ERRORS = _transport_errors()


def chunk_failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, GaveUp):
        return exc.code, f"{exc.message} (gave up after {exc.attempts} attempts)"
    if isinstance(exc, SessionLost):
        return "INVALID_SESSION_ID", str(exc)
    if isinstance(exc, requests.ReadTimeout):
        return "OUTCOME_UNKNOWN", ("the request timed out after reaching Salesforce; the rows may or may "
                                   "not have been written - reconcile before sending them again")
    return error_code(exc), error_message(exc)


def rest_dml(api, operation: str, sobject: str, records: list[dict], keys: list[str], *,
             external_id_field: str | None, rel_fields: Callable[[], dict[str, str]] | None = None,
             progress: Callable[[int], None] | None = None) -> list[RowResult]:
    """One RowResult per record, in order, writing ``REST_BATCH`` records per request."""
    needs_rel = any("." in k and r[k] is None for r in records for k in r)
    rel = rel_fields() if (needs_rel and rel_fields) else None
    out: list[RowResult] = []
    for start in range(0, len(records), REST_BATCH):
        chunk = records[start:start + REST_BATCH]
        ck = keys[start:start + REST_BATCH]
        try:
            items = _send(api, operation, sobject, chunk, external_id_field, rel) or []
        except TRANSPORT_ERRORS as exc:
            code, msg = chunk_failure(exc)
            out.extend(failed(k, code, msg) for k in ck)
            continue
        for i, k in enumerate(ck):
            if i < len(items) and isinstance(items[i], dict):
                res = from_rest_item(k, items[i])
                if res.success and res.created is None and operation in _CREATED:
                    # Collections report "created" only for upsert; insert/update imply it.
                    res = replace(res, created=_CREATED[operation])
                out.append(res)
            else:
                out.append(failed(k, "UNPROCESSED", "Salesforce returned no result for this record"))
        if progress:
            progress(len(chunk))
    return out
