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


def open_run(engine: Engine, runs_dir: Path, run_id: str) -> Run:
    with engine.connect() as c:
        row = c.execute(select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise UsageError(f"no run '{run_id}'", hint="`crmbridge runs list` shows the runs of this project")
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
    clean = json.loads(json.dumps(summary or {}, default=str))
    with engine.begin() as c:
        c.execute(update(runs).where(runs.c.run_id == run_id)
                  .values(status=status, finished_at=utcnow(), summary=clean))


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
