"""Comparing values across two systems that type them differently.

The ERP hands back ``Decimal``, ``date`` and ``datetime`` objects and integers for flags; Salesforce
hands back floats, ISO strings and JSON booleans. Both are reduced to one canonical string so that
"unchanged" means the same thing on both sides (and a second run writes nothing).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any


def canon(v: Any) -> str | None:
    """Canonical text of a value: numbers without trailing zeros, dates ISO, flags 1/0.

    Every row the sync reads goes through here once per field (content hashes, decisions), so the
    common exact types take a short path; each gives the same text as the general one below
    (tests/sync/test_values.py compares them value by value)."""
    t = type(v)
    if t is str:
        return v if v else None  # Salesforce does not keep empty strings: '' and null are the same value there
    if v is None:
        return None
    if t is int and -_INT_FAST < v < _INT_FAST:
        return str(v)
    if t is Decimal and v.is_finite():
        if v == v.to_integral_value():
            return str(v.quantize(_ONE))
        return format(v.normalize(), "f")
    return _canon(v)


_ONE = Decimal(1)
_INT_FAST = 10 ** 27  # below the 28 digits of Decimal's default context: quantize never overflows


def _canon(v: Any) -> str | None:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, Decimal)):
        return _num(v)
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="seconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    s = str(v)
    if s == "":
        return None  # Salesforce does not keep empty strings: '' and null are the same value there
    return s


def _num(v) -> str:
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        return str(v)
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


# one encoder for every row (json.dumps with options builds a new one per call); same text as
# json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_HASH_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_hash(values: dict[str, str | None]) -> str:
    """Content hash of a row's canonical mapped values (for ERPs without updated-at or row version)."""
    blob = _HASH_JSON.encode(values)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def row_hasher(fields):
    """``row_hash({f: canon(v) for f, v in vals.items()})`` for dicts keyed by exactly ``fields``, built
    without the general JSON encoder (the same text: keys sorted, strings escaped as json.dumps does
    with ensure_ascii=False). Rows with other keys take the general path."""
    from json.encoder import encode_basestring

    names = sorted(fields)
    heads = [encode_basestring(f) + ":" for f in names]
    pairs = list(zip(names, heads))
    wanted = set(names)

    def hash_row(vals: dict) -> str:
        if len(vals) != len(pairs) or not wanted.issuperset(vals):
            return row_hash({k: canon(v) for k, v in vals.items()})
        parts = []
        for f, head in pairs:
            c = canon(vals[f])
            parts.append(head + ("null" if c is None else encode_basestring(c)))
        blob = "{" + ",".join(parts) + "}"
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()

    return hash_row


def days_overdue(due, open_amount=None, *, today: date | None = None) -> int:
    """Whole days past the due date while something is still open (0 when paid or not yet due)."""
    if due is None:
        return 0
    if open_amount is not None and Decimal(str(open_amount)) <= 0:
        return 0
    if isinstance(due, str):
        due = date.fromisoformat(due[:10])
    if isinstance(due, datetime):
        due = due.date()
    today = today or datetime.now(timezone.utc).date()
    return max(0, (today - due).days)


def concat(a, b=None) -> str:
    """A readable name from two columns, e.g. an inventory row's item and warehouse."""
    if type(a) is str and type(b) is str and a and b:  # the usual case, same text as below
        return a + " / " + b
    return " / ".join(str(canon(x)) for x in (a, b) if x is not None)


COMPUTE = {"days_overdue": days_overdue, "concat": concat}


def to_erp(v: Any, python_type: type | None) -> Any:
    """A canonical/Salesforce value as the ERP column's Python type expects it."""
    if v is None or python_type is None:
        return v
    try:
        if python_type is bool:
            return v in (True, 1, "1", "true", "True")
        if python_type is int:
            return int(Decimal(str(v)))
        if python_type in (Decimal, float):
            return Decimal(str(v))
        if python_type is datetime:
            return v if isinstance(v, datetime) else datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        if python_type is date:
            return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])
    except (ValueError, InvalidOperation):
        return v  # let the database refuse it with its own message
    return str(v) if not isinstance(v, str) else v
