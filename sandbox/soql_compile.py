"""Compiles a parsed SOQL query to parameterised SQLite SQL over the sandbox storage layout.

Parent relationships become LEFT JOINs, every literal a bound parameter. Where Salesforce and SQL
differ, Salesforce wins: string comparisons ignore case, ``!=``/``NOT IN``/``NOT`` keep null values, a
boolean ``= null`` matches false, an empty string is null, Ids compare in their 18-character form
whatever the case or length written, and a literal of the wrong type is INVALID_FIELD.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from .schema import NUMBER_TYPES, TEXT_TYPES, FieldDef, ObjectDef, Schema
from .soql_lex import INVALID_FIELD, INVALID_FILTER, INVALID_TYPE, MALFORMED, date_range, fail
from .soql_parse import Aggregate, Compare, Logic, Not, Path, Value

_ID_TYPES = {"id", "reference"}
_STRING_TYPES = TEXT_TYPES - _ID_TYPES
# Salesforce's own names for field types in its "must be of type X" messages.
_TYPE_WORDS = {"int": "integer", "datetime": "dateTime", "boolean": "boolean", "date": "date", "double": "double",
               "currency": "currency", "percent": "percent", "id": "id", "reference": "reference"}
_NOT_FILTERABLE = "field '{}' can not be filtered in a query call"


# ------------------------------------------------------------------------------------------------- Ids

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def to18(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character Salesforce Id, or None if it is not one.

    An 18-character Id written in the wrong case still names the record: its suffix spells the case.
    """
    if len(value) not in (15, 18) or not value.isascii() or not value.isalnum():
        return None
    chars = list(value[:15])
    if len(value) == 18:
        for chunk, code in enumerate(value[15:].upper()):
            bits = _SUFFIX.find(code)
            if bits < 0:
                return None
            for j in range(5):
                c = chars[chunk * 5 + j]
                chars[chunk * 5 + j] = c.upper() if bits >> j & 1 else c.lower()
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << j for j in range(5) if chars[chunk * 5 + j].isupper())
        suffix += _SUFFIX[bits]
    return "".join(chars) + suffix


# ------------------------------------------------------------------------------------------ compilation

@dataclass
class _Join:
    alias: str
    obj: ObjectDef
    rel_name: str  # relationshipName as the schema spells it


@dataclass
class Compiler:
    """Turns one query's paths and conditions into SQL text, joins and bound parameters."""

    soql: str
    schema: Schema
    root: ObjectDef
    alias: str | None
    today: date
    joins: dict[tuple[str, ...], _Join] = field(default_factory=dict)
    join_sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    prefix: str = "t"  # table aliases: t0 for the root, t1... for parents; a semi-join's inner query uses "ts"
    aggregate_sql: Any = None  # set for aggregate queries: Aggregate -> (SQL, FieldDef | None), for HAVING/ORDER BY

    @property
    def root_alias(self) -> str:
        return f"{self.prefix}0"

    def resolve(self, path: Path) -> tuple[str, FieldDef, tuple[_Join, ...]]:
        """SQL column expression, field and joins walked for a field path; unknown names -> INVALID_FIELD."""
        parts = list(path.parts)
        if self.alias and len(parts) > 1 and parts[0].lower() == self.alias.lower():
            parts = parts[1:]
        obj, table, key, walked = self.root, self.root_alias, (), []
        for rel in parts[:-1]:
            ref = obj.relationship(rel)
            if ref is None or not ref.reference_to:
                raise fail(INVALID_FIELD, f"Didn't understand relationship '{rel}' in field path. If you are "
                           "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                           "relationship name. Please reference your WSDL or the describe call for the appropriate "
                           "names.", self.soql, path.pos)
            if len(ref.reference_to) > 1:
                raise fail(MALFORMED, f"polymorphic relationship '{rel}' is not supported by the sandbox org",
                           self.soql, path.pos)
            key = key + (ref.relationship_name.lower(),)
            join = self.joins.get(key)
            if join is None:
                target = self.schema.get(ref.reference_to[0])
                if target is None:
                    raise fail(INVALID_TYPE, f"sObject type '{ref.reference_to[0]}' is not supported.", self.soql,
                               path.pos)
                join = _Join(f"{self.prefix}{len(self.joins) + 1}", target, ref.relationship_name)
                self.joins[key] = join
                self.join_sql.append(f'LEFT JOIN "{target.name}" {join.alias} '
                                     f'ON {join.alias}."Id" = {table}."{ref.name}"')
            walked.append(join)
            obj, table = join.obj, join.alias
        fdef = obj.field(parts[-1])
        if fdef is None:
            raise fail(INVALID_FIELD, f"No such column '{parts[-1]}' on entity '{obj.name}'. If you are attempting "
                       "to use a custom field, be sure to append the '__c' after the custom field name. Please "
                       "reference your WSDL or the describe call for the appropriate names.", self.soql, path.pos)
        return f'{table}."{fdef.name}"', fdef, tuple(walked)

    # -- WHERE
    def where(self, node) -> str:
        if isinstance(node, Logic):
            return "(" + f" {node.op} ".join(self.where(n) for n in node.items) + ")"
        if isinstance(node, Not):
            # SQL's NOT of an unknown (null) comparison stays unknown; SOQL's comparisons are two-valued.
            return f"(NOT IFNULL({self.where(node.item)}, 0))"
        return self.compare(node)

    def compare(self, node: Compare) -> str:
        if node.subquery is not None:
            return self.semi_join(node)
        if isinstance(node.path, Aggregate):
            if self.aggregate_sql is None:
                raise fail(MALFORMED, "aggregate functions can be filtered in HAVING only", self.soql, node.pos)
            col, fdef = self.aggregate_sql(node.path)
            if fdef is None or node.path.func.startswith("COUNT"):
                for v in node.values:
                    if v.kind not in ("number", "null"):
                        raise fail(INVALID_FIELD, f"value of filter criterion for {node.path.func}() must be a "
                                   "number and should not be enclosed in quotes", self.soql, v.pos)
                fdef = FieldDef(name=node.path.func, type="int", label=node.path.func)
            if node.op == "LIKE":
                raise fail(INVALID_FILTER, f"invalid operator on {node.path.func}()", self.soql, node.pos)
        else:
            col, fdef, _ = self.resolve(node.path)
        if fdef.type == "textarea" and fdef.length > 255:
            raise fail(INVALID_FIELD, _NOT_FILTERABLE.format(fdef.name), self.soql, node.path.pos)
        if fdef.type == "multipicklist" and (node.op not in ("=", "!=") or node.values[0].kind != "null"):
            # Salesforce matches multi-select values as unordered sets (and INCLUDES/EXCLUDES); plain text
            # comparison would give wrong answers, so only null tests are accepted.
            raise fail(MALFORMED, f"filters on multi-select picklist '{fdef.name}' other than null tests are not "
                       "supported by the sandbox org", self.soql, node.pos)
        for v in node.values:
            self.check_type(fdef, v)
        if node.op == "LIKE":
            return self.like(col, fdef, node)
        if node.op in ("IN", "NOTIN"):
            any_of = self.in_list(col, fdef, node.values)
            return any_of if node.op == "IN" else f"(NOT IFNULL({any_of}, 0))"
        return self.single(col, fdef, node.op, node.values[0])

    def semi_join(self, node: Compare) -> str:
        """``field [NOT] IN (SELECT idField FROM Object [WHERE ...])`` as SQL ``IN (SELECT ...)``."""
        if isinstance(node.path, Aggregate):
            raise fail(MALFORMED, "a semi-join needs a field on its left", self.soql, node.pos)
        col, fdef, _ = self.resolve(node.path)
        inner = node.subquery.query
        if fdef.type not in _ID_TYPES:
            raise fail(INVALID_FIELD, f"semi join sub-selects are only allowed on Id or reference fields, not on "
                       f"'{fdef.name}'", self.soql, node.path.pos)
        if self.prefix != "t":
            raise fail(MALFORMED, "a semi-join or anti-join sub-query cannot contain another one", self.soql,
                       node.subquery.pos)
        if len(inner.items) != 1 or not isinstance(inner.items[0], Path):
            raise fail(MALFORMED, "a semi-join sub-query selects exactly one Id or reference field", self.soql,
                       node.subquery.pos)
        if inner.order or inner.limit is not None or inner.offset is not None or inner.group_by:
            raise fail(MALFORMED, "ORDER BY, LIMIT, OFFSET and GROUP BY are not allowed in a semi-join sub-query",
                       self.soql, node.subquery.pos)
        obj = self.schema.get(inner.sobject)
        if obj is None:
            raise fail(INVALID_TYPE, f"sObject type '{inner.sobject}' is not supported.", self.soql, inner.sobject_pos)
        sub = Compiler(self.soql, self.schema, obj, inner.alias, self.today, params=self.params, prefix="ts")
        icol, ifdef, _ = sub.resolve(inner.items[0])
        if ifdef.type not in _ID_TYPES:
            raise fail(INVALID_FIELD, f"semi join sub-selects can only select Id or reference fields, not "
                       f"'{ifdef.name}'", self.soql, inner.items[0].pos)
        conds = [f'{sub.root_alias}."IsDeleted" = 0', f"{icol} IS NOT NULL"]
        if inner.where is not None:
            conds.append(sub.where(inner.where))
        select = (f'SELECT {icol} FROM "{obj.name}" {sub.root_alias} {" ".join(sub.join_sql)} '
                  f'WHERE {" AND ".join(conds)}')
        found = f"{col} IN ({select})"
        return found if node.op == "IN" else f"(NOT IFNULL({found}, 0))"

    def in_list(self, col: str, fdef: FieldDef, values: tuple[Value, ...]) -> str:
        """``IN (...)`` as one SQL IN over the plain values (fast), OR-ed with null and date-range tests."""
        t = fdef.type
        plain = [v for v in values if not _is_special(v, t)]
        parts = []
        if plain:
            if t in _ID_TYPES:
                binds = [self.bind(self.id_value(v)) for v in plain]
                parts.append(f"{col} IN ({', '.join(binds)})")
            elif t in _STRING_TYPES:
                coll = "SOQL_NOCASE" if any(_collation(v.value) != "NOCASE" for v in plain) else "NOCASE"
                binds = [self.bind(v.value) for v in plain]
                parts.append(f"{col} COLLATE {coll} IN ({', '.join(binds)})")
            elif t == "boolean":
                parts.extend(self.single(col, fdef, "=", v) for v in plain)
            else:
                binds = [self.bind(v.value) for v in plain]
                parts.append(f"{col} IN ({', '.join(binds)})")
        parts.extend(self.single(col, fdef, "=", v) for v in values if _is_special(v, t))
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def id_value(self, v: Value) -> str:
        value = to18(v.value)
        if value is None:
            raise fail(INVALID_FILTER, f"invalid ID field: {v.value}", self.soql, v.pos)
        return value

    def check_type(self, fdef: FieldDef, v: Value) -> None:
        """Salesforce's INVALID_FIELD for a literal of the wrong kind ("must be of type X ...")."""
        if v.kind == "null":
            return
        t = fdef.type
        ok = {
            "boolean": v.kind == "boolean",
            "int": v.kind == "number", "date": v.kind in ("date", "dateliteral"),
            "datetime": v.kind in ("datetime", "dateliteral"),
        }.get(t, v.kind == "number" if t in NUMBER_TYPES else v.kind == "string")
        if ok:
            return
        word = _TYPE_WORDS.get(t, "string")
        quoted = t in TEXT_TYPES
        raise fail(INVALID_FIELD, f"value of filter criterion for field '{fdef.name}' must be of type {word} and "
                   f"should {'' if quoted else 'not '}be enclosed in quotes", self.soql, v.pos)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def single(self, col: str, fdef: FieldDef, op: str, v: Value) -> str:
        """One comparison, null-safe in SOQL's sense (``!=`` keeps nulls)."""
        t = fdef.type
        if v.kind == "null" or (v.kind == "string" and v.value == "" and op in ("=", "!=")):
            return self.null_test(col, t, op, v)
        if v.kind == "dateliteral":
            return self.date_range(col, t, op, v)
        if t in _ID_TYPES:
            return self.plain(col, op, self.bind(self.id_value(v)))
        if t in _STRING_TYPES:
            return self.plain(col, op, self.bind(v.value) + " COLLATE " + _collation(v.value))
        if t == "boolean":
            if op not in ("=", "!="):
                raise fail(INVALID_FILTER, f"invalid operator on boolean field '{fdef.name}'", self.soql, v.pos)
            want = v.value if op == "=" else not v.value
            return f"{col} = 1" if want else f"IFNULL({col}, 0) = 0"
        return self.plain(col, op, self.bind(v.value))

    @staticmethod
    def plain(col: str, op: str, rhs: str) -> str:
        if op == "!=":
            return f"({col} IS NULL OR {col} <> {rhs})"
        return f"{col} {op} {rhs}"

    def null_test(self, col: str, t: str, op: str, v: Value) -> str:
        if op not in ("=", "!="):
            raise fail(MALFORMED, f"invalid operator {op} with null", self.soql, v.pos)
        if t == "boolean":  # a boolean is never null in Salesforce: `= null` means false
            return f"IFNULL({col}, 0) = 0" if op == "=" else f"{col} = 1"
        empty = f" OR {col} = ''" if t in TEXT_TYPES else ""
        if op == "=":
            return f"({col} IS NULL{empty})"
        return f"({col} IS NOT NULL AND {col} <> '')" if empty else f"{col} IS NOT NULL"

    def date_range(self, col: str, t: str, op: str, v: Value) -> str:
        start, end = date_range(*v.value, self.today)
        fmt = (lambda d: d.isoformat()) if t == "date" else (lambda d: d.isoformat() + "T00:00:00.000+0000")
        lo, hi = fmt(start), fmt(end)
        if op == "=":
            return f"({col} >= {self.bind(lo)} AND {col} < {self.bind(hi)})"
        if op == "!=":
            return f"({col} IS NULL OR {col} < {self.bind(lo)} OR {col} >= {self.bind(hi)})"
        # `< LAST_MONTH` is before the range starts, `> LAST_MONTH` after it ends.
        sql_op, bound = {"<": ("<", lo), "<=": ("<", hi), ">": (">=", hi), ">=": (">=", lo)}[op]
        return f"{col} {sql_op} {self.bind(bound)}"

    def like(self, col: str, fdef: FieldDef, node: Compare) -> str:
        v = node.values[0]
        if fdef.type not in _STRING_TYPES:
            raise fail(INVALID_FILTER, f"invalid operator on {_TYPE_WORDS.get(fdef.type, fdef.type)} field",
                       self.soql, node.pos)
        if _collation(v.value) == "NOCASE":
            # SQLite's LIKE folds ASCII case only, which is all an ASCII or caseless pattern needs. SQLite's
            # text functions stop at a NUL character, so values holding one are matched in Python instead.
            pat = self.bind(v.pattern)
            return (f"({col} LIKE {pat} ESCAPE '\\' OR (instr(CAST({col} AS BLOB), x'00') > 0 AND "
                    f"soql_like({self.bind(v.pattern)}, {col})))")
        return f"soql_like({self.bind(v.pattern)}, {col})"

    # -- ORDER BY
    def order(self, items) -> str:
        out = []
        for o in items:
            if isinstance(o.path, Aggregate):
                if self.aggregate_sql is None:
                    raise fail(MALFORMED, f"{o.path.func}() in ORDER BY needs an aggregate query", self.soql,
                               o.path.pos)
                col = self.aggregate_sql(o.path)[0]
                out.append(f"{col} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}")
                continue
            col, fdef, _ = self.resolve(o.path)
            if fdef.type == "textarea" and fdef.length > 255:
                raise fail(INVALID_FIELD, f"field '{fdef.name}' can not be sorted in a query call", self.soql,
                           o.path.pos)
            direction = f"{'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}"
            if fdef.type == "picklist" and fdef.picklist_values:
                # Salesforce sorts a picklist by the order of its values, not alphabetically; values not in
                # the list (an unrestricted picklist) come after them, alphabetically.
                whens = " ".join(f"WHEN {self.bind(v)} THEN {n}" for n, v in enumerate(fdef.picklist_values))
                out.append(f"CASE WHEN NULLIF({col}, '') IS NULL THEN NULL ELSE CASE {col} COLLATE NOCASE {whens} "
                           f"ELSE {len(fdef.picklist_values)} END END {direction}")
                col = f"NULLIF({col}, '') COLLATE NOCASE"
                out.append(f"{col} {direction}")
                continue
            if fdef.type in _STRING_TYPES:
                # Case-insensitive like Salesforce; '' sorts as the null it would be there.
                col = f"NULLIF({col}, '') COLLATE NOCASE"
            out.append(f"{col} {direction}")
        return ", ".join(out)


def _is_special(v: Value, t: str) -> bool:
    """Values an IN list cannot hold as plain SQL values: null, '' (null in Salesforce), date ranges."""
    return v.kind in ("null", "dateliteral") or (v.kind == "string" and v.value == "" and t != "boolean")


def _collation(text: str) -> str:
    """NOCASE (fast, index-friendly) unless the literal has non-ASCII letters with case."""
    if text.isascii() or all(c.isascii() or c.lower() == c.upper() for c in text):
        return "NOCASE"
    return "SOQL_NOCASE"


def _casefold_cmp(a: str, b: str) -> int:
    fa, fb = a.casefold(), b.casefold()
    return (fa > fb) - (fa < fb)


@lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S | re.I)


def _soql_like(pattern: str, value: str | None) -> int | None:
    if value is None:
        return None
    return 1 if _like_regex(pattern).fullmatch(value) else 0


def register_functions(conn: sqlite3.Connection) -> None:
    """The collation and LIKE function compiled SQL may use for non-ASCII case folding."""
    conn.create_collation("SOQL_NOCASE", _casefold_cmp)
    conn.create_function("soql_like", 2, _soql_like, deterministic=True)
