"""The plan of one entity under ``--engine sql``: which rules run in the database, which in Python, and
the query asset's SQL (the entity's normalised columns over a ``UNION ALL`` of its sources); plus the
tallies the two halves fill in (their failing identities: ``sqlengine_failures``).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmbridge.connectors.sql import require_table
from crmbridge.errors import UsageError
from crmbridge.validation.sqlengine_dialect import Dialect

# Rules that run in the database when every field they read has a SQL form.
SQL_KINDS = ("required", "unique", "allowed", "reference")
_counter = itertools.count(1)
RAW_PREFIX = "__raw__"  # the query asset's raw text of a key column without SQL form
RAW = "\x00raw\x00"  # where a source's column goes in a normalised expression (no literal can hold NUL)


@dataclass
class SourceSql:
    source: Any  # config.SqlSource
    from_sql: str  # table name or (query) alias
    columns: dict[str, str]  # column (after rename) -> the source's own column name
    textual: dict[str, bool]


@dataclass
class EntityPlan:
    entity: str
    rules_def: Any
    rules: list
    sql_rules: list  # the Rule objects run by GX on the SQL engine (kwargs pointing at SQL columns)
    py_rules: list  # run on streamed batches through GX's pandas engine
    exprs: dict[str, str | None]  # column -> SQL expression of its normalised value (None: Python only)
    sources: list[SourceSql]
    key: list[str]
    derived: dict[str, str] = field(default_factory=dict)  # derived SQL column -> expression over ``u``
    python_columns: set[str] = field(default_factory=set)  # read whole by the streamed pass
    control_keys: tuple[str, ...] = ()  # fields where control_chars refuses tab and line breaks too

    @property
    def raw_keys(self) -> list[str]:
        """Key columns without a SQL form: the database identifies its failing rows by their raw text,
        which Python normalises (``_run_sql_rules``)."""
        return [k for k in self.key if self.exprs.get(k) is None]

    def key_columns_sql(self) -> list[str]:
        """The query asset's columns naming a row's key: normalised, or raw (``__raw__k``)."""
        return [RAW_PREFIX + k if self.exprs.get(k) is None else k for k in self.key]

    @property
    def py_unique(self) -> list:
        return [r for r in self.py_rules if r.kind == "unique"]

    @property
    def py_refs(self) -> list:
        return [r for r in self.py_rules if r.kind == "reference"]

    def steps_without_sql(self, d: Dialect, col: str) -> bool:
        """A column whose declared steps have no SQL form (its Python value could differ from its text)."""
        return _sql_expr(d, self.rules_def, col) is None

    def select(self, d: Dialect, s: SourceSql, cols: list[str]) -> str:
        parts = [f"{d.lit(s.source.department)} AS {d.q('_department')}"]
        for c in cols:
            parts.append(f"{self._expr(d, s, c)} AS {d.q(c)}")
        for k in self.raw_keys:
            raw = d.raw(s.columns[k], s.textual.get(k, True)) if k in s.columns else f"CAST(NULL AS {d.text_type()})"
            parts.append(f"{raw} AS {d.q(RAW_PREFIX + k)}")
        return f"SELECT {', '.join(parts)} FROM {s.from_sql}"

    def _expr(self, d: Dialect, s: SourceSql, c: str) -> str:
        if c not in s.columns:
            return f"CAST(NULL AS {d.text_type()})"
        raw = d.raw(s.columns[c], s.textual.get(c, True))
        return self.exprs[c].replace(RAW, raw)

    def union(self, d: Dialect) -> str:
        cols = self.sql_columns()
        return " UNION ALL ".join(self.select(d, s, cols) for s in self.sources)

    def sql_columns(self) -> list[str]:
        return [c for c, e in self.exprs.items() if e is not None]


def _column_steps(rules_def, col: str) -> list[tuple[str, dict]]:
    from crmbridge.validation.definition import split_step

    steps = [split_step(s) for s in rules_def.normalise.get("*", [])]
    steps += [split_step(s) for s in rules_def.normalise.get(col, [])]
    for a in rules_def.allowed_values:
        if a.map and a.field == col:
            steps.append(("value_map", {"map": a.map, "on_missing": "keep", "ignore_case": a.ignore_case}))
    return steps


def _sql_expr(d: Dialect, rules_def, col: str) -> str | None:
    """The normalised value of ``col`` as SQL over ``RAW``, or None when a step has no SQL form."""
    e = RAW
    for name, params in _column_steps(rules_def, col):
        e = d.step(e, name, params)
        if e is None:
            return None
    return e


def _source_sql(d: Dialect, engine, src) -> SourceSql:
    from sqlalchemy import String, inspect, text

    from crmbridge.connectors.files import build_columns

    where = f"source {src.name} ({src.table or 'query'})"
    if src.filters or src.department_column:
        raise UsageError(f"{where}: `filters` and `department_column` are not supported by --engine sql",
                         hint="validate this entity with `crmbridge extract` + `crmbridge validate`")
    if src.table:
        insp = inspect(engine)
        schema, name = require_table(insp, src.table, where)
        cols = insp.get_columns(name, schema=schema or None)
        raw_names = [c["name"] for c in cols]
        types = {c["name"]: isinstance(c["type"], String) for c in cols}
        from_sql = (d.q(schema) + "." if schema else "") + d.q(name)
    else:
        with engine.connect() as conn:
            res = conn.execute(text(f"SELECT * FROM ({src.query}) q WHERE 1 = 0"))
            raw_names = list(res.keys())
        types = {}
        from_sql = f"({src.query}) {d.q('q_' + src.name.replace('-', '_'))}"
    names, _ = build_columns(raw_names, src.columns, src.key, where, [])
    return SourceSql(source=src, from_sql=from_sql, columns=dict(zip(names, raw_names)),
                     textual={n: types.get(r, False) for n, r in zip(names, raw_names)})


def plan_entity(project, d: Dialect, engine, entity: str, definition, sources: list) -> EntityPlan:
    from crmbridge.validation.rules import compile_rules

    rules_def = definition.entities[entity]
    rules = compile_rules(entity, rules_def)
    srcs = [_source_sql(d, engine, s) for s in sources]
    present = {c for s in srcs for c in s.columns}
    needed = set(rules_def.identity.key)
    for r in rules:
        needed.update(r.fields)
    missing = sorted(c for c in needed if c not in present)
    if missing:
        shown = "; ".join(f"{s.source.name}: {', '.join(s.columns)}" for s in srcs)
        raise UsageError(f"entity {entity}: column(s) {', '.join(missing)} used by the definition are in none of "
                         f"its SQL sources ({shown})",
                         hint="fix `columns:`/`table:` in crmbridge.yml or the field names in the definition")
    key = list(rules_def.identity.key)
    exprs: dict[str, str | None] = {}
    for c in dict.fromkeys([*key, *sorted(needed)]):
        exprs[c] = _sql_expr(d, rules_def, c)
    plan = EntityPlan(entity=entity, rules_def=rules_def, rules=rules, sql_rules=[], py_rules=[], exprs=exprs,
                      sources=srcs, key=key)
    for k in plan.raw_keys:  # normalised by Python from the key's text alone (``_python_keys``)
        others = _with_step_columns(rules_def, [k])[1:]
        if others:
            raise UsageError(f"entity {entity}: key {k} is normalised with other columns ({', '.join(others)}) by "
                             f"steps without SQL form on {d.name}; --engine sql cannot identify its rows",
                             hint="validate this definition with `crmbridge extract` + `crmbridge validate`")
    for r in rules:
        in_set = r.kind == "format" and r.expectation == "ExpectColumnValuesToBeInSet" and \
            r.kwargs.get("column") == r.fields[0]  # iso_country
        sql_ok = (r.kind in SQL_KINDS or in_set) and all(exprs.get(f) is not None for f in r.fields)
        if r.kind == "reference":
            parent_entity, parent_key = r.target
            if list(definition.entities[parent_entity].identity.key) != [parent_key]:
                raise UsageError(f"entity {entity}: rule '{r.rule_id}' points at {parent_entity}.{parent_key}, "
                                 f"which is not that entity's key; --engine sql checks references to keys only")
            # the EXISTS compares normalised values on both sides: the parent's key needs a SQL form too
            sql_ok = sql_ok and _sql_expr(d, definition.entities[parent_entity], parent_key) is not None
        if not sql_ok:
            # uniqueness and references without SQL form: Python, on the whole entity's hashed keys
            # (``_python_duplicates``, ``_parent_valid_keys``) judged batch by batch
            plan.py_rules.append(r)
            continue
        if r.kind == "unique":
            cols = list(r.unique_on)
            col = r.kwargs["column"]
            nulls = " OR ".join(f"u.{d.q(c)} IS NULL" for c in cols)
            part = ", ".join(f"u.{d.q(c)}" for c in cols)
            plan.derived[col] = (f"CASE WHEN {nulls} THEN NULL WHEN COUNT(*) OVER (PARTITION BY {part}) > 1 "
                                 f"THEN 0 ELSE 1 END")
            r = dataclasses.replace(r, kwargs={"column": col, "value_set": [1]})
        elif r.kind == "reference":
            col = r.kwargs["column"]
            plan.derived[col] = ("{ref:" + r.rule_id + "}")  # filled in once the parent's plan is known
            r = dataclasses.replace(r, kwargs={"column": col, "value_set": [1]})
        plan.sql_rules.append(r)
    # plus what their steps read (a phone's city_column), or Python would normalise without it
    plan.python_columns = set(_with_step_columns(rules_def, sorted(set(exprs) | {f for r in plan.py_rules
                                                                                  for f in r.fields})))
    plan.control_keys = next((r.key_fields for r in rules if r.kind == "control_chars"), ())
    return plan


def _ref_sql(d: Dialect, rule, parent: EntityPlan) -> str:
    f = rule.fields[0]
    k = rule.target[1]
    return (f"CASE WHEN u.{d.q(f)} IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM ({parent.union(d)}) p "
            f"WHERE p.{d.q(k)} = u.{d.q(f)}) THEN 1 ELSE 0 END")


def asset_query(d: Dialect, plan: EntityPlan, plans: dict[str, EntityPlan], only: list[str] = ()) -> str:
    """The query asset: the entity's normalised columns, plus the derived columns named in ``only``."""
    derived = []
    for col, e in plan.derived.items():
        if col not in only:
            continue
        if e.startswith("{ref:"):
            rid = e[5:-1]
            rule = next(r for r in plan.rules if r.rule_id == rid)
            e = _ref_sql(d, rule, plans[rule.target[0]])
        derived.append(f"{e} AS {d.q(col)}")
    extra = (", " + ", ".join(derived)) if derived else ""
    return f"SELECT u.*{extra} FROM ({plan.union(d)}) u"


def _python_keys(rules_def, raw: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``raw`` (extract's text) normalised as ``normalise`` does on whole rows: only these
    columns' steps run, so ``columns`` must hold every column they read (``_with_step_columns``)."""
    from crmbridge.validation.normalise import normalise

    only = rules_def.model_copy(update={
        "normalise": {f: v for f, v in rules_def.normalise.items() if f == "*" or f in columns},
        "allowed_values": [a for a in rules_def.allowed_values if a.field in columns]})
    return normalise(raw[columns], only, columns).frame


def _with_step_columns(rules_def, columns: list[str]) -> list[str]:
    """``columns`` plus the columns their steps read (``phone``'s ``city_column`` ...)."""
    out = list(columns)
    for c in out:  # grows while it runs: a read column's own steps may read another
        for _, params in _column_steps(rules_def, c):
            out += [v for n, v in params.items() if n.endswith("_column") and isinstance(v, str) and v not in out]
    return out


# --------------------------------------------------------------------------- the outcome of one entity


@dataclass
class RuleTally:
    rule: Any
    where: str  # database | python | database+python
    element_count: int = 0
    unexpected_count: int = 0
    basis: int = 0  # rows the percentage is taken of (GX: present values; not_null: every row)

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        pct = 100.0 * self.unexpected_count / self.basis if self.basis else 0.0
        if r.mostly is not None:
            passed = not self.basis or (self.basis - self.unexpected_count) / self.basis >= r.mostly
        else:
            passed = self.unexpected_count == 0
        return {"rule_id": r.rule_id, "kind": r.kind, "severity": r.severity, "level": r.level, "mostly": r.mostly,
                "description": r.description, "expectation": r.expectation, "passed": bool(passed),
                "element_count": self.element_count, "unexpected_count": self.unexpected_count,
                "unexpected_percent": round(pct, 4), "fields": list(r.fields), "where": self.where,
                "rows_quarantined": self.unexpected_count if (r.blocking and r.level == "row") else 0}


def _ident(department, key_values) -> tuple:
    return (department, *[None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                          for v in key_values])
