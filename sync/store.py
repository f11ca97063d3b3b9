"""The sync's tables in the state database: links with baselines, the conflict queue, the journal, the lock.

``sync_records`` is the key map (ERP key <-> Salesforce Id) plus, per field, the value both sides held
after the last sync (the *baseline*). Comparing each side with the baseline is what tells a real change
from the sync's own echo, and a change on one side from a conflict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import (
    JSON,
    Column,
    bindparam,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from crmbridge.locks import run_locks as sync_locks  # noqa: F401 - the lock table, shared with the migration commands
from crmbridge.state import metadata, utcnow
from crmbridge.sync import seen

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
    # covers the per-status key scans (delete buckets, retries) without reading the wide rows
    Index("ix_sync_records_status", "object", "status", "erp_key"),
)

# Known (not deleted) keys of each object per delete-check bucket (sync/deletes.py), kept up to date by
# save_records in the same transaction as sync_records, so a delete check counts only the ERP side.
# The row with bucket SCHEME_ROW says which bucketing the counts follow (absent: rebuild them).
sync_key_buckets = Table(
    "sync_key_buckets",
    metadata,
    Column("object", String(64), primary_key=True),
    Column("bucket", String(16), primary_key=True),
    Column("n", Integer, nullable=False),
)
SCHEME_ROW = "#scheme"  # never a bucket: buckets are at most 3 characters, or an integer in -999..999

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


_REC_COLS = [sync_records.c.erp_key, sync_records.c.sf_id, sync_records.c.base, sync_records.c.erp_hash,
             sync_records.c.status]


def _load_where_in(engine: Engine, obj: str, column, values: list[str]) -> dict[str, Record]:
    """Records of ``obj`` whose ``column`` is in ``values``, in chunks of 500 (bound-parameter limits)."""
    out: dict[str, Record] = {}
    values = sorted({v for v in values if v is not None})  # neighbouring keys share index pages
    with engine.connect() as c:
        for i in range(0, len(values), 500):
            q = select(*_REC_COLS).where(sync_records.c.object == obj, column.in_(values[i:i + 500]))
            out.update({getattr(r, column.name): _rec(r) for r in c.execute(q).all()})
    return out


def ensure_indexes(engine: Engine) -> None:
    """Indexes (and tables) added after a state database was created."""
    for ix in sync_records.indexes:
        ix.create(engine, checkfirst=True)
    sync_key_buckets.create(engine, checkfirst=True)
    seen.sync_erp_seen.create(engine, checkfirst=True)


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


def iter_keys(engine: Engine, obj: str, batch: int = 50_000):
    """(erp key, status) of every row of ``obj`` the sync knows to exist in the ERP (not ``deleted``)."""
    with engine.connect() as c:
        q = select(sync_records.c.erp_key, sync_records.c.status).where(
            sync_records.c.object == obj, sync_records.c.status != "deleted")
        res = c.execution_options(stream_results=True, yield_per=batch).execute(q)
        while True:
            rows = res.fetchmany(batch)
            if not rows:
                break
            yield from rows


def _bucket_sql(engine: Engine, width: int, composite: bool):
    """The bucket of a stored text key in SQL (see sync/deletes.py), or None where only Python can say."""
    k = sync_records.c.erp_key
    name = engine.dialect.name
    if name == "sqlite":
        pos = func.instr(k, "|")
        first = case((pos > 0, func.substr(k, 1, pos - 1)), else_=k) if composite else k
        return func.substr(first, -width)
    if name == "postgresql":
        return func.right(func.split_part(k, "|", 1) if composite else k, width)
    if name in ("mysql", "mariadb"):
        return func.right(func.substring_index(k, "|", 1) if composite else k, width)
    return None


def bucket_counts(engine: Engine, obj: str, width: int, composite: bool) -> dict[str, int] | None:
    """Known (not deleted) keys of ``obj`` per bucket, counted by the state database itself."""
    expr = _bucket_sql(engine, width, composite)
    if expr is None:
        return None
    q = (select(expr, func.count()).where(sync_records.c.object == obj, sync_records.c.status != "deleted")
         .group_by(expr))
    with engine.connect() as c:
        return {b: n for b, n in c.execute(q)}


def keys_in_buckets(engine: Engine, obj: str, width: int, composite: bool, buckets: list[str]) -> list[str] | None:
    """Known (not deleted) keys of ``obj`` in these buckets (None where the database cannot bucket)."""
    expr = _bucket_sql(engine, width, composite)
    if expr is None:
        return None
    out: list[str] = []
    with engine.connect() as c:
        for i in range(0, len(buckets), 500):
            q = select(sync_records.c.erp_key).where(sync_records.c.object == obj, sync_records.c.status != "deleted",
                                                      expr.in_(buckets[i:i + 500]))
            out.extend(k for (k,) in c.execute(q))
    return out


@dataclass(frozen=True)
class Bucketing:
    """How an object's keys fall into delete-check buckets (sync/deletes.py ``bucket_of``)."""

    kind: type  # int or str: the type of the first key column
    composite: bool
    width: int

    @property
    def scheme(self) -> int:
        """A number naming this bucketing (stored with the counts)."""
        return (2 if self.kind is int else 1) + (10 if self.composite else 0) + 100 * self.width

    def of(self, key: str) -> str:
        """``str(deletes.bucket_of(key, ...))`` (the same rule, without the import on every key)."""
        first = key.split("|", 1)[0] if self.composite else key
        if self.kind is int:
            return str(int(math.fmod(int(first), 10 ** self.width)))
        return first[-self.width:]


def save_records(conn: Connection, obj: str, recs: list[Record], buckets: Bucketing | None = None,
                 old: dict[str, Record | None] | None = None) -> None:
    """Upsert link rows in the caller's transaction: rows the state knows are updated in place (only
    ``base``/``erp_hash`` and the like when the link and status stay: no index entry moves), new ones
    inserted. The per-bucket key counts follow when ``buckets`` is given; without it they are dropped
    (the next delete check rebuilds them). ``old``: what the caller loaded for these keys before
    deciding (None: a new key), which saves looking each key up again; without it they are looked up."""
    now = utcnow()
    delta: dict[str, int] = {}
    for i in range(0, len(recs), 500):
        chunk = list({r.erp_key: r for r in recs[i:i + 500]}.values())
        if old is None:
            prev = _prev(conn, obj, chunk)
        else:
            prev = {r.erp_key: (o.status, o.sf_id) for r in chunk if (o := old.get(r.erp_key)) is not None}
        same = [r for r in chunk if prev.get(r.erp_key) == (r.status, r.sf_id)]
        moved = [r for r in chunk if r.erp_key in prev and prev[r.erp_key] != (r.status, r.sf_id)]
        new = [r for r in chunk if r.erp_key not in prev]
        n = 0
        if same:
            n += conn.execute(_UPDATE_VALUES, [_params(obj, r, now) for r in same]).rowcount
        if moved:
            n += conn.execute(_UPDATE_ALL, [_params(obj, r, now) for r in moved]).rowcount
        if old is not None and n != len(same) + len(moved):  # the caller's picture was not the table's
            prev = _prev(conn, obj, chunk)
            new = [r for r in chunk if r.erp_key not in prev]
        if new:
            conn.execute(sync_records.insert(), [
                {"object": obj, "erp_key": r.erp_key, "sf_id": r.sf_id, "base": r.base, "erp_hash": r.erp_hash,
                 "status": r.status, "error": r.error, "updated_at": now} for r in new])
        for r in chunk:
            was = r.erp_key in prev and prev[r.erp_key][0] != "deleted"
            now_known = r.status != "deleted"
            if was != now_known:
                b = buckets.of(r.erp_key) if buckets is not None else ""
                delta[b] = delta.get(b, 0) + (1 if now_known else -1)
    seen.forget(conn, obj, [r.erp_key for r in recs if r.status != "ok" or not r.erp_hash])
    if buckets is None:
        if delta:
            conn.execute(delete(sync_key_buckets).where(sync_key_buckets.c.object == obj))
        return
    _apply_bucket_delta(conn, obj, buckets, {b: d for b, d in delta.items() if d})


def _prev(conn: Connection, obj: str, chunk: list[Record]) -> dict[str, tuple]:
    q = select(sync_records.c.erp_key, sync_records.c.status, sync_records.c.sf_id).where(
        sync_records.c.object == obj, sync_records.c.erp_key.in_([r.erp_key for r in chunk]))
    return {k: (st, sid) for k, st, sid in conn.execute(q)}


def _params(obj: str, r: Record, now) -> dict:
    return {"b_object": obj, "b_key": r.erp_key, "v_sf_id": r.sf_id, "v_base": r.base, "v_hash": r.erp_hash,
            "v_status": r.status, "v_error": r.error, "v_at": now}


_WHERE_KEY = (sync_records.c.object == bindparam("b_object"), sync_records.c.erp_key == bindparam("b_key"))
_VALUES = {"base": bindparam("v_base", type_=sync_records.c.base.type), "erp_hash": bindparam("v_hash"),
           "error": bindparam("v_error"), "updated_at": bindparam("v_at", type_=sync_records.c.updated_at.type)}
_UPDATE_VALUES = update(sync_records).where(*_WHERE_KEY).values(_VALUES)  # link and status as they were
_UPDATE_ALL = update(sync_records).where(*_WHERE_KEY).values(
    {**_VALUES, "sf_id": bindparam("v_sf_id"), "status": bindparam("v_status")})


def _scheme_of(conn: Connection, obj: str) -> int | None:
    return conn.execute(select(sync_key_buckets.c.n).where(sync_key_buckets.c.object == obj,
                                                           sync_key_buckets.c.bucket == SCHEME_ROW)).scalar()


def _apply_bucket_delta(conn: Connection, obj: str, buckets: Bucketing, delta: dict[str, int]) -> None:
    if not delta:
        return
    scheme = _scheme_of(conn, obj)
    if scheme != buckets.scheme:  # no counts yet (or another bucketing): the next check rebuilds them
        if scheme is not None:
            conn.execute(delete(sync_key_buckets).where(sync_key_buckets.c.object == obj))
        return
    t = sync_key_buckets
    have = set()
    names = sorted(delta)
    for i in range(0, len(names), 500):
        have.update(b for (b,) in conn.execute(select(t.c.bucket).where(t.c.object == obj,
                                                                        t.c.bucket.in_(names[i:i + 500]))))
    upd = [{"b_object": obj, "b_bucket": b, "d": d} for b, d in delta.items() if b in have]
    if upd:
        conn.execute(update(t).where(t.c.object == bindparam("b_object"), t.c.bucket == bindparam("b_bucket"))
                     .values(n=t.c.n + bindparam("d")), upd)
    ins = [{"object": obj, "bucket": b, "n": d} for b, d in delta.items() if b not in have]
    if ins:
        conn.execute(t.insert(), ins)


def known_bucket_counts(engine: Engine, obj: str, buckets: Bucketing) -> dict[str, int] | None:
    """Known (not deleted) keys of ``obj`` per bucket as kept by save_records, or None when they have to
    be rebuilt: never counted, another bucketing, or their total no longer matches ``sync_records``
    (rows deleted by hand, e.g. to start an object over)."""
    t = sync_key_buckets
    with engine.connect() as c:
        rows = dict(c.execute(select(t.c.bucket, t.c.n).where(t.c.object == obj)).all())
        if rows.pop(SCHEME_ROW, None) != buckets.scheme:
            return None
        total = c.execute(select(func.count()).select_from(sync_records).where(
            sync_records.c.object == obj, sync_records.c.status != "deleted")).scalar()
    if total != sum(rows.values()):
        return None
    return {b: n for b, n in rows.items() if n}


def set_bucket_counts(engine: Engine, obj: str, buckets: Bucketing, counts, *, replace_all: bool) -> None:
    """Store known-key counts for these buckets (all of them with ``replace_all``, with the scheme row)."""
    t = sync_key_buckets
    with engine.begin() as c:
        if replace_all:
            c.execute(delete(t).where(t.c.object == obj))
            rows = [{"object": obj, "bucket": str(b), "n": n} for b, n in counts.items() if n]
            rows.append({"object": obj, "bucket": SCHEME_ROW, "n": buckets.scheme})
            for i in range(0, len(rows), 5000):
                c.execute(t.insert(), rows[i:i + 5000])
            return
        if _scheme_of(c, obj) != buckets.scheme:
            return
        names = [str(b) for b in counts]
        for i in range(0, len(names), 500):
            c.execute(delete(t).where(t.c.object == obj, t.c.bucket.in_(names[i:i + 500])))
        rows = [{"object": obj, "bucket": str(b), "n": n} for b, n in counts.items() if n]
        if rows:
            c.execute(t.insert(), rows)


def count_records(engine: Engine, obj: str | None = None) -> dict[str, int]:
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
