"""The readiness plan ``readiness.yml``: ordered phases, each with gates, as strict pydantic models.

A gate is either measured (``metric`` from the catalogue in :mod:`crmbridge.readiness.metrics`, a
comparator ``op`` and a ``target``) or manual (``metric: manual``, passed once somebody signs it off
with ``crmbridge readiness sign GATE``). Priorities follow MoSCoW: only ``must`` gates decide GO.
"""

from __future__ import annotations

import datetime as dt
import operator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
       "!=": operator.ne}
PRIORITIES = ("must", "should", "could")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Owner(Strict):
    """Who answers for a gate: a department and a person in it."""

    department: str
    person: str | None = None

    def label(self) -> str:
        return f"{self.department} ({self.person})" if self.person else self.department


class Gate(Strict):
    id: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    title: str | None = None
    metric: str = Field(..., description="a catalogue metric name, or 'manual' for a sign-off")
    entity: str | None = Field(None, description="for per-entity metrics; omitted = all entities together")
    op: Literal[">=", "<=", ">", "<", "==", "!="] | None = None
    target: float | None = None
    priority: Literal["must", "should", "could"] = "must"
    owner: Owner
    due: dt.date | None = None

    @model_validator(mode="after")
    def _shape(self):
        from crmbridge.readiness.metrics import CATALOGUE, suggest

        if self.metric == "manual":
            if self.op is not None or self.target is not None:
                raise ValueError(f"gate '{self.id}': a manual gate takes no op/target (it passes when signed off)")
            return self
        m = CATALOGUE.get(self.metric)
        if m is None:
            hint = suggest(self.metric)
            raise ValueError(f"gate '{self.id}': unknown metric '{self.metric}'"
                             + (f" (did you mean '{hint}'?)" if hint else "")
                             + "; `crmbridge readiness metrics` lists the catalogue")
        if self.entity and not m.per_entity:
            raise ValueError(f"gate '{self.id}': metric '{self.metric}' is not per entity; drop 'entity'")
        if self.op is None or self.target is None:
            raise ValueError(f"gate '{self.id}': a measured gate needs 'op' (>=, <=, ==, ...) and 'target'")
        return self

    @property
    def manual(self) -> bool:
        return self.metric == "manual"

    def target_text(self) -> str:
        if self.manual:
            return "signed off"
        t = self.target
        return f"{self.op} {int(t) if t is not None and float(t).is_integer() else t}"


class Phase(Strict):
    id: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    title: str | None = None
    gates: list[Gate] = Field(..., min_length=1)


class Plan(Strict):
    """Phases in the order the project passes them."""

    phases: list[Phase] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        seen: set[str] = set()
        for p in self.phases:
            if p.id in seen:
                raise ValueError(f"phase id '{p.id}' is used twice")
            seen.add(p.id)
        gates: set[str] = set()
        for p in self.phases:
            for g in p.gates:
                if g.id in gates:
                    raise ValueError(f"gate id '{g.id}' is used twice (gate ids are unique across phases)")
                gates.add(g.id)
        return self

    def gate(self, gate_id: str) -> tuple[Phase, Gate] | None:
        for p in self.phases:
            for g in p.gates:
                if g.id == gate_id:
                    return p, g
        return None


def plan_path(project) -> Path:
    return project.path(project.config.readiness_file)


def load_plan(project) -> Plan:
    """Read the project's readiness plan; a ``ConfigError`` (exit 2) names file, line and field."""
    from crmbridge.errors import UsageError
    from crmbridge.yamlconf import load_model

    path = plan_path(project)
    if not path.exists():
        raise UsageError(f"no readiness plan at {path}",
                         hint="copy templates/project/readiness.yml from `crmbridge init` into the project")
    return load_model(path, Plan)
