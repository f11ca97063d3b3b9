"""``crmbridge validate --engine sql``: the definition's rules run inside the source database.

For entities whose sources are SQL sources (``connectors/sql.py``), the rules are split in two:

- **in the database**, through great-expectations' SQL execution engine on a query asset (a ``SELECT``
  over the source tables whose columns are the declared normalisation written as SQL): ``required``,
  ``allowed_values``, ``iso_country`` formats, uniqueness of keys (single column: GX's
  ``ExpectColumnValuesToBeUnique``; per department: a window count) and references (an ``EXISTS``
  against the parent's query). Only failing row keys and aggregates come back
  (``result_format: COMPLETE`` with ``unexpected_index_column_names`` = department + key).
- **in Python**, on every source row read in streamed batches (server-side cursor, ``yield_per``) and
  normalised by the very same ``normalise`` as the pandas path: the rules whose checks only Python has
  (phone, e-mail, credit code, postal code, dates, numbers, regex formats, markup, cross-field rules,
  control characters) and the rules on fields whose normalisation has no SQL form. A column no rule but
  ``control_chars`` reads only sends the values the database finds a control character in. The same pass checks,
  value by value, that every normalised column the database used equals the Python one (a difference
  stops the command: the database figures would not be the pandas path's), and which children point at a
  parent the validation quarantined.
- **uniqueness and references of keys without SQL form** (``nfkc`` on MariaDB/SQLite, the template's keys)
  run in that Python pass too, against compact indexes built first from batches of only the key columns:
  ``checks.DuplicateFinder`` (8-byte hashes, repeated hashes confirmed on the values) and the parent's
  valid keys in a ``checks.KeyIndex``, the streamed pandas path's own indexes. The database names its
  failing rows by such a key's raw text, which Python normalises.

Rows have no ``_row_id`` in the database: a failing row is identified by ``(department, key)``. Under a
blocking key rule rows sharing one are all quarantined (duplicates), so counts stay exact.

Output (written into a temporary folder and moved into place when complete)::

    reports/validate-sql/<UTC timestamp>/summary.json            per entity and rule: the validate figures
    reports/validate-sql/<UTC timestamp>/quarantine/<entity>.csv the quarantined keys and their reasons

It is a report, not a run stage: map and load still need ``extract`` + ``validate``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact

OUT_DIR = Path("reports") / "validate-sql"
STAGE = "validate-sql"
BATCH_ROWS = 50_000
# Rules that run in the database when every field they read has a SQL form.
SQL_KINDS = ("required", "unique", "allowed", "reference")
_counter = itertools.count(1)
RAW_PREFIX = "__raw__"  # the query asset's raw text of a key column without SQL form
RAW = "\x00raw\x00"  # where a source's column goes in a normalised expression (no literal can hold NUL)


@lru_cache(maxsize=1)
def whitespace() -> str:
    """Every character Python's ``str.strip()`` removes (what the ``trim`` transform strips)."""
    return "".join(chr(i) for i in range(0x3001) if chr(i).isspace())


# --------------------------------------------------------------------------- SQL text per dialect


class Dialect:
    """SQL spelling of the normalise steps that have an exact SQL form on one database."""

    def __init__(self, engine):
        self.dialect = engine.dialect
        self.name = engine.dialect.name  # postgresql, mysql (MariaDB too), sqlite
        self.prep = engine.dialect.identifier_preparer

    @property
    def mysql(self) -> bool:
        return self.name in ("mysql", "mariadb")

    def q(self, ident: str) -> str:
        return self.prep.quote(ident)

    def lit(self, value: str) -> str:
        """A string literal; colons escaped for ``sqlalchemy.text`` (GX runs query assets through it)."""
        from sqlalchemy import String, literal

        s = str(literal(value, String()).compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        return s.replace(":", "\\:")

    def text_type(self) -> str:
        return "CHAR" if self.mysql else "TEXT"

    def raw(self, col: str, textual: bool) -> str:
        """The column as extract's text: '' is missing; MySQL/MariaDB compare it binary and without
        padding, as Python does (their default collations ignore case and trailing spaces)."""
        e = self.q(col) if textual else f"CAST({self.q(col)} AS {self.text_type()})"
        if self.mysql:
            e = f"CONVERT({e} USING utf8mb4) COLLATE utf8mb4_nopad_bin"
        return f"NULLIF({e}, '')"

    def _class(self, chars: str) -> str:
        return "[" + "".join(f"\\x{{{ord(c):x}}}" if self.mysql else (f"\\u{ord(c):04x}" if ord(c) > 0x7f
                                                                     else f"\\x{ord(c):02x}") for c in chars) + "]"

    def strip(self, e: str) -> str | None:
        ws = whitespace()
        if self.name == "postgresql":
            return f"btrim({e}, {self.lit(ws)})"
        if self.name == "sqlite":
            return f"trim({e}, {self.lit(ws)})"
        if self.mysql:
            cls = self._class(ws)
            return f"REGEXP_REPLACE({e}, {self.lit(f'^{cls}+|{cls}+$')}, '')"
        return None

    def collapse(self, e: str) -> str | None:
        cls = self._class(whitespace() + "\u3000\u00a0")
        if self.name == "postgresql":
            return f"regexp_replace({e}, {self.lit(cls + '+')}, ' ', 'g')"
        if self.mysql:
            return f"REGEXP_REPLACE({e}, {self.lit(cls + '+')}, ' ')"
        return None

    def has_control(self, e: str, key: bool) -> str:
        """True where text ``e`` holds a character ``checks.control_chars_check`` refuses (keys: also tab and
        line breaks). May say yes too often (MariaDB's REGEXP on a binary collation sees bytes), never too
        rarely: a yes only makes the value travel to Python, where the real check runs."""
        codes = [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)]
        if key:
            codes += [0x09, 0x0a, 0x0d]
        if self.name == "postgresql":  # a PostgreSQL text never holds NUL
            cls = "[" + "".join("\\x%02x" % c for c in codes if c) + "]"
            return f"{e} ~ {self.lit(cls)}"
        if self.mysql:
            cls = "[" + "".join("\\x{%x}" % c for c in codes) + "]"
            return f"{e} REGEXP {self.lit(cls)}"
        return "(" + " OR ".join(f"instr({e}, char({c})) > 0" for c in codes) + ")"

    def replace(self, e: str, pattern: str, replacement: str) -> str | None:
        """``re.sub(pattern, replacement, e)``, blank -> missing, as the ``replace`` transform does; only
        for patterns in the subset whose meaning the databases share with Python (no ``(?...)``
        constructs, no escapes beyond ``\\s \\d \\w`` and escaped punctuation) and literal
        replacements. Dialect differences left (what ``\\s`` covers) stop the command in the value-by-value
        check instead of passing silently."""
        if not _portable_regex(pattern) or "\\" in replacement or "$" in replacement:
            return None
        if self.name == "postgresql":
            out = f"regexp_replace({e}, {self.lit(pattern)}, {self.lit(replacement)}, 'g')"
        elif self.mysql:  # MariaDB's REGEXP_REPLACE (PCRE) replaces every match
            out = f"REGEXP_REPLACE({e}, {self.lit(pattern)}, {self.lit(replacement)})"
        else:
            return None
        blank = self.strip(out)
        return f"CASE WHEN {blank} = '' THEN NULL ELSE {out} END"

    def nfkc(self, e: str) -> str | None:
        return f"normalize({e}, NFKC)" if self.name == "postgresql" else None

    def step(self, e: str, name: str, params: dict) -> str | None:
        """``e`` after one normalise step, or None when the step has no SQL form here."""
        if name == "trim":
            s = self.strip(e)
            if s is None:
                return None
            if params.get("collapse"):
                s = self.collapse(s)
                if s is None:
                    return None
            return f"NULLIF({s}, '')"
        if name == "case" and params.get("to") in ("upper", "lower"):
            return f"{params['to'].upper()}({e})"
        if name == "nfkc":
            return self.nfkc(e)
        if name == "null_if":
            key = self.strip(e)
            if key is None:
                return None
            markers = sorted({v.strip() for v in params["values"]})
            if params.get("ignore_case", True):
                key, markers = f"LOWER({key})", sorted({m.lower() for m in markers})
            return f"CASE WHEN {key} IN ({', '.join(self.lit(m) for m in markers)}) THEN NULL ELSE {e} END"
        if name == "replace":
            return self.replace(e, params["pattern"], params.get("replacement") or "")
        if name == "value_map":
            policy = params.get("on_missing") or ("default" if params.get("default") is not None else "error")
            key = self.nfkc(e)
            key = self.strip(key) if key else None
            if key is None or policy not in ("keep", "default", "error"):
                return None
            ignore = params.get("ignore_case", True)
            if ignore:
                key = f"LOWER({key})"
            from crmbridge.mappings.transforms_text import _map_key

            table = {_map_key(k, ignore): v for k, v in params["map"].items()}
            whens = " ".join(f"WHEN {self.lit(k)} THEN {self._value(v)}" for k, v in table.items())
            other = self._value(params.get("default")) if policy == "default" else e
            return f"CASE {key} {whens} ELSE {other} END" if whens else e
        return None

    def _value(self, v: Any) -> str:
        if v is None:
            return "NULL"
        from crmbridge.mappings.transforms_base import as_text

        return self.lit(as_text(pd.Series([v])).iloc[0])


def _portable_regex(pattern: str) -> bool:
    """True for a Python pattern that PostgreSQL's AREs and MariaDB's PCRE read the same way as far as
    the syntax goes: no ``(?`` groups/flags, and backslash only before ``s S d D w W`` or punctuation
    (``\\b`` is a backspace in PostgreSQL, ``\\A``/``\\Z`` do not exist there)."""
    if "(?" in pattern:
        return False
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            nxt = pattern[i + 1:i + 2]
            if not nxt or not (nxt in "sSdDwW" or (not nxt.isalnum() and nxt.isascii() and nxt != " ")):
                return False
            i += 2
        else:
            i += 1
    return True


# --------------------------------------------------------------------------- the plan of one entity


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
        schema, _, name = src.table.rpartition(".")
        insp = inspect(engine)
        if not insp.has_table(name, schema=schema or None):
            tables = insp.get_table_names(schema=schema or None)
            raise UsageError(f"{where}: table '{src.table}' not found; tables there: "
                             f"{', '.join(tables[:30]) or '(none)'}",
                             hint="fix `table:` for this source in crmbridge.yml")
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


@dataclass
class Failures:
    """Failing rows by identity ``(department, *key)``: per rule how many rows, and the reasons."""

    rows: dict[tuple, dict[str, int]] = field(default_factory=dict)
    reasons: dict[tuple, list[tuple[int, str]]] = field(default_factory=dict)  # (0 blocking | 1 warning, text)

    def add(self, ident: tuple, rule, text: str) -> None:
        per = self.rows.setdefault(ident, {})
        per[rule.rule_id] = per.get(rule.rule_id, 0) + 1
        blocks = rule.blocking and rule.level == "row"
        lst = self.reasons.setdefault(ident, [])
        entry = (0 if blocks else 1, text)
        if entry not in lst:
            lst.append(entry)


def _gx_sql_run(gctx, ds, plan: EntityPlan, rules: list, query: str):
    import great_expectations as gx

    from crmbridge.validation.gxsuite import build_suite

    n = next(_counter)
    name = f"sql-{plan.entity}-{n}"
    suite = gctx.suites.add(build_suite(name, rules))
    asset = ds.add_query_asset(name, query=query)
    batch_def = asset.add_batch_definition_whole_table("all")
    vd = gctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
    index_cols = list(dict.fromkeys(["_department", *plan.key_columns_sql(), *(f for r in rules for f in r.fields)]))
    try:
        return vd.run(result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_cols,
                                     "return_unexpected_index_query": False,
                                     # GX cuts SQL failure lists at this many rows (default 20): all keys are wanted
                                     "partial_unexpected_count": 2**31 - 1})
    finally:
        gctx.validation_definitions.delete(vd.name)
        gctx.suites.delete(suite.name)
        ds.delete_asset(asset.name)


def _ident(department, key_values) -> tuple:
    return (department, *[None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                          for v in key_values])


def _run_sql_rules(gctx, ds, d: Dialect, plan: EntityPlan, plans, tallies, fails: Failures, ctx) -> None:
    from crmbridge.validation.outcome import messages

    # Rules on a derived column (window count, EXISTS) each get a query asset of their own: every metric
    # query GX makes scans its asset, and the plain rules must not pay for a window sort each time.
    plain = [r for r in plan.sql_rules if r.kwargs.get("column") not in plan.derived]
    groups = ([(plain, [])] if plain else []) + [([r], [r.kwargs["column"]]) for r in plan.sql_rules
                                                 if r.kwargs.get("column") in plan.derived]
    results = [res for rules, only in groups
               for res in _gx_sql_run(gctx, ds, plan, rules, asset_query(d, plan, plans, only)).results]
    by_id = {r.rule_id: r for r in plan.sql_rules}
    for res in results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        info = res.exception_info or {}
        if info.get("raised_exception"):
            raise UsageError(f"validate --engine sql: rule '{rule.rule_id}' on '{plan.entity}' could not run in the "
                             f"database: {redact(info.get('exception_message'))}")
        r = res.result or {}
        t = tallies[rule.rule_id]
        t.element_count = int(r.get("element_count") or 0)
        t.unexpected_count += int(r.get("unexpected_count") or 0)
        t.basis = t.element_count - int(r.get("missing_count") or 0)
        index_list = r.get("unexpected_index_list") or []
        if len(index_list) != int(r.get("unexpected_count") or 0):
            raise RunFailed(f"validate --engine sql: rule '{rule.rule_id}': great-expectations reported "
                            f"{r.get('unexpected_count')} failing rows but listed {len(index_list)}")
        if not index_list:
            continue
        frame = pd.DataFrame(index_list)
        for c in (*plan.key_columns_sql(), *rule.fields):
            if c not in frame.columns:
                frame[c] = None
        if plan.raw_keys:  # rows named by their raw key: the key as the Python pass will see it
            normal = _python_keys(plan.rules_def, frame.rename(
                columns={RAW_PREFIX + k: k for k in plan.raw_keys})[plan.raw_keys], plan.raw_keys)
            for k in plan.raw_keys:
                frame[k] = normal[k].to_numpy(dtype=object)
        orig = next(x for x in plan.rules if x.rule_id == rule.rule_id)
        texts = messages(orig, frame, np.arange(len(frame)), ctx)
        for row, text_ in zip(frame[["_department", *plan.key]].itertuples(index=False), texts):
            fails.add(_ident(row[0], row[1:]), orig, text_)


# --------------------------------------------------------------------------- the streamed Python pass


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


def _stream_columns(engine, d: Dialect, s: SourceSql, columns: list[str], batch_rows: int):
    """Batches of one source holding only ``columns`` as extract's text (None where the source lacks
    one) and ``_department``: what the key indexes need, without the rest of a wide table."""
    from sqlalchemy import text

    from crmbridge.connectors.sql import to_text

    present = [c for c in columns if c in s.columns]
    if not present:
        stmt = text(f"SELECT COUNT(*) FROM {s.from_sql}")
        with engine.connect() as conn:
            n = int(conn.execute(stmt).scalar() or 0)
        for start in range(0, n, batch_rows):
            m = min(batch_rows, n - start)
            df = pd.DataFrame({c: pd.Series([None] * m, dtype=object) for c in columns})
            df["_department"] = s.source.department
            yield df
        return
    stmt = text(f"SELECT {', '.join(d.q(s.columns[c]) for c in present)} FROM {s.from_sql}")
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        try:
            for part in result.partitions(batch_rows):
                df = pd.DataFrame([tuple(r) for r in part], columns=present, dtype=object)
                for c in present:
                    col = df[c]
                    df[c] = col.where(col != "", None) if s.textual.get(c, False) else col.map(to_text)
                for c in columns:
                    if c not in df.columns:
                        df[c] = None
                df["_department"] = s.source.department
                yield df
        finally:
            result.close()


def _python_duplicates(engine, d: Dialect, plan: EntityPlan, ctx, batch_rows: int) -> None:
    """For unique rules whose key has no SQL form here: the key values occurring more than once in the
    whole entity (``checks.DuplicateFinder``: 8-byte hashes of every row's normalised key, then the
    values of the few rows whose hash repeats), read from the database in batches of the key columns
    only. The rule then runs in the Python pass like the pandas path's, against this index."""
    from crmbridge.validation.checks import DuplicateFinder

    rules = plan.py_unique
    if not rules:
        return
    finders = {r.rule_id: DuplicateFinder(list(r.unique_on)) for r in rules}
    cols = _with_step_columns(plan.rules_def, sorted({c for r in rules for c in r.unique_on if c != "_department"}))

    def batches():
        for s in plan.sources:
            for df in _stream_columns(engine, d, s, cols, batch_rows):
                frame = _python_keys(plan.rules_def, df, cols)
                frame["_department"] = df["_department"].to_numpy(dtype=object)
                yield frame

    for frame in batches():
        for f in finders.values():
            f.add(frame)
    if any(f.needs_confirm for f in finders.values()):  # a hash repeats: read the keys again for those values
        for frame in batches():
            for f in finders.values():
                f.confirm(frame)
    for rid, f in finders.items():
        ctx.duplicates[(plan.entity, rid)] = f.index()


def _parent_valid_keys(engine, d: Dialect, parent: EntityPlan, fails: Failures, key: str, batch_rows: int):
    """The parent's keys held by at least one row validation did not quarantine (the pandas path's
    valid keys), as a ``checks.KeyIndex``, from batches of the parent's department and key only."""
    from crmbridge.validation.checks import KeyIndex

    quarantined: dict[Any, set] = {}
    for ident, rs in fails.reasons.items():
        if ident[1] is not None and any(b == 0 for b, _ in rs):
            quarantined.setdefault(ident[0], set()).add(ident[1])
    index = KeyIndex()
    for s in parent.sources:
        bad = pd.Index(list(quarantined.get(s.source.department, ())), dtype=object)
        cols = _with_step_columns(parent.rules_def, [key])
        for df in _stream_columns(engine, d, s, cols, batch_rows):
            keys = _python_keys(parent.rules_def, df, cols)[key]
            keep = keys.notna() & ~keys.isin(bad)
            index.add(keys[keep].to_numpy(dtype=object))
    return index.freeze()


def _stream_source(engine, d: Dialect, plan: EntityPlan, s: SourceSql, batch_rows: int):
    """Batches of one source: every column as extract's text plus the database's normalised columns."""
    from sqlalchemy import text

    from crmbridge.connectors.sql import to_text

    data_cols = list(s.columns)
    sql_cols = [c for c in plan.sql_columns() if c in s.columns]
    parts = []
    for c in data_cols:
        col = d.q(s.columns[c])
        if c in plan.python_columns or plan.steps_without_sql(d, c):
            parts.append(col)
        else:  # read by no rule but control_chars: only a value holding a control character travels
            as_text = col if s.textual.get(c, False) else f"CAST({col} AS {d.text_type()})"
            if d.mysql:
                as_text = f"CONVERT({as_text} USING utf8mb4) COLLATE utf8mb4_nopad_bin"
            check = d.has_control(as_text, c in plan.control_keys)
            parts.append(f"CASE WHEN {check} THEN {col} END AS {col}")
    parts += [f"{plan._expr(d, s, c)} AS {d.q('__sql__' + c)}" for c in sql_cols]
    # a non-text key the database names its failing rows by: its text there must be extract's text
    raw_keys = [k for k in plan.raw_keys if k in s.columns and not s.textual.get(k, False)]
    parts += [f"{d.raw(s.columns[k], False)} AS {d.q('__sql__' + RAW_PREFIX + k)}" for k in raw_keys]
    sql_cols = sql_cols + [RAW_PREFIX + k for k in raw_keys]
    stmt = text(f"SELECT {', '.join(parts)} FROM {s.from_sql}")
    names = data_cols + ["__sql__" + c for c in sql_cols]
    text_col = {**{c: s.textual.get(c, False) for c in data_cols}, **{"__sql__" + c: True for c in sql_cols}}
    ordinal = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        try:
            for part in result.partitions(batch_rows):  # text(): yield_per alone does not size them
                n = len(part)
                df = pd.DataFrame([tuple(r) for r in part], columns=names, dtype=object)
                for c in names:  # extract's text: text columns only lose '' (vectorised), others via to_text
                    col = df[c]
                    df[c] = col.where(col != "", None) if text_col[c] else col.map(to_text)
                lines = np.arange(ordinal + 1, ordinal + n + 1)
                ordinal += n
                df["_row_id"] = [f"{s.source.name}:{i}" for i in lines]
                df["_source"] = s.source.name
                df["_department"] = s.source.department
                df["_line"] = lines
                df["_source_key"] = df["_row_id"]
                yield df, sql_cols
        finally:
            result.close()


def _python_pass(engine, d: Dialect, plan: EntityPlan, tallies, fails: Failures, ctx, bad_parent_keys,
                 batch_rows: int) -> int:
    """Run the Python rules on every row in batches; check the database's normalisation; count rows."""
    from crmbridge.validation.gxsuite import SuiteRunner

    refs = [r for r in plan.sql_rules if r.kind == "reference"]
    runner = SuiteRunner(plan.entity, plan.py_rules) if plan.py_rules else None  # suite built once
    try:
        return _python_batches(engine, d, plan, tallies, fails, ctx, bad_parent_keys, batch_rows, refs, runner)
    finally:
        if runner is not None:
            runner.close()


def _python_batches(engine, d, plan, tallies, fails, ctx, bad_parent_keys, batch_rows, refs, runner) -> int:
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.outcome import _reference_messages, messages
    from crmbridge.validation.rules import referenced_columns

    rows_in = 0
    for s in plan.sources:
        for df, sql_cols in _stream_source(engine, d, plan, s, batch_rows):
            rows_in += len(df)
            raw = df.drop(columns=["__sql__" + c for c in sql_cols])
            frame = normalise(raw, plan.rules_def, referenced_columns(plan.rules)).frame
            for c in sql_cols:
                py = (raw[c[len(RAW_PREFIX):]] if c.startswith(RAW_PREFIX) else frame[c]).astype(object)
                py = py.reset_index(drop=True)
                db = df["__sql__" + c].astype(object).reset_index(drop=True)
                differ = (~((py == db) | (py.isna() & db.isna()))).to_numpy(dtype=bool)
                if differ.any():
                    i = int(np.flatnonzero(differ)[0])
                    raise UsageError(
                        f"entity {plan.entity}: the database normalises {c} differently from Python "
                        f"({int(differ.sum())} value(s) in one batch, e.g. row {df['_row_id'].iloc[i]}: "
                        f"{py[i]!r} in Python, {db[i]!r} in {d.name}); its figures would not be the pandas path's",
                        hint="use `crmbridge extract` + `crmbridge validate` for this source, or a database "
                             "whose collation/functions match (docs/validate-sql.md)")
            depts, keyvals = frame["_department"].to_numpy(dtype=object), frame[plan.key].to_numpy(dtype=object)

            def ident(p: int) -> tuple:
                return _ident(depts[p], keyvals[p])
            if runner is not None and len(frame):
                erun = runner.run(frame, ctx)
                pos_of = pd.Index(frame["_row_id"])
                by_id = {res.expectation_config.meta["rule_id"]: (res.result or {}) for res in erun.gx_result.results}
                for o in erun.outcomes:
                    t = tallies[o.rule.rule_id]
                    res = by_id.get(o.rule.rule_id) or {}
                    t.element_count += o.element_count
                    t.unexpected_count += o.unexpected_count
                    t.basis += o.element_count - int(res.get("missing_count") or 0)
                    if not len(o.failing_row_ids):
                        continue
                    pos = pos_of.get_indexer(o.failing_row_ids)
                    for p, text_ in zip(pos, messages(o.rule, frame, pos, ctx)):
                        fails.add(ident(p), o.rule, text_)
            for r in refs:  # children of a parent that exists but was quarantined
                bad = bad_parent_keys.get(r.rule_id)
                if not bad:
                    continue
                f = r.fields[0]
                hit = frame[f].isin(bad).to_numpy(dtype=bool) & frame[f].notna().to_numpy(dtype=bool)
                if hit.any():
                    tallies[r.rule_id].unexpected_count += int(hit.sum())
                    pos = np.flatnonzero(hit)
                    orig = next(x for x in plan.rules if x.rule_id == r.rule_id)
                    vals = frame[f].to_numpy(dtype=object)[pos]
                    for p, text_ in zip(pos, _reference_messages(orig, vals, ctx)):
                        fails.add(ident(p), orig, text_)
    return rows_in


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class SqlValidationReport:
    out_dir: str
    definition_path: str
    definition_version: str
    definition_status: str
    blocking_failed: bool
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.blocking_failed

    def as_dict(self) -> dict[str, Any]:
        return {"engine": "sql", "out_dir": self.out_dir, "definition": self.definition_path,
                "definition_version": self.definition_version, "definition_status": self.definition_status,
                "blocking_failed": self.blocking_failed, "entities": self.entities, "reports": self.reports}


def _entity_sources(project, definition) -> tuple[dict[str, list], str]:
    todo = {e: project.sources_for(e) for e in definition.entity_order() if project.sources_for(e)}
    if not todo:
        raise UsageError("validate --engine sql: no source of the project holds an entity of the definition",
                         hint="check `entity:` of the sources in crmbridge.yml")
    urls = set()
    for e, srcs in todo.items():
        for s in srcs:
            if s.type != "sql":
                raise UsageError(f"validate --engine sql: source {s.name} (entity {e}) is a {s.type} source; "
                                 "the SQL engine validates SQL sources only",
                                 hint="use `crmbridge extract` + `crmbridge validate` for file sources")
            urls.add(project.db_url(s.url, f"sources.{s.name}.url"))
    if len(urls) != 1:
        raise UsageError("validate --engine sql: the entities' SQL sources are in different databases",
                         hint="references and one report need one database; validate the others with the pandas path")
    return todo, urls.pop()


def _shown(url: str) -> str:
    from crmbridge.connectors.sql import _shown as shown

    return shown(url)


def run_validate_sql(project, *, definition_path: str | Path | None = None, batch_rows: int | None = None,
                     out_root: Path | None = None) -> SqlValidationReport:
    """Validate the project's SQL sources in their database; write ``reports/validate-sql/<ts>/``."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.stage import default_definition_path

    path = Path(definition_path) if definition_path else default_definition_path(project)
    if not path.is_absolute():
        path = project.path(path) if definition_path is None else Path.cwd() / path
    definition = load_definition(path)
    todo, url = _entity_sources(project, definition)
    for e in todo:
        for ref in definition.entities[e].references:
            if ref.entity not in todo:
                raise UsageError(f"definition: entity '{e}' references '{ref.entity}', which no SQL source holds",
                                 hint=f"add a source for '{ref.entity}', or remove the reference")
    try:
        engine = create_engine(url)
    except Exception as exc:
        raise UsageError(f"validate --engine sql: cannot use URL {_shown(url)}: {redact(exc)}") from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        orig = getattr(exc, "orig", exc)
        raise UsageError(f"validate --engine sql: cannot connect to {_shown(url)}: {redact(orig)}",
                         hint="check the source's `url:` and that the database is running") from None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    root = out_root or project.path(OUT_DIR)
    final = root / stamp
    tmp = root / f".{stamp}.tmp"
    try:
        tmp.mkdir(parents=True)
        rep = _validate_into(tmp, final, project, engine, url, definition, path, todo,
                             batch_rows or project.config.chunk_rows or BATCH_ROWS)
        tmp.rename(final)
    except SQLAlchemyError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"validate --engine sql: the database refused a query: "
                         f"{redact(getattr(exc, 'orig', exc))}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        engine.dispose()
    return rep


def _validate_into(out: Path, final: Path, project, engine, url, definition, def_path, todo, batch_rows):
    from crmbridge import progress
    from crmbridge.validation.gxsuite import _context
    from crmbridge.validation.reports import write_json
    from crmbridge.validation.rules import RuleContext

    d = Dialect(engine)
    plans = {e: plan_entity(project, d, engine, e, definition, srcs) for e, srcs in todo.items()}
    gctx, _ = _context()
    ds_name = f"crmbridge-sql-{next(_counter)}"
    try:
        ds = gctx.data_sources.add_sql(ds_name, connection_string=url)
    except Exception as exc:
        raise UsageError(f"validate --engine sql: great-expectations cannot open {_shown(url)}: "
                         f"{redact(exc)}") from None
    ctx = RuleContext()
    fails_all: dict[str, Failures] = {}
    entities: dict[str, dict[str, Any]] = {}
    progress.current().expect(len(plans))
    try:
        for entity, plan in plans.items():
            with progress.tracked(f"{entity} (database)", None):
                entities[entity] = _validate_entity(out, final, d, engine, gctx, ds, plan, plans, ctx, fails_all,
                                                    batch_rows)
    finally:
        gctx.data_sources.delete(ds_name)
    blocking = any(e["blocking_failed"] for e in entities.values())
    reports = {"summary": str(final / "summary.json"), "quarantine": str(final / "quarantine")}
    rep = SqlValidationReport(out_dir=str(final), definition_path=str(def_path),
                              definition_version=definition.version, definition_status=definition.status,
                              blocking_failed=blocking, entities=entities, reports=reports)
    write_json(out / "summary.json", {**rep.as_dict(), "definition": definition.sign_off_dict(),
                                      "definition_path": str(def_path), "database": _shown(url),
                                      "created": final.name})
    return rep


def _parent_bad_keys(d: Dialect, engine, plan: EntityPlan, plans, ctx_fails: dict[str, Failures]) -> dict[str, set]:
    """Per reference rule of ``plan``: parent keys whose every parent row was quarantined (a key
    quarantined in one department stays valid when another department holds it validly)."""
    from sqlalchemy import text

    out: dict[str, set] = {}
    for r in plan.sql_rules:
        if r.kind != "reference":
            continue
        parent_entity, k = r.target
        parent = plans[parent_entity]
        per_key: dict[str, set] = {}
        for ident, rs in ctx_fails[parent_entity].reasons.items():
            if ident[1] is not None and any(b == 0 for b, _ in rs):
                per_key.setdefault(ident[1], set()).add(ident[0])
        bad = set(per_key)
        if per_key and len({s.source.department for s in parent.sources}) > 1:
            # keys held by several departments (few): valid if some department's row was not quarantined
            sql = (f"SELECT p.{d.q(k)}, COUNT(DISTINCT p.{d.q('_department')}) FROM ({parent.union(d)}) p "
                   f"WHERE p.{d.q(k)} IS NOT NULL GROUP BY p.{d.q(k)} "
                   f"HAVING COUNT(DISTINCT p.{d.q('_department')}) > 1")
            with engine.connect() as conn:
                for key, n in conn.execution_options(stream_results=True).execute(text(sql)):
                    depts = per_key.get(str(key))
                    if depts is not None and len(depts) < int(n):
                        bad.discard(str(key))
        out[r.rule_id] = bad
    return out


def _validate_entity(out, final, d, engine, gctx, ds, plan: EntityPlan, plans, ctx, fails_all: dict,
                     batch_rows: int) -> dict[str, Any]:
    sql_ids = {r.rule_id for r in plan.sql_rules}
    tallies = {r.rule_id: RuleTally(rule=r, where="python" if r.rule_id not in sql_ids else
                                    "database+python" if r.kind == "reference" else "database") for r in plan.rules}
    fails = Failures()
    _run_sql_rules(gctx, ds, d, plan, plans, tallies, fails, ctx)
    bad_keys = _parent_bad_keys(d, engine, plan, plans, fails_all)
    _python_duplicates(engine, d, plan, ctx, batch_rows)
    for r in plan.py_refs:
        parent_entity, k = r.target
        if (parent_entity, k) not in ctx.valid_keys:
            ctx.valid_keys[(parent_entity, k)] = _parent_valid_keys(engine, d, plans[parent_entity],
                                                                   fails_all[parent_entity], k, batch_rows)
    rows_in = _python_pass(engine, d, plan, tallies, fails, ctx, bad_keys, batch_rows)
    fails_all[plan.entity] = fails
    # what children of this entity read: why a key was quarantined
    quarantined_reason: dict[str, str] = {}
    for ident, rs in fails.reasons.items():
        if any(b == 0 for b, _ in rs) and ident[1] is not None and len(plan.key) == 1:
            quarantined_reason.setdefault(ident[1], "; ".join(t for _, t in sorted(rs, key=lambda x: x[0])))
    ctx.quarantined[(plan.entity, plan.key[0])] = quarantined_reason
    rule_rows = []
    for r in plan.rules:
        row = tallies[r.rule_id].as_dict()
        row["expectation"] = r.expectation
        rule_rows.append(row)
    blocking_ids = {r.rule_id for r in plan.rules if r.blocking and r.level == "row"}
    rows_q, keys_q = _write_quarantine(out / "quarantine" / f"{plan.entity}.csv", plan, fails, blocking_ids)
    blocking = any(not r["passed"] and r["severity"] == "blocking" for r in rule_rows)
    return {"rows_in": rows_in, "rows_quarantined": rows_q, "keys_quarantined": keys_q,
            "rows_valid": rows_in - rows_q, "blocking_failed": blocking, "rules": rule_rows,
            "sources": [s.source.name for s in plan.sources],
            "quarantine_file": str(final / "quarantine" / f"{plan.entity}.csv")}


def _write_quarantine(path: Path, plan: EntityPlan, fails: Failures, blocking_ids: set[str]) -> tuple[int, int]:
    """One line per quarantined identity; a line per warned identity is not written (summary counts
    them). Returns (rows, identities) quarantined."""
    from crmbridge.csvout import Writer

    header = [*plan.key, "_stage", "_reasons", "_blocking", "_warnings", "_department", "_rows"]
    w = Writer(path, header)
    rows = keys = 0
    try:
        def order(item):
            return tuple("" if v is None else str(v) for v in item[0])

        for ident, rs in sorted(fails.reasons.items(), key=order):
            block = [t for b, t in rs if b == 0]
            if not block:
                continue
            warn = [t for b, t in rs if b == 1]
            per = fails.rows[ident]
            n = max(per[rid] for rid in per if rid in blocking_ids)
            rows += n
            keys += 1
            w.writerow([*ident[1:], STAGE, "; ".join(block + warn), "; ".join(block), "; ".join(warn) or None,
                        ident[0], n])
    finally:
        w.close()
    return rows, keys


def print_sql_summary(rep: SqlValidationReport, console=None) -> None:
    """The one-screen summary: rows and quarantined keys per entity, failing rules and where they ran."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console(highlight=False)
    if rep.definition_status != "signed":
        con.print(f"[bold yellow]DRAFT definition v{rep.definition_version}[/]")
    t = Table()
    for col in ("entity", "rows in", "quarantined rows", "quarantined keys"):
        t.add_column(col, justify="left" if col == "entity" else "right")
    for name, e in rep.entities.items():
        t.add_row(name, str(e["rows_in"]), str(e["rows_quarantined"]), str(e["keys_quarantined"]))
    con.print(t)
    f = Table(title="failing rules")
    for col in ("entity", "rule", "severity", "where", "unexpected", "%"):
        f.add_column(col)
    for name, e in rep.entities.items():
        for r in e["rules"]:
            if not r["passed"] or r["unexpected_count"]:
                f.add_row(name, r["rule_id"], r["severity"], r["where"], str(r["unexpected_count"]),
                          f"{r['unexpected_percent']:.2f}")
    if f.row_count:
        con.print(f)
    con.print(f"summary: {rep.reports['summary']}", soft_wrap=True)
    con.print(f"quarantined keys: {rep.reports['quarantine']}", soft_wrap=True)
    con.print("[red]blocking rules failed[/]" if rep.blocking_failed else "no blocking rule failed")
