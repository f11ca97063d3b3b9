"""Field values: from JSON bodies and Bulk CSV cells to the stored form, and back to REST JSON.

Stored forms follow ``schema.py``: booleans 0/1, dates ``YYYY-MM-DD``, datetimes
``YYYY-MM-DDTHH:MM:SS.000+0000`` in UTC (so text order is time order and SOQL compares them as text).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crmbridge.sandbox import ids
from crmbridge.sandbox.schema import NUMBER_TYPES, FieldDef

_DT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
                    r"\s*(Z|[+-]\d{2}:?\d{2})?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class FieldValueError(Exception):
    """A value the org rejects for a field. ``code`` is Salesforce's status code."""

    def __init__(self, code: str, message: str, fields: list[str]):
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields


def now_stamp(at: dt.datetime | None = None) -> str:
    """A datetime in the stored form, millisecond precision."""
    at = at or dt.datetime.now(dt.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime | None:
    """ISO 8601 text (``Z``, ``+08:00``, ``+0800`` or no zone = UTC) as an aware UTC datetime."""
    m = _DT_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        value = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                            int((frac or "0")[:6].ljust(6, "0")), tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        value -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value


def _type_error(f: FieldDef, raw: Any, source: str) -> FieldValueError:
    if source == "json":
        kind = {"int": "int", "boolean": "boolean", "date": "date", "datetime": "datetime"}.get(f.type, "double")
        return FieldValueError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {kind} from VALUE_STRING value "
                                                    f"{raw} or request may be missing a required field", [f.name])
    return FieldValueError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name])


def coerce(f: FieldDef, raw: Any, source: str = "json") -> Any:
    """The stored value of ``raw`` for field ``f``; ``source`` is ``json`` (REST) or ``csv`` (Bulk)."""
    if raw is None:
        return None
    t = f.type
    if isinstance(raw, (dict, list)):
        raise FieldValueError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {t} from START_OBJECT value "
                                                   f"or request may be missing a required field", [f.name])
    if t == "boolean":
        return _boolean(f, raw, source)
    if t == "int" or t in NUMBER_TYPES:
        return _number(f, raw, source)
    if t == "date":
        text = raw.strip() if isinstance(raw, str) else ""
        if parse_datetime(text) is None:
            raise _type_error(f, raw, source)
        return text[:10]  # a datetime given for a date keeps its calendar date (Salesforce drops the time)
    if t == "datetime":
        parsed = parse_datetime(str(raw)) if isinstance(raw, str) else None
        if parsed is None:
            raise _type_error(f, raw, source)
        return now_stamp(parsed)
    if t in ("reference", "id"):
        full = ids.to18(str(raw))
        if full is None:
            raise FieldValueError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {raw}", [f.name])
        return full
    return _text(f, raw)


def _boolean(f: FieldDef, raw: Any, source: str) -> int:
    if isinstance(raw, bool):
        return int(raw)
    text = str(raw).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise _type_error(f, raw, source)


def _number(f: FieldDef, raw: Any, source: str) -> Any:
    if isinstance(raw, bool):
        raise _type_error(f, raw, source)
    try:
        num = Decimal(str(raw).strip())
    except InvalidOperation:
        raise _type_error(f, raw, source) from None
    if not num.is_finite():
        raise _type_error(f, raw, source)
    if f.type == "int":
        if num != num.to_integral_value():
            raise _type_error(f, raw, source)
        if abs(num) > 2_147_483_647:
            raise _range_error(f, raw)
        return int(num)
    if f.scale or f.type in ("currency",):
        num = num.quantize(Decimal(1).scaleb(-f.scale), rounding=ROUND_HALF_UP)  # Salesforce rounds half up
    if f.precision and abs(num) >= Decimal(10) ** (f.precision - f.scale):
        raise _range_error(f, raw)
    return float(num)


def _range_error(f: FieldDef, raw: Any) -> FieldValueError:
    return FieldValueError("NUMBER_OUTSIDE_VALID_RANGE", f"{f.label}: value outside of valid range on numeric field: {raw}",
                           [f.name])


def _text(f: FieldDef, raw: Any) -> str:
    text = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    if f.length and len(text) > f.length:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise FieldValueError("STRING_TOO_LONG", f"{f.label}: data value too large: {shown} (max length={f.length})",
                              [f.name])
    if f.type == "picklist" and f.restricted_picklist and text and text not in f.picklist_values:
        raise FieldValueError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                              f"{f.label}: bad value for restricted picklist field: {text}", [f.name])
    if f.type == "email" and text and not _EMAIL_RE.match(text):
        raise FieldValueError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    if text == "" and f.type not in ("textarea",):
        return None  # Salesforce stores an empty string as null
    return text


def to_json(f: FieldDef, stored: Any) -> Any:
    """The REST JSON value of a stored value."""
    if stored is None:
        return None
    if f.type == "boolean":
        return bool(stored)
    if f.type == "int":
        return int(stored)
    if f.type in NUMBER_TYPES:
        return float(stored)
    return stored


def to_csv(f: FieldDef, stored: Any) -> str:
    """The Bulk CSV cell of a stored value (empty for null)."""
    if stored is None:
        return ""
    if f.type == "boolean":
        return "true" if stored else "false"
    if f.type in NUMBER_TYPES:
        value = float(stored)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(stored)
