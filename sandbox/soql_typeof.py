"""SOQL ``TYPEOF`` on a polymorphic relationship::

    SELECT Id, TYPEOF Who WHEN Contact THEN LastName, Email WHEN Lead THEN Company ELSE Id END FROM Event

Each ``WHEN`` type becomes a LEFT JOIN on the reference column (Ids carry their object's key prefix, so
only the row of the record's real type joins). The nested record takes the fields of the ``WHEN`` that
matches the record's type; otherwise the ``ELSE`` fields, of which the sandbox knows ``Id`` and
``Type`` (the fields every polymorphic target shares). A null reference gives null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .soql_lex import INVALID_FIELD, MALFORMED, fail


@dataclass(frozen=True)
class TypeOf:
    rel: str
    whens: tuple[tuple[str, tuple[str, ...]], ...]
    otherwise: tuple[str, ...]
    pos: int


def parse_typeof(p) -> TypeOf:
    """``TYPEOF rel WHEN Type THEN f, ... [WHEN ...] [ELSE f, ...] END`` (``p`` is the Parser at TYPEOF)."""
    start = p.take()
    rel = p.take()
    if rel.kind != "ident":
        raise p.unexpected(rel)
    whens, otherwise = [], ()
    while p.word() == "when":
        p.take()
        typ = p.take()
        if typ.kind != "ident":
            raise p.unexpected(typ)
        p.expect_word("then")
        whens.append((typ.text, _names(p)))
    if not whens:
        raise fail(MALFORMED, "TYPEOF needs at least one WHEN ... THEN clause", p.soql, p.tok.pos)
    if p.word() == "else":
        p.take()
        otherwise = _names(p)
    p.expect_word("end")
    return TypeOf(rel.text, tuple(whens), otherwise, start.pos)


def _names(p) -> tuple[str, ...]:
    names = []
    while True:
        tok = p.take()
        if tok.kind != "ident" or p.is_op("."):
            raise fail(MALFORMED, "TYPEOF takes plain field names of the type after THEN / ELSE", p.soql, tok.pos)
        names.append(tok.text)
        if not p.is_op(","):
            return tuple(names)
        p.take()


@dataclass
class TypeOfPlan:
    """Where a TYPEOF's values sit in the SQL row: the reference column, then per type (fields, columns)."""
    key: str
    ref_idx: int
    by_prefix: dict[str, tuple[str, list[tuple[str, int, str]]]] = field(default_factory=dict)
    otherwise: tuple[str, ...] = ()


def compile_typeof(comp, item: TypeOf, sql_columns: list[str]) -> TypeOfPlan:
    ref = comp.root.relationship(item.rel)
    if ref is None:
        raise fail(INVALID_FIELD, f"Didn't understand relationship '{item.rel}' in field path.", comp.soql, item.pos)
    root_alias = comp.root_alias
    sql_columns.append(f'{root_alias}."{ref.name}"')
    plan = TypeOfPlan(ref.relationship_name, len(sql_columns) - 1)
    for type_name, names in item.whens:
        target = comp.schema.get(type_name)
        if target is None or target.name not in ref.reference_to:
            raise fail(MALFORMED, f"TYPEOF {item.rel}: {type_name} is not a type {item.rel} can refer to "
                       f"({', '.join(ref.reference_to)})", comp.soql, item.pos)
        alias = f"{comp.prefix}y{len(comp.join_sql)}"
        comp.join_sql.append(f'LEFT JOIN "{target.name}" {alias} ON {alias}."Id" = {root_alias}."{ref.name}"')
        cols = []
        for name in names:
            f = target.field(name)
            if f is None:
                raise fail(INVALID_FIELD, f"No such column '{name}' on entity '{target.name}'.", comp.soql, item.pos)
            sql_columns.append(f'{alias}."{f.name}"')
            cols.append((f.name, len(sql_columns) - 1, f.type))
        plan.by_prefix[target.key_prefix] = (target.name, cols)
    for name in item.otherwise:
        if name.lower() not in ("id", "type"):
            raise fail(MALFORMED, f"TYPEOF ... ELSE {name}: the sandbox org knows only Id and Type of a polymorphic "
                       "reference's other types", comp.soql, item.pos)
    plan.otherwise = tuple("Id" if n.lower() == "id" else "Type" for n in item.otherwise)
    return plan


def fill(plans: list[TypeOfPlan], records: list[dict], rows: list, schema, converter, base: str) -> None:
    """Put each TYPEOF's nested record into the built records (rows are the SQL rows they came from)."""
    for plan in plans:
        for rec, row in zip(records, rows):
            rid = row[plan.ref_idx]
            if rid is None:
                rec[plan.key] = None
                continue
            match = plan.by_prefix.get(rid[:3])
            if match is not None:
                obj, cols = match
                out: dict[str, Any] = {"attributes": {"type": obj, "url": f"{base}{obj}/{rid}"}}
                out.update({name: converter(ftype)(row[idx]) for name, idx, ftype in cols})
            else:
                target = schema.by_prefix(rid[:3])
                obj = target.name if target is not None else "Name"
                out = {"attributes": {"type": obj, "url": f"{base}{obj}/{rid}"}}
                out.update({n: rid if n == "Id" else obj for n in plan.otherwise})
            rec[plan.key] = out
