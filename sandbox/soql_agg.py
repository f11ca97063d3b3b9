"""Aggregate SOQL: COUNT / COUNT_DISTINCT / SUM / AVG / MIN / MAX, with or without GROUP BY and HAVING.

Rows come back as ``AggregateResult`` records keyed by alias, by ``exprN`` for an unaliased function
(numbered in select order), and by the field name for a grouped field (``Account.Name`` -> ``Name``).
Text groups ignore case and treat '' as null, as Salesforce does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import NUMBER_TYPES, TEXT_TYPES, FieldDef
from .soql_compile import Compiler
from .soql_lex import INVALID_FIELD, MALFORMED, fail
from .soql_parse import Aggregate, Path, Query

_NUMERIC = NUMBER_TYPES | {"int"}
_ORDERED = _NUMERIC | {"date", "datetime"} | (TEXT_TYPES - {"multipicklist", "textarea"})


@dataclass
class AggPlan:
    """What an aggregate query selects: SQL expressions, result keys and how each value converts."""
    keys: list[str] = field(default_factory=list)
    exprs: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # a FieldDef type, "int" for counts, "double" for AVG
    group_sql: list[str] = field(default_factory=list)
    inner_cols: list[str] = field(default_factory=list)  # without GROUP BY: the rows the functions read


def _agg_expr(comp: Compiler, agg: Aggregate, inner: list[str] | None) -> tuple[str, FieldDef | None]:
    """SQL of one aggregate function; ``inner`` (no GROUP BY) collects the column it reads as cN."""
    if agg.bare:
        return "COUNT(*)", None
    col, fdef, _ = comp.resolve(agg.arg)
    t = fdef.type
    if t in TEXT_TYPES:
        col = f"NULLIF({col}, '')"  # Salesforce keeps no empty strings
    if agg.func in ("SUM", "AVG") and t not in _NUMERIC:
        raise fail(INVALID_FIELD, f"field {fdef.name} does not support aggregate operator {agg.func}", comp.soql,
                   agg.pos)
    if agg.func in ("MIN", "MAX") and t not in _ORDERED:
        raise fail(INVALID_FIELD, f"field {fdef.name} does not support aggregate operator {agg.func}", comp.soql,
                   agg.pos)
    if t == "textarea" and fdef.length > 255:
        raise fail(INVALID_FIELD, f"field {fdef.name} does not support aggregate operator {agg.func}", comp.soql,
                   agg.pos)
    if inner is not None:
        inner.append(f"{col} AS c{len(inner)}")
        col = f"c{len(inner) - 1}"
    coll = " COLLATE NOCASE" if t in TEXT_TYPES else ""
    sql = {"COUNT": f"COUNT({col})", "COUNT_DISTINCT": f"COUNT(DISTINCT {col}{coll})", "SUM": f"SUM({col})",
           "AVG": f"AVG({col})", "MIN": f"MIN({col}{coll})", "MAX": f"MAX({col}{coll})"}[agg.func]
    return sql, fdef


def aggregate_plan(comp: Compiler, query: Query) -> AggPlan:
    plan = AggPlan()
    grouped = bool(query.group_by)
    inner = None if grouped else plan.inner_cols
    group_cols: dict[str, tuple[str, FieldDef]] = {}
    for path in query.group_by:
        col, fdef, _ = comp.resolve(path)
        if fdef.type in NUMBER_TYPES or fdef.type == "multipicklist" or (fdef.type == "textarea"
                                                                          and fdef.length > 255):
            raise fail(MALFORMED, f"field '{fdef.name}' can not be grouped in a query call", comp.soql, path.pos)
        expr = f"NULLIF({col}, '')" if fdef.type in TEXT_TYPES else col
        plan.group_sql.append(expr + (" COLLATE NOCASE" if fdef.type in TEXT_TYPES else ""))
        group_cols[".".join(path.parts).lower()] = (expr, fdef)
    n = 0
    for item in query.items:
        if isinstance(item, Path):
            expr, fdef = group_cols[".".join(item.parts).lower()]
            key, kind = fdef.name, fdef.type
        else:
            expr, fdef = _agg_expr(comp, item, inner)
            kind = "double" if item.func == "AVG" else (fdef.type if fdef is not None and item.func in
                                                        ("SUM", "MIN", "MAX") else "int")
            if item.alias:
                key = item.alias
            else:
                key, n = f"expr{n}", n + 1
        if key in plan.keys:
            raise fail(MALFORMED, f"duplicate alias: {key}", comp.soql, getattr(item, "pos", None))
        plan.keys.append(key)
        plan.exprs.append(expr)
        plan.kinds.append(kind)

    def for_having(agg: Aggregate) -> tuple[str, FieldDef | None]:
        return _agg_expr(comp, agg, None)

    comp.aggregate_sql = for_having if grouped else None
    return plan


def check_order(comp: Compiler, query: Query) -> None:
    """In an aggregate query ORDER BY names grouped fields or aggregate functions only."""
    grouped = {".".join(p.parts).lower() for p in query.group_by}
    for o in query.order:
        if isinstance(o.path, Path) and ".".join(o.path.parts).lower() not in grouped:
            raise fail(MALFORMED, f"Ordered field must be grouped or aggregated: {'.'.join(o.path.parts)}",
                       comp.soql, o.path.pos)


def assemble(comp: Compiler, plan: AggPlan, body: str, having_sql: str | None, order_sql: str | None,
             tail: str) -> str:
    if not plan.group_sql:
        # LIMIT/OFFSET apply to the rows aggregated, as COUNT() ... LIMIT n counts at most n rows.
        inner = ", ".join(plan.inner_cols) if plan.inner_cols else "1"
        return f"SELECT {', '.join(plan.exprs)} FROM (SELECT {inner} {body}{tail})"
    sql = f"SELECT {', '.join(plan.exprs)} {body} GROUP BY {', '.join(plan.group_sql)}"
    if having_sql:
        sql += f" HAVING {having_sql}"
    # Groups come back in group order when no ORDER BY is given (stable output for tests and clients).
    sql += f" ORDER BY {order_sql}" if order_sql else f" ORDER BY {', '.join(plan.group_sql)}"
    return sql + tail


def convert(kind: str, value):
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind in NUMBER_TYPES or kind == "double":
        return float(value)
    if kind == "boolean":
        return bool(value)
    return value


def records(plan: AggPlan, rows: list) -> list[dict]:
    return [{"attributes": {"type": "AggregateResult"},
             **{k: convert(kind, v) for k, kind, v in zip(plan.keys, plan.kinds, row)}} for row in rows]
