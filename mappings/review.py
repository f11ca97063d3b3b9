"""The steward's match queue and decisions, in the state database.

A pair is named by a short stable id computed from the entity and the two rows' references
(``<source>/<source key>``, which survive a re-extract, unlike line numbers). ``match_reviews`` holds
the pairs the newest resolve left open; ``match_decisions`` keeps every accept/reject across runs, and
the next resolve applies them (accepted pairs merge, rejected pairs are kept apart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Float, String, Table, Text, delete, select
from sqlalchemy.engine import Engine

from crmbridge.state import metadata, utcnow

DECISIONS = ("accept", "reject")

match_reviews = Table(
    "match_reviews", metadata,
    Column("entity", String(64), primary_key=True),
    Column("pair_id", String(16), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("left_ref", String(400), nullable=False),
    Column("right_ref", String(400), nullable=False),
    Column("left_name", Text),
    Column("right_name", Text),
    Column("score", Float),
    Column("kind", String(16)),
    Column("evidence", Text),
    Column("queued_at", DateTime(timezone=True)),
)

match_decisions = Table(
    "match_decisions", metadata,
    Column("entity", String(64), primary_key=True),
    Column("pair_id", String(16), primary_key=True),
    Column("left_ref", String(400), nullable=False),
    Column("right_ref", String(400), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("score", Float),
    Column("evidence", Text),
    Column("decided_at", DateTime(timezone=True)),
)


def ensure(engine: Engine) -> None:
    metadata.create_all(engine, tables=[match_reviews, match_decisions])


def pair_id(entity: str, a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return hashlib.sha1(f"{entity}\x1f{lo}\x1f{hi}".encode()).hexdigest()[:12]


def replace_queue(engine: Engine, run_id: str, entity: str, rows: list[dict[str, Any]]) -> None:
    """The entity's open queue becomes ``rows`` (pairs already decided are left out)."""
    ensure(engine)
    decided = set(decisions(engine, entity))
    now = utcnow()
    rows = [{**r, "entity": entity, "run_id": run_id, "queued_at": now} for r in rows if r["pair_id"] not in decided]
    with engine.begin() as c:
        c.execute(delete(match_reviews).where(match_reviews.c.entity == entity))
        for i in range(0, len(rows), 500):
            c.execute(match_reviews.insert(), rows[i:i + 500])


def decisions(engine: Engine, entity: str) -> dict[str, dict[str, Any]]:
    ensure(engine)
    with engine.connect() as c:
        rows = c.execute(select(match_decisions).where(match_decisions.c.entity == entity)).mappings().all()
    return {r["pair_id"]: dict(r) for r in rows}


def open_pairs(engine: Engine, entity: str | None = None) -> list[dict[str, Any]]:
    ensure(engine)
    q = select(match_reviews).order_by(match_reviews.c.entity, match_reviews.c.score.desc(), match_reviews.c.pair_id)
    if entity:
        q = q.where(match_reviews.c.entity == entity)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings().all()]


@dataclass(frozen=True)
class Decision:
    entity: str
    pair_id: str
    decision: str
    left_ref: str
    right_ref: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decide(engine: Engine, pair: str, decision: str) -> Decision:
    """Record a steward's decision on a queued pair (or change an earlier one)."""
    from crmbridge.errors import UsageError

    if decision not in DECISIONS:
        raise UsageError(f"decision must be one of {', '.join(DECISIONS)}, not '{decision}'")
    ensure(engine)
    with engine.begin() as c:
        row = c.execute(select(match_reviews).where(match_reviews.c.pair_id == pair)).mappings().first()
        if row is None:
            row = c.execute(select(match_decisions).where(match_decisions.c.pair_id == pair)).mappings().first()
        if row is None:
            raise UsageError(f"no match pair '{pair}' in the review queue",
                             hint="`crmbridge matches list` shows the open pairs and their ids")
        c.execute(delete(match_decisions).where(match_decisions.c.entity == row["entity"],
                                                match_decisions.c.pair_id == pair))
        c.execute(match_decisions.insert().values(
            entity=row["entity"], pair_id=pair, left_ref=row["left_ref"], right_ref=row["right_ref"],
            decision=decision, score=row["score"], evidence=row["evidence"], decided_at=utcnow()))
        c.execute(delete(match_reviews).where(match_reviews.c.entity == row["entity"],
                                              match_reviews.c.pair_id == pair))
    return Decision(row["entity"], pair, decision, row["left_ref"], row["right_ref"])
