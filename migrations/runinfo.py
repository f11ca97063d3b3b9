"""Run listings for ``crmbridge runs``: runs, their stages and per-object ledger counts."""

from __future__ import annotations

from sqlalchemy import func, select

from crmbridge.migrations import ledger as L
from crmbridge.migrations import runs as R
from crmbridge.state import run_stages, runs


def list_runs(engine, *, limit: int = 20) -> list[dict]:
    """Newest runs first, each with its ledger action totals."""
    with engine.connect() as c:
        rows = c.execute(select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)).all()
        totals: dict[str, dict[str, int]] = {}
        ids = [r.run_id for r in rows]
        if ids:
            for run_id, action, n in c.execute(select(L.ledger.c.run_id, L.ledger.c.action, func.count())
                                               .where(L.ledger.c.run_id.in_(ids))
                                               .group_by(L.ledger.c.run_id, L.ledger.c.action)):
                totals.setdefault(run_id, {})[action] = n
    out = []
    for r in rows:
        t = totals.get(r.run_id, {})
        out.append({"run_id": r.run_id, "kind": r.kind, "status": r.status, "created_at": r.created_at,
                    "finished_at": r.finished_at, "dry_run": bool(r.dry_run), "command": r.command,
                    "actions": {a: int(t.get(a, 0)) for a in (*L.ACTIONS, "quarantined", "deleted", "restored")}})
    return out


def show_run(engine, project, run_id: str) -> dict:
    """One run: status, stages, per-object counts (records and source rows) and its summary."""
    run = R.open_run(engine, project.runs_dir, run_id)
    run_id = run.run_id  # `latest` or an id prefix -> the full id
    with engine.connect() as c:
        row = c.execute(select(runs).where(runs.c.run_id == run_id)).first()
        stages = [dict(stage=s.stage, status=s.status, started_at=s.started_at, finished_at=s.finished_at,
                       error=s.error) for s in c.execute(select(run_stages).where(run_stages.c.run_id == run_id)
                                                         .order_by(run_stages.c.started_at))]
        objs: dict[tuple, dict] = {}
        for step, obj, action, n in c.execute(
                select(L.ledger.c.step, L.ledger.c.object, L.ledger.c.action, func.count())
                .where(L.ledger.c.run_id == run_id).group_by(L.ledger.c.step, L.ledger.c.object, L.ledger.c.action)):
            d = objs.setdefault((step, obj), {"step": step, "object": obj, "other": 0})
            if action in (*L.ACTIONS, "quarantined"):
                d[action] = d.get(action, 0) + n
            else:
                d[action] = n
                d["other"] += n
    return {"run_id": run_id, "kind": run.kind, "status": row.status, "dir": str(run.dir), "command": row.command,
            "created_at": row.created_at, "finished_at": row.finished_at, "dry_run": bool(row.dry_run),
            "stages": stages, "objects": list(objs.values()), "summary": row.summary or {}}
