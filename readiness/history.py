"""What the project's own records say: rehearsals, the latest stage artifacts, sync nights.

Everything here reads the state database (``runs``, ``run_stages``, the sync tables) and the run
folders; nothing is typed in by hand. A missing source gives ``None`` (shown as ``unknown``), never
a made-up value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from crmbridge.state import run_stages, runs


def _aware(t: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for DateTime(timezone=True); they were written in UTC.
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Rehearsal:
    """One finished, non-dry ``migrate`` run that reached the load: a rehearsal of the cutover.

    Runs that never started real work are not rehearsals: a configuration error (it creates no run),
    a run stopped before its load, an interrupted run (``migrate`` continues it). A rehearsal that
    succeeded and was rolled back afterwards still is one: its counts are evidence."""

    run_id: str
    status: str
    started: datetime
    finished: datetime | None
    entities: dict[str, dict] = field(default_factory=dict)  # entity -> extracted/quarantined/rejected/...
    reconcile_mismatches: int | None = None
    reconcile_ok: bool | None = None
    delta: bool = False  # the load found records already in the org (a delta run, not a first load)
    rolled_back: bool = False  # status is what the run had finished with before its rollback

    @property
    def hours(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds() / 3600.0

    def rate(self, what: str, entity: str | None = None) -> float | None:
        """``what`` (quarantined, rejected) / extracted, for one entity or all together."""
        ents = [e for n, e in self.entities.items() if entity is None or n == entity]
        if not ents:
            return None
        total = sum(int(e.get("extracted", 0)) for e in ents)
        if total == 0:
            return None
        return sum(int(e.get(what, 0)) for e in ents) / total

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "started": self.started.isoformat(),
                "finished": self.finished.isoformat() if self.finished else None, "hours": self.hours,
                "quarantine_rate": self.rate("quarantined"), "rejected_rate": self.rate("rejected"),
                "filtered_rate": self.rate("filtered"),
                "reconcile_mismatches": self.reconcile_mismatches, "reconcile_ok": self.reconcile_ok,
                "delta": self.delta, "rolled_back": self.rolled_back}


def _stage_results(conn, run_ids: list[str]) -> dict[tuple[str, str], tuple[str, dict]]:
    if not run_ids:
        return {}
    rows = conn.execute(select(run_stages.c.run_id, run_stages.c.stage, run_stages.c.status, run_stages.c.result)
                        .where(run_stages.c.run_id.in_(run_ids)))
    return {(r.run_id, r.stage): (r.status, r.result or {}) for r in rows}


def _is_delta(load: dict) -> bool:
    return any(int(s.get("updated", 0)) + int(s.get("unchanged", 0)) > 0 for s in load.get("steps", []))


def rehearsals(engine) -> list[Rehearsal]:
    """Finished non-dry migrate runs whose load started, oldest first (see :class:`Rehearsal`)."""
    q = (select(runs).where(runs.c.kind == "migrate", runs.c.dry_run == 0,
                            runs.c.status.in_(("succeeded", "failed", "rolled_back")))
         .order_by(runs.c.created_at, runs.c.run_id))
    with engine.connect() as c:
        rows = c.execute(q).all()
        stages = _stage_results(c, [r.run_id for r in rows])
    out = []
    for r in rows:
        summary = r.summary or {}
        rec_status, rec = stages.get((r.run_id, "reconcile"), (None, {}))
        load_status, load = stages.get((r.run_id, "load"), (None, {}))
        if load_status is None:  # stopped before any record was written: not a rehearsal
            continue
        rolled_back = r.status == "rolled_back"
        # a rolled-back run keeps the summary it finished with; one that had failed has only an error
        status = ("succeeded" if "entities" in summary and "error" not in summary else "failed") \
            if rolled_back else r.status
        ok = rec_status == "succeeded"
        out.append(Rehearsal(
            run_id=r.run_id, status=status, started=_aware(r.created_at), finished=_aware(r.finished_at),
            entities=summary.get("entities", {}) if status == "succeeded" else {},
            reconcile_mismatches=int(rec["mismatches"]) if ok and "mismatches" in rec else None,
            reconcile_ok=bool(rec.get("ok")) if ok else None,
            delta=load_status == "succeeded" and _is_delta(load), rolled_back=rolled_back))
    return out


def latest_with_stage(engine, stage: str) -> tuple[str, dict] | None:
    """(run_id, stage result) of the newest run whose ``stage`` succeeded."""
    q = (select(runs.c.run_id, run_stages.c.result).join(run_stages, run_stages.c.run_id == runs.c.run_id)
         .where(run_stages.c.stage == stage, run_stages.c.status == "succeeded")
         .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1))
    with engine.connect() as c:
        row = c.execute(q).first()
    return (row.run_id, row.result or {}) if row else None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class SyncNight:
    run_id: str
    started: datetime
    status: str
    conflicts: int
    errors: int

    @property
    def clean(self) -> bool:
        return self.status == "succeeded" and self.conflicts == 0 and self.errors == 0


def sync_nights(engine) -> list[SyncNight]:
    """Finished non-dry sync runs, newest first."""
    q = (select(runs).where(runs.c.kind == "sync", runs.c.dry_run == 0, runs.c.status.in_(("succeeded", "failed")))
         .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()))
    with engine.connect() as c:
        rows = c.execute(q).all()
    out = []
    for r in rows:
        totals = (r.summary or {}).get("totals", {})
        out.append(SyncNight(r.run_id, _aware(r.created_at), r.status, int(totals.get("conflicts", 0)),
                             int(totals.get("errors", 0))))
    return out


def consecutive_clean_nights(nights: list[SyncNight]) -> int:
    """Distinct calendar days (UTC) of clean sync runs, counting back from the newest run until an
    unclean one: several clean runs on one day count once, one unclean run ends the streak."""
    days: set = set()
    for n in nights:
        if not n.clean:
            break
        days.add(n.started.date())
    return len(days)


def open_conflicts(engine) -> int | None:
    """Open rows in the sync conflict queue; ``None`` when the sync part is not installed."""
    try:
        from crmbridge.sync.store import sync_conflicts
    except ImportError:
        return None
    from sqlalchemy import func

    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(sync_conflicts)
                             .where(sync_conflicts.c.status == "open")).scalar_one())
