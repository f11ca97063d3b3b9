"""SOQL executor of the sandbox org: compiles a parsed query to parameterised SQLite SQL and shapes rows
into Salesforce's REST JSON records.

Storage layout (shared with ``store.py``): one table per object named after it, one column per field.
Parent relationships (``Account.Owner.Username``) become LEFT JOINs so large queries stay one SQL
statement. Every literal is a bound parameter. Semantics follow Salesforce rather than SQL where they
differ: string comparisons ignore case, ``!=``/``NOT IN``/``NOT`` keep null values, a boolean ``= null``
matches false, an empty string matches null, Ids compare in their 18-character form whatever the case or
length written.

Usage::

    result = execute(conn, schema, "SELECT Id, Account.Name FROM Contact WHERE LastName LIKE 'Wa%'")
    result.records      # [{"attributes": {...}, "Id": "003...", "Account": {...}}]
    flatten(result.records[0], result.columns)   # ["003...", "Acme"] for a Bulk 2.0 CSV row
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from .schema import NUMBER_TYPES, TEXT_TYPES, FieldDef, ObjectDef, Schema
from .soql_parse import (INVALID_FIELD, INVALID_FILTER, INVALID_TYPE, MALFORMED, Compare, Count, Logic, Not,
                         Path, Query, SoqlError, Value, date_range, fail, parse)

__all__ = ["SoqlError", "QueryResult", "execute", "flatten", "to18"]

_ID_TYPES = {"id", "reference"}
_STRING_TYPES = TEXT_TYPES - _ID_TYPES
# Salesforce's own names for field types in its "must be of type X" messages.
_TYPE_WORDS = {"int": "integer", "datetime": "dateTime", "boolean": "boolean", "date": "date", "double": "double",
               "currency": "currency", "percent": "percent", "id": "id", "reference": "reference"}
_NOT_FILTERABLE = "field '{}' can not be filtered in a query call"


@dataclass(frozen=True)
class QueryResult:
    """One executed query: REST records, or the count of a ``SELECT COUNT()`` (then no records)."""
    total_size: int
    records: list[dict] = field(default_factory=list)
    is_count: bool = False
    columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"totalSize": self.total_size, "done": True, "records": self.records}


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
class _Compiler:
    soql: str
    schema: Schema
    root: ObjectDef
    alias: str | None
    today: date
    joins: dict[tuple[str, ...], _Join] = field(default_factory=dict)
    join_sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def resolve(self, path: Path) -> tuple[str, FieldDef, tuple[_Join, ...]]:
        """SQL column expression, field and joins walked for a field path; unknown names -> INVALID_FIELD."""
        parts = list(path.parts)
        if self.alias and len(parts) > 1 and parts[0].lower() == self.alias.lower():
            parts = parts[1:]
        obj, table, key, walked = self.root, "t0", (), []
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
                join = _Join(f"t{len(self.joins) + 1}", target, ref.relationship_name)
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
        col, fdef, _ = self.resolve(node.path)
        if fdef.type == "textarea" and fdef.length > 255:
            raise fail(INVALID_FIELD, _NOT_FILTERABLE.format(fdef.name), self.soql, node.path.pos)
        for v in node.values:
            self.check_type(fdef, v)
        if node.op == "LIKE":
            return self.like(col, fdef, node)
        if node.op in ("IN", "NOTIN"):
            any_of = self.in_list(col, fdef, node.values)
            return any_of if node.op == "IN" else f"(NOT IFNULL({any_of}, 0))"
        return self.single(col, fdef, node.op, node.values[0])

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
            # SQLite's LIKE folds ASCII case only, which is all an ASCII or caseless pattern needs.
            return f"{col} LIKE {self.bind(v.pattern)} ESCAPE '\\'"
        return f"soql_like({self.bind(v.pattern)}, {col})"

    # -- ORDER BY
    def order(self, items) -> str:
        out = []
        for o in items:
            col, fdef, _ = self.resolve(o.path)
            if fdef.type == "textarea" and fdef.length > 255:
                raise fail(INVALID_FIELD, f"field '{fdef.name}' can not be sorted in a query call", self.soql,
                           o.path.pos)
            if fdef.type in _STRING_TYPES:
                # Case-insensitive like Salesforce; '' sorts as the null it would be there.
                col = f"NULLIF({col}, '') COLLATE NOCASE"
            out.append(f"{col} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}")
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


def _like_regex(pattern: str):
    import re

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


def _register(conn: sqlite3.Connection) -> None:
    conn.create_collation("SOQL_NOCASE", _casefold_cmp)
    conn.create_function("soql_like", 2, _soql_like, deterministic=True)


# ----------------------------------------------------------------------------------- select list, shape

@dataclass
class _Node:
    """One sObject level of the result: its type, the SQL column of its Id, its keys in select order."""
    obj: str
    id_idx: int
    entries: dict[str, Any] = field(default_factory=dict)  # key -> _Node | (column index, field type)


@dataclass
class _Plan:
    sql_columns: list[str]
    columns: list[str]
    root: _Node
    aggregate: list[str] | None = None
    aggregate_keys: list[str] | None = None


def _select_plan(comp: _Compiler, query: Query) -> _Plan:
    """SQL select list plus the tree that turns a row into a nested REST record."""
    first = query.items[0]
    if isinstance(first, Count):
        return _aggregate_plan(comp, query)
    plan = _Plan(['t0."Id"'], [], _Node(comp.root.name, 0))
    for path in query.items:
        col, fdef, walked = comp.resolve(path)
        node = plan.root
        for join in walked:
            child = node.entries.get(join.rel_name)
            if not isinstance(child, _Node):
                plan.sql_columns.append(f'{join.alias}."Id"')
                child = node.entries[join.rel_name] = _Node(join.obj.name, len(plan.sql_columns) - 1)
            node = child
        if fdef.name in node.entries:
            raise fail(INVALID_FIELD, f"duplicate field selected: {'.'.join(path.parts)}", comp.soql, None)
        plan.sql_columns.append(col)
        node.entries[fdef.name] = (len(plan.sql_columns) - 1, fdef.type)
        plan.columns.append(".".join([j.rel_name for j in walked] + [fdef.name]))
    return plan


def _aggregate_plan(comp: _Compiler, query: Query) -> _Plan:
    """COUNT() counts rows; COUNT(field) counts non-null values, keyed by alias or exprN."""
    plan = _Plan([], [], _Node("AggregateResult", -1), aggregate=[], aggregate_keys=[])
    n = 0
    for item in query.items:
        if item.arg is None:
            plan.aggregate.append("COUNT(*)")
        else:
            col, fdef, _ = comp.resolve(item.arg)
            if fdef.type in TEXT_TYPES:  # Salesforce keeps no empty strings: '' counts as null
                col = f"NULLIF({col}, '')"
            plan.sql_columns.append(f"{col} AS c{len(plan.sql_columns)}")
            plan.aggregate.append(f"COUNT(c{len(plan.sql_columns) - 1})")
        if item.alias:
            key = item.alias
        else:
            key, n = f"expr{n}", n + 1
        if key in plan.aggregate_keys:
            raise fail(MALFORMED, f"duplicate alias: {key}", comp.soql, item.pos)
        plan.aggregate_keys.append(key)
    plan.columns = list(plan.aggregate_keys)
    return plan


def _convert(value: Any, ftype: str) -> Any:
    """A stored value as Salesforce's JSON has it: booleans true/false (never null), numbers as numbers."""
    if ftype == "boolean":
        return bool(value)
    if value is None or value == "":
        return None
    if ftype == "int":
        return int(value)
    if ftype in NUMBER_TYPES:
        return float(value)
    return value


def _build_records(plan: _Plan, rows: list, api_version: str) -> list[dict]:
    if plan.aggregate is not None:
        return [{"attributes": {"type": "AggregateResult"}, **dict(zip(plan.aggregate_keys, rows[0]))}]
    base = f"/services/data/v{api_version}/sobjects/"

    def build(node: _Node, row) -> dict:
        rec: dict[str, Any] = {"attributes": {"type": node.obj, "url": f"{base}{node.obj}/{row[node.id_idx]}"}}
        for key, entry in node.entries.items():
            if isinstance(entry, _Node):
                rec[key] = None if row[entry.id_idx] is None else build(entry, row)
            else:
                rec[key] = _convert(row[entry[0]], entry[1])
        return rec

    return [build(plan.root, row) for row in rows]


def flatten(record: dict, columns: list[str]) -> list[str | None]:
    """One Bulk 2.0 query CSV row: the record's values for ``columns`` (``Account.Name`` walks parents).

    Booleans become ``true``/``false``, numbers their decimal text, a null value or null parent None.
    """
    out: list[str | None] = []
    for column in columns:
        value: Any = record
        for key in column.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            out.append(None)
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, dict):
            raise ValueError(f"column {column} names a relationship, not a field")
        else:
            out.append(str(value))
    return out



def execute(conn: sqlite3.Connection, schema: Schema, soql: str, *, include_deleted: bool = False,
            api_version: str = "62.0", now: datetime | None = None) -> QueryResult:
    """Run one SOQL query against the sandbox's SQLite storage.

    ``include_deleted`` is queryAll (rows with ``IsDeleted = 1`` too); ``now`` fixes the clock for date
    literals such as ``TODAY`` (default: the current UTC time). Raises SoqlError with Salesforce's
    error code (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR,
    NUMBER_OUTSIDE_VALID_RANGE) for a query Salesforce would refuse or the sandbox does not support.
    """
    query = parse(soql)
    root = schema.get(query.sobject)
    if root is None:
        raise fail(INVALID_TYPE, f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
                   "custom object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                   "or the describe call for the appropriate names.", soql, query.sobject_pos)
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    comp = _Compiler(soql, schema, root, query.alias, today)
    plan = _select_plan(comp, query)
    where_sql = comp.where(query.where) if query.where is not None else None
    order_sql = comp.order(query.order) if query.order else None
    sql = _assemble(comp, query, plan, where_sql, order_sql, include_deleted or query.all_rows)
    _register(conn)
    rows = conn.execute(sql, comp.params).fetchall()
    if isinstance(query.items[0], Count) and query.items[0].bare:
        return QueryResult(total_size=int(rows[0][0]), records=[], is_count=True, columns=[])
    records = _build_records(plan, rows, api_version)
    return QueryResult(total_size=len(records), records=records, is_count=False, columns=plan.columns)


def _assemble(comp: _Compiler, query: Query, plan, where_sql: str | None, order_sql: str | None,
              include_deleted: bool) -> str:
    conds = [] if include_deleted else ['IFNULL(t0."IsDeleted", 0) = 0']
    if where_sql:
        conds.append(where_sql)
    body = f'FROM "{comp.root.name}" t0 ' + " ".join(comp.join_sql)
    if conds:
        body += " WHERE " + " AND ".join(conds)
    tail = ""
    if query.limit is not None or query.offset is not None:
        tail = f" LIMIT {int(query.limit) if query.limit is not None else -1} OFFSET {int(query.offset or 0)}"
    if plan.aggregate:
        inner = ", ".join(plan.sql_columns) if plan.sql_columns else "1"
        # LIMIT/OFFSET apply to the rows counted, as COUNT() ... LIMIT n counts at most n rows.
        sub = f"SELECT {inner} {body}{tail}"
        return f"SELECT {', '.join(plan.aggregate)} FROM ({sub})"
    # Ties in ORDER BY are broken by Id so OFFSET paging never repeats or skips a row.
    order = f" ORDER BY {order_sql}, t0.\"Id\"" if order_sql else ""
    return f"SELECT {', '.join(plan.sql_columns)} {body}{order}{tail}"
