"""SOQL lexical layer: error type and layout, tokens, string/date/datetime literals, date-literal ranges.

Why hand-written (here and in ``soql_parse.py``) rather than a PyPI parser: the only candidate,
``python-soql-parser`` 0.2.0, was last released in February 2023, is a thin pyparsing grammar without
token positions, SOQL string escapes, datetime offsets or date-literal ranges, and would still need
all the checking the sandbox does. A small tokenizer and recursive-descent parser gives exact error
positions in Salesforce's message layout and refuses everything outside the subset with
``MALFORMED_QUERY`` instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MALFORMED = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
INVALID_FILTER = "INVALID_QUERY_FILTER_OPERATOR"
OUT_OF_RANGE = "NUMBER_OUTSIDE_VALID_RANGE"

# Salesforce caps OFFSET at 2,000 ("Maximum SOQL offset allowed is 2000"); clients that page with
# OFFSET must fail here as they would against a real org.
MAX_OFFSET = 2000
MAX_INT = 2**31 - 1


class SoqlError(Exception):
    """A query Salesforce would refuse; ``error_code`` and ``message`` as in its REST error body."""

    def __init__(self, error_code: str, message: str):
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def fail(code: str, text: str, soql: str, pos: int | None) -> SoqlError:
    """A SoqlError laid out as Salesforce does: the query line, a caret, the row and column, the text."""
    if pos is None:
        return SoqlError(code, text)
    row = soql.count("\n", 0, pos) + 1
    start = soql.rfind("\n", 0, pos) + 1
    end = soql.find("\n", pos)
    line = soql[start:end if end >= 0 else len(soql)]
    col = pos - start + 1
    # Long IN lists make lines of many kilobytes: echo a window around the caret only.
    lo = max(0, col - 1 - 120)
    excerpt = line[lo:lo + 240]
    caret = " " * (col - 1 - lo) + "^"
    return SoqlError(code, f"\n{excerpt}\n{caret}\nERROR at Row:{row}:Column:{col}\n{text}")


# ---------------------------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, eof
    text: str
    pos: int
    value: object = None  # decoded string / normalised date / Decimal text
    pattern: str | None = None  # strings only: the LIKE pattern with SOQL escapes kept for ESCAPE '\'


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?(?![A-Za-z0-9_])"
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![A-Za-z0-9_:T])")
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?![A-Za-z_])")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", ",", ".", ":", "+", "-")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def tokenize(soql: str) -> list[Token]:
    """Split a query into tokens; a character SOQL does not know is MALFORMED_QUERY."""
    out: list[Token] = []
    i, n = 0, len(soql)
    while i < n:
        ch = soql[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            tok, i = _string(soql, i)
            out.append(tok)
            continue
        m = _DATETIME.match(soql, i)
        if m:
            out.append(Token("datetime", m.group(0), i, _datetime_value(m, soql, i)))
            i = m.end()
            continue
        m = _DATE.match(soql, i)
        if m:
            out.append(Token("date", m.group(0), i, _date_value(m.group(0), soql, i)))
            i = m.end()
            continue
        m = _NUMBER.match(soql, i)
        if m:
            out.append(Token("number", m.group(0), i, m.group(0)))
            i = m.end()
            continue
        m = _IDENT.match(soql, i)
        if m:
            out.append(Token("ident", m.group(0), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if soql.startswith(o, i)), None)
        if op is None:
            row, col = soql.count("\n", 0, i) + 1, i - soql.rfind("\n", 0, i)
            raise fail(MALFORMED, f"line {row}:{col} no viable alternative at character '{ch}'", soql, i)
        out.append(Token("op", op, i))
        i += len(op)
    out.append(Token("eof", "<EOF>", n))
    return out


def _string(soql: str, start: int) -> tuple[Token, int]:
    """A single-quoted literal: its value, and its LIKE pattern where ``\\%``/``\\_`` stay escaped."""
    value: list[str] = []
    pattern: list[str] = []
    i = start + 1
    while i < len(soql):
        ch = soql[i]
        if ch == "'":
            return Token("string", soql[start:i + 1], start, "".join(value), "".join(pattern)), i + 1
        if ch != "\\":
            value.append(ch)
            pattern.append("\\" + ch if ch == "\\" else ch)
            i += 1
            continue
        nxt = soql[i + 1:i + 2]
        if nxt in ("%", "_"):
            value.append(nxt)
            pattern.append("\\" + nxt)
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", soql[i + 2:i + 6] or ""):
            c = chr(int(soql[i + 2:i + 6], 16))
            value.append(c)
            pattern.append("\\" + c if c in "%_\\" else c)
            i += 6
        elif nxt in _ESCAPES:
            c = _ESCAPES[nxt]
            value.append(c)
            pattern.append("\\\\" if c == "\\" else c)
            i += 2
        else:
            raise fail(MALFORMED, f"Invalid string literal '{soql[start:i + 2]}'. Illegal character sequence "
                       f"'\\{nxt}' in string literal.", soql, i)
    raise fail(MALFORMED, "unexpected token: unterminated string literal", soql, start)


def _date_value(text: str, soql: str, pos: int) -> str:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise fail(MALFORMED, f"invalid date: {text}", soql, pos) from None


def _datetime_value(m: re.Match, soql: str, pos: int) -> str:
    """The literal in UTC, in the storage layout ``YYYY-MM-DDTHH:MM:SS.fff+0000``."""
    if m.group(8) is None:
        raise fail(MALFORMED, f"invalid date time literal '{m.group(0)}': a time zone (Z or +hh:mm) is required",
                   soql, pos)
    try:
        frac = (m.group(7) or ".0")[1:]
        micro = int((frac + "000000")[:6])
        base = datetime(*(int(m.group(k)) for k in range(1, 7)), micro)
    except ValueError:
        raise fail(MALFORMED, f"invalid date time literal '{m.group(0)}'", soql, pos) from None
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        base -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return base.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{base.microsecond // 1000:03d}+0000"


# ---------------------------------------------------------------------------------------- date literals

_FIXED = {"YESTERDAY", "TODAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH", "THIS_MONTH",
          "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "LAST_QUARTER", "THIS_QUARTER", "NEXT_QUARTER",
          "LAST_YEAR", "THIS_YEAR", "NEXT_YEAR"}
_N_RE = re.compile(r"(LAST|NEXT)_N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS)|N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS)_AGO")


def is_date_literal(name: str, n: int | None) -> bool:
    """Whether ``name[:n]`` is one of the relative date literals supported (no fiscal ones)."""
    if n is None:
        return name in _FIXED
    return bool(_N_RE.fullmatch(name))


def _add_months(d, months: int):
    y, m = divmod(d.month - 1 + months, 12)
    return d.replace(year=d.year + y, month=m + 1, day=1)


def date_range(name: str, n: int | None, today) -> tuple:
    """The half-open day range ``[start, end)`` a date literal stands for, relative to ``today``.

    Weeks start on Sunday (the en_US locale, the sandbox users' locale); the org's time zone is UTC.
    """
    day = timedelta(days=1)
    week0 = today - timedelta(days=(today.weekday() + 1) % 7)
    month0 = today.replace(day=1)
    quarter0 = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
    year0 = today.replace(month=1, day=1)
    fixed = {
        "YESTERDAY": (today - day, today), "TODAY": (today, today + day), "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week0 - 7 * day, week0), "THIS_WEEK": (week0, week0 + 7 * day),
        "NEXT_WEEK": (week0 + 7 * day, week0 + 14 * day),
        "LAST_MONTH": (_add_months(month0, -1), month0), "THIS_MONTH": (month0, _add_months(month0, 1)),
        "NEXT_MONTH": (_add_months(month0, 1), _add_months(month0, 2)),
        "LAST_90_DAYS": (today - 90 * day, today + day), "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_QUARTER": (_add_months(quarter0, -3), quarter0), "THIS_QUARTER": (quarter0, _add_months(quarter0, 3)),
        "NEXT_QUARTER": (_add_months(quarter0, 3), _add_months(quarter0, 6)),
        "LAST_YEAR": (_add_months(year0, -12), year0), "THIS_YEAR": (year0, _add_months(year0, 12)),
        "NEXT_YEAR": (_add_months(year0, 12), _add_months(year0, 24)),
    }
    if n is None:
        return fixed[name]
    if name.endswith("DAYS") or name == "N_DAYS_AGO":
        # LAST_N_DAYS:n includes today (LAST_N_DAYS:1 is yesterday and today); NEXT_N_DAYS:n starts tomorrow.
        return {"LAST_N_DAYS": (today - n * day, today + day), "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
                "N_DAYS_AGO": (today - n * day, today - (n - 1) * day)}[name]
    if "WEEKS" in name:
        start, size = week0, 7
        shift = {"LAST": -n, "NEXT": 1, "N": -n}[name.split("_")[0]]
        count = 1 if name.endswith("AGO") else n
        return start + shift * size * day, start + (shift + count) * size * day
    unit = 1 if "MONTHS" in name else 3 if "QUARTERS" in name else 12
    start = month0 if unit == 1 else quarter0 if unit == 3 else year0
    shift = {"LAST": -n, "NEXT": 1, "N": -n}[name.split("_")[0]]
    count = 1 if name.endswith("AGO") else n
    return _add_months(start, shift * unit), _add_months(start, (shift + count) * unit)
