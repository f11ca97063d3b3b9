"""Parent-to-child sub-queries: ``SELECT Name, (SELECT LastName FROM Contacts) FROM Account``.

The parents are queried first; each sub-query then runs once per 900 parent Ids (one SQL statement,
``childField IN (...)``), its WHERE / ORDER BY applied in SQL and its LIMIT / OFFSET per parent. Each
parent gets the relationship's key holding ``{"totalSize", "done", "records"}``, or null when it has
no children, as the REST API answers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

from .describe import child_relationships
from .schema import Schema
from .soql_compile import Compiler
from .soql_lex import INVALID_TYPE, fail

CHUNK = 900  # bound Ids per statement, under SQLite's variable limit


def _relationship(schema: Schema, soql: str, parent, sub) -> tuple[str, str, str]:
    """(relationshipName, child object, child's reference field) named by the sub-query's FROM."""
    wanted = sub.query.sobject.lower()
    for rel in child_relationships(schema, parent):
        if rel["relationshipName"].lower() == wanted:
            return rel["relationshipName"], rel["childSObject"], rel["field"]
    raise fail(INVALID_TYPE, f"Didn't understand relationship '{sub.query.sobject}' in FROM part of query call. If "
               "you are attempting to use a custom relationship, be sure to append the '__r' after the custom "
               "relationship name. Please reference your WSDL or the describe call for the appropriate names.",
               soql, sub.query.sobject_pos)


@dataclass
class ChildQuery:
    """One compiled parent-to-child sub-query, run by :func:`attach_children` once the parents are known."""
    key: str
    child: str
    fk: str
    plan: object
    select_sql: str
    where_sql: str | None
    where_params: list
    order_sql: str | None
    order_params: list
    limit: int | None
    offset: int | None


def compile_child(schema: Schema, soql: str, parent, sub, today, select_plan: Callable) -> ChildQuery:
    """Check and compile a sub-query against the parent object (errors surface even with no parent rows)."""
    key, child_name, fk = _relationship(schema, soql, parent, sub)
    q = sub.query
    comp = Compiler(soql, schema, schema.get(child_name), q.alias, today)
    plan = select_plan(comp, q)
    where_sql = comp.where(q.where) if q.where is not None else None
    n_where = len(comp.params)
    order_sql = comp.order(q.order) if q.order else None
    select_sql = f'SELECT {", ".join(plan.sql_columns)}, t0."{fk}" FROM "{child_name}" t0 {" ".join(comp.join_sql)}'
    return ChildQuery(key, child_name, fk, plan, select_sql, where_sql, comp.params[:n_where], order_sql,
                      comp.params[n_where:], q.limit, q.offset)


def attach_children(conn: sqlite3.Connection, children: list[ChildQuery], records: list[dict], api_version: str,
                    build_records: Callable) -> None:
    ids = [r["attributes"]["url"].rsplit("/", 1)[1] for r in records]
    for cq in children:
        by_parent: dict[str, list] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            conds = ['t0."IsDeleted" = 0', f't0."{cq.fk}" IN ({", ".join("?" * len(chunk))})']
            if cq.where_sql:
                conds.append(cq.where_sql)
            order = f'{cq.order_sql}, t0."Id"' if cq.order_sql else 't0."Id"'
            sql = f'{cq.select_sql} WHERE {" AND ".join(conds)} ORDER BY {order}'
            for row in conn.execute(sql, [*chunk, *cq.where_params, *cq.order_params]):
                by_parent.setdefault(row[-1], []).append(row)
        lo = cq.offset or 0
        hi = lo + cq.limit if cq.limit is not None else None
        for rec, pid in zip(records, ids):
            rows = by_parent.get(pid, [])[lo:hi]
            rec[cq.key] = {"totalSize": len(rows), "done": True,
                           "records": build_records(cq.plan, rows, api_version)} if rows else None
