"""Recursive-descent parser for the SOQL subset the sandbox org answers (tokens and literals are in
``soql_lex.py``, which also says why this is hand-written rather than taken from PyPI).

Grammar (keywords case-insensitive)::

    query     := SELECT items FROM name [alias] [WHERE cond] [GROUP BY path (, path)*] [HAVING cond]
                 [ORDER BY order (, order)*] [LIMIT int] [OFFSET int] [FOR VIEW | FOR REFERENCE]
    items     := COUNT() | item (, item)*
    item      := path | AGG([path]) [alias] | FIELDS(STANDARD|CUSTOM|ALL) | ( query )   -- child sub-query
                 | TYPEOF rel WHEN Type THEN field, ... [WHEN ...] [ELSE field, ...] END
    AGG       := COUNT | COUNT_DISTINCT | SUM | AVG | MIN | MAX
    cond      := unary (AND unary)* | unary (OR unary)*   -- SOQL needs parentheses to mix AND/OR
    unary     := NOT unary | ( cond ) | lhs op value | lhs [NOT] IN ( value, ... | query ) | lhs LIKE string
    lhs       := path | AGG([path])                      -- aggregates in HAVING only
    value     := string | [+-]number | true | false | null | date | datetime | DATE_LITERAL[:n]
"""

from __future__ import annotations

from dataclasses import dataclass

from .soql_typeof import TypeOf, parse_typeof
from .soql_lex import (MALFORMED, MAX_INT, MAX_OFFSET, OUT_OF_RANGE, SoqlError, Token, fail, is_date_literal,
                       tokenize)

# ------------------------------------------------------------------------------------------------- AST

@dataclass(frozen=True)
class Path:
    """A field path as written: ``("Account", "Owner", "Username")``."""
    parts: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Aggregate:
    """``COUNT()`` (arg None, bare) or ``FUNC(field) [alias]`` (COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX)."""
    arg: Path | None
    alias: str | None
    pos: int
    bare: bool
    func: str = "COUNT"


Count = Aggregate  # the name earlier code used


@dataclass(frozen=True)
class Fields:
    """``FIELDS(STANDARD)``, ``FIELDS(CUSTOM)`` or ``FIELDS(ALL)``."""
    kind: str
    pos: int


@dataclass(frozen=True)
class SubQuery:
    """A parent-to-child sub-query in the select list, or a semi/anti-join's inner query (``query``)."""
    query: "Query"
    pos: int


@dataclass(frozen=True)
class Value:
    kind: str  # string, number, boolean, null, date, datetime, dateliteral
    value: object
    pos: int
    pattern: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Compare:
    path: Path | Aggregate  # an Aggregate only in HAVING
    op: str  # = != < <= > >= LIKE IN NOTIN
    values: tuple[Value, ...]
    pos: int
    subquery: SubQuery | None = None  # IN / NOT IN (SELECT ...): a semi- or anti-join


@dataclass(frozen=True)
class Logic:
    op: str  # AND, OR
    items: tuple


@dataclass(frozen=True)
class Not:
    item: object


@dataclass(frozen=True)
class Order:
    path: Path | Aggregate
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
    group_by: tuple[Path, ...] = ()
    having: object | None = None


AGGREGATES = {"count", "count_distinct", "sum", "avg", "min", "max"}
# Functions Salesforce has that the sandbox does not evaluate: refused by name, never answered wrongly.
_NOT_BUILT = {"calendar_month", "calendar_quarter", "calendar_year", "day_in_month", "day_in_week", "day_in_year",
              "day_only", "fiscal_month", "fiscal_quarter", "fiscal_year", "hour_in_day", "week_in_month",
              "week_in_year", "convertcurrency", "converttimezone", "format", "tolabel", "grouping",
              "distance", "geolocation"}

_CLAUSE_WORDS = {"where", "order", "limit", "offset", "for", "all", "with", "group", "having", "using", "update"}
_RESERVED = {"and", "asc", "desc", "excludes", "first", "from", "group", "having", "in", "includes", "last",
             "like", "limit", "not", "null", "nulls", "or", "select", "where", "with"}
_UNSUPPORTED = {
    "with": "WITH clauses are not supported by the sandbox org",
    "using": "USING SCOPE is not supported by the sandbox org",
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
        self.aggregates = False  # parsing HAVING: aggregate functions may be compared

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
    def parse(self, nested: bool = False) -> Query:
        """One query; ``nested``: a sub-query, which ends at its closing parenthesis."""
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
            where = self.condition(aggregates=False)
        group_by: tuple[Path, ...] = ()
        having = None
        if self.word() == "group":
            group_by = self.group_by()
        if self.word() == "having":
            if not group_by:
                raise fail(MALFORMED, "HAVING needs a GROUP BY clause", self.soql, self.tok.pos)
            self.take()
            having = self.condition(aggregates=True)
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
        if not (self.is_op(")") if nested else self.tok.kind == "eof"):
            raise self.unexpected()
        self.check_grouping(items, group_by)
        return Query(tuple(items), obj_tok.text, obj_tok.pos, alias, where, order, limit, offset, all_rows,
                     group_by, having)

    def group_by(self) -> tuple[Path, ...]:
        self.take()
        self.expect_word("by")
        if self.word() in ("rollup", "cube"):
            raise fail(MALFORMED, f"GROUP BY {self.tok.text.upper()} is not supported by the sandbox org", self.soql,
                       self.tok.pos)
        paths = [self.path()]
        while self.is_op(","):
            self.take()
            paths.append(self.path())
        return tuple(paths)

    def check_grouping(self, items: list, group_by: tuple[Path, ...]) -> None:
        """Salesforce's rule: with aggregates or GROUP BY, every selected field must be grouped."""
        has_agg = any(isinstance(it, Aggregate) for it in items)
        if not (has_agg or group_by):
            return
        grouped = {".".join(p.parts).lower() for p in group_by}
        for it in items:
            if isinstance(it, (Fields, SubQuery, TypeOf)):
                raise fail(MALFORMED, "FIELDS(), TYPEOF and sub-queries cannot be used in an aggregate query",
                           self.soql, it.pos)
            if isinstance(it, Path) and ".".join(it.parts).lower() not in grouped:
                raise fail(MALFORMED, f"Field must be grouped or aggregated: {'.'.join(it.parts)}", self.soql,
                           it.pos)
            if isinstance(it, Aggregate) and it.bare and group_by:
                raise fail(MALFORMED, "COUNT() cannot be used with GROUP BY; use COUNT(Id)", self.soql, it.pos)

    def trailer(self) -> bool:
        """``ALL ROWS`` (Apex's way to include deleted rows) or the no-op ``FOR VIEW``/``FOR REFERENCE``."""
        if self.word() == "all" and self.word(1) == "rows":
            # Apex only: through the API deleted rows come from queryAll, and Salesforce refuses the clause.
            raise fail(MALFORMED, "ALL ROWS not allowed in this context", self.soql, self.tok.pos)
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
                if self.word() not in AGGREGATES:
                    raise fail(MALFORMED, f"{self.tok.text}() in ORDER BY is not supported by the sandbox org",
                               self.soql, self.tok.pos)
                path = self.function(alias_allowed=False)
            else:
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
        bare = [it for it in items if isinstance(it, Aggregate) and it.bare]
        if bare and len(items) > 1:
            raise fail(MALFORMED, "COUNT() cannot be combined with other fields", self.soql, bare[0].pos)
        return items

    def select_item(self):
        tok = self.tok
        if self.is_op("("):
            self.take()
            if self.word() != "select":
                raise self.unexpected()
            inner = self.parse(nested=True)
            self.expect_op(")")
            if inner.group_by or any(isinstance(it, (Aggregate, SubQuery, TypeOf)) for it in inner.items):
                raise fail(MALFORMED, "a child sub-query cannot aggregate, use TYPEOF or nest another sub-query",
                           self.soql, tok.pos)
            return SubQuery(inner, tok.pos)
        if tok.kind != "ident" or self.word() in _RESERVED:
            raise self.unexpected()
        if self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
            if self.word() == "fields":
                return self.fields()
            return self.function()
        if self.word() == "typeof" and self.toks[self.i + 1].kind == "ident":
            return parse_typeof(self)
        return self.path()

    def fields(self) -> Fields:
        tok = self.take()
        self.expect_op("(")
        kind = self.take()
        if kind.kind != "ident" or kind.text.lower() not in ("standard", "custom", "all"):
            raise fail(MALFORMED, "FIELDS() takes STANDARD, CUSTOM or ALL", self.soql, kind.pos)
        self.expect_op(")")
        return Fields(kind.text.upper(), tok.pos)

    def function(self, alias_allowed: bool = True) -> Aggregate:
        tok = self.take()
        name = tok.text.lower()
        if name not in AGGREGATES:
            what = "a date or conversion function" if name in _NOT_BUILT else "a function"
            raise fail(MALFORMED, f"{tok.text.upper()}() is {what} the sandbox org does not evaluate (it supports "
                       "COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX and FIELDS)", self.soql, tok.pos)
        self.expect_op("(")
        if self.is_op(")"):
            if name != "count":
                raise fail(MALFORMED, f"{tok.text.upper()}() needs a field", self.soql, tok.pos)
            self.take()
            return Aggregate(None, None, tok.pos, bare=True)
        if self.tok.kind == "ident" and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
            raise fail(MALFORMED, f"{self.tok.text.upper()}() inside {tok.text.upper()}() is not supported by the "
                       "sandbox org", self.soql, self.tok.pos)
        arg = self.path()
        self.expect_op(")")
        alias = None
        if alias_allowed and self.tok.kind == "ident" and self.word() not in _RESERVED \
                and self.word() not in _CLAUSE_WORDS:
            alias = self.take().text
        return Aggregate(arg, alias, tok.pos, bare=False, func=name.upper())

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
    def condition(self, aggregates: bool | None = None):
        if aggregates is not None:  # a top-level WHERE or HAVING; parenthesised parts keep the setting
            self.aggregates = aggregates
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
            if self.aggregates and self.word() in AGGREGATES:
                return self.comparison(self.function(alias_allowed=False))
            if self.word() in AGGREGATES:
                raise fail(MALFORMED, f"{self.tok.text.upper()}() can be filtered in HAVING, not in WHERE",
                           self.soql, self.tok.pos)
            raise fail(MALFORMED, f"{self.tok.text.upper()}() in WHERE is a function the sandbox org does not "
                       "evaluate", self.soql, self.tok.pos)
        return self.comparison()

    def comparison(self, lhs: Aggregate | None = None) -> Compare:
        path = lhs or self.path()
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
            op = "IN" if word == "in" else "NOTIN"
            if self.is_op("(") and self.word(1) == "select":
                start = self.take()
                saved = self.aggregates
                inner = self.parse(nested=True)
                self.aggregates = saved
                self.expect_op(")")
                return Compare(path, op, (), tok.pos, SubQuery(inner, start.pos))
            return Compare(path, op, self.value_list(), tok.pos)
        raise self.unexpected()

    def value_list(self) -> tuple[Value, ...]:
        self.expect_op("(")
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
