"""The run ledger, the write journal and the load map, in the state database.

- ``ledger``: one row per (run, step, source row id): what happened to that source row (created,
  updated, unchanged, failed), its external ID, Salesforce Id, error and content hash. Merged records
  give every source row id its own ledger row pointing at the same Salesforce Id.
- ``load_journal``: written *before* each DML batch (intent: the external IDs and the operation), then
  the Bulk job id as soon as Salesforce has created the job, then ``done`` together with the batch's
  ledger rows in one transaction. Resume reads it: done batches are skipped, batches with a job id are
  picked up from Salesforce, batches journaled without a job are resubmitted (upsert is idempotent).
- ``before_images``: the org's values of the fields a batch will overwrite, read before the write, so
  a rollback can restore them.
- ``load_map``: the current (object, external ID) -> Salesforce Id and last loaded content hash across
  runs. Reconcile, rollback, delta runs and the sync read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Iterable

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, Text, delete, func, select, update
from sqlalchemy.engine import Engine

from crmbridge.state import metadata, utcnow

ACTIONS = ("created", "updated", "unchanged", "failed")

ledger = Table(
    "ledger", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("row_id", String(190), primary_key=True),  # source row id (_row_id / each of _merged_row_ids)
    Column("object", String(80), nullable=False),
    Column("source_key", String(190)),
    Column("external_id", String(190)),
    Column("sf_id", String(18)),
    Column("action", String(16), nullable=False),
    Column("error_code", String(80)),
    Column("message", Text),
    Column("content_hash", String(64)),
    Column("batch_no", Integer),
    Column("recorded_at", DateTime(timezone=True)),
)
Index("ix_ledger_sf_id", ledger.c.sf_id)

load_journal = Table(
    "load_journal", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("object", String(80), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("external_id_field", String(80)),
    Column("keys", JSON, nullable=False),  # external ids (load) or Salesforce Ids (rollback) in batch order
    Column("status", String(16), nullable=False),  # intent, submitted, done
    Column("job_id", String(40)),
    Column("created_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)

before_images = Table(
    "before_images", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("object", String(80), primary_key=True),
    Column("sf_id", String(18), primary_key=True),
    Column("step", String(64), nullable=False),
    Column("external_id", String(190)),
    Column("image", JSON, nullable=False),  # field -> value as the org held it before this run
    Column("prev_hash", String(64)),  # the load map's hash before this run (restored by rollback)
)

load_map = Table(
    "load_map", metadata,
    Column("object", String(80), primary_key=True),
    Column("external_id", String(190), primary_key=True),
    Column("external_id_field", String(80)),
    Column("sf_id", String(18), nullable=False),
    Column("content_hash", String(64)),
    Column("source_key", String(190)),
    Column("last_run_id", String(64)),
    Column("created_run_id", String(64)),
    Column("updated_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class JournalEntry:
    run_id: str
    step: str
    batch_no: int
    object: str
    operation: str
    external_id_field: str | None
    keys: list[str]
    status: str
    job_id: str | None


def _chunks(items: list, n: int = 500) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# ----------------------------------------------------------------------------- journal


def journal_intent(engine: Engine, *, run_id: str, step: str, batch_no: int, sobject: str, operation: str,
                   external_id_field: str | None, keys: list[str], images: list[dict] | None = None) -> None:
    """Record what a batch is about to write (and the before-images) before the DML is sent."""
    with engine.begin() as c:
        c.execute(delete(load_journal).where(load_journal.c.run_id == run_id, load_journal.c.step == step,
                                             load_journal.c.batch_no == batch_no))
        c.execute(load_journal.insert().values(
            run_id=run_id, step=step, batch_no=batch_no, object=sobject, operation=operation,
            external_id_field=external_id_field, keys=list(keys), status="intent", created_at=utcnow()))
        if images:
            ids = [i["sf_id"] for i in images]
            for part in _chunks(ids):
                c.execute(delete(before_images).where(before_images.c.run_id == run_id,
                                                      before_images.c.object == sobject,
                                                      before_images.c.sf_id.in_(part)))
            c.execute(before_images.insert(), [dict(run_id=run_id, object=sobject, step=step, **i) for i in images])


def journal_job(engine: Engine, run_id: str, step: str, batch_no: int, job_id: str) -> None:
    """Record the Bulk job id the moment Salesforce has created the job (before the data upload)."""
    with engine.begin() as c:
        c.execute(update(load_journal).where(load_journal.c.run_id == run_id, load_journal.c.step == step,
                                             load_journal.c.batch_no == batch_no)
                  .values(job_id=job_id, status="submitted"))


def first_journaled(engine: Engine, run_id: str, step: str):
    """When the run first journaled a batch of ``step`` (before any of its writes), or None."""
    with engine.connect() as c:
        return c.execute(select(func.min(load_journal.c.created_at)).where(
            load_journal.c.run_id == run_id, load_journal.c.step == step)).scalar()


def journal_entries(engine: Engine, run_id: str, step: str | None = None) -> list[JournalEntry]:
    q = select(load_journal).where(load_journal.c.run_id == run_id)
    if step is not None:
        q = q.where(load_journal.c.step == step)
    with engine.connect() as c:
        rows = c.execute(q.order_by(load_journal.c.step, load_journal.c.batch_no)).all()
    return [JournalEntry(r.run_id, r.step, r.batch_no, r.object, r.operation, r.external_id_field,
                         list(r.keys or []), r.status, r.job_id) for r in rows]


def finish_batch(engine: Engine, *, run_id: str, step: str, batch_no: int, ledger_rows: list[dict],
                 map_rows: list[dict], unmap_ids: list[str] | None = None, sobject: str | None = None,
                 known: set[str] | None = None) -> None:
    """Write a batch's ledger rows, update the load map and mark the journal entry done, atomically."""
    now = utcnow()
    with engine.begin() as c:
        _write_ledger(c, run_id, step, ledger_rows, now)
        _upsert_map(c, map_rows, now, known)
        if unmap_ids and sobject:
            for part in _chunks(unmap_ids):
                c.execute(delete(load_map).where(load_map.c.object == sobject, load_map.c.sf_id.in_(part)))
        c.execute(update(load_journal).where(load_journal.c.run_id == run_id, load_journal.c.step == step,
                                             load_journal.c.batch_no == batch_no)
                  .values(status="done", finished_at=now))


def record_ledger(engine: Engine, run_id: str, step: str, rows: list[dict]) -> None:
    """Ledger rows written outside a DML batch (unchanged records)."""
    with engine.begin() as c:
        _write_ledger(c, run_id, step, rows, utcnow())


def _write_ledger(c, run_id: str, step: str, rows: list[dict], now) -> None:
    # No delete-then-insert: a batch's rows are written once, in the transaction that marks it done,
    # so a second write of the same source row would be a bug the primary key should surface.
    insert_many(c, ledger, rows, {"run_id": run_id, "step": step, "recorded_at": now})


def insert_many(c, table: Table, rows: list[dict], const: dict | None = None) -> None:
    """Insert ``rows`` (dicts with the same keys; ``const``: values shared by every row) in bulk, in
    the caller's transaction: COPY on PostgreSQL (psycopg 3), one driver ``executemany`` on SQLite,
    SQLAlchemy's batched executemany elsewhere. Bind processing (datetimes on SQLite) runs once per
    column rather than SQLAlchemy's per-row parameter building, which cost 3x the insert itself."""
    if not rows:
        return
    const = dict(const or {})
    cols = [k for k in rows[0] if k not in const]
    names = cols + list(const)
    dialect = c.dialect
    if dialect.name not in ("sqlite", "postgresql") or (dialect.name == "postgresql" and dialect.driver != "psycopg"):
        c.execute(table.insert(), [dict(r, **const) for r in rows])
        return
    procs = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in names]
    tail = tuple(p(v) if p else v for p, v in zip(procs[len(cols):], const.values()))
    if any(procs[:len(cols)]):
        data = [tuple(p(r[k]) if p else r[k] for k, p in zip(cols, procs)) + tail for r in rows]
    elif len(cols) > 1:
        get = itemgetter(*cols)
        data = [get(r) + tail for r in rows]
    else:
        data = [(r[cols[0]],) + tail for r in rows]
    quote = dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(n) for n in names)})"
    if dialect.name == "postgresql":
        with c.connection.driver_connection.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
            for t in data:
                copy.write_row(t)
    else:
        c.exec_driver_sql(f"INSERT INTO {target} VALUES ({', '.join('?' * len(names))})", data)


def _upsert_map(c, rows: list[dict], now, known: set[str] | None = None) -> None:
    """Insert or replace load-map entries; ``known``: the external ids that may already be there
    (None: any), so a first load of 100k records does not probe the table 200 times."""
    if not rows:
        return
    by_obj: dict[str, list[str]] = {}
    for r in rows:
        if known is None or r["external_id"] in known:
            by_obj.setdefault(r["object"], []).append(r["external_id"])
    created: dict[tuple, str] = {}
    for obj, keys in by_obj.items():
        for part in _chunks(keys):
            for r in c.execute(select(load_map.c.external_id, load_map.c.created_run_id)
                               .where(load_map.c.object == obj, load_map.c.external_id.in_(part))):
                created[(obj, r.external_id)] = r.created_run_id
            c.execute(delete(load_map).where(load_map.c.object == obj, load_map.c.external_id.in_(part)))
    insert_many(c, load_map, [
        dict(r, created_run_id=created.get((r["object"], r["external_id"]), r.get("created_run_id"))) for r in rows],
        {"updated_at": now})


# ----------------------------------------------------------------------------- reading


def map_for(engine: Engine, sobject: str) -> dict[str, tuple[str, str | None]]:
    """external id -> (Salesforce Id, last loaded content hash) for one object."""
    with engine.connect() as c:
        return {r.external_id: (r.sf_id, r.content_hash) for r in
                c.execute(select(load_map.c.external_id, load_map.c.sf_id, load_map.c.content_hash)
                          .where(load_map.c.object == sobject))}


def ledger_frame(engine: Engine, run_id: str, step: str | None = None, columns: list[str] | None = None):
    """The ledger rows of a run (optionally one step, only some columns) as a DataFrame."""
    import pandas as pd

    cols = [ledger.c[n] for n in columns] if columns else [ledger]
    q = select(*cols).where(ledger.c.run_id == run_id)
    if step is not None:
        q = q.where(ledger.c.step == step)
    with engine.connect() as c:
        res = c.execute(q)
        names = list(res.keys())
        rows = res.fetchall()
    # column-wise: DataFrame.from_records probes every Row object for attributes (slower than the query)
    columns_ = list(zip(*rows)) if rows else [()] * len(names)
    return pd.DataFrame({n: pd.Series(list(v), dtype=object) for n, v in zip(names, columns_)})


def ledger_row_ids(engine: Engine, run_id: str, step: str) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(select(ledger.c.row_id).where(ledger.c.run_id == run_id, ledger.c.step == step))
                   .scalars())


def action_counts(engine: Engine, run_id: str) -> dict[str, dict[str, int]]:
    """step -> {action: number of source rows} for a run."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as c:
        for r in c.execute(select(ledger.c.step, ledger.c.action, func.count()).where(ledger.c.run_id == run_id)
                           .group_by(ledger.c.step, ledger.c.action)):
            out.setdefault(r[0], {a: 0 for a in ACTIONS})[r[1]] = r[2]
    return out


def imaged_external_ids(engine: Engine, run_id: str, sobject: str) -> set[str]:
    """The external ids of the records a run journaled before-images for (records it did not create)."""
    with engine.connect() as c:
        return set(c.execute(select(before_images.c.external_id).where(
            before_images.c.run_id == run_id, before_images.c.object == sobject)).scalars())


def images_for(engine: Engine, run_id: str, sobject: str) -> dict[str, dict[str, Any]]:
    """Salesforce Id -> {"image", "external_id", "prev_hash"} recorded by a run for one object."""
    with engine.connect() as c:
        return {r.sf_id: {"image": r.image, "external_id": r.external_id, "prev_hash": r.prev_hash}
                for r in c.execute(select(before_images).where(before_images.c.run_id == run_id,
                                                               before_images.c.object == sobject))}


def restore_map(engine: Engine, sobject: str, entries: list[dict]) -> None:
    """After a rollback restored records: put back the previous hashes (or forget deleted records)."""
    with engine.begin() as c:
        for e in entries:
            q = load_map.c.object == sobject
            if e.get("prev_hash") is None:
                c.execute(delete(load_map).where(q, load_map.c.sf_id == e["sf_id"]))
            else:
                c.execute(update(load_map).where(q, load_map.c.sf_id == e["sf_id"])
                          .values(content_hash=e["prev_hash"], updated_at=utcnow()))


def created_by_run(engine: Engine, run_id: str, sobject: str) -> int:
    """How many of the object's records in the load map this run created."""
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(load_map).where(
            load_map.c.object == sobject, load_map.c.created_run_id == run_id)).scalar_one()
