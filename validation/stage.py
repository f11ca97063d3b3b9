"""The validate stage: check a run's extracted entities against the agreed definition.

For each entity of the definition (referenced entities first), in batches of ``BATCH_ROWS`` rows: read
the extracted rows, apply the declared normalisation, run the compiled GX suite, split the rows into
valid and quarantined, then write everything into ``runs/<id>/validate/`` (built in a temporary folder,
moved into place only when complete). Rules across rows (uniqueness, references) use key indexes built
over the whole entity first (``_EntityValidation``), so the outputs do not depend on the batch size::

    <entity>.parquet            rows that passed the blocking rules: normalised text, lineage, _warnings
    quarantine/<entity>.csv     every blocking-failed row: key, _reasons (all of them), data, lineage
    summary.json                per entity and per rule: passed, unexpected count and percent
    report.html                 the stewards' report          disagreement.html/.json  who is a customer
    data_docs/                  great-expectations Data Docs, values escaped

Entities of the run that the definition does not cover pass through unchanged (and are reported so).
"""

from __future__ import annotations

import shutil
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge import progress
from crmbridge.errors import RunFailed
from crmbridge.gcscope import frozen
from crmbridge.locks import locked
from crmbridge.validation.arrowspill import ArrowSpill
from crmbridge.validation.parallel import ordered_map, worker_count
from crmbridge.validation.parquetsink import ParquetSink as _ParquetSink
from crmbridge.validation.verdict import Verdict

STAGE = "validate"
DEFAULT_DEFINITION = "customer.yml"
# Rows normalised and checked at a time: memory is bounded by this plus compact key indexes
# (4 bytes a row per unique rule and for _row_id, the referenced entities' distinct valid keys as sorted
# fixed-width bytes, mappings.keyindex) and DuckDB's capped share for the disagreement report. A batch
# costs about 0.5 CPU-s of great-expectations set-up, hence not smaller; 100k rows peak ~250 MB higher.
BATCH_ROWS = 50_000


@dataclass(frozen=True)
class ValidationReport(Verdict):
    """What ``run_validate`` found and wrote."""

    run_id: str
    validate_dir: str
    definition_path: str
    definition_version: str
    definition_status: str  # signed or draft
    blocking_failed: bool
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, Any]]:
        keys = ("rows_in", "rows_valid", "rows_quarantined", "rows_warned", "fixed", "normalise_failed")
        return {e: {k: v[k] for k in keys} for e, v in self.entities.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "validate_dir": self.validate_dir, **self.verdict_dict()}


def default_definition_path(project) -> Path:
    return project.path(project.config.definitions_dir) / DEFAULT_DEFINITION


@locked("validate")
def run_validate(project, run, *, definition_path: str | Path | None = None, force: bool = False,
                 batch_rows: int | None = None, workers: int | None = None, extract=None) -> ValidationReport:
    """Validate ``run``'s extracted entities; records stage ``validate``. Blocking failures are data
    (``report.blocking_failed``), not exceptions; a broken invariant raises ``RunFailed``. A run whose
    load started is not validated again unless ``force`` (its output is the load's evidence).
    ``batch_rows``: rows held at a time (default ``BATCH_ROWS``); ``workers``: processes for the batches
    (default the project's ``validate: {workers}``, see ``validation.parallel``); the outputs depend on neither.
    ``extract``: an extract still under way (``migrations.extracted.FollowedExtract``, ``migrate``): the first
    pass reads its batches as they are written, and the stage is recorded only once that extract succeeded
    (its error, if it fails, is raised here with validate's work discarded)."""
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extracted import Extracted
    from crmbridge.state import open_state
    from crmbridge.validation.definition import load_definition

    path = Path(definition_path) if definition_path else default_definition_path(project)
    if not path.is_absolute():
        path = project.path(path) if definition_path is None else Path.cwd() / path
    definition = load_definition(path)
    engine = open_state(project.state_url)
    R.refuse_after_load(engine, run, STAGE, force=force)
    extract = extract or Extracted(run.dir)
    started = [False]

    def start() -> None:  # validate's record begins once extract's has ended in success
        extract.finished()
        R.start_stage(engine, run.run_id, STAGE)
        started[0] = True

    if not extract.following:
        start()
    tmp = run.dir / f".{STAGE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        final = run.dir / STAGE
        settings = project.config.validation
        workers = settings.workers if workers is None else workers
        report = _validate_into(tmp, final, run, definition, path, batch_rows or BATCH_ROWS,
                                lambda rows, batch: worker_count(workers, rows, batch, settings.parallel_min_rows),
                                extract, start if extract.following else lambda: None)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if started[0]:
            R.finish_stage(engine, run.run_id, STAGE, status="failed", error=str(exc))
        raise
    R.finish_stage(engine, run.run_id, STAGE, {
        "blocking_failed": report.blocking_failed, "definition_version": report.definition_version,
        "definition_status": report.definition_status, "entities": report.counts(), "reports": report.reports})
    return report


def _validate_into(out: Path, final: Path, run, definition, def_path: Path, batch_rows: int,
                   workers_for, extract, extract_done) -> ValidationReport:
    """Write every output into ``out``; recorded paths point at ``final``, where ``out`` is moved.
    Every entity's first pass (normalising, reading ``extract``) comes before ``extract_done()``, the rest after."""
    from crmbridge.migrations.extracted import entity_rows, iter_entity_batches
    from crmbridge.validation import datadocs, reports
    from crmbridge.validation.disagreement import disagreement_for
    from crmbridge.validation.rules import RuleContext

    present = extract.entities()
    ctx = RuleContext()
    entities: dict[str, dict[str, Any]] = {}
    gx_results: dict[str, Any] = {}
    samples: dict[str, list] = {}
    dis = None
    todo = [e for e in definition.entity_order() if e in present]
    progress.current().expect(len(todo))
    (out / "quarantine").mkdir(exist_ok=True)
    spill = out / ".spill"
    spill.mkdir()
    if extract.following:
        from crmbridge.validation.gxsuite import warm_up

        warm_up()  # GX's start-up (seconds) while extract runs on the other core
    passes = []
    for entity in todo:
        rows = extract.rows(entity)
        with progress.tracked(f"{entity} (rows)", rows) as task:
            ev = _EntityValidation(out, final, spill, run, entity, definition, ctx, batch_rows)
            # following: extract has the other core (and the rows are not known yet)
            ev.workers = workers_for(rows, ev.batch_rows) if rows is not None else 0
            ev.normalise_all(task, lambda: extract.tables(entity, ev.batch_rows))
        extract.release(entity)
        passes.append(ev)
    extract_done()
    for ev in passes:
        entity = ev.entity
        ev.workers = workers_for(entity_rows(run.dir, entity), ev.batch_rows)
        # The disagreement report needs only the normalised spill: taken before the validating pass,
        # its DuckDB share (about 260 MiB at 5M rows) is not stacked on that pass's key indexes.
        if ev.rows_in and definition.criteria is not None and definition.criteria.entity == entity:
            _release_memory()
            dis = disagreement_for(definition, entity, ev.spill_path, batch_rows)
        with frozen():  # the collector's full passes skip what was alive before (GX, key indexes)
            ev.validate_all()
        entities[entity], samples[entity] = ev.summary, ev.samples
        if ev.gx_result is not None:
            gx_results[entity] = ev.gx_result
        ev.drop_spill()
    for entity in present:
        if entity not in entities:
            entities[entity] = _pass_through(out, final, entity, iter_entity_batches(run.dir, entity, batch_rows))
    shutil.rmtree(spill, ignore_errors=True)
    blocking = any(e["blocking_failed"] for e in entities.values())
    sign = definition.sign_off_dict()
    report_paths = {"report": str(final / "report.html"), "summary": str(final / "summary.json"),
                    "disagreement": str(final / "disagreement.html"),
                    "disagreement_json": str(final / "disagreement.json"),
                    "data_docs": str(final / "data_docs" / "index.html"), "quarantine": str(final / "quarantine")}
    reports.write_json(out / "disagreement.json", {"run_id": run.run_id, "definition": sign, "report": dis})
    common = dict(run_id=run.run_id, definition=sign)
    (out / "disagreement.html").write_text(reports.render("disagreement.html.j2", report=dis, **common), "utf-8")
    pages = {e: f"{e}.html" for e in gx_results}
    datadocs.write_data_docs(out / "data_docs", gx_results,
                             reports.render("datadocs_index.html.j2", pages=pages, **common))
    rep = ValidationReport(run_id=run.run_id, validate_dir=str(final), definition_path=str(def_path),
                           definition_version=definition.version, definition_status=definition.status,
                           blocking_failed=blocking, entities=entities, reports=report_paths)
    summary = {**rep.as_dict(), "definition": sign, "definition_path": str(def_path)}
    reports.write_json(out / "summary.json", summary)
    (out / "report.html").write_text(reports.render(
        "report.html.j2", entities=entities, samples=samples, blocking_failed=blocking,
        definition_path=str(def_path), **common), "utf-8")
    return rep


def _release_memory() -> None:
    """Hand the memory freed by the last batch back to the system (glibc keeps freed heap otherwise, and
    the next batch's allocations land beside it instead of in it), and Arrow's pool its own (mimalloc
    keeps freed pages for reuse); the glibc part is a no-op where there is no glibc."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if "libc" in _LIBC and _LIBC["libc"] is None:
        return
    try:
        libc = _LIBC.get("libc")
        if libc is None:
            libc = _LIBC["libc"] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        _LIBC["libc"] = None


_LIBC: dict = {}


class _EntityValidation:
    """One entity through validate in batches of ``batch_rows``, memory bounded by a batch plus key indexes.

    1. ``normalise_all``: each extracted batch normalised (counts added up), spilled (Arrow IPC), and its
       keys hashed for uniqueness (``checks.DuplicateFinder``; repeated hashes confirmed on the values).
    2. ``validate_all``: each spilled batch through the suite (built once), split into valid rows
       (appended to ``<entity>.parquet``) and quarantined rows; the parents' valid keys and quarantine
       reasons collected for the entities that reference this one; GX results folded into totals.
    The quarantine CSV is written last: which ``<field> (legacy)`` columns it has depends on every batch.
    """

    def __init__(self, out: Path, final: Path, spill: Path, run, entity: str, definition, ctx, batch_rows: int):
        from crmbridge.validation.normcache import StepCache
        from crmbridge.validation.rules import compile_rules, referenced_columns

        self.out, self.final, self.run, self.entity, self.ctx = out, final, run, entity, ctx
        self.definition, self.batch_rows = definition, max(1, int(batch_rows))
        self.rules_def = definition.entities[entity]
        self.rules = compile_rules(entity, self.rules_def)
        self.extra = referenced_columns(self.rules)
        self.key = self.rules_def.identity.key
        self.spill_path = spill / f"{entity}.arrow"  # scratch files, read by validate (and DuckDB) only
        self._spill = ArrowSpill(self.spill_path)
        self._qspill = ArrowSpill(spill / f"{entity}.quarantine.arrow")
        self.fixed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.rows_in = 0
        self.raw_columns: list[str] = []
        self.summary: dict[str, Any] = {}
        self.samples: list = []
        self.gx_result = None
        self.workers = 0  # processes for the batches (validation.parallel); 0: this one
        self.steps = StepCache()  # normalisation's results from earlier batches (each worker its own copy)

    def _normalised(self, table):
        """One extracted batch (an Arrow table) normalised: (rows, its columns, ``Normalised``)."""
        from crmbridge.validation.normalise import LINEAGE, normalise

        raw = table.to_pandas()
        columns = list(raw.columns)
        for col in LINEAGE:
            if col not in raw.columns:  # an entity whose sources yielded no rows has no columns at all
                raw[col] = None
        norm = normalise(raw, self.rules_def, self.extra, prune=False, cache=self.steps)
        if len(norm.frame) != len(raw):
            raise RunFailed(f"validate: {self.entity}: normalisation turned {len(raw)} rows into "
                            f"{len(norm.frame)}", hint="this is a bug; the run's extract is intact")
        return len(raw), columns, norm

    def normalise_all(self, task, tables) -> None:
        """``tables()``: the entity's extracted batches (Arrow tables of ``batch_rows`` rows)."""
        from crmbridge.validation.checks import DuplicateFinder, table_presence

        # 32-bit hashes: the few colliding rows are confirmed from the local spill (checks.DuplicateFinder),
        # which holds the rows added, in order (same_rows: their hashes are not computed twice)
        finders = {r.rule_id: DuplicateFinder(list(r.unique_on), hash_bits=32, same_rows=True) for r in self.rules
                   if r.kind == "unique"}
        row_ids = DuplicateFinder(["_row_id"], hash_bits=32, same_rows=True)
        # closed on any error: no worker outlives the stage
        with closing(ordered_map(self._normalised, tables, self.workers, share=True, after=_release_memory,
                                 what=f"normalising {self.entity}")) as results:
            for _, (n, columns, norm) in results:
                if not self.raw_columns:
                    self.raw_columns = columns
                for k, v in norm.fixed.items():
                    self.fixed[k] = self.fixed.get(k, 0) + v
                for k, v in norm.failed.items():
                    self.failed[k] = self.failed.get(k, 0) + v
                for f in [*finders.values(), row_ids]:
                    f.add(norm.frame)
                self._spill.write(norm.frame, norm.arrow)
                self.rows_in += n
                task.advance(n)
                del norm
                _release_memory()
        self._spill.close()
        pending = [f for f in [*finders.values(), row_ids] if f.needs_confirm]
        if pending:  # some hash repeats: look at those rows' values (key columns only)
            cols = sorted({c for f in pending for c in f.columns if c in self._spill.schema.names})
            for batch in self._spill.lazy_batches(cols):
                t = batch.table()
                for f in pending:  # where Arrow tells which keys are present, only the nominated rows converted
                    if self._spill.exact(t):
                        f.confirm_rows(table_presence(t, f.columns), batch.rows)
                    else:
                        f.confirm(batch.frame())
        dup_ids = row_ids.index().values
        if len(dup_ids):
            raise RunFailed(f"validate: _row_id {dup_ids[0]!r} occurs twice in one entity; the extract is "
                            "inconsistent", hint="re-run `crmbridge extract`")
        for rid, f in finders.items():
            self.ctx.duplicates[(self.entity, rid)] = f.index()

    def validate_all(self) -> None:
        from crmbridge.migrations.extracted import iter_entity_tables
        from crmbridge.validation import reports
        from crmbridge.mappings.keyindex import KeyCollector
        from crmbridge.validation.gxsuite import ResultTotals, SuiteRunner
        from crmbridge.validation.parallel import pack_run, unpack_run
        from crmbridge.validation.normalise import prune_counts
        from crmbridge.validation.outcome import split_rows, valid_keys, valid_table
        from crmbridge.validation.quarantine import steward_view, write_quarantine_csv
        from crmbridge.validation.rules import read_columns

        entity, ctx = self.entity, self.ctx
        referenced = _keys_referenced(self.definition, entity)
        key_indexes = {k: KeyCollector() for k in referenced}
        for k in referenced:
            ctx.quarantined[(entity, k)] = {}
        totals = ResultTotals(self.rules)
        info = [{"rule_id": r.rule_id, "fields": list(r.fields), "severity": r.severity, "kind": r.kind,
                 "description": r.description} for r in self.rules]
        sampler = reports.Samples(self.key, info)
        candidates = {f for r in self.rules for f in r.fields}
        raw_cols = [c for c in self.raw_columns if c in candidates or c == "_row_id"]
        # kept in Arrow: the quarantine view reads a few rows of them (quarantine.steward_view)
        raws = iter_entity_tables(self.run.dir, entity, self.batch_rows, columns=raw_cols) \
            if "_row_id" in raw_cols else None
        valid_sink = _ParquetSink(self.out / f"{entity}.parquet")
        n_valid = n_quarantined = rows_warned = 0
        by_rule: dict[str, int] = {}
        used_legacy: set[str] = set()
        q_columns: list[str] | None = None
        empty_columns: list[str] = []
        runner = SuiteRunner(entity, self.rules) if self.rows_in else None
        # converted to pandas: what the rules and the key indexes read (the quarantined rows whole, batch.rows)
        reads = read_columns(self.rules) | set(self.key) | set(referenced)

        def check(batch):  # in a worker process too: ctx is complete for this entity, only read
            frame = batch.narrow(reads)
            return runner.run(frame, ctx, batch.table()) if len(frame) else None

        workers = self.workers if self.rows_in else 0
        own = self._spill.lazy_batches() if workers else None  # the parent's own read of what workers check
        results = ordered_map(check, self._spill.lazy_batches, workers, pack=pack_run, unpack=unpack_run(self.rules),
                              after=_release_memory, what=f"checking {entity}")
        try:
            for batch, erun in results:
                batch = batch if batch is not None else next(own)
                frame = batch.narrow(reads)
                raw = next(raws) if raws is not None else None
                if raw is not None and len(raw) != len(frame):
                    raise RunFailed(f"validate: {entity}: a batch of {len(frame)} normalised rows met {len(raw)} "
                                    "extracted rows", hint="this is a bug; the run's extract is intact")
                outcomes = []
                if erun is not None:
                    totals.add(erun)
                    outcomes = erun.outcomes
                split = split_rows(frame, outcomes, ctx, batch.rows)
                for k in referenced:
                    ctx.remember_quarantined(entity, k, split.quarantine)
                    if k in frame.columns:
                        key_indexes[k].add(valid_keys(split, batch, k))
                rows = valid_table(split, batch, valid_sink.schema)
                if rows is None:
                    valid_sink.write(split.valid.reset_index(drop=True))
                else:
                    valid_sink.write_table(rows)
                view, named = steward_view(split.quarantine, raw, outcomes, legacy=candidates)
                used_legacy |= named
                if len(view):
                    if q_columns is None:
                        q_columns = list(view.columns)
                    self._qspill.write(view.reset_index(drop=True))
                    sampler.add(view)
                elif q_columns is None and not self._qspill.lengths:
                    empty_columns = list(view.columns)
                n_valid += len(split.valid_rows)
                n_quarantined += len(split.quarantine)
                rows_warned += split.rows_warned
                for rid, c in split.quarantined_by_rule.items():
                    by_rule[rid] = by_rule.get(rid, 0) + c
                del frame, raw, split, view, outcomes, erun, batch
                _release_memory()
        finally:
            results.close()
            if runner is not None:
                runner.close()
            valid_sink.close()
            self._qspill.close()
        for k, index in key_indexes.items():
            ctx.valid_keys[(entity, k)] = index.freeze()
        qfile = self.out / "quarantine" / f"{entity}.csv"  # written even when empty: one file per entity
        if q_columns is None:
            write_quarantine_csv(qfile, [], empty_columns, self.key)
        else:
            from crmbridge.stewardcsv import legacy_column

            drop = {legacy_column(f) for f in candidates - used_legacy}
            write_quarantine_csv(qfile, self._qspill.lazy_batches(), [c for c in q_columns if c not in drop], self.key)
        outcomes = totals.outcomes() if totals.batches else []
        self.gx_result = totals.gx_result() if totals.batches else None
        rule_rows = [{**o.as_dict(), "fields": list(o.rule.fields), "rows_quarantined": by_rule.get(o.rule.rule_id, 0)}
                     for o in outcomes]
        blocking = any(not r["passed"] and r["severity"] == "blocking" for r in rule_rows)
        fixed, failed = prune_counts(self.fixed, self.failed)
        parquet = self.out / f"{entity}.parquet"
        self.summary = {"rows_in": self.rows_in, "rows_valid": n_valid, "rows_quarantined": n_quarantined,
                        "rows_warned": rows_warned, "fixed": fixed, "normalise_failed": failed,
                        "blocking_failed": blocking, "rules": rule_rows, "parquet": str(self.final / parquet.name),
                        "quarantine_file": str(self.final / "quarantine" / qfile.name), "note": None}
        if self.rows_in != n_valid + n_quarantined or self._spill.rows != self.rows_in:
            raise RunFailed(f"validate: {entity}: rows in {self.rows_in} != valid {n_valid} + "
                            f"quarantined {n_quarantined}", hint="this is a bug; the run's extract is intact")
        owners = {o.department: o.person for o in self.definition.owners}
        self.samples = sampler.result(owners)

    def drop_spill(self) -> None:
        for p in (self.spill_path, self._qspill.path):
            p.unlink(missing_ok=True)


def _keys_referenced(definition, entity: str) -> list[str]:
    return sorted({r.key for e in definition.entities.values() for r in e.references if r.entity == entity})


def _pass_through(out: Path, final: Path, entity: str, batches) -> dict[str, Any]:
    parquet = out / f"{entity}.parquet"
    sink = _ParquetSink(parquet)
    n = 0
    for df in batches:
        df["_warnings"] = None
        sink.write(df)
        n += len(df)
    sink.close()
    return {"rows_in": n, "rows_valid": n, "rows_quarantined": 0, "rows_warned": 0, "fixed": {},
            "normalise_failed": {}, "blocking_failed": False, "rules": [], "parquet": str(final / parquet.name),
            "quarantine_file": None, "note": "the definition has no rules for this entity: passed through unchanged"}
