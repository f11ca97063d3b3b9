"""Runs: a folder ``runs/<run_id>/`` with each stage's artifacts plus rows in the state database.

A stage marks itself running, does its work writing into its own sub-folder, and records its
result record (``as_dict()``) when it succeeds; an interrupted run is picked up by looking at which
stages already succeeded.
"""

from __future__ import annotations

import json
import secrets as _rand
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from crmbridge.errors import UsageError
from crmbridge.state import run_stages, runs, utcnow


@dataclass(frozen=True)
class Run:
    run_id: str
    dir: Path
    kind: str

    def stage_dir(self, stage: str) -> Path:
        d = self.dir / stage
        d.mkdir(parents=True, exist_ok=True)
        return d


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + _rand.token_hex(2)


def create_run(engine: Engine, runs_dir: Path, kind: str, *, command: str = "", dry_run: bool = False,
               run_id: str | None = None) -> Run:
    run_id = run_id or new_run_id()
    d = Path(runs_dir) / run_id
    d.mkdir(parents=True, exist_ok=True)
    with engine.begin() as c:
        c.execute(runs.insert().values(run_id=run_id, kind=kind, status="running", created_at=utcnow(),
                                       command=command, dry_run=int(dry_run), summary={}))
    return Run(run_id=run_id, dir=d, kind=kind)


def resolve_run_id(engine: Engine, ref: str, *, kind: str | None = None) -> str:
    """The full id of the run ``ref`` names: an exact id, ``latest``, or a unique prefix of an id.

    ``latest`` is the newest run (of ``kind`` when given; rollback journals aside otherwise). A
    prefix that matches several runs is a usage error listing them, never a guess.
    """
    ref = (ref or "").strip()
    with engine.connect() as c:
        if c.execute(select(runs.c.run_id).where(runs.c.run_id == ref)).first() is not None:
            return ref
        if ref.lower() == "latest":
            q = select(runs.c.run_id).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
            q = q.where(runs.c.kind == kind) if kind else q.where(runs.c.kind != "rollback")
            row = c.execute(q).first()
            if row is None:
                raise UsageError("there is no run yet" + (f" of kind {kind}" if kind else ""),
                                 hint="run `crmbridge migrate` first")
            return row.run_id
        found = [] if not ref else c.execute(
            select(runs.c.run_id).where(runs.c.run_id.startswith(ref, autoescape=True))
            .order_by(runs.c.run_id.desc()).limit(6)).scalars().all()
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise UsageError(f"run id '{ref}' is ambiguous: it starts {shown}",
                         hint="type more characters of the id (`crmbridge runs list` shows them)")
    raise UsageError(f"no run '{ref}'", hint="`crmbridge runs list` shows the runs of this project; "
                     "`latest` names the newest run")


def open_run(engine: Engine, runs_dir: Path, run_id: str, *, kind: str | None = None) -> Run:
    """Open a run by exact id, ``latest`` or a unique id prefix (see ``resolve_run_id``)."""
    run_id = resolve_run_id(engine, run_id, kind=kind)
    with engine.connect() as c:
        row = c.execute(select(runs).where(runs.c.run_id == run_id)).first()
    return Run(run_id=run_id, dir=Path(runs_dir) / run_id, kind=row.kind)


def latest_run(engine: Engine, runs_dir: Path, *, kind: str | None = None, with_stage: str | None = None,
               status: str | None = None) -> Run | None:
    """The newest run (optionally of a kind, or whose ``with_stage`` succeeded)."""
    q = select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
    if kind:
        q = q.where(runs.c.kind == kind)
    if status:
        q = q.where(runs.c.status == status)
    with engine.connect() as c:
        for row in c.execute(q):
            if with_stage is None or stage_status(engine, row.run_id, with_stage) == "succeeded":
                return Run(run_id=row.run_id, dir=Path(runs_dir) / row.run_id, kind=row.kind)
    return None


def stage_status(engine: Engine, run_id: str, stage: str) -> str | None:
    with engine.connect() as c:
        row = c.execute(select(run_stages.c.status).where(run_stages.c.run_id == run_id,
                                                          run_stages.c.stage == stage)).first()
    return row.status if row else None


def stage_result(engine: Engine, run_id: str, stage: str) -> dict | None:
    with engine.connect() as c:
        row = c.execute(select(run_stages.c.result).where(run_stages.c.run_id == run_id,
                                                          run_stages.c.stage == stage)).first()
    return row.result if row else None


def start_stage(engine: Engine, run_id: str, stage: str) -> None:
    with engine.begin() as c:
        done = c.execute(update(run_stages).where(run_stages.c.run_id == run_id, run_stages.c.stage == stage)
                         .values(status="running", started_at=utcnow(), finished_at=None, error=None)).rowcount
        if not done:
            c.execute(run_stages.insert().values(run_id=run_id, stage=stage, status="running", started_at=utcnow()))


def finish_stage(engine: Engine, run_id: str, stage: str, result: dict[str, Any] | None = None,
                 *, status: str = "succeeded", error: str | None = None) -> None:
    clean = json.loads(json.dumps(result or {}, default=str))
    with engine.begin() as c:
        c.execute(update(run_stages).where(run_stages.c.run_id == run_id, run_stages.c.stage == stage)
                  .values(status=status, finished_at=utcnow(), result=clean, error=error))


def finish_run(engine: Engine, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
    """The run ends with ``status``. A run that did not succeed leaves no stage "running": one still marked so
    (its process was stopped outright, as ``migrate`` stops its extract process on Ctrl-C) is marked failed
    with the run's error, as a stage interrupted in the run's own process marks itself."""
    clean = json.loads(json.dumps(summary or {}, default=str))
    with engine.begin() as c:
        c.execute(update(runs).where(runs.c.run_id == run_id)
                  .values(status=status, finished_at=utcnow(), summary=clean))
        if status != "succeeded":
            c.execute(update(run_stages).where(run_stages.c.run_id == run_id, run_stages.c.status == "running")
                      .values(status="failed", finished_at=utcnow(), error=str(clean.get("error") or status)))


def refuse_after_load(engine: Engine, run: Run, stage: str, *, force: bool = False) -> None:
    """Re-running ``stage`` on a run whose load started would overwrite the evidence its ledger and
    reconcile refer to: a usage error unless ``force``."""
    if force:
        return
    status = stage_status(engine, run.run_id, "load")
    if status is None:
        return
    raise UsageError(f"run {run.run_id} has started loading (load stage {status}): running {stage} again would "
                     f"overwrite its {stage}/ output, which its ledger and reconcile refer to",
                     hint=f"start a new run for new input (`crmbridge migrate --new`, or `crmbridge extract` then "
                          f"`crmbridge {stage}`), use `crmbridge map --preview N` to look, or pass --force")
