"""The validate stage: check a run's extracted entities against the agreed definition.

For each entity of the definition (referenced entities first): read the extracted rows, apply the
declared normalisation, run the compiled GX suite, split the rows into valid and quarantined, then
write everything into ``runs/<id>/validate/`` (built in a temporary folder, moved into place only
when complete)::

    <entity>.parquet            rows that passed the blocking rules: normalised text, lineage, _warnings
    quarantine/<entity>.csv     every blocking-failed row: key, _reasons (all of them), data, lineage
    summary.json                per entity and per rule: passed, unexpected count and percent
    report.html                 the stewards' report          disagreement.html/.json  who is a customer
    data_docs/                  great-expectations Data Docs, values escaped

Entities of the run that the definition does not cover pass through unchanged (and are reported so).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge import progress
from crmbridge.errors import RunFailed
from crmbridge.locks import locked

STAGE = "validate"
DEFAULT_DEFINITION = "customer.yml"


@dataclass(frozen=True)
class ValidationReport:
    """What ``run_validate`` found and wrote."""

    run_id: str
    validate_dir: str
    definition_path: str
    definition_version: str
    definition_status: str  # signed or draft
    blocking_failed: bool
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no blocking rule failed (exit code 0 of ``crmbridge validate``)."""
        return not self.blocking_failed

    def counts(self) -> dict[str, dict[str, Any]]:
        keys = ("rows_in", "rows_valid", "rows_quarantined", "rows_warned", "fixed", "normalise_failed")
        return {e: {k: v[k] for k in keys} for e, v in self.entities.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "validate_dir": self.validate_dir, "definition": self.definition_path,
                "definition_version": self.definition_version, "definition_status": self.definition_status,
                "blocking_failed": self.blocking_failed, "entities": self.entities, "reports": self.reports}


def default_definition_path(project) -> Path:
    return project.path(project.config.definitions_dir) / DEFAULT_DEFINITION


@locked("validate")
def run_validate(project, run, *, definition_path: str | Path | None = None, force: bool = False) -> ValidationReport:
    """Validate ``run``'s extracted entities; records stage ``validate``. Blocking failures are data
    (``report.blocking_failed``), not exceptions; a broken invariant raises ``RunFailed``. A run whose
    load started is not validated again unless ``force`` (its output is the load's evidence)."""
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state
    from crmbridge.validation.definition import load_definition

    path = Path(definition_path) if definition_path else default_definition_path(project)
    if not path.is_absolute():
        path = project.path(path) if definition_path is None else Path.cwd() / path
    definition = load_definition(path)
    engine = open_state(project.state_url)
    R.refuse_after_load(engine, run, STAGE, force=force)
    R.start_stage(engine, run.run_id, STAGE)
    tmp = run.dir / f".{STAGE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        final = run.dir / STAGE
        report = _validate_into(tmp, final, run, definition, path)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        R.finish_stage(engine, run.run_id, STAGE, status="failed", error=str(exc))
        raise
    R.finish_stage(engine, run.run_id, STAGE, {
        "blocking_failed": report.blocking_failed, "definition_version": report.definition_version,
        "definition_status": report.definition_status, "entities": report.counts(), "reports": report.reports})
    return report


def _validate_into(out: Path, final: Path, run, definition, def_path: Path) -> ValidationReport:
    """Write every output into ``out``; recorded paths point at ``final``, where ``out`` is moved."""
    from crmbridge.migrations.extract import list_entities, read_entity
    from crmbridge.validation import datadocs, reports
    from crmbridge.validation.rules import RuleContext

    present = list_entities(run.dir)
    ctx = RuleContext()
    entities: dict[str, dict[str, Any]] = {}
    gx_results: dict[str, Any] = {}
    samples: dict[str, list] = {}
    frames: dict[str, Any] = {}
    todo = [e for e in definition.entity_order() if e in present]
    progress.current().expect(len(todo))
    for entity in todo:
        rows = read_entity(run.dir, entity)
        with progress.tracked(f"{entity} (rows)", len(rows)) as task:
            summary, gx_result, sample, frame = _validate_entity(out, final, entity, rows, definition, ctx)
            task.advance(len(rows))
        entities[entity], samples[entity], frames[entity] = summary, sample, frame
        if gx_result is not None:
            gx_results[entity] = gx_result
    for entity in present:
        if entity not in entities:
            entities[entity] = _pass_through(out, final, entity, read_entity(run.dir, entity))
    blocking = any(e["blocking_failed"] for e in entities.values())
    sign = definition.sign_off_dict()
    report_paths = {"report": str(final / "report.html"), "summary": str(final / "summary.json"),
                    "disagreement": str(final / "disagreement.html"),
                    "disagreement_json": str(final / "disagreement.json"),
                    "data_docs": str(final / "data_docs" / "index.html"), "quarantine": str(final / "quarantine")}
    dis = _disagreement(definition, frames)
    reports.write_json(out / "disagreement.json", {"run_id": run.run_id, "definition": sign, "report": dis})
    common = dict(run_id=run.run_id, definition=sign)
    (out / "disagreement.html").write_text(reports.render("disagreement.html.j2", report=dis, **common), "utf-8")
    pages = {e: f"{e}.html" for e in gx_results}
    datadocs.write_data_docs(out / "data_docs", gx_results,
                             reports.render("datadocs_index.html.j2", pages=pages, **common))
    (out / "quarantine").mkdir(exist_ok=True)
    rep = ValidationReport(run_id=run.run_id, validate_dir=str(final), definition_path=str(def_path),
                           definition_version=definition.version, definition_status=definition.status,
                           blocking_failed=blocking, entities=entities, reports=report_paths)
    summary = {**rep.as_dict(), "definition": sign, "definition_path": str(def_path)}
    reports.write_json(out / "summary.json", summary)
    (out / "report.html").write_text(reports.render(
        "report.html.j2", entities=entities, samples=samples, blocking_failed=blocking,
        definition_path=str(def_path), **common), "utf-8")
    return rep


def _validate_entity(out: Path, final: Path, entity: str, df, definition, ctx):
    from crmbridge.validation import reports
    from crmbridge.validation.gxsuite import run_rules
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.outcome import split_rows
    from crmbridge.validation.rules import compile_rules, referenced_columns

    rules_def = definition.entities[entity]
    rules = compile_rules(entity, rules_def)
    for col in ("_row_id", "_source", "_department", "_line", "_source_key"):
        if col not in df.columns:  # an entity whose sources yielded no rows has no columns at all
            df[col] = None
    norm = normalise(df, rules_def, referenced_columns(rules))
    frame = norm.frame
    outcomes, gx_result = [], None
    if len(frame):
        erun = run_rules(entity, frame, rules, ctx)
        outcomes, gx_result = erun.outcomes, erun.gx_result
    split = split_rows(frame, outcomes, ctx)
    for ref_entity_key in _keys_referenced(definition, entity):
        ctx.remember_quarantined(entity, ref_entity_key, split.quarantine)
        ctx.valid_keys[(entity, ref_entity_key)] = split.valid[ref_entity_key] \
            if ref_entity_key in split.valid.columns else split.valid.iloc[:0, 0]
    key = rules_def.identity.key
    parquet = out / f"{entity}.parquet"
    split.valid.reset_index(drop=True).to_parquet(parquet, index=False)
    qfile = out / "quarantine" / f"{entity}.csv"  # written even when empty: one file per entity
    quarantine = steward_view(split.quarantine, df, outcomes)
    reports.write_quarantine(qfile, quarantine, key)
    rule_rows = [{**o.as_dict(), "fields": list(o.rule.fields),
                  "rows_quarantined": split.quarantined_by_rule.get(o.rule.rule_id, 0)} for o in outcomes]
    blocking = any(not r["passed"] and r["severity"] == "blocking" for r in rule_rows)
    summary = {"rows_in": len(frame), "rows_valid": len(split.valid), "rows_quarantined": len(split.quarantine),
               "rows_warned": split.rows_warned, "fixed": norm.fixed, "normalise_failed": norm.failed,
               "blocking_failed": blocking, "rules": rule_rows, "parquet": str(final / parquet.name),
               "quarantine_file": str(final / "quarantine" / qfile.name), "note": None}
    if summary["rows_in"] != summary["rows_valid"] + summary["rows_quarantined"] or len(df) != len(frame):
        raise RunFailed(f"validate: {entity}: rows in {len(df)} != valid {len(split.valid)} + "
                        f"quarantined {len(split.quarantine)}", hint="this is a bug; the run's extract is intact")
    owners = {o.department: o.person for o in definition.owners}
    return summary, gx_result, reports.quarantine_samples(quarantine, key, rule_rows, owners=owners), frame


def steward_view(quarantine, raw, outcomes):
    """The quarantine as stewards get it: the raw legacy value next to every field a reason names and the
    shared column layout (``crmbridge.stewardcsv``). A failed reference already names the parent row's
    own reasons in its message (``outcome.messages``)."""
    from crmbridge import stewardcsv as S

    if quarantine.empty:
        return S.ordered(quarantine.assign(_stage=[]))
    q = quarantine.copy()
    q["_stage"] = "validate"
    fields = {o.rule.rule_id: set(o.rule.fields) for o in outcomes}
    named = [set().union(*(fields.get(p.split(":", 1)[0].strip(), set()) for p in S.split_reasons(t)))
             for t in q["_reasons"]]
    return S.ordered(S.add_legacy(q, raw, named))


def _keys_referenced(definition, entity: str) -> list[str]:
    return sorted({r.key for e in definition.entities.values() for r in e.references if r.entity == entity})


def _pass_through(out: Path, final: Path, entity: str, df) -> dict[str, Any]:
    parquet = out / f"{entity}.parquet"
    df = df.copy()
    df["_warnings"] = None
    df.to_parquet(parquet, index=False)
    n = len(df)
    return {"rows_in": n, "rows_valid": n, "rows_quarantined": 0, "rows_warned": 0, "fixed": {},
            "normalise_failed": {}, "blocking_failed": False, "rules": [], "parquet": str(final / parquet.name),
            "quarantine_file": None, "note": "the definition has no rules for this entity: passed through unchanged"}


def _disagreement(definition, frames: dict) -> dict | None:
    from crmbridge.validation.disagreement import disagreement

    crit = definition.criteria
    if crit is None or crit.entity not in frames or not len(frames[crit.entity]):
        return None
    ident = definition.entities[crit.entity].identity
    return disagreement(frames[crit.entity], crit, ident.key, ident.match_on)
