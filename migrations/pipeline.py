"""``migrate``: extract -> validate -> resolve -> map -> load -> reconcile in one run, resumable.

Running ``migrate`` again continues the newest unfinished migrate run (stages that succeeded are
skipped, the load stage picks up its journal) unless ``new=True``. Every run ends with a summary per
entity that must satisfy extracted = quarantined + filtered + loaded + rejected; a run that breaks it is a bug and
fails (exit 1) saying so.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import select

from crmbridge import progress
from crmbridge.errors import Interrupted, RunFailed, UsageError
from crmbridge.locks import heartbeat_held, locked
from crmbridge.migrations import runs as R
from crmbridge.migrations.records import crash_point
from crmbridge.state import open_state, runs as runs_table

STAGES = ("extract", "validate", "resolve", "map", "load", "reconcile")


@dataclass(frozen=True)
class EntitySummary:
    entity: str
    extracted: int
    quarantined: int
    loaded: int
    rejected: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined_by_stage: dict[str, int] = field(default_factory=dict)
    filtered: int = 0  # left out by a mapping's filters on purpose: not a data-quality quarantine

    @property
    def balanced(self) -> bool:
        return self.extracted == self.quarantined + self.filtered + self.loaded + self.rejected

    def as_dict(self) -> dict:
        return {**self.__dict__, "balanced": self.balanced}


@dataclass(frozen=True)
class MigrateResult:
    run_id: str
    resumed: bool
    dry_run: bool
    stages_run: tuple[str, ...]
    entities: tuple[EntitySummary, ...]
    reconcile_ok: bool | None
    reports: dict[str, str]
    api_calls: int = 0
    dry_run_steps: tuple = ()  # per step: records that would be created / updated / left unchanged
    load_steps: tuple = ()  # per load step: Salesforce records (and the source rows they came from)

    @property
    def balanced(self) -> bool:
        return all(e.balanced for e in self.entities)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "resumed": self.resumed, "dry_run": self.dry_run,
                "stages_run": list(self.stages_run), "balanced": self.balanced, "reconcile_ok": self.reconcile_ok,
                "api_calls": self.api_calls, "reports": self.reports, "dry_run_steps": list(self.dry_run_steps),
                "load_steps": list(self.load_steps),
                "entities": {e.entity: e.as_dict() for e in self.entities}}


def unfinished_run(engine, runs_dir) -> R.Run | None:
    """The newest migrate run (dry runs aside) if it did not finish; older unfinished runs were given up."""
    q = (select(runs_table).where(runs_table.c.kind == "migrate", runs_table.c.dry_run == 0)
         .order_by(runs_table.c.created_at.desc(), runs_table.c.run_id.desc()))
    with engine.connect() as c:
        row = c.execute(q).first()
    if row is None or row.status not in ("running", "failed", "interrupted"):
        return None
    return R.Run(row.run_id, runs_dir / row.run_id, row.kind)


@contextmanager
def _on_ctrl_c(handler):
    """Ctrl-C handled by ``handler`` (a ``signal`` handler or ``SIG_IGN``) inside the block."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals go elsewhere anyway
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _no_second_interrupt():
    import signal

    return _on_ctrl_c(signal.SIG_IGN)


def _interrupts_kept(noted: list):
    """Ctrl-C raises KeyboardInterrupt as always and is also noted in ``noted``: a library that swallows the
    exception in a broad ``except`` cannot make a run forget it; the stage loop raises it again at the
    stage's end. A safeguard: no such library was found. The CI failures it was written for came from a test
    run started with SIGINT ignored (see tests/conftest.py). A process started with SIGINT ignored (``nohup``,
    a background job of a script) keeps it ignored: whoever started it chose that."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        return nullcontext()

    def note(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt

    return _on_ctrl_c(note)


def preflight(project) -> None:
    """The offline checks of everything a migrate run reads before any data: sources declared, the
    mapping files and their load order, the customer definition. Raises ConfigError/UsageError."""
    from crmbridge.mappings.models import load_mappings
    from crmbridge.mappings.order import CycleError, load_order
    from crmbridge.mappings.stage import mappings_folder
    from crmbridge.migrations.extract import _choose

    _choose(project, None, None)
    try:
        load_order(load_mappings(mappings_folder(project)))
    except CycleError as exc:
        raise UsageError(str(exc.message), hint=exc.hint) from None
    try:
        from crmbridge.validation.stage import default_definition_path
    except ImportError:  # a build without the validation package
        return
    from crmbridge.validation.definition import load_definition

    path = default_definition_path(project)
    if path.exists():
        load_definition(path)


def _run_validate(project, run, extract=None):
    try:
        from crmbridge.validation import run_validate
    except ImportError:
        from crmbridge.validation.stage import run_validate
    return run_validate(project, run, extract=extract)


def _run_resolve(project, run):
    from crmbridge.mappings.resolve import run_resolve

    return run_resolve(project, run)


def _run_map(project, run, connector):
    from crmbridge.mappings import run_map

    return run_map(project, run, connector=connector)


@locked("migrate")
def run_migrate(project, *, new: bool = False, run_id: str | None = None, dry_run: bool = False, connector=None,
                on_stage: Callable[[str], None] | None = None, batch_rows: int | None = None,
                advance: Callable[[int], None] | None = None, allow_shrink: bool = False) -> MigrateResult:
    """Run (or continue) a migration; see the module docstring."""
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.load import run_load
    from crmbridge.migrations.reconcile import run_reconcile

    engine = open_state(project.state_url)
    if run_id:
        run, resumed = R.open_run(engine, project.runs_dir, run_id), True
    else:
        run = None if (new or dry_run) else unfinished_run(engine, project.runs_dir)
        resumed = run is not None
    # Configuration is checked, and the org logged into, before a run exists: a typo in a mapping or a
    # wrong password is not a rehearsal (it would become "the last rehearsal" of the readiness gates).
    preflight(project)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    ran: list[str] = []
    noted: list[int] = []
    current = ""

    def begin(stage: str) -> None:
        nonlocal current
        if on_stage:
            on_stage(stage)
        progress.current().stage(stage)
        current = stage
        heartbeat_held()

    def end(stage: str) -> None:
        ran.append(stage)
        crash_point(f"migrate:after_{stage}")

    try:
        # A Ctrl-C while the run is being created is only noted, and raised once the run exists to be
        # recorded as interrupted (raised inside, it would leave the run "running").
        with _on_ctrl_c(lambda signum, frame: noted.append(signum)):
            if run is None:
                run = R.create_run(engine, project.runs_dir, "migrate",
                                   command="migrate" + (" --dry-run" if dry_run else ""), dry_run=dry_run)
            else:
                with engine.begin() as c:
                    c.execute(runs_table.update().where(runs_table.c.run_id == run.run_id).values(status="running"))
        if noted:
            raise KeyboardInterrupt
        from crmbridge.migrations import extract_flow
        from crmbridge.migrations.extracted import clear_flow

        clear_flow(run.dir)  # scratch of a killed migrate's extract + validate
        steps: dict[str, Callable[[], Any]] = {
            # Always a full extract: the delta is decided by content hashes against the load map, which
            # stays right after a rollback, where an incremental extract would miss the undone rows.
            "extract": lambda: run_extract(project, run=run, full=True, allow_shrink=allow_shrink),
            "validate": lambda: _run_validate(project, run),
            "resolve": lambda: _run_resolve(project, run),
            "map": lambda: _run_map(project, run, connector),
            "load": lambda: run_load(project, run, connector=connector, dry_run=dry_run, advance=advance,
                                     reconcile_next=not dry_run, **({"batch_rows": batch_rows} if batch_rows else {})),
            "reconcile": lambda: run_reconcile(project, run, connector=connector),
        }
        reconcile_ok = None
        for stage in STAGES:
            if dry_run and stage == "reconcile":
                continue
            name = "load_dry_run" if dry_run and stage == "load" else stage
            if stage in ran or R.stage_status(engine, run.run_id, name) == "succeeded":
                continue
            begin(stage)
            # validate's first pass reads extract's batches as they are written, on the other core
            flow = stage == "extract" and extract_flow.available() \
                and R.stage_status(engine, run.run_id, "validate") != "succeeded"
            with _interrupts_kept(noted):
                if flow:
                    extract_flow.extract_and_validate(
                        run.dir, extract_flow.ExtractJob(project, run, allow_shrink),
                        lambda extract: _run_validate(project, run, extract), lambda: (end("extract"), begin("validate")))
                else:
                    out = steps[stage]()
            if noted:  # a Ctrl-C some library swallowed during the stage
                raise KeyboardInterrupt
            if flow:
                end("validate")
                continue
            end(stage)
            if stage == "reconcile":
                reconcile_ok = bool(out.ok)
        if reconcile_ok is None and not dry_run:
            res = R.stage_result(engine, run.run_id, "reconcile") or {}
            reconcile_ok = res.get("ok")
        dry_steps = tuple({k: s[k] for k in ("step", "object", "records", "created", "updated", "unchanged",
                                             "success_file")}
                          for s in (R.stage_result(engine, run.run_id, "load_dry_run") or {}).get("steps", [])) \
            if dry_run else ()
        load_steps = tuple({k: s.get(k, 0) for k in ("step", "object", "records", "created", "updated", "unchanged",
                                                     "failed", "source_rows")}
                           for s in (R.stage_result(engine, run.run_id, "load_dry_run" if dry_run else "load")
                                     or {}).get("steps", []))
        result = MigrateResult(run.run_id, resumed, dry_run, tuple(ran), tuple(summarize(project, run, engine, dry_run)),
                               reconcile_ok, report_paths(run), int(getattr(connector, "api_calls", 0)), dry_steps,
                               load_steps)
    except KeyboardInterrupt:
        if run is None:  # the run's creation failed: nothing to record
            raise
        with _no_second_interrupt():  # a second Ctrl-C must not cut the handling of the first short
            R.finish_run(engine, run.run_id, "interrupted", {"error": f"interrupted during {current or 'start'}",
                                                             "stages_run": ran})
            if own and connector is not None:  # the sandbox's server stops here, not in ``finally``
                connector.close()
                own = False
        raise Interrupted(f"run {run.run_id} interrupted (Ctrl-C) during {current or 'start'}",
                          hint=f"`crmbridge migrate` resumes run {run.run_id} where it stopped "
                               f"(or `crmbridge rollback {run.run_id}` undoes what it wrote)") from None
    except BaseException as exc:
        if run is None:
            raise
        R.finish_run(engine, run.run_id, "failed", {"error": f"{type(exc).__name__}: {exc}", "stages_run": ran})
        if isinstance(exc, (UsageError, RunFailed)) and not exc.hint:
            exc.hint = f"fix the cause, then `crmbridge migrate` resumes run {run.run_id}" \
                       f" (or `crmbridge rollback {run.run_id}` to undo what it wrote)"
        raise
    finally:
        if own and connector is not None:
            connector.close()
    status = "succeeded" if result.balanced else "failed"
    R.finish_run(engine, run.run_id, status, result.as_dict())
    if not result.balanced:
        bad = [e for e in result.entities if not e.balanced]
        raise RunFailed("run " + run.run_id + " does not balance (a bug): " + "; ".join(
            f"{e.entity}: extracted {e.extracted} != quarantined {e.quarantined} + filtered {e.filtered} + "
            f"loaded {e.loaded} + rejected {e.rejected}" for e in bad), hint="the ledger and reports are kept; please report this")
    return result


# ----------------------------------------------------------------------------- summary


def _csv_rows(path) -> int:
    import pandas as pd

    if not path.exists():
        return 0
    return len(pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig"))


FILTERED = "filtered: "  # the reason prefix of rows a mapping's `filters:` left out on purpose


def filtered_rows(path) -> int:
    """Rows of a map quarantine file that a deliberate mapping filter excluded (not a data defect)."""
    import pandas as pd

    if not path.exists():
        return 0
    # `_reasons` since map's quarantine files share validate's column names; `_reason` in older runs
    col = "_reasons" if "_reasons" in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns else "_reason"
    reasons = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", usecols=[col])[col]
    return int(reasons.str.startswith(FILTERED).sum())


def summarize(project, run: R.Run, engine=None, dry_run: bool = False) -> list[EntitySummary]:
    """Per entity: extracted = quarantined (extract + validate + map) + filtered + loaded + rejected."""
    import json

    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.extracted import load_manifest

    engine = engine or open_state(project.state_url)
    manifest = load_manifest(run.dir)
    plan_path = run.dir / "map" / "plan.json"
    plan = json.loads(plan_path.read_text("utf-8"))["steps"] if plan_path.exists() else []
    counts = L.action_counts(engine, run.run_id)
    dry = (R.stage_result(engine, run.run_id, "load_dry_run") or {}).get("steps", []) if dry_run else []
    out = []
    for entity, m in manifest["entities"].items():
        steps = [s for s in plan if s.get("entity") == entity]
        filtered = filtered_rows(run.dir / "map" / "quarantine" / f"{steps[0]['step']}.csv") if steps else 0
        q = {"extract": int(m["rows_rejected"]),
             "validate": _csv_rows(run.dir / "validate" / "quarantine" / f"{entity}.csv"),
             "map": int(steps[0].get("rows_quarantined", 0)) - filtered if steps else 0}
        act = {a: 0 for a in L.ACTIONS}
        if steps and dry_run:  # what the load would do, in source rows
            d = next((x for x in dry if x["step"] == steps[0]["step"]), None)
            act.update((d or {}).get("source_rows", {}))
        elif steps:
            act.update(counts.get(steps[0]["step"], {}))
        loaded = act["created"] + act["updated"] + act["unchanged"]
        out.append(EntitySummary(entity, int(m["rows_read"]), sum(q.values()), loaded, act["failed"],
                                 act["created"], act["updated"], act["unchanged"], q, filtered))
    return out


def report_paths(run: R.Run) -> dict[str, str]:
    """Where a person finds the run's reports (only files that exist)."""
    cands = {"run": run.dir, "extract_manifest": run.dir / "extract" / "manifest.json",
             "validation_report": run.dir / "validate" / "report.html",
             "disagreement_report": run.dir / "validate" / "disagreement.html",
             "match_report": run.dir / "resolve" / "report.html",
             "map_check": run.dir / "map" / "check.json", "load": run.dir / "load",
             "reconcile": run.dir / "reconcile" / "summary.json"}
    return {k: str(v) for k, v in cands.items() if v.exists()}
