"""``run_sync``: one sync run over every object in sync.yml, under the run lock, with a JSON summary.

Objects run in file order (products before the inventory that references them; customers before the
receivables and roll-ups that need their ERP code on the Account). One object failing does not stop the
others; its watermarks stay where they were, so the next run picks its changes up again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from crmbridge import progress
from crmbridge.gcscope import frozen
from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact
from crmbridge.state import open_state, utcnow

log = logging.getLogger("crmbridge.sync")
DIRECTIONS = ("both", "to-salesforce", "to-erp")


@dataclass(frozen=True)
class SyncResult:
    """What a run did, per object (read, written, unchanged, conflicts, errors ...)."""

    run_id: str
    status: str  # succeeded, failed (some object failed or rows were rejected)
    direction: str
    dry_run: bool
    objects: dict[str, dict] = field(default_factory=dict)
    failed_objects: dict[str, str] = field(default_factory=dict)
    api_calls: int = 0
    seconds: float = 0.0
    log_file: str | None = None
    lock_taken_over_from: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        keys = ("read", "written", "unchanged", "conflicts", "errors", "skipped", "deleted")
        return {k: sum(o.get(k, 0) for o in self.objects.values()) for k in keys}

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "direction": self.direction, "dry_run": self.dry_run,
                "totals": self.totals, "objects": self.objects, "failed_objects": self.failed_objects,
                "api_calls": self.api_calls, "seconds": round(self.seconds, 3), "log_file": self.log_file,
                "lock_taken_over_from": self.lock_taken_over_from, "exit_code": self.exit_code}


def load_config(project):
    from crmbridge.sync.config import load_sync_config

    path = project.path(project.config.sync_file)
    if not path.exists():
        raise UsageError(f"no {project.config.sync_file} in {project.root}",
                         hint="`crmbridge init` writes a commented sync.yml to start from")
    return load_sync_config(path)


def erp_connector(project, cfg):
    """The ERP named in sync.yml (``erp.url``) or else in crmbridge.yml (``erp.url``)."""
    from crmbridge.connectors.erp import ErpConnector

    if cfg.erp is not None:
        return ErpConnector(project.db_url(cfg.erp.url, "sync.yml erp.url"), schema=cfg.erp.schema_name)
    if project.config.erp is None:
        raise UsageError("no ERP configured", hint="set erp.url in crmbridge.yml or in sync.yml")
    return ErpConnector(project.db_url(project.config.erp.url, "crmbridge.yml erp.url"))


def _file_log(path: Path) -> logging.Handler:
    from crmbridge.secretref import RedactingFilter

    path.parent.mkdir(parents=True, exist_ok=True)
    h = logging.FileHandler(path, encoding="utf-8")
    h.addFilter(RedactingFilter())
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    h.setLevel(logging.INFO)
    return h


def run_sync(project, *, direction: str = "both", dry_run: bool = False, objects: list[str] | None = None,
             sf=None, command: str = "crmbridge sync") -> SyncResult:
    """Run the sync once. ``sf``: an open SalesforceConnector (default: connect to the project's org)."""
    from crmbridge.migrations.runs import create_run, finish_run
    from crmbridge.sync.lock import RunLock

    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction '{direction}'", hint=f"use one of {', '.join(DIRECTIONS)}")
    cfg = load_config(project)
    specs = [cfg.object(n) for n in objects] if objects else cfg.objects
    scopes = resolve_scopes(project, specs)  # configuration errors stop here, before a run exists
    from crmbridge.sync.store import ensure_indexes  # declares the sync tables before open_state creates them

    state = open_state(project.state_url)
    ensure_indexes(state)
    erp = erp_connector(project, cfg)
    run = create_run(state, project.runs_dir, "sync", command=command, dry_run=dry_run)
    restore = _start_logging(project.path(cfg.log_file))
    started = utcnow()
    own_sf = sf is None
    status, per, failed, stolen, calls0 = "failed", {}, {}, None, 0
    try:
        with RunLock(state, run.run_id, stale_minutes=cfg.lock_stale_minutes) as lock, frozen():
            stolen = lock.stolen_from
            if stolen:
                log.warning("sync %s: took over the stale lock of run %s", run.run_id, stolen)
            log.info("sync %s: start (direction %s%s)", run.run_id, direction, ", dry run" if dry_run else "")
            if sf is None:
                from crmbridge.connectors.salesforce import connect

                sf = connect(project)
            calls0 = sf.api_calls
            per, failed = _run_objects(state, erp, sf, run.run_id, specs, cfg, direction, dry_run, lock, scopes)
            status = "succeeded" if not failed and not any(o["errors"] for o in per.values()) else "failed"
    finally:
        calls = (sf.api_calls - calls0) if sf is not None else 0
        if own_sf and sf is not None:
            sf.close()
        erp.close()
        result = SyncResult(run.run_id, status, direction, dry_run, per, failed, calls,
                            (utcnow() - started).total_seconds(), str(project.path(cfg.log_file)), stolen)
        finish_run(state, run.run_id, status, result.as_dict())
        (run.stage_dir("sync") / "summary.json").write_text(json.dumps(result.as_dict(), indent=2, default=str))
        log.info("sync %s: %s %s", run.run_id, status, json.dumps(result.totals))
        restore()
    return result


def _start_logging(path: Path):
    """The log file gets the sync's INFO lines and every crmbridge warning (retries ...); the terminal
    keeps its verbosity (warnings only unless -v). Returns the function that undoes this."""
    import sys

    from crmbridge.secretref import RedactingFilter

    fh = _file_log(path)
    root, own = logging.getLogger("crmbridge"), logging.getLogger("crmbridge.sync")
    saved = (own.level, own.propagate)
    term = logging.StreamHandler(sys.stderr)
    term.addFilter(RedactingFilter())
    term.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    term.setLevel(root.level if root.level not in (logging.NOTSET,) else logging.WARNING)
    root.addHandler(fh)
    own.setLevel(logging.INFO)
    own.propagate = False
    own.addHandler(fh)
    own.addHandler(term)

    def restore():
        for h in (fh, term):
            own.removeHandler(h)
        root.removeHandler(fh)
        own.setLevel(saved[0])
        own.propagate = saved[1]
        fh.close()

    return restore


def resolve_scopes(project, specs) -> dict:
    """Each object's customer scope from the agreed definition (sync/scope.py), checked before running."""
    from crmbridge.sync.scope import resolve_scope

    out = {}
    for spec in specs:
        scope = resolve_scope(project, spec)
        if scope is not None:
            out[spec.name] = scope
            for u in scope.unresolved:
                log.info("sync.yml object %s: scope %s: left out: %s", spec.name, scope.source, u)
    return out


def _run_objects(state, erp, sf, run_id, specs, cfg, direction, dry_run, lock, scopes=None):
    from crmbridge.sync.objectsync import Ctx, ObjectSync

    ctx = Ctx(state=state, erp=erp, sf=sf, run_id=run_id, dry_run=dry_run, batch=cfg.batch_size,
              to_sf_ok=direction in ("both", "to-salesforce"), to_erp_ok=direction in ("both", "to-erp"),
              heartbeat=None if dry_run else lock.heartbeat, scopes=scopes or {})
    per: dict[str, dict] = {}
    failed: dict[str, str] = {}
    progress.current().stage("sync", len(specs))
    for spec in specs:
        job = None
        try:
            job = ObjectSync(ctx, spec)
            with progress.tracked(f"{spec.name} (objects)", 1) as task:
                per[spec.name] = job.run().as_dict()
                task.advance(1)
            if spec.name in ctx.scopes:
                per[spec.name]["scope"] = ctx.scopes[spec.name].as_dict()
        except UsageError:
            raise
        except RunFailed as exc:
            failed[spec.name] = redact(str(exc))
            per[spec.name] = job.n.as_dict() if job is not None else {}
            log.error("sync %s: object %s failed: %s", run_id, spec.name, redact(exc))
        log.info("sync %s: %s %s", run_id, spec.name, json.dumps(
            {k: v for k, v in per[spec.name].items() if k not in ("error_samples", "conflict_samples", "scope")},
            ensure_ascii=False))
        lock.heartbeat()
    return per, failed
