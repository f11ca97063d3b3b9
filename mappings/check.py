"""Two-phase checking of mappings, returning a report instead of stopping at the first problem.

Phase 1, offline: load order (cycles), entities and columns present in the extracted data, parents
mapped in the run. Phase 2, against the org's describe (``check_against_org``): objects and fields
exist, are createable/updateable, external IDs are external IDs, lookups point at the right object and
relationship, types are compatible with what the transforms produce, picklist values exist, constants
and value maps fit the field length, required fields are mapped. Row values that would overflow a
field or miss a restricted picklist are caught per row when mapping (quarantined, counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from crmbridge.mappings.models import FieldSpec, LoadedStep, Mappings
from crmbridge.mappings.order import CycleError, load_order, self_lookups

Describe = Callable[[str], dict]


@dataclass(frozen=True)
class Issue:
    severity: str  # "error" | "warning"
    phase: str  # "offline" | "org"
    file: str
    step: str
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def line(self) -> str:
        where = f"mapping {self.file} step {self.step}" + (f" field {self.field}" if self.field else "")
        return f"{self.severity.upper():7} {where}: {self.message}"


@dataclass(frozen=True)
class CheckReport:
    issues: tuple[Issue, ...] = ()

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def __add__(self, other: "CheckReport") -> "CheckReport":
        return CheckReport(self.issues + other.issues)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "issues": [i.as_dict() for i in self.issues]}

    def render(self) -> str:
        lines = [i.line() for i in sorted(self.issues, key=lambda i: (i.severity != "error", i.file, i.step))]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


class _Collector:
    def __init__(self, phase: str):
        self.phase = phase
        self.issues: list[Issue] = []

    def add(self, sev: str, s: LoadedStep, field: str | None, code: str, msg: str) -> None:
        self.issues.append(Issue(sev, self.phase, s.file, s.name, field, code, msg))

    def report(self) -> CheckReport:
        return CheckReport(tuple(self.issues))


def check_offline(mappings: Mappings, *, columns: dict[str, Iterable[str]] | None = None,
                  entities: Iterable[str] | None = None) -> CheckReport:
    """Structure beyond the schema: order, entities, columns (when the run's data is known)."""
    c = _Collector("offline")
    try:
        load_order(mappings)
    except CycleError as exc:
        first = mappings.by_name(exc.cycle[0])
        c.add("error", first, None, "lookup_cycle", exc.message.split(": ", 1)[-1] + f" ({exc.hint})")
    known = set(entities) if entities is not None else None
    cols = {k: set(v) for k, v in (columns or {}).items()}
    for s in mappings.steps:
        step = s.step
        if known is not None and step.entity not in known:
            c.add("error", s, None, "unknown_entity", f"entity '{step.entity}' is not produced by any source "
                  f"(known: {', '.join(sorted(known)) or 'none'})")
        for f in self_lookups(s):
            c.add("warning", s, f, "self_lookup", f"{f} points at {step.object} itself: parents in the same load "
                  "may not resolve; load the step twice or split it")
        for f, lk in step.lookups.items():
            if not mappings.for_object(lk.object):
                c.add("warning", s, f, "parent_not_mapped", f"no step maps {lk.object}: the parents must already "
                      f"exist in the org with {lk.external_id}")
        if step.merge and step.entity in cols and "_department" not in cols[step.entity]:
            c.add("error", s, None, "merge_without_department", "merge needs the _department lineage column")
        if step.entity in cols:
            _check_columns(c, s, cols[step.entity])
    return c.report()


def _used_columns(s: LoadedStep) -> list[tuple[str, str]]:
    step = s.step
    used = [(f, col) for f, spec in step.fields.items() for col in spec.columns()]
    for f, lk in step.lookups.items():
        used.append((f, lk.column))
        used += [(f, col) for col in FieldSpec(column=lk.column, transforms=lk.transforms).columns()[1:]]
    if step.owner:
        used.append(("OwnerId", step.owner.column))
    if step.record_type and step.record_type.column:
        used.append(("RecordTypeId", step.record_type.column))
    used += [(None, flt.column) for flt in step.filters]
    return used


def _check_columns(c: _Collector, s: LoadedStep, present: set[str]) -> None:
    import difflib

    for field, col in _used_columns(s):
        if col not in present:
            close = difflib.get_close_matches(col, sorted(present), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            c.add("error", s, field, "unknown_column", f"column '{col}' is not in entity '{s.step.entity}'{hint}")


def schema_describe(schema) -> Describe:
    """A describe function over a ``crmbridge.sandbox.schema.Schema`` (for tests and offline use)."""

    def describe(name: str) -> dict:
        obj = schema.get(name)
        if obj is None:
            raise KeyError(f"sObject type '{name}' is not supported")
        return {"name": obj.name, "custom": obj.custom, "fields": [f.describe() for f in obj.fields.values()]}

    return describe


def check_against_org(mappings: Mappings, describe: Describe) -> CheckReport:
    """Check every step against the org's describe results; never raises for what it finds."""
    from crmbridge.mappings.check_org import check_step

    c = _Collector("org")
    cache: dict[str, dict | None] = {}

    def fields_of(obj: str) -> dict[str, dict] | None:
        key = obj.lower()
        if key not in cache:
            try:
                d = describe(obj)
                cache[key] = {f["name"].lower(): f for f in d.get("fields", [])}
            except Exception:  # the org says no such object; reported by the caller
                cache[key] = None
        return cache[key]

    for s in mappings.steps:
        check_step(c, s, fields_of)
    return c.report()
