"""Readiness state tables on ``crmbridge.state.metadata``: snapshots, sign-offs, KPI snapshots."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table, Text, func, select

from crmbridge.state import metadata, open_state, utcnow

readiness_snapshots = Table(
    "readiness_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("decision", String(8), nullable=False),  # go, no-go
    Column("gates", JSON, nullable=False),  # the --json gate list
    Column("phases", JSON, nullable=False),
)

readiness_signoffs = Table(
    "readiness_signoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gate_id", String(120), nullable=False, index=True),
    Column("signed_by", String(200), nullable=False),
    Column("department", String(120), nullable=False),
    Column("note", Text),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Integer, nullable=False, default=0),  # a revocation is a row too: history is kept
)

kpi_snapshots = Table(
    "kpi_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("label", String(120), nullable=False, unique=True),
    Column("source", String(16), nullable=False),  # legacy, org
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(64)),
    Column("values", JSON, nullable=False),  # kpi id -> {value, numerator, denominator, note}
)


def engine_for(project):
    """The state engine with the readiness and (when installed) sync tables created."""
    try:  # the sync conflict queue is read by a metric; make sure its table exists
        import crmbridge.sync.store  # noqa: F401
    except ImportError:
        pass
    return open_state(project.state_url)


def last_snapshot(engine) -> dict | None:
    with engine.connect() as c:
        row = c.execute(select(readiness_snapshots).order_by(readiness_snapshots.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def save_snapshot(engine, decision: str, gates: list[dict], phases: list[dict]) -> int:
    with engine.begin() as c:
        return int(c.execute(readiness_snapshots.insert().values(taken_at=utcnow(), decision=decision, gates=gates,
                                                                 phases=phases)).inserted_primary_key[0])


def snapshots(engine, limit: int = 50) -> list[dict]:
    """Newest first."""
    with engine.connect() as c:
        rows = c.execute(select(readiness_snapshots).order_by(readiness_snapshots.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def add_signoff(engine, gate_id: str, by: str, dept: str, note: str | None, revoked: bool = False) -> dict:
    row = dict(gate_id=gate_id, signed_by=by, department=dept, note=note, signed_at=utcnow(), revoked=int(revoked))
    with engine.begin() as c:
        row["id"] = int(c.execute(readiness_signoffs.insert().values(**row)).inserted_primary_key[0])
    return row


def current_signoffs(engine) -> dict[str, dict]:
    """gate id -> its newest sign-off row, for gates whose newest row is not a revocation."""
    with engine.connect() as c:
        rows = c.execute(select(readiness_signoffs).order_by(readiness_signoffs.c.id)).all()
    out: dict[str, dict] = {}
    for r in rows:
        if r.revoked:
            out.pop(r.gate_id, None)
        else:
            out[r.gate_id] = dict(r._mapping)
    return out


def count_kpi_snapshots(engine, source: str | None = None) -> int:
    q = select(func.count()).select_from(kpi_snapshots)
    if source:
        q = q.where(kpi_snapshots.c.source == source)
    with engine.connect() as c:
        return int(c.execute(q).scalar_one())
