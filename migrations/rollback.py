"""Roll back a migrate run: delete what it created, restore the before-images of what it updated.

Steps are undone in reverse load order (children before parents). The rollback is a run of its own
(``<run_id>.rb``, kind ``rollback``) with its own journal, so an interrupted rollback is continued by
running the same command again: done batches are skipped, the rest are sent again (restoring a
before-image and deleting an already deleted record are both safe to repeat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from crmbridge import progress
from crmbridge.connectors.salesforce.values import soql_in
from crmbridge.errors import RunFailed, UsageError
from crmbridge.locks import locked
from crmbridge.migrations import ledger as L
from crmbridge.migrations import runs as R
from crmbridge.migrations.load import IN_CHUNK, crash_point
from crmbridge.migrations.mapped import read_plan
from crmbridge.state import open_state, runs as runs_table

log = logging.getLogger("crmbridge.rollback")
BATCH_ROWS = 10_000
_GONE = {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"}  # already deleted: the goal is reached


@dataclass(frozen=True)
class StepRollback:
    step: str
    object: str
    deleted: int
    restored: int
    failed: int
    in_flight: int = 0  # records found in the org from batches the ledger never recorded (a killed load)
    left_in_org: int = 0  # records the run created that the org still holds after the rollback

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
    """Delete or restore ``items`` [(sf_id, record)] in journaled batches; returns (done, failed).

    Batches already journaled are finished (or skipped when done); items no batch holds yet, and
    items that failed last time, go into new batches, so running it again completes the work."""
    name = f"{step}:{op}"
    dml_op = "delete" if op == "delete" else "update"
    records = dict(items)
    entries = L.journal_entries(engine, rb.run_id, name)
    failed_before = _failed_keys(engine, rb.run_id, name)
    if failed_before:
        _forget(engine, rb.run_id, name, failed_before)
    covered = {k for e in entries for k in e.keys if k not in failed_before}
    for e in entries:
        if e.status != "done":
            _send_batch(engine, conn, rb, e, records, op, images)
    todo = [i for i, _ in items if i not in covered]
    no = max((e.batch_no for e in entries), default=-1) + 1
    for start in range(0, len(todo), BATCH_ROWS):
        keys = todo[start:start + BATCH_ROWS]
        L.journal_intent(engine, run_id=rb.run_id, step=name, batch_no=no, sobject=sobject, operation=dml_op,
                         external_id_field=None, keys=keys)
        _send_batch(engine, conn, rb, L.JournalEntry(rb.run_id, name, no, sobject, dml_op, None, keys, "intent", None),
                    records, op, images)
        no += 1
    led = L.ledger_frame(engine, rb.run_id, name, ["action"])
    bad = int((led["action"] == "failed").sum())
    return len(led) - bad, bad


def _send_batch(engine, conn, rb: R.Run, e: L.JournalEntry, records: dict, op: str, images: dict) -> None:
    keys = e.keys
    # an item journaled by an earlier attempt is sent as journaled even if this attempt did not list it
    sent = [records.get(k) or {"Id": k, **((images.get(k) or {}).get("image") or {} if op != "delete" else {})}
            for k in keys]
    results = _send(engine, conn, rb, e, sent)
    rows, map_fix = [], []
    for k, r in zip(keys, results):
        good = r.success or (op == "delete" and r.error_code in _GONE)
        rows.append(dict(row_id=k, object=e.object, sf_id=k, action=("deleted" if op == "delete" else "restored")
                         if good else "failed", error_code=None if good else r.error_code,
                         message=None if good else r.message, batch_no=e.batch_no))
        if good:
            map_fix.append({"sf_id": k, "prev_hash": None if op == "delete" else (images.get(k) or {}).get("prev_hash")})
    L.finish_batch(engine, run_id=rb.run_id, step=e.step, batch_no=e.batch_no, ledger_rows=rows, map_rows=[])
    L.restore_map(engine, e.object, map_fix)
    crash_point("rollback:after_batch")


def _failed_keys(engine, run_id: str, name: str) -> list[str]:
    from sqlalchemy import select

    with engine.connect() as c:
        return list(c.execute(select(L.ledger.c.row_id).where(L.ledger.c.run_id == run_id, L.ledger.c.step == name,
                                                              L.ledger.c.action == "failed")).scalars())


def _forget(engine, run_id: str, name: str, keys: list[str]) -> None:
    """Drop the ledger rows of items that failed, so that they are sent again."""
    from sqlalchemy import delete

    with engine.begin() as c:
        for i in range(0, len(keys), 500):
            c.execute(delete(L.ledger).where(L.ledger.c.run_id == run_id, L.ledger.c.step == name,
                                             L.ledger.c.row_id.in_(keys[i:i + 500])))


# ----------------------------------------------------------------------------- in-flight batches


def _org_ids(conn, sobject: str, ext: str, keys: list[str]) -> dict[str, str]:
    """external id -> Salesforce Id of the records the org holds for ``keys``."""
    out = {}
    for i in range(0, len(keys), IN_CHUNK):
        part = keys[i:i + IN_CHUNK]
        for rec in conn.query(f"SELECT Id, {ext} FROM {sobject} WHERE {ext} IN ({soql_in(part)})"):
            out[str(rec.get(ext))] = rec["Id"]
    return out


def unrecorded(engine, conn, target: R.Run, step: dict, images: dict) -> tuple[list[str], list[str], dict]:
    """Records of ``step`` the run may have written without a ledger row: batches a killed process left
    in flight (journaled, never finished) and rows left pending by a transient fault.

    Bulk jobs still open are aborted and running ones waited for, then the org is asked by external ID.
    Returns (Ids the run created: to delete, Ids with a before-image: to restore, external id -> Id)."""
    name, sobject = step["step"], step["object"]
    entries = L.journal_entries(engine, target.run_id, name)
    for e in entries:
        if e.status != "done" and e.job_id:
            state = conn.settle_job(e.job_id, sobject)
            log.info("rollback %s: Bulk job %s of batch %s is %s", target.run_id, e.job_id, e.batch_no, state)
    recorded = set(L.ledger_frame(engine, target.run_id, name, ["external_id"])["external_id"].dropna())
    keys = sorted({k for e in entries for k in e.keys} - recorded)
    if not keys:
        return [], [], {}
    ext = step["external_id_field"]
    found = _org_ids(conn, sobject, ext, keys)
    imaged = {v["external_id"] for v in images.values()}
    foreign = _created_elsewhere(engine, sobject, target.run_id, list(found.values()))
    delete = [i for k, i in found.items() if k not in imaged and i not in foreign]
    restore = [i for k, i in found.items() if k in imaged and i in images]
    return delete, restore, found


def _created_elsewhere(engine, sobject: str, run_id: str, ids: list[str]) -> set[str]:
    """Ids the load map says another run created (never deleted by this run's rollback)."""
    from sqlalchemy import select

    out = set()
    with engine.connect() as c:
        for i in range(0, len(ids), 500):
            out |= set(c.execute(select(L.load_map.c.sf_id).where(
                L.load_map.c.object == sobject, L.load_map.c.sf_id.in_(ids[i:i + 500]),
                L.load_map.c.created_run_id.is_not(None), L.load_map.c.created_run_id != run_id)).scalars())
    return out


def leftovers(conn, sobject: str, ids: list[str]) -> int:
    """How many of the records the rollback deleted the org still holds."""
    n = 0
    for i in range(0, len(ids), IN_CHUNK):
        n += conn.count(f"SELECT COUNT() FROM {sobject} WHERE Id IN ({soql_in(ids[i:i + IN_CHUNK])})")
    return n


def _status(engine, run_id: str) -> str | None:
    from sqlalchemy import select

    with engine.connect() as c:
        return c.execute(select(runs_table.c.status).where(runs_table.c.run_id == run_id)).scalar()


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


@locked("rollback")
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
    already = _status(engine, run_id) == "rolled_back"
    rb = _rollback_run(engine, project, target)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    out = []
    try:
        R.start_stage(engine, rb.run_id, "rollback")
        left: dict[str, int] = {}
        plan = list(reversed(read_plan(target)))
        progress.current().stage("rollback", len(plan))
        for step in plan:
            led = L.ledger_frame(engine, run_id, step["step"])
            led = led[led["sf_id"].notna()].drop_duplicates("sf_id")
            sobject = step["object"]
            images = L.images_for(engine, run_id, sobject)
            in_flight_delete, in_flight_restore, _ = unrecorded(engine, connector, target, step, images)
            upd = [i for i in led[led["action"] == "updated"]["sf_id"] if i in images]
            upd += [i for i in in_flight_restore if i not in set(upd)]
            restore = [(i, {"Id": i, **images[i]["image"]}) for i in upd]
            created_ids = list(led[led["action"] == "created"]["sf_id"])
            created_ids += [i for i in in_flight_delete if i not in set(created_ids)]
            created = [(i, {"Id": i}) for i in created_ids]
            with progress.tracked(f"{sobject} (records)", len(restore) + len(created)) as task:
                r_ok, r_bad = _undo(engine, connector, rb, step["step"], sobject, "restore", restore, images)
                task.advance(len(restore))
                d_ok, d_bad = _undo(engine, connector, rb, step["step"], sobject, "delete", created, images)
                task.advance(len(created))
            # verified once when the run was marked rolled back; a repeated rollback stays a no-op
            remaining = 0 if already else leftovers(connector, sobject, created_ids)
            if remaining:
                left[step["step"]] = remaining
            out.append(StepRollback(step["step"], sobject, d_ok, r_ok, r_bad + d_bad, len(in_flight_delete),
                                    remaining))
        result = RollbackResult(run_id, rb.run_id, tuple(out))
    except BaseException as exc:
        R.finish_stage(engine, rb.run_id, "rollback", status="failed", error=f"{type(exc).__name__}: {exc}")
        R.finish_run(engine, rb.run_id, "failed", {"error": str(exc)})
        raise
    finally:
        if own:
            connector.close()
    R.finish_stage(engine, rb.run_id, "rollback", result.as_dict())
    left_total = sum(s.left_in_org for s in result.steps)
    R.finish_run(engine, rb.run_id, "failed" if result.failed or left_total else "succeeded", result.as_dict())
    if left_total:
        raise RunFailed(f"rollback of {run_id}: {left_total} records the run created are still in the org ("
                        + ", ".join(f"{s.step}: {s.left_in_org}" for s in result.steps if s.left_in_org)
                        + "); the run is not marked rolled back",
                        hint=f"run `crmbridge rollback {run_id}` again (see `crmbridge runs show {rb.run_id}`)")
    if result.failed:
        raise RunFailed(f"rollback of {run_id}: {result.failed} records could not be undone "
                        f"(see `crmbridge runs show {rb.run_id}`)", hint=f"fix the cause and run `crmbridge rollback {run_id}` again")
    with engine.begin() as c:
        c.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(status="rolled_back"))
    return result
