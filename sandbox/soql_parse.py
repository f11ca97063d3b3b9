"""Tokenizer and recursive-descent parser for the SOQL subset the sandbox org answers.

Why not a PyPI parser: the only candidate, ``python-soql-parser`` 0.2.0, was last released in
February 2023, is a thin pyparsing grammar without positions, SOQL string escapes, datetime offsets or
date-literal ranges, and would still need all of the checking below. A hand-written tokenizer and
parser of a few hundred lines gives exact error positions in Salesforce's message layout and refuses
everything outside the subset with ``MALFORMED_QUERY`` instead of guessing.

Grammar (keywords case-insensitive)::

    query     := SELECT items FROM name [alias] [WHERE cond] [ORDER BY order (, order)*]
                 [LIMIT int] [OFFSET int] [ALL ROWS | FOR VIEW | FOR REFERENCE]
    items     := COUNT() | item (, item)*       item := path | COUNT([path]) [alias]
    cond      := unary (AND unary)* | unary (OR unary)*   -- SOQL needs parentheses to mix AND/OR
    unary     := NOT unary | ( cond ) | path op value | path [NOT] IN ( value, ... ) | path LIKE string
    value     := string | [+-]number | true | false | null | date | datetime | DATE_LITERAL[:n]
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
            raise fail(MALFORMED, f"unexpected token: '{ch}'", soql, i)
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
        raise fail(MALFORMED, f"line 1:{pos} no viable alternative at character '{text}'", soql, pos) from None


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


# ------------------------------------------------------------------------------------------------- AST

@dataclass(frozen=True)
class Path:
    """A field path as written: ``("Account", "Owner", "Username")``."""
    parts: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Count:
    """``COUNT()`` (arg None, bare) or ``COUNT(field) [alias]``."""
    arg: Path | None
    alias: str | None
    pos: int
    bare: bool


@dataclass(frozen=True)
class Value:
    kind: str  # string, number, boolean, null, date, datetime, dateliteral
    value: object
    pos: int
    pattern: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str  # = != < <= > >= LIKE IN NOTIN
    values: tuple[Value, ...]
    pos: int


@dataclass(frozen=True)
class Logic:
    op: str  # AND, OR
    items: tuple


@dataclass(frozen=True)
class Not:
    item: object


@dataclass(frozen=True)
class Order:
    path: Path
    desc: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    items: tuple  # Path | Count
    sobject: str
    sobject_pos: int
    alias: str | None
    where: object | None
    order: tuple[Order, ...]
    limit: int | None
    offset: int | None
    all_rows: bool


_CLAUSE_WORDS = {"where", "order", "limit", "offset", "for", "all", "with", "group", "having", "using", "update"}
_RESERVED = {"and", "asc", "desc", "excludes", "first", "from", "group", "having", "in", "includes", "last",
             "like", "limit", "not", "null", "nulls", "or", "select", "where", "with"}
_UNSUPPORTED = {
    "group": "GROUP BY is not supported by the sandbox org",
    "having": "HAVING is not supported by the sandbox org",
    "with": "WITH clauses are not supported by the sandbox org",
    "using": "USING SCOPE is not supported by the sandbox org",
    "typeof": "TYPEOF is not supported by the sandbox org",
    "includes": "INCLUDES is not supported by the sandbox org",
    "excludes": "EXCLUDES is not supported by the sandbox org",
}
_COMPARE_OPS = {"=", "!=", "<>", "<", "<=", ">", ">="}


# ---------------------------------------------------------------------------------------------- parser

class Parser:
    """Recursive descent over the token list; every refusal names the token and its position."""

    def __init__(self, soql: str):
        self.soql = soql
        self.toks = tokenize(soql)
        self.i = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def word(self, offset: int = 0) -> str:
        t = self.toks[min(self.i + offset, len(self.toks) - 1)]
        return t.text.lower() if t.kind == "ident" else ""

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def expect_word(self, word: str) -> Token:
        if self.word() != word:
            raise self.unexpected()
        return self.take()

    def expect_op(self, text: str) -> Token:
        if not self.is_op(text):
            raise self.unexpected()
        return self.take()

    def unexpected(self, tok: Token | None = None) -> SoqlError:
        tok = tok or self.tok
        reason = _UNSUPPORTED.get(tok.text.lower()) if tok.kind == "ident" else None
        text = f"unexpected token: '{tok.text}'" + (f" ({reason})" if reason else "")
        return fail(MALFORMED, text, self.soql, tok.pos)

    # -- query
    def parse(self) -> Query:
        self.expect_word("select")
        items = self.select_items()
        self.expect_word("from")
        obj_tok = self.take()
        if obj_tok.kind != "ident":
            raise self.unexpected(obj_tok)
        alias = None
        if self.tok.kind == "ident" and self.word() not in _CLAUSE_WORDS:
            if self.word() in _RESERVED:
                raise self.unexpected()
            alias = self.take().text
        where = None
        if self.word() == "where":
            self.take()
            where = self.condition()
        order = self.order_by() if self.word() == "order" else ()
        limit = offset = None
        if self.word() == "limit":
            self.take()
            limit = self.integer("LIMIT")
        if self.word() == "offset":
            self.take()
            offset = self.integer("OFFSET")
            if offset > MAX_OFFSET:
                raise fail(OUT_OF_RANGE, f"Maximum SOQL offset allowed is {MAX_OFFSET}", self.soql, None)
        all_rows = self.trailer()
        if self.tok.kind != "eof":
            raise self.unexpected()
        return Query(tuple(items), obj_tok.text, obj_tok.pos, alias, where, order, limit, offset, all_rows)

    def trailer(self) -> bool:
        """``ALL ROWS`` (Apex's way to include deleted rows) or the no-op ``FOR VIEW``/``FOR REFERENCE``."""
        if self.word() == "all" and self.word(1) == "rows":
            self.i += 2
            return True
        if self.word() == "for" and self.word(1) in ("view", "reference"):
            self.i += 2
            return False
        if self.word() == "for" and self.word(1) == "update":
            raise fail(MALFORMED, "FOR UPDATE is not supported by the sandbox org (Apex only)", self.soql,
                       self.tok.pos)
        return False

    def order_by(self) -> tuple[Order, ...]:
        """``ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...``; Salesforce puts nulls first when ascending."""
        self.take()
        self.expect_word("by")
        items = []
        while True:
            if self.tok.kind != "ident" or self.word() in _RESERVED:
                raise self.unexpected()
            if self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
                raise fail(MALFORMED, f"{self.tok.text}() in ORDER BY is not supported by the sandbox org",
                           self.soql, self.tok.pos)
            path = self.path()
            desc = False
            if self.word() in ("asc", "desc"):
                desc = self.take().text.lower() == "desc"
            nulls_first = not desc
            if self.word() == "nulls":
                self.take()
                if self.word() not in ("first", "last"):
                    raise self.unexpected()
                nulls_first = self.take().text.lower() == "first"
            items.append(Order(path, desc, nulls_first))
            if not self.is_op(","):
                return tuple(items)
            self.take()

    def integer(self, clause: str) -> int:
        tok = self.take()
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.unexpected(tok)
        value = int(tok.text)
        if value > MAX_INT:
            raise fail(MALFORMED, f"For input string: \"{tok.text}\" ({clause} is out of range)", self.soql, tok.pos)
        return value

    def select_items(self) -> list:
        items: list = []
        while True:
            items.append(self.select_item())
            if not self.is_op(","):
                break
            self.take()
        bare = [it for it in items if isinstance(it, Count) and it.bare]
        if bare and len(items) > 1:
            raise fail(MALFORMED, "COUNT() cannot be combined with other fields", self.soql, bare[0].pos)
        if any(isinstance(it, Count) for it in items) and any(isinstance(it, Path) for it in items):
            first = next(it for it in items if isinstance(it, Path))
            raise fail(MALFORMED, f"Field must be grouped or aggregated: {'.'.join(first.parts)}", self.soql,
                       first.pos)
        return items

    def select_item(self):
        tok = self.tok
        if self.is_op("("):
            raise fail(MALFORMED, "sub-queries are not supported by the sandbox org", self.soql, tok.pos)
        if tok.kind != "ident" or self.word() in _RESERVED:
            raise self.unexpected()
        if self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
            return self.function()
        if self.word() == "typeof":
            raise self.unexpected()
        return self.path()

    def function(self):
        tok = self.take()
        if tok.text.lower() != "count":
            raise fail(MALFORMED, f"{tok.text}() is not supported by the sandbox org (only COUNT)", self.soql,
                       tok.pos)
        self.expect_op("(")
        if self.is_op(")"):
            self.take()
            return Count(None, None, tok.pos, bare=True)
        arg = self.path()
        self.expect_op(")")
        alias = None
        if self.tok.kind == "ident" and self.word() not in _RESERVED and self.word() not in _CLAUSE_WORDS:
            alias = self.take().text
        return Count(arg, alias, tok.pos, bare=False)

    def path(self) -> Path:
        first = self.take()
        if first.kind != "ident":
            raise self.unexpected(first)
        parts = [first.text]
        while self.is_op("."):
            self.take()
            nxt = self.take()
            if nxt.kind != "ident":
                raise self.unexpected(nxt)
            parts.append(nxt.text)
        return Path(tuple(parts), first.pos)

    # -- WHERE
    def condition(self):
        items = [self.unary()]
        joiner = None
        while self.word() in ("and", "or"):
            word = self.word()
            if joiner and word != joiner:
                # Salesforce refuses `a AND b OR c`: the grouping must be spelled with parentheses.
                raise self.unexpected()
            joiner = word
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else Logic(joiner.upper(), tuple(items))

    def unary(self):
        if self.word() == "not":
            self.take()
            return Not(self.unary())
        if self.is_op("("):
            self.take()
            inner = self.condition()
            self.expect_op(")")
            return inner
        if self.tok.kind != "ident":
            raise self.unexpected()
        if self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
            raise fail(MALFORMED, f"{self.tok.text}() in WHERE is not supported by the sandbox org", self.soql,
                       self.tok.pos)
        return self.comparison()

    def comparison(self) -> Compare:
        path = self.path()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARE_OPS:
            self.take()
            op = "!=" if tok.text == "<>" else tok.text
            return Compare(path, op, (self.value(),), tok.pos)
        word = self.word()
        if word == "like":
            self.take()
            value = self.value()
            if value.kind != "string":
                raise fail(MALFORMED, "LIKE needs a string literal", self.soql, value.pos)
            return Compare(path, "LIKE", (value,), tok.pos)
        if word == "in" or (word == "not" and self.word(1) == "in"):
            self.i += 1 if word == "in" else 2
            return Compare(path, "IN" if word == "in" else "NOTIN", self.value_list(), tok.pos)
        raise self.unexpected()

    def value_list(self) -> tuple[Value, ...]:
        self.expect_op("(")
        if self.word() == "select":
            raise fail(MALFORMED, "semi-join sub-queries are not supported by the sandbox org", self.soql,
                       self.tok.pos)
        values = [self.value()]
        while self.is_op(","):
            self.take()
            values.append(self.value())
        self.expect_op(")")
        return tuple(values)

    def value(self) -> Value:
        tok = self.take()
        if tok.kind == "string":
            return Value("string", tok.value, tok.pos, tok.pattern, tok.text)
        if tok.kind in ("date", "datetime"):
            return Value(tok.kind, tok.value, tok.pos, text=tok.text)
        if tok.kind == "op" and tok.text in "+-" and self.tok.kind == "number":
            num = self.take()
            return Value("number", _number(tok.text + num.text), tok.pos, text=tok.text + num.text)
        if tok.kind == "number":
            return Value("number", _number(tok.text), tok.pos, text=tok.text)
        if tok.kind == "ident":
            low = tok.text.lower()
            if low in ("true", "false"):
                return Value("boolean", low == "true", tok.pos, text=tok.text)
            if low == "null":
                return Value("null", None, tok.pos, text=tok.text)
            return self.date_literal(tok)
        if tok.kind == "op" and tok.text == ":":
            raise fail(MALFORMED, "bind variables are only valid in Apex", self.soql, tok.pos)
        raise self.unexpected(tok)

    def date_literal(self, tok: Token) -> Value:
        name = tok.text.upper()
        n = None
        if self.is_op(":"):
            self.take()
            num = self.take()
            if num.kind != "number" or not num.text.isdigit():
                raise self.unexpected(num)
            n = int(num.text)
        if not is_date_literal(name, n):
            raise fail(MALFORMED, f"unexpected token: '{tok.text}'", self.soql, tok.pos)
        return Value("dateliteral", (name, n), tok.pos, text=tok.text if n is None else f"{tok.text}:{n}")


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def parse(soql: str) -> Query:
    """Parse one SOQL statement; raises SoqlError (MALFORMED_QUERY) outside the supported subset."""
    return Parser(soql).parse()


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
