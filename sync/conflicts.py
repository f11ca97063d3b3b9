"""The conflict queue: a field changed on both sides since the last sync, with both values kept.

A conflict freezes its field for that record (nothing overwrites either side) until someone resolves
it with ``crmbridge sync conflicts resolve``; the next sync run then writes the chosen value to both
sides and marks the conflict applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection, Engine

from crmbridge.errors import UsageError
from crmbridge.state import utcnow
from crmbridge.sync.linking import LINK_FIELD
from crmbridge.sync.store import sync_conflicts as t


def for_keys(engine: Engine, obj: str, keys: list[str]) -> tuple[dict[str, set[str]], dict[str, dict[str, tuple[int, Any]]]]:
    """(open fields per key, resolved-but-unapplied {field: (id, value)} per key)."""
    frozen: dict[str, set[str]] = {}
    forced: dict[str, dict[str, tuple[int, Any]]] = {}
    with engine.connect() as c:
        for i in range(0, len(keys), 500):
            q = select(t).where(t.c.object == obj, t.c.erp_key.in_(keys[i:i + 500]), t.c.field != LINK_FIELD,
                                t.c.status.in_(("open", "resolved")))
            for r in c.execute(q):
                if r.status == "open":
                    frozen.setdefault(r.erp_key, set()).add(r.field)
                else:
                    forced.setdefault(r.erp_key, {})[r.field] = (r.id, r.resolved_value)
    return frozen, forced


def link_decisions(engine: Engine, obj: str, keys: list[str]
                   ) -> tuple[dict[tuple[str, str], str], dict[str, list[int]]]:
    """Steward decisions on link conflicts of these ERP rows: {(erp key, sf id): "link" | "apart"}, and
    the ids of the resolved ones still to be marked applied, per key."""
    decided: dict[tuple[str, str], str] = {}
    todo: dict[str, list[int]] = {}
    with engine.connect() as c:
        for i in range(0, len(keys), 500):
            q = select(t.c.id, t.c.erp_key, t.c.sf_id, t.c.resolution, t.c.status).where(
                t.c.object == obj, t.c.field == LINK_FIELD, t.c.erp_key.in_(keys[i:i + 500]),
                t.c.status.in_(("resolved", "applied")))
            for r in c.execute(q):
                decided[(r.erp_key, r.sf_id)] = "link" if r.resolution == "salesforce" else "apart"
                if r.status == "resolved":
                    todo.setdefault(r.erp_key, []).append(r.id)
    return decided, todo


def keys_to_apply(engine: Engine, obj: str) -> list[str]:
    with engine.connect() as c:
        return sorted({k for (k,) in c.execute(select(t.c.erp_key).where(t.c.object == obj, t.c.status == "resolved"))})


def record(conn: Connection, obj: str, run_id: str, items: list[tuple]) -> None:
    """Queue (key, sf_id, field, erp, sf, base) conflicts; an open one for the same field is refreshed
    (for a link conflict: the same ERP row and candidate record)."""
    now = utcnow()
    for key, sf_id, field, e, s, b in items:
        vals = dict(sf_id=sf_id, erp_value=e, sf_value=s, base_value=b, detected_at=now, run_id=run_id)
        same = [t.c.object == obj, t.c.erp_key == key, t.c.field == field, t.c.status == "open"]
        if field == LINK_FIELD:
            same.append(t.c.sf_id == sf_id)
        done = conn.execute(update(t).where(*same).values(**vals)).rowcount
        if not done:
            conn.execute(t.insert().values(object=obj, erp_key=key, field=field, status="open", **vals))


def mark_applied(conn: Connection, ids: list[int]) -> None:
    for i in range(0, len(ids), 500):
        conn.execute(update(t).where(t.c.id.in_(ids[i:i + 500])).values(status="applied"))


@dataclass(frozen=True)
class Conflict:
    id: int
    object: str
    erp_key: str
    sf_id: str | None
    field: str
    erp_value: str | None
    sf_value: str | None
    base_value: str | None
    status: str
    resolution: str | None
    resolved_value: str | None
    detected_at: Any

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["detected_at"] = str(self.detected_at) if self.detected_at else None
        return d


def list_conflicts(engine: Engine, *, status: str | None = "open", obj: str | None = None) -> list[Conflict]:
    """Conflicts, oldest first (``status=None`` for all)."""
    q = select(t).order_by(t.c.id)
    if status:
        q = q.where(t.c.status == status)
    if obj:
        q = q.where(t.c.object == obj)
    with engine.connect() as c:
        return [Conflict(r.id, r.object, r.erp_key, r.sf_id, r.field, r.erp_value, r.sf_value, r.base_value,
                         r.status, r.resolution, r.resolved_value, r.detected_at) for r in c.execute(q)]


def resolve(engine: Engine, *, take: str, ids: list[int] | None = None, obj: str | None = None,
            value: str | None = None) -> int:
    """Resolve open conflicts by id (or all of ``obj``): take ``erp``, ``salesforce`` or ``value``.

    Returns how many were resolved; the next ``crmbridge sync`` writes the chosen values."""
    if take not in ("erp", "salesforce", "value"):
        raise UsageError(f"unknown choice '{take}'", hint="use --take erp, --take salesforce or --value TEXT")
    if take == "value" and value is None:
        raise UsageError("--value is required to resolve with a value of your own")
    if not ids and not obj:
        raise UsageError("say which conflicts to resolve", hint="give conflict ids, or --object NAME --all")
    cond = [t.c.status == "open"]
    if ids:
        cond.append(t.c.id.in_(ids))
    if obj:
        cond.append(t.c.object == obj)
    with engine.begin() as c:
        rows = list(c.execute(select(t.c.id, t.c.field, t.c.erp_value, t.c.sf_value).where(and_(*cond))))
        if take == "value" and any(r.field == LINK_FIELD for r in rows):
            raise UsageError("a link conflict is resolved with --take salesforce (link the ERP row to that record) "
                             "or --take erp (keep them apart), not with --value")
        if ids:
            missing = sorted(set(ids) - {r.id for r in rows})
            if missing:
                raise UsageError(f"no open conflict with id {missing[0]}",
                                 hint="`crmbridge sync conflicts list` shows the open ones")
        for r in rows:
            chosen = r.erp_value if take == "erp" else r.sf_value if take == "salesforce" else value
            if r.field == LINK_FIELD:
                chosen = "link" if take == "salesforce" else "apart"
            c.execute(update(t).where(t.c.id == r.id).values(status="resolved", resolution=take,
                                                             resolved_value=chosen, resolved_at=utcnow()))
    return len(rows)
