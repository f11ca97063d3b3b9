"""Roll back a migrate run: delete what it created, restore the before-images of what it updated.

Steps are undone in reverse load order (children before parents). The rollback is a run of its own
(``<run_id>.rb``, kind ``rollback``) with its own journal, so an interrupted rollback is continued by
running the same command again: done batches are skipped, the rest are sent again (restoring a
before-image and deleting an already deleted record are both safe to repeat).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from crmbridge import progress
from crmbridge.errors import RunFailed, UsageError
from crmbridge.migrations import ledger as L
from crmbridge.migrations import runs as R
from crmbridge.migrations.load import crash_point, read_plan
from crmbridge.state import open_state, runs as runs_table

BATCH_ROWS = 10_000
_GONE = {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"}  # already deleted: the goal is reached


@dataclass(frozen=True)
class StepRollback:
    step: str
    object: str
    deleted: int
    restored: int
    failed: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RollbackResult:
    run_id: str
    rollback_run_id: str
    steps: tuple[StepRollback, ...]

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "rollback_run_id": self.rollback_run_id, "failed": self.failed,
                "steps": [s.as_dict() for s in self.steps]}


def _rollback_run(engine, project, target: R.Run) -> R.Run:
    rb_id = f"{target.run_id}.rb"
    with engine.connect() as c:
        exists = c.execute(select(runs_table.c.run_id).where(runs_table.c.run_id == rb_id)).first() is not None
    if not exists:
        return R.create_run(engine, project.runs_dir, "rollback", command=f"rollback {target.run_id}", run_id=rb_id)
    with engine.begin() as c:
        c.execute(update(runs_table).where(runs_table.c.run_id == rb_id).values(status="running"))
    return R.Run(rb_id, project.runs_dir / rb_id, "rollback")


def _send(engine, conn, rb: R.Run, entry: L.JournalEntry, records: list[dict]) -> list:
    def on_job(job_id: str) -> None:
        L.journal_job(engine, rb.run_id, entry.step, entry.batch_no, job_id)
        crash_point("rollback:after_job_created")

    if entry.job_id:
        results = list(conn.resume_job(entry.job_id, entry.operation, entry.object, records, keys=entry.keys))
        redo = [i for i, r in enumerate(results) if not r.success and r.error_code in
                ("UNPROCESSED", "JOB_FAILED", "JOB_NOT_FOUND")]
        if redo:
            again = conn.dml(entry.operation, entry.object, [records[i] for i in redo],
                             keys=[entry.keys[i] for i in redo], on_job=on_job)
            for i, r in zip(redo, again):
                results[i] = r
        return results
    return conn.dml(entry.operation, entry.object, records, keys=entry.keys, on_job=on_job)


def _undo(engine, conn, rb: R.Run, step: str, sobject: str, op: str, items: list[tuple[str, dict]],
          images: dict) -> tuple[int, int]:
    """Delete or restore ``items`` [(sf_id, record)] in journaled batches; returns (done, failed)."""
    name = f"{step}:{op}"
    entries = {e.batch_no: e for e in L.journal_entries(engine, rb.run_id, name)}
    records = dict(items)
    ids = [i for i, _ in items]
    ok = bad = 0
    for no, start in enumerate(range(0, len(ids), BATCH_ROWS)):
        e = entries.get(no)
        if e is None:
            keys = ids[start:start + BATCH_ROWS]
            L.journal_intent(engine, run_id=rb.run_id, step=name, batch_no=no, sobject=sobject,
                             operation="delete" if op == "delete" else "update", external_id_field=None, keys=keys)
            e = L.JournalEntry(rb.run_id, name, no, sobject, "delete" if op == "delete" else "update", None, keys,
                               "intent", None)
        if e.status != "done":
            results = _send(engine, conn, rb, e, [records[k] for k in e.keys])
            rows, map_fix = [], []
            for k, r in zip(e.keys, results):
                good = r.success or (op == "delete" and r.error_code in _GONE)
                rows.append(dict(row_id=k, object=sobject, sf_id=k, action=("deleted" if op == "delete" else "restored")
                                 if good else "failed", error_code=None if good else r.error_code,
                                 message=None if good else r.message, batch_no=no))
                if good:
                    map_fix.append({"sf_id": k, "prev_hash": None if op == "delete" else images[k]["prev_hash"]})
            L.finish_batch(engine, run_id=rb.run_id, step=name, batch_no=no, ledger_rows=rows, map_rows=[])
            L.restore_map(engine, sobject, map_fix)
            crash_point("rollback:after_batch")
        led = L.ledger_frame(engine, rb.run_id, name)
        led = led[led["batch_no"] == no]
        bad += int((led["action"] == "failed").sum())
        ok += int((led["action"] != "failed").sum())
    return ok, bad


def later_writers(engine, run_id: str) -> list[str]:
    """Newer migrate runs (not rolled back) that wrote records: undoing ``run_id`` first would restore
    before-images over their changes."""
    from sqlalchemy import select

    with engine.connect() as c:
        created = c.execute(select(runs_table.c.created_at).where(runs_table.c.run_id == run_id)).scalar_one()
        newer = [r.run_id for r in c.execute(select(runs_table.c.run_id).where(
            runs_table.c.kind == "migrate", runs_table.c.created_at > created, runs_table.c.dry_run == 0,
            runs_table.c.status != "rolled_back"))]
        if not newer:
            return []
        wrote = c.execute(select(L.ledger.c.run_id).where(L.ledger.c.run_id.in_(newer),
                                                          L.ledger.c.action.in_(("created", "updated")))
                          .distinct()).scalars().all()
    return sorted(wrote, reverse=True)


def run_rollback(project, run_id: str, *, connector=None, force: bool = False) -> RollbackResult:
    """Undo run ``run_id`` (children before parents); continue an interrupted rollback of it.

    Refuses (unless ``force``) while a newer migrate run that wrote records is not rolled back."""
    engine = open_state(project.state_url)
    target = R.open_run(engine, project.runs_dir, run_id, kind="migrate")
    run_id = target.run_id  # `latest` or an id prefix -> the full id
    if target.kind != "migrate":
        raise UsageError(f"run {run_id} is a {target.kind} run; only migrate runs can be rolled back",
                         hint="`crmbridge runs list` shows the migrate runs")
    newer = [] if force else later_writers(engine, run_id)
    if newer:
        raise UsageError(f"run {run_id} cannot be rolled back before the newer run(s) {', '.join(newer)} that wrote "
                         "records after it", hint=f"roll back newest first: `crmbridge rollback {newer[0]}` "
                         "(or pass --force to restore this run's before-images anyway)")
    rb = _rollback_run(engine, project, target)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    out = []
    try:
        R.start_stage(engine, rb.run_id, "rollback")
        plan = list(reversed(read_plan(target)))
        progress.current().stage("rollback", len(plan))
        for step in plan:
            led = L.ledger_frame(engine, run_id, step["step"])
            led = led[led["sf_id"].notna()].drop_duplicates("sf_id")
            sobject = step["object"]
            images = L.images_for(engine, run_id, sobject)
            upd = [i for i in led[led["action"] == "updated"]["sf_id"] if i in images]
            restore = [(i, {"Id": i, **images[i]["image"]}) for i in upd]
            created = [(i, {"Id": i}) for i in led[led["action"] == "created"]["sf_id"]]
            with progress.tracked(f"{sobject} (records)", len(restore) + len(created)) as task:
                r_ok, r_bad = _undo(engine, connector, rb, step["step"], sobject, "restore", restore, images)
                task.advance(len(restore))
                d_ok, d_bad = _undo(engine, connector, rb, step["step"], sobject, "delete", created, images)
                task.advance(len(created))
            out.append(StepRollback(step["step"], sobject, d_ok, r_ok, r_bad + d_bad))
        result = RollbackResult(run_id, rb.run_id, tuple(out))
    except BaseException as exc:
        R.finish_stage(engine, rb.run_id, "rollback", status="failed", error=f"{type(exc).__name__}: {exc}")
        R.finish_run(engine, rb.run_id, "failed", {"error": str(exc)})
        raise
    finally:
        if own:
            connector.close()
    R.finish_stage(engine, rb.run_id, "rollback", result.as_dict())
    R.finish_run(engine, rb.run_id, "failed" if result.failed else "succeeded", result.as_dict())
    if result.failed:
        raise RunFailed(f"rollback of {run_id}: {result.failed} records could not be undone "
                        f"(see `crmbridge runs show {rb.run_id}`)", hint=f"fix the cause and run `crmbridge rollback {run_id}` again")
    with engine.begin() as c:
        c.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(status="rolled_back"))
    return result
