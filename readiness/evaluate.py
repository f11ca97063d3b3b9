"""Evaluate a readiness plan: every gate's value and status, each phase, and the GO / NO-GO decision.

Rules: a gate is ``pass``, ``fail`` or ``unknown`` (its source does not exist yet); ``unknown`` never
counts as passed. A phase passes when all its ``must`` gates pass *and* the phase before it passed, so a
later phase cannot pass first. The decision is GO only when every phase passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from crmbridge.readiness import store
from crmbridge.readiness.metrics import CATALOGUE, Facts, Unknown, measure_why
from crmbridge.readiness.plan import OPS, Gate, Plan, load_plan


@dataclass(frozen=True)
class GateResult:
    id: str
    phase: str
    metric: str
    entity: str | None
    title: str
    value: float | None
    value_text: str
    op: str | None
    target: float | None
    target_text: str
    status: str  # pass, fail, unknown
    priority: str
    owner: str
    due: str | None
    overdue: bool
    change: float | None  # value - value at the previous snapshot
    signed: dict | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "phase": self.phase, "metric": self.metric, "entity": self.entity,
                "title": self.title, "value": self.value, "value_text": self.value_text, "op": self.op, "target": self.target,
                "target_text": self.target_text,
                "status": self.status, "priority": self.priority, "owner": self.owner, "due": self.due,
                "overdue": self.overdue, "change": self.change, "signed": self.signed}


@dataclass(frozen=True)
class PhaseResult:
    id: str
    title: str
    status: str  # pass; fail (own must gates fail/unknown); blocked (own gates pass, an earlier phase did not)
    must_passed: int
    must_total: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Evaluation:
    decision: str  # go, no-go
    gates: tuple[GateResult, ...]
    phases: tuple[PhaseResult, ...]
    snapshot_id: int | None = None
    previous_decision: str | None = None
    dashboard: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.decision == "go" else 1

    def as_dict(self) -> dict:
        return {"decision": self.decision, "gates": [g.as_dict() for g in self.gates],
                "phases": [p.as_dict() for p in self.phases], "snapshot_id": self.snapshot_id,
                "previous_decision": self.previous_decision, "dashboard": self.dashboard}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "unknown"
    if unit == "rate":
        return f"{value * 100:.2f}%"
    if unit == "hours":
        return f"{value:.3f} h" if value < 10 else f"{value:.1f} h"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _target_text(g: Gate) -> str:
    if g.manual:
        return g.target_text()
    return f"{g.op} {format_value(g.target, CATALOGUE[g.metric].unit)}"


def _gate(facts: Facts, phase_id: str, g: Gate, signoffs: dict, previous: dict, today: dt.date) -> GateResult:
    signed = None
    if g.manual:
        s = signoffs.get(g.id)
        value = 1.0 if s else 0.0
        status = "pass" if s else "fail"
        if s:
            signed = {"by": s["signed_by"], "department": s["department"], "at": str(s["signed_at"]),
                      "note": s.get("note")}
            text = f"signed by {s['signed_by']} ({s['department']})"
        else:
            text = "not signed"
    else:
        try:
            value = measure_why(facts, g.metric, g.entity)
        except Exception as exc:  # noqa: BLE001 - a broken source (e.g. invalid definition) is unknown, said why
            value, text = None, f"unknown ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        else:
            if isinstance(value, Unknown):
                value, text = None, f"unknown ({value.reason})"
            else:
                text = format_value(value, CATALOGUE[g.metric].unit)
        status = "unknown" if value is None else ("pass" if OPS[g.op](value, g.target) else "fail")
    prev = previous.get(g.id)
    change = value - prev if value is not None and isinstance(prev, (int, float)) else None
    title = g.title or (f"{g.metric} [{g.entity}]" if g.entity else g.metric)
    return GateResult(g.id, phase_id, g.metric, g.entity, title, value, text, g.op, g.target, _target_text(g), status, g.priority,
                      g.owner.label(), g.due.isoformat() if g.due else None,
                      bool(g.due and g.due < today and status != "pass"), change, signed)


def evaluate_plan(project, plan: Plan, engine, *, today: dt.date | None = None) -> Evaluation:
    """Evaluate ``plan`` without storing anything."""
    facts = Facts(project, engine)
    signoffs = store.current_signoffs(engine)
    last = store.last_snapshot(engine)
    previous = {g["id"]: g.get("value") for g in (last or {}).get("gates", [])}
    today = today or dt.date.today()
    gates: list[GateResult] = []
    phases: list[PhaseResult] = []
    earlier_ok = True
    for p in plan.phases:
        res = [_gate(facts, p.id, g, signoffs, previous, today) for g in p.gates]
        gates.extend(res)
        musts = [r for r in res if r.priority == "must"]
        own_ok = all(r.status == "pass" for r in musts)
        status = "pass" if own_ok and earlier_ok else ("blocked" if own_ok else "fail")
        phases.append(PhaseResult(p.id, p.title or p.id, status, sum(r.status == "pass" for r in musts), len(musts)))
        earlier_ok = earlier_ok and own_ok
    decision = "go" if all(p.status == "pass" for p in phases) else "no-go"
    return Evaluation(decision, tuple(gates), tuple(phases), previous_decision=(last or {}).get("decision"))


def run_readiness(project, *, snapshot: bool = True, dashboard: bool = True, out=None) -> Evaluation:
    """Load the plan, evaluate it, store a snapshot and write the dashboard; see the module docstring."""
    plan = load_plan(project)
    engine = store.engine_for(project)
    ev = evaluate_plan(project, plan, engine)
    sid = None
    if snapshot:
        sid = store.save_snapshot(engine, ev.decision, [g.as_dict() for g in ev.gates], [p.as_dict() for p in ev.phases])
    path = None
    if dashboard:
        from crmbridge.readiness.dashboard import write_dashboard

        path = str(write_dashboard(project, engine, ev, out=out))
    return Evaluation(ev.decision, ev.gates, ev.phases, sid, ev.previous_decision, path)
