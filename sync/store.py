"""The sync's tables in the state database: links with baselines, the conflict queue, the journal, the lock.

``sync_records`` is the key map (ERP key <-> Salesforce Id) plus, per field, the value both sides held
after the last sync (the *baseline*). Comparing each side with the baseline is what tells a real change
from the sync's own echo, and a change on one side from a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, Text, and_, delete, select, update
from sqlalchemy.engine import Connection, Engine

from crmbridge.locks import run_locks as sync_locks  # noqa: F401 - the lock table, shared with the migration commands
from crmbridge.state import metadata, utcnow

sync_records = Table(
    "sync_records",
    metadata,
    Column("object", String(64), primary_key=True),
    Column("erp_key", String(400), primary_key=True),
    Column("sf_id", String(18)),
    Column("base", JSON),  # sf field -> canonical value both sides held after the last sync
    Column("erp_hash", String(32)),
    Column("status", String(12), nullable=False),  # ok, pending/error (retried next run), deleted, sf_deleted
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True)),
    Index("ix_sync_records_sf", "object", "sf_id"),
)

sync_conflicts = Table(
    "sync_conflicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object", String(64), nullable=False),
    Column("erp_key", String(400), nullable=False),
    Column("sf_id", String(18)),
    Column("field", String(120), nullable=False),
    Column("erp_value", Text),
    Column("sf_value", Text),
    Column("base_value", Text),
    Column("status", String(12), nullable=False),  # open, resolved (waiting for the next run), applied
    Column("resolution", String(12)),  # erp, salesforce, value
    Column("resolved_value", Text),
    Column("detected_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("run_id", String(64)),
    Index("ix_sync_conflicts_open", "object", "erp_key", "field", "status"),
)

sync_journal = Table(
    "sync_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("object", String(64), nullable=False),
    Column("side", String(12), nullable=False),  # salesforce, erp
    Column("operation", String(16), nullable=False),  # upsert, update, delete, insert
    Column("rows", Integer, nullable=False),
    Column("payload", JSON),  # erp keys (and for ERP inserts the sf_id -> new key map)
    Column("status", String(12), nullable=False),  # planned, done, failed, recovered
    Column("result", JSON),
    Column("created_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)

@dataclass
class Record:
    """One linked (or pending) row as the state database knows it."""

    erp_key: str
    sf_id: str | None = None
    base: dict = field(default_factory=dict)
    erp_hash: str | None = None
    status: str = "ok"
    error: str | None = None


def _rec(r) -> Record:
    return Record(r.erp_key, r.sf_id, dict(r.base or {}), r.erp_hash, r.status)


def _load_where_in(engine: Engine, obj: str, column, values: list[str]) -> dict[str, Record]:
    """Records of ``obj`` whose ``column`` is in ``values``, in chunks of 500 (bound-parameter limits)."""
    out: dict[str, Record] = {}
    with engine.connect() as c:
        for i in range(0, len(values), 500):
            q = select(sync_records).where(sync_records.c.object == obj, column.in_(values[i:i + 500]))
            out.update({getattr(r, column.name): _rec(r) for r in c.execute(q)})
    return out


def load_records(engine: Engine, obj: str, keys: list[str]) -> dict[str, Record]:
    return _load_where_in(engine, obj, sync_records.c.erp_key, keys)


def load_by_sf_ids(engine: Engine, obj: str, sf_ids: list[str]) -> dict[str, Record]:
    return _load_where_in(engine, obj, sync_records.c.sf_id, sf_ids)


def all_hashes(engine: Engine, obj: str) -> dict[str, str | None]:
    """erp key -> stored content hash, for every linked row of ``obj`` (hash change tracking)."""
    with engine.connect() as c:
        q = select(sync_records.c.erp_key, sync_records.c.erp_hash).where(
            sync_records.c.object == obj, sync_records.c.status == "ok")
        return {k: h for k, h in c.execute(q)}


def keys_with_status(engine: Engine, obj: str, statuses: tuple[str, ...]) -> list[str]:
    with engine.connect() as c:
        q = select(sync_records.c.erp_key).where(sync_records.c.object == obj, sync_records.c.status.in_(statuses))
        return [k for (k,) in c.execute(q)]


def save_records(conn: Connection, obj: str, recs: list[Record]) -> None:
    """Upsert link rows (delete + insert in the caller's transaction: portable across dialects)."""
    now = utcnow()
    for i in range(0, len(recs), 500):
        chunk = recs[i:i + 500]
        conn.execute(delete(sync_records).where(sync_records.c.object == obj,
                                                sync_records.c.erp_key.in_([r.erp_key for r in chunk])))
        conn.execute(sync_records.insert(), [
            {"object": obj, "erp_key": r.erp_key, "sf_id": r.sf_id, "base": r.base, "erp_hash": r.erp_hash,
             "status": r.status, "error": r.error, "updated_at": now} for r in chunk])


def count_records(engine: Engine, obj: str | None = None) -> dict[str, int]:
    from sqlalchemy import func

    q = select(sync_records.c.status, func.count()).group_by(sync_records.c.status)
    if obj:
        q = q.where(sync_records.c.object == obj)
    with engine.connect() as c:
        return {s: n for s, n in c.execute(q)}


# --------------------------------------------------------------------------- journal
def journal_plan(engine: Engine, run_id: str, obj: str, side: str, operation: str, payload: dict, rows: int) -> int:
    """Record what is about to be written, before writing it."""
    with engine.begin() as c:
        return c.execute(sync_journal.insert().values(
            run_id=run_id, object=obj, side=side, operation=operation, rows=rows, payload=payload,
            status="planned", created_at=utcnow())).inserted_primary_key[0]


def journal_done(engine: Engine, entry_id: int, status: str = "done", result: dict | None = None, conn=None) -> None:
    stmt = update(sync_journal).where(sync_journal.c.id == entry_id).values(
        status=status, result=result or {}, finished_at=utcnow())
    if conn is not None:
        conn.execute(stmt)
    else:
        with engine.begin() as c:
            c.execute(stmt)


def unfinished_journal(engine: Engine, obj: str) -> list:
    """Entries a killed run planned but never marked done."""
    with engine.connect() as c:
        return list(c.execute(select(sync_journal).where(
            and_(sync_journal.c.object == obj, sync_journal.c.status == "planned")).order_by(sync_journal.c.id)))
