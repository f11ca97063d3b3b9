"""SOQL executor of the sandbox org: compiles a parsed query to parameterised SQLite SQL and shapes rows
into Salesforce's REST JSON records.

Storage layout (shared with ``store.py``): one table per object named after it, one column per field.
Parent relationships (``Account.Owner.Username``) become LEFT JOINs so large queries stay one SQL
statement. Every literal is a bound parameter. Semantics follow Salesforce rather than SQL where they
differ: string comparisons ignore case, ``!=``/``NOT IN``/``NOT`` keep null values, a boolean ``= null``
matches false, an empty string matches null, Ids compare in their 18-character form whatever the case or
length written.

Modules: ``soql_lex`` (tokens, literals, error layout, date-literal ranges), ``soql_parse`` (the parser
and its AST), ``soql_compile`` (paths to joins, conditions to SQL), this one (select plan, execution,
record shaping, Bulk CSV rows).

Usage::

    result = execute(conn, schema, "SELECT Id, Account.Name FROM Contact WHERE LastName LIKE 'Wa%'")
    result.records      # [{"attributes": {...}, "Id": "003...", "Account": {...}}]
    flatten(result.records[0], result.columns)   # ["003...", "Acme"] for a Bulk 2.0 CSV row
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from operator import itemgetter
from typing import Any, Iterable, Sequence

from crmbridge.gcscope import paused

from .schema import NUMBER_TYPES, Schema
from .soql_compile import Compiler, register_functions, to18
from .soql_lex import INVALID_FIELD, INVALID_TYPE, MALFORMED, SoqlError, fail
from .soql_agg import aggregate_plan, check_order
from .soql_agg import assemble as assemble_agg
from .soql_agg import records as agg_records
from .soql_parse import Aggregate, Fields, Path, Query, SubQuery, parse
from .soql_typeof import TypeOf, compile_typeof
from .soql_typeof import fill as fill_typeofs

__all__ = ["SoqlError", "QueryResult", "CompiledQuery", "compile_query", "execute", "run", "shape", "flatten",
           "flat_rows", "to18"]


@dataclass(frozen=True)
class QueryResult:
    """One executed query: REST records, or the count of a ``SELECT COUNT()`` (then no records)."""
    total_size: int
    records: list[dict] = field(default_factory=list)
    is_count: bool = False
    columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"totalSize": self.total_size, "done": True, "records": self.records}


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
    agg: Any = None  # soql_agg.AggPlan for aggregate queries
    children: list = field(default_factory=list)  # (key, SubQuery) of parent-to-child sub-queries
    typeofs: list = field(default_factory=list)  # soql_typeof.TypeOfPlan of TYPEOF items


def _expand_fields(comp: Compiler, query: Query, item: Fields) -> list[Path]:
    """FIELDS(STANDARD|CUSTOM|ALL) as the root object's field paths; CUSTOM and ALL need LIMIT <= 200."""
    if item.kind != "STANDARD" and (query.limit is None or query.limit > 200):
        raise fail(MALFORMED, "The SOQL FIELDS function must have a LIMIT of at most 200", comp.soql, item.pos)
    keep = {"STANDARD": lambda f: not f.custom, "CUSTOM": lambda f: f.custom, "ALL": lambda f: True}[item.kind]
    return [Path((f.name,), item.pos) for f in comp.root.fields.values() if keep(f)]


def _select_plan(comp: Compiler, query: Query) -> _Plan:
    """SQL select list plus the tree that turns a row into a nested REST record."""
    if query.group_by or any(isinstance(it, Aggregate) for it in query.items):
        agg = aggregate_plan(comp, query)
        return _Plan([], list(agg.keys), _Node("AggregateResult", -1), agg=agg)
    plan = _Plan(['t0."Id"'], [], _Node(comp.root.name, 0))
    for item in query.items:
        if isinstance(item, SubQuery):
            plan.children.append(item)
            continue
        if isinstance(item, TypeOf):
            plan.typeofs.append(compile_typeof(comp, item, plan.sql_columns))
            continue
        expanded = isinstance(item, Fields)
        for path in _expand_fields(comp, query, item) if expanded else [item]:
            _add_path(comp, plan, path, skip_duplicate=expanded)
    return plan


def _add_path(comp: Compiler, plan: _Plan, path: Path, skip_duplicate: bool) -> None:
    col, fdef, walked = comp.resolve(path)
    node = plan.root
    for join in walked:
        child = node.entries.get(join.rel_name)
        if not isinstance(child, _Node):
            plan.sql_columns.append(f'{join.alias}."Id"')
            child = node.entries[join.rel_name] = _Node(join.obj.name, len(plan.sql_columns) - 1)
        node = child
    if fdef.name in node.entries:
        if skip_duplicate:
            return
        raise fail(INVALID_FIELD, f"duplicate field selected: {'.'.join(path.parts)}", comp.soql, None)
    plan.sql_columns.append(col)
    node.entries[fdef.name] = (len(plan.sql_columns) - 1, fdef.type)
    plan.columns.append(".".join([j.rel_name for j in walked] + [fdef.name]))


def _text(value: Any) -> Any:
    return value or None  # Salesforce keeps no empty strings


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _converter(ftype: str):
    """How a stored value becomes Salesforce's JSON: booleans never null, numbers as numbers."""
    if ftype == "boolean":
        return bool
    if ftype == "int":
        return _int
    if ftype in NUMBER_TYPES:
        return _float
    return _text


def _build_records(plan: _Plan, rows: list, api_version: str) -> list[dict]:
    if plan.agg is not None:
        return agg_records(plan.agg, rows)
    base = f"/services/data/v{api_version}/sobjects/"

    def steps(node: _Node) -> tuple:
        # Flattened once per query: (type, url prefix, id column, [(key, column, converter, child steps)]).
        items = [(key, -1, None, steps(e)) if isinstance(e, _Node) else (key, e[0], _converter(e[1]), None)
                 for key, e in node.entries.items()]
        return node.obj, f"{base}{node.obj}/", node.id_idx, items

    def build(step: tuple, row) -> dict:
        obj, url, id_idx, items = step
        rec: dict[str, Any] = {"attributes": {"type": obj, "url": url + row[id_idx]}}
        for key, idx, conv, child in items:
            if child is None:
                rec[key] = conv(row[idx])
            else:
                rec[key] = None if row[child[2]] is None else build(child, row)
        return rec

    root = steps(plan.root)
    # Hundreds of thousands of fresh dicts set off CPython's cyclic GC over and over (3x slower); none of
    # them can form a cycle, so collection waits until the records are built.
    with paused():
        return [build(root, row) for row in rows]


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


def flat_rows(compiled: "CompiledQuery", rows: list) -> Iterable[Sequence] | None:
    """The Bulk 2.0 CSV cells of ``rows``, without building the records: per row what :func:`flatten`
    gives for the record built from it (``None`` is written as ``""``).

    None when the query's shape needs the records themselves (COUNT(), aggregates, TYPEOF, sub-queries,
    a column that does not end on a field): the caller then shapes and flattens them.
    """
    plan = compiled.plan
    if compiled.is_count or plan is None or plan.agg is not None or plan.typeofs or plan.children or not plan.columns:
        return None
    specs = []
    for column in plan.columns:
        entry: Any = plan.root
        parents: list[int] = []
        for key in column.split("."):
            if not isinstance(entry, _Node) or key == "attributes":
                return None
            if entry is not plan.root:
                parents.append(entry.id_idx)
            entry = entry.entries.get(key)
        if not isinstance(entry, tuple):
            return None  # a relationship or an unknown key: flatten's own answer (an error, or nulls)
        specs.append((entry[0], entry[1], parents))
    if not rows:
        return []
    # The Python types of each SQL column, from the few distinct type patterns of the rows (C loops only).
    patterns = set(map(tuple, map(partial(map, type), rows)))
    kinds = [set(p[i] for p in patterns) for i in range(len(rows[0]))]
    if all(ftype != "boolean" and kinds[idx] <= _CSV_AS_IS.get(ftype, _CSV_AS_IS_TEXT) for idx, ftype, _ in specs):
        # The SQL values are the cells. A null parent needs no care here: its fields are plain columns of a
        # LEFT JOIN that found no row, so they are null too.
        idxs = [idx for idx, _, _ in specs]
        if idxs == list(range(idxs[0], idxs[-1] + 1)):  # also one column: a slice, never a bare value
            return map(itemgetter(slice(idxs[0], idxs[-1] + 1)), rows)
        return map(itemgetter(*idxs), rows)
    by_sql = list(zip(*rows))
    out = []
    for idx, ftype, parents in specs:
        cells = _flat_cells(by_sql[idx], ftype, kinds[idx])
        for p in parents:  # a null parent is a null in flatten, whatever the converter makes of None
            cells = [None if pid is None else v for v, pid in zip(cells, by_sql[p])]
        out.append(cells)
    return zip(*out)


# Python types whose csv text (str(), None as "") is what flatten makes of the converted value.
_CSV_AS_IS = {"int": {int, type(None)}, **{t: {float, type(None)} for t in NUMBER_TYPES}}
_CSV_AS_IS_TEXT = {str, type(None)}


def _flat_cells(values: Sequence, ftype: str, kinds: set) -> Sequence:
    if ftype == "boolean":
        return ["true" if v else "false" for v in values]
    if kinds <= _CSV_AS_IS.get(ftype, _CSV_AS_IS_TEXT):
        return values
    conv = _converter(ftype)
    return [_flat_value(conv(v)) for v in values]


def _flat_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class CompiledQuery:
    """A SOQL query as one parameterised SQLite statement, plus what shapes its rows."""
    sql: str
    params: tuple
    is_count: bool
    plan: Any = field(repr=False, default=None)


def compile_query(schema: Schema, soql: str, *, include_deleted: bool = False,
                  now: datetime | None = None) -> CompiledQuery:
    """Parse, check against ``schema`` and compile; raises SoqlError as :func:`execute` does."""
    query = parse(soql)
    root = schema.get(query.sobject)
    if root is None:
        raise fail(INVALID_TYPE, f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
                   "custom object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                   "or the describe call for the appropriate names.", soql, query.sobject_pos)
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    comp = Compiler(soql, schema, root, query.alias, today)
    plan = _select_plan(comp, query)
    # Compiled in the order their text appears in the SQL, so the bound parameters line up.
    where_sql = comp.where(query.where) if query.where is not None else None
    having_sql = comp.where(query.having) if query.having is not None else None
    if plan.agg is not None:
        check_order(comp, query)
    order_sql = comp.order(query.order) if query.order else None
    if plan.children:
        from .soql_children import compile_child

        plan.children = [compile_child(schema, soql, root, sub, today, _select_plan) for sub in plan.children]
    sql = _assemble(comp, query, plan, where_sql, having_sql, order_sql, include_deleted)
    is_count = isinstance(query.items[0], Aggregate) and query.items[0].bare
    return CompiledQuery(sql, tuple(comp.params), is_count, plan)


def execute(conn: sqlite3.Connection, schema: Schema, soql: str, *, include_deleted: bool = False,
            api_version: str = "62.0", now: datetime | None = None) -> QueryResult:
    """Run one SOQL query against the sandbox's SQLite storage.

    ``include_deleted`` is queryAll (rows with ``IsDeleted = 1`` too); ``now`` fixes the clock for date
    literals such as ``TODAY`` (default: the current UTC time). Raises SoqlError with Salesforce's
    error code (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR,
    NUMBER_OUTSIDE_VALID_RANGE) for a query Salesforce would refuse or the sandbox does not support.
    """
    compiled, rows = run(conn, schema, soql, include_deleted=include_deleted, now=now)
    return shape(conn, schema, compiled, rows, api_version)


def run(conn: sqlite3.Connection, schema: Schema, soql: str, *, include_deleted: bool = False,
        now: datetime | None = None) -> tuple[CompiledQuery, list]:
    """The compiled query and its SQL rows (what :func:`execute` shapes into records)."""
    compiled = compile_query(schema, soql, include_deleted=include_deleted, now=now)
    if "SOQL_NOCASE" in compiled.sql or "soql_like(" in compiled.sql:  # non-ASCII case folding only
        register_functions(conn)
    return compiled, conn.execute(compiled.sql, compiled.params).fetchall()


def shape(conn: sqlite3.Connection, schema: Schema, compiled: CompiledQuery, rows: list,
          api_version: str = "62.0") -> QueryResult:
    """The :class:`QueryResult` of the SQL ``rows`` of ``compiled`` (REST records, children, TYPEOF)."""
    if compiled.is_count:
        return QueryResult(total_size=int(rows[0][0]), records=[], is_count=True, columns=[])
    records = _build_records(compiled.plan, rows, api_version)
    if compiled.plan.typeofs:
        fill_typeofs(compiled.plan.typeofs, records, rows, schema, _converter,
                     f"/services/data/v{api_version}/sobjects/")
    if compiled.plan.children:
        from .soql_children import attach_children

        attach_children(conn, compiled.plan.children, records, api_version, _build_records)
    return QueryResult(total_size=len(records), records=records, is_count=False, columns=compiled.plan.columns)


def _assemble(comp: Compiler, query: Query, plan: _Plan, where_sql: str | None, having_sql: str | None,
              order_sql: str | None, include_deleted: bool) -> str:
    # A plain `= 0` (IsDeleted is never null) lets SQLite use the store's partial indexes on live rows.
    conds = [] if include_deleted else ['t0."IsDeleted" = 0']
    if where_sql:
        conds.append(where_sql)
    body = f'FROM "{comp.root.name}" t0 ' + " ".join(comp.join_sql)
    if conds:
        body += " WHERE " + " AND ".join(conds)
    tail = ""
    if query.limit is not None or query.offset is not None:
        limit = query.limit if query.limit is not None else -1  # SQLite: a negative LIMIT is no limit
        tail = f" LIMIT {comp.bind(limit)} OFFSET {comp.bind(query.offset or 0)}"
    if plan.agg is not None:
        return assemble_agg(comp, plan.agg, body, having_sql, order_sql, tail)
    # Ties in ORDER BY are broken by Id so OFFSET paging never repeats or skips a row.
    order = f' ORDER BY {order_sql}, t0."Id"' if order_sql else ""
    return f"SELECT {', '.join(plan.sql_columns)} {body}{order}{tail}"
