"""Take, store and compare KPI snapshots (table ``kpi_snapshots``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from crmbridge.errors import UsageError
from crmbridge.readiness import store
from crmbridge.readiness.kpis import compute, load_kpis, rate_of
from crmbridge.state import utcnow


@dataclass(frozen=True)
class KpiSnapshot:
    label: str
    source: str
    taken_at: str
    run_id: str | None
    as_of: str
    values: dict[str, dict]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def take_snapshot(project, *, source: str, label: str, connector=None, replace: bool = False) -> KpiSnapshot:
    """Compute every KPI of kpis.yml from ``source`` (legacy or org) and store it under ``label``."""
    import datetime as dt

    from crmbridge.readiness.kpi_sources import erp_open_receivables, legacy_dataset, org_dataset

    if source not in ("legacy", "org"):
        raise UsageError(f"unknown KPI source '{source}'", hint="use --from legacy or --from org")
    kpis = load_kpis(project)
    engine = store.engine_for(project)
    if not replace and _get(engine, label) is not None:
        raise UsageError(f"a KPI snapshot labelled '{label}' exists", hint="choose another --label or pass --replace")
    ds = legacy_dataset(project) if source == "legacy" else org_dataset(project, connector)
    needs_erp = any(k.kind == "receivables_per_customer" for k in kpis.kpis)
    receivables = erp_open_receivables(project) if needs_erp else None
    values = {}
    for k in kpis.kpis:
        v = compute(k, kpis, ds, project, receivables)
        values[k.id] = {**v.as_dict(), "kind": k.kind, "rate": rate_of(v) if k.kind in (
            "active_customers", "new_customers", "lost_customers") else None}
    snap = KpiSnapshot(label, source, utcnow().isoformat(), ds.run_id, (kpis.as_of or dt.date.today()).isoformat(),
                       values)
    with engine.begin() as c:
        c.execute(store.kpi_snapshots.delete().where(store.kpi_snapshots.c.label == label))
        c.execute(store.kpi_snapshots.insert().values(label=label, source=source, taken_at=utcnow(), run_id=ds.run_id,
                                                      values={"as_of": snap.as_of, "kpis": values}))
    return snap


def _get(engine, label: str):
    with engine.connect() as c:
        return c.execute(select(store.kpi_snapshots).where(store.kpi_snapshots.c.label == label)).first()


def get_snapshot(project, label: str) -> KpiSnapshot:
    engine = store.engine_for(project)
    row = _get(engine, label)
    if row is None:
        have = [s.label for s in list_snapshots(project)]
        raise UsageError(f"no KPI snapshot labelled '{label}'", hint="snapshots: " + (", ".join(have) or "none yet"))
    return KpiSnapshot(row.label, row.source, str(row.taken_at), row.run_id, row.values.get("as_of", ""),
                       row.values.get("kpis", {}))


def list_snapshots(project) -> list[KpiSnapshot]:
    engine = store.engine_for(project)
    with engine.connect() as c:
        rows = c.execute(select(store.kpi_snapshots).order_by(store.kpi_snapshots.c.id)).all()
    return [KpiSnapshot(r.label, r.source, str(r.taken_at), r.run_id, r.values.get("as_of", ""),
                        r.values.get("kpis", {})) for r in rows]


def compare(project, label_a: str, label_b: str) -> dict:
    """Side by side: every KPI of either snapshot with both values and the difference."""
    a, b = get_snapshot(project, label_a), get_snapshot(project, label_b)
    rows = []
    for kid in list(dict.fromkeys([*a.values, *b.values])):
        va, vb = a.values.get(kid, {}), b.values.get(kid, {})
        x, y = va.get("value"), vb.get("value")
        rows.append({"id": kid, "title": va.get("title") or vb.get("title") or kid,
                     "kind": va.get("kind") or vb.get("kind"), "a": x, "b": y,
                     "diff": (y - x) if x is not None and y is not None else None,
                     "same": x is not None and y is not None and abs(y - x) < 1e-9,
                     "note": "; ".join(n for n in (va.get("note"), vb.get("note")) if n) or None})
    return {"a": {"label": a.label, "source": a.source, "taken_at": a.taken_at, "as_of": a.as_of},
            "b": {"label": b.label, "source": b.source, "taken_at": b.taken_at, "as_of": b.as_of}, "kpis": rows}
