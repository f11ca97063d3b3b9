"""``crmbridge validate --engine sql``: the definition's rules run inside the source database.

For entities whose sources are SQL sources (``connectors/sql.py``), the rules are split in two:

- **in the database**, through great-expectations' SQL execution engine on a query asset (a ``SELECT``
  over the source tables whose columns are the declared normalisation written as SQL): ``required``,
  ``allowed_values``, ``iso_country`` formats, uniqueness of keys (a window count per key,
  checked by ``ExpectColumnValuesToBeInSet``) and references (an ``EXISTS``
  against the parent's query). Only aggregates (GX's ``BASIC`` result format: counts) and failing row keys
  come back, the keys by a streamed query of the condition GX counts, checked against GX's count
  (``sqlengine_gx``).
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
  valid keys in a ``mappings.keyindex.KeyIndex``, the streamed pandas path's own indexes. The database
  names its failing rows by such a key's raw text, which Python normalises.

Rows have no ``_row_id`` in the database: a failing row is identified by ``(department, key)``. Under a
blocking key rule rows sharing one are all quarantined (duplicates), so counts stay exact. Failing rows
are spilled to a SQLite file in a temporary folder as they come (``sqlengine_failures``), not held in
memory; the quarantine file is written from it, one identity at a time.

Output (written into a temporary folder and moved into place when complete)::

    reports/validate-sql/<UTC timestamp>/summary.json            per entity and rule: the validate figures
    reports/validate-sql/<UTC timestamp>/quarantine/<entity>.csv the quarantined keys and their reasons

It is a report, not a run stage: map and load still need ``extract`` + ``validate``.

This module is the command (sources, report, output files); the work is in ``sqlengine_dialect`` (SQL form
of the normalise steps), ``sqlengine_plan`` (which rule runs where, the query asset), ``sqlengine_gx`` (the
rules great-expectations runs in the database) and ``sqlengine_python`` (the streamed pass, key indexes).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge.errors import UsageError
from crmbridge.secretref import redact
from crmbridge.validation.sqlengine_dialect import Dialect
from crmbridge.validation.sqlengine_gx import _run_sql_rules
from crmbridge.validation.sqlengine_failures import Failures
from crmbridge.validation.sqlengine_plan import EntityPlan, RuleTally, _counter, plan_entity
from crmbridge.validation.sqlengine_python import _parent_valid_keys, _python_duplicates, _python_pass
from crmbridge.validation.verdict import Verdict

OUT_DIR = Path("reports") / "validate-sql"
STAGE = "validate-sql"
BATCH_ROWS = 50_000


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class SqlValidationReport(Verdict):
    out_dir: str
    definition_path: str
    definition_version: str
    definition_status: str
    blocking_failed: bool
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"engine": "sql", "out_dir": self.out_dir, **self.verdict_dict()}


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
    spill = tempfile.TemporaryDirectory(prefix="crmbridge-validate-sql-")
    try:
        for entity, plan in plans.items():
            fails_all[entity] = Failures(Path(spill.name) / f"{len(fails_all)}.sqlite", len(plan.key))
            with progress.tracked(f"{entity} (database)", None):
                entities[entity] = _validate_entity(out, final, d, engine, gctx, ds, plan, plans, ctx, fails_all,
                                                    batch_rows)
    finally:
        gctx.data_sources.delete(ds_name)
        for f in fails_all.values():
            f.close()
        spill.cleanup()
    blocking = any(e["blocking_failed"] for e in entities.values())
    reports = {"summary": str(final / "summary.json"), "quarantine": str(final / "quarantine")}
    rep = SqlValidationReport(out_dir=str(final), definition_path=str(def_path),
                              definition_version=definition.version, definition_status=definition.status,
                              blocking_failed=blocking, entities=entities, reports=reports)
    write_json(out / "summary.json", {**rep.as_dict(), "definition": definition.sign_off_dict(),
                                      "definition_path": str(def_path), "database": _shown(url),
                                      "created": final.name})
    return rep


def _parent_bad_keys(d: Dialect, engine, plan: EntityPlan, plans, ctx_fails: dict[str, Failures]) -> dict[str, Any]:
    """Per reference rule of ``plan``: parent keys whose every parent row was quarantined (a key
    quarantined in one department stays valid when another department holds it validly), as a
    ``mappings.keyindex.KeyIndex``."""
    from sqlalchemy import text

    out: dict[str, Any] = {}
    for r in plan.sql_rules:
        if r.kind != "reference":
            continue
        parent_entity, k = r.target
        parent = plans[parent_entity]
        fails = ctx_fails[parent_entity]
        valid_elsewhere = set()
        if len({s.source.department for s in parent.sources}) > 1:
            # keys held by several departments (few): valid if some department's row was not quarantined
            sql = (f"SELECT p.{d.q(k)}, COUNT(DISTINCT p.{d.q('_department')}) FROM ({parent.union(d)}) p "
                   f"WHERE p.{d.q(k)} IS NOT NULL GROUP BY p.{d.q(k)} "
                   f"HAVING COUNT(DISTINCT p.{d.q('_department')}) > 1")
            with engine.connect() as conn:
                for key, n in conn.execution_options(stream_results=True).execute(text(sql)):
                    depts = fails.blocked_departments(str(key))
                    if depts and len(depts) < int(n):
                        valid_elsewhere.add(str(key))
        out[r.rule_id] = fails.blocked_keys(exclude=frozenset(valid_elsewhere))
    return out


def _validate_entity(out, final, d, engine, gctx, ds, plan: EntityPlan, plans, ctx, fails_all: dict,
                     batch_rows: int) -> dict[str, Any]:
    sql_ids = {r.rule_id for r in plan.sql_rules}
    tallies = {r.rule_id: RuleTally(rule=r, where="python" if r.rule_id not in sql_ids else
                                    "database+python" if r.kind == "reference" else "database") for r in plan.rules}
    fails = fails_all[plan.entity]
    _run_sql_rules(gctx, ds, engine, d, plan, plans, tallies, fails, ctx, batch_rows)
    bad_keys = _parent_bad_keys(d, engine, plan, plans, fails_all)
    _python_duplicates(engine, d, plan, ctx, batch_rows)
    for r in plan.py_refs:
        parent_entity, k = r.target
        if (parent_entity, k) not in ctx.valid_keys:
            ctx.valid_keys[(parent_entity, k)] = _parent_valid_keys(engine, d, plans[parent_entity],
                                                                   fails_all[parent_entity], k, batch_rows)
    rows_in = _python_pass(engine, d, plan, tallies, fails, ctx, bad_keys, batch_rows)
    # what children of this entity read: why a key was quarantined
    ctx.quarantined[(plan.entity, plan.key[0])] = fails.quarantined_reasons() if len(plan.key) == 1 else {}
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
        for ident, rs, per in fails.groups():  # ordered by the identity's values, as text
            block = [t for b, t in rs if b == 0]
            if not block:
                continue
            warn = [t for b, t in rs if b == 1]
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
