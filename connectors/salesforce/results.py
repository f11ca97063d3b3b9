"""Per-row DML outcomes and the pure choice between the two Salesforce write APIs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Salesforce recommends Bulk API 2.0 for data sets above roughly 2,000 records ("Bulk API 2.0 and
# Bulk API Developer Guide: When to use Bulk API"); below that, REST sObject Collections (200
# records per call, so at most 10 calls for 2,000 rows) finish sooner than a bulk job's
# create/upload/close/poll/results round trips and count against the same daily API limit.
BULK_THRESHOLD = 2000

# sObject Collections accept at most 200 records per request (REST API Developer Guide,
# "sObject Collections").
REST_BATCH = 200


def choose_api(n_records: int) -> str:
    """``"rest"`` below :data:`BULK_THRESHOLD` records, ``"bulk"`` at or above it."""
    return "bulk" if n_records >= BULK_THRESHOLD else "rest"


@dataclass(frozen=True)
class RowResult:
    """The outcome of one input record of a DML call (exactly one per record, in input order)."""

    key: str
    success: bool
    id: str | None = None
    created: bool | None = None
    error_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d


def failed(key: str, code: str, message: str, fields=(), id: str | None = None) -> RowResult:
    return RowResult(key=key, success=False, id=id or None, created=None, error_code=code,
                     message=message, fields=tuple(fields or ()))


def parse_bulk_error(text: str) -> tuple[str, str, tuple[str, ...]]:
    """Split a Bulk ``sf__Error`` cell (``CODE:message:Field1,Field2 --``) into its parts.

    The message itself may contain colons (``Required fields are missing: [Name]``), so the code is
    the text before the first colon and the fields the text after the last one.
    """
    s = (text or "").strip()
    if s.endswith("--"):
        s = s[:-2].rstrip()
    if ":" not in s:
        return (s or "UNKNOWN_EXCEPTION"), s, ()
    code, rest = s.split(":", 1)
    message, fields = rest, ()
    if ":" in rest:
        head, tail = rest.rsplit(":", 1)
        tail = tail.strip()
        # Only treat the tail as a field list when it looks like one (API names, commas).
        if not tail or all(part.strip().replace("_", "").replace(".", "").isalnum()
                           for part in tail.split(",")):
            message = head
            fields = tuple(p.strip() for p in tail.split(",") if p.strip())
    return code.strip() or "UNKNOWN_EXCEPTION", message.strip(), fields


def from_rest_item(key: str, item: dict) -> RowResult:
    """A RowResult from one element of an sObject Collections response."""
    if item.get("success"):
        return RowResult(key=key, success=True, id=item.get("id"), created=item.get("created"),
                         error_code=None, message=None, fields=())
    errors = item.get("errors") or [{}]
    first = errors[0]
    message = "; ".join(str(e.get("message", "")) for e in errors)
    fields: list[str] = []
    for e in errors:
        for f in e.get("fields") or ():
            if f not in fields:
                fields.append(f)
    return failed(key, first.get("statusCode") or first.get("errorCode") or "UNKNOWN_EXCEPTION",
                  message, fields, id=item.get("id"))


# Codes that say nothing about the record itself: the org was busy, locked, unreachable, or the call's
# outcome is unknown. A row that ends with one of these was not refused by Salesforce: it stays
# pending and is sent again by the next run, instead of being recorded as rejected.
#   REQUEST_LIMIT_EXCEEDED / SERVER_UNAVAILABLE / UNKNOWN_EXCEPTION: org limits and server faults
#   UNABLE_TO_LOCK_ROW: another transaction held the record or its parent
#   INVALID_SESSION_ID: the session expired and could not be renewed
#   TIMEOUT / CONNECTION_ERROR / OUTCOME_UNKNOWN: transport faults (crmbridge's own labels)
#   UNPROCESSED / JOB_FAILED / JOB_NOT_FOUND: a Bulk job ended before reaching the row
TRANSIENT_CODES = frozenset({
    "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "UNABLE_TO_LOCK_ROW",
    "INVALID_SESSION_ID", "TIMEOUT", "CONNECTION_ERROR", "OUTCOME_UNKNOWN", "UNPROCESSED", "JOB_FAILED",
    "JOB_NOT_FOUND",
})


def is_transient(code: str | None) -> bool:
    """Whether a row's error code is a passing fault (retry later) rather than Salesforce refusing the record.

    Only record-level codes (field, validation, duplicate, reference ...) make a row rejected."""
    c = (code or "").strip().upper()
    return c in TRANSIENT_CODES or (c.startswith("HTTP_") and c[5:6] == "5")
