"""The sync's customer scope, taken from the agreed definition instead of a condition of its own.

The definition's criteria are written over the legacy fields (``status``, ``invoice_count`` ...). The
mapping files say which Salesforce field each legacy field became (``Customer_Status__c: {column: status}``),
so a criterion can be evaluated on Salesforce records: every test whose field reached Salesforce is
checked there. A test whose field has no Salesforce counterpart cannot prove anything on a record:

- under ``all`` it would make the scope unprovable, so it is a configuration error (map the field, or
  name its Salesforce field in ``scope.fields``);
- under ``any`` it is left out and reported (``unresolved``), so that nobody reads the scope as wider
  than it is.

Values are compared as the definition compares them after validation (agreed values, numbers as
numbers), which is what the migration wrote into the mapped fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmbridge.errors import UsageError
from crmbridge.sync.config import ObjectSpec, Scope
from crmbridge.sync.values import canon


@dataclass(frozen=True)
class Test:
    sf_field: str  # as read from Salesforce (``Account.Customer_Status__c`` through ``via``)
    op: str
    value: Any
    text: str  # the definition's own wording, for reports

    def holds(self, rec: dict) -> bool:
        v = canon(rec.get(self.sf_field))
        if self.op == "present":
            return v is not None
        if self.op == "missing":
            return v is None
        if self.op in ("gt", "ge", "lt", "le"):
            try:
                x = float(v)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False
            return {"gt": x > self.value, "ge": x >= self.value, "lt": x < self.value, "le": x <= self.value}[self.op]
        wanted = {canon(w) for w in (self.value if isinstance(self.value, list) else [self.value])}
        if self.op in ("eq", "in"):
            return v in wanted
        return v is not None and v not in wanted  # ne, not_in


@dataclass(frozen=True)
class ResolvedScope:
    """A definition criterion as tests on Salesforce fields."""

    source: str  # "definitions/customer.yml criteria.agreed (version 1.0)"
    all: tuple[Test, ...] = ()
    any: tuple[Test, ...] = ()
    unresolved: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(t.sf_field for t in (*self.all, *self.any)))

    def meets(self, rec: dict) -> bool:
        return all(t.holds(rec) for t in self.all) and (not self.any or any(t.holds(rec) for t in self.any))

    def as_dict(self) -> dict:
        return {"source": self.source, "all": [f"{t.text} -> {t.sf_field}" for t in self.all],
                "any": [f"{t.text} -> {t.sf_field}" for t in self.any], "unresolved": list(self.unresolved)}


def _target_object(spec: ObjectSpec, scope: Scope) -> str:
    if not scope.via:
        return spec.salesforce.object
    return scope.via[:-3] + "__c" if scope.via.endswith("__r") else scope.via


def _mapped_fields(project, obj: str, entity: str) -> dict[str, str]:
    """legacy field -> Salesforce field of ``obj``, from the mapping steps that load ``entity`` into it."""
    from crmbridge.mappings.models import load_mappings

    folder = project.path(project.config.mappings_dir)
    if not folder.is_dir():
        return {}
    out: dict[str, str] = {}
    for s in load_mappings(folder).for_object(obj):
        if s.step.entity != entity:
            continue
        for sf_field, f in s.step.fields.items():
            if f.column and f.column not in out:
                out[f.column] = sf_field
    return out


def resolve_scope(project, spec: ObjectSpec) -> ResolvedScope | None:
    """``spec.scope`` as tests on Salesforce fields (None when the object has no scope)."""
    from crmbridge.validation.definition import load_definition

    scope = spec.scope
    if scope is None:
        return None
    where = f"sync.yml object {spec.name}: scope"
    path = project.path(scope.definition)
    if not path.exists():
        raise UsageError(f"{where}: no definition file {scope.definition}",
                         hint="point scope.definition at the agreed definition (definitions/customer.yml)")
    d = load_definition(path)
    if d.criteria is None:
        raise UsageError(f"{where}: {scope.definition} declares no criteria",
                         hint="add criteria.agreed to the definition (docs/steward.md)")
    crit = d.criteria.agreed if scope.criterion == "agreed" else d.criteria.departments.get(scope.criterion)
    if crit is None:
        raise UsageError(f"{where}: no criterion '{scope.criterion}' in {scope.definition}",
                         hint="use 'agreed' or one of: " + ", ".join(d.criteria.departments))
    obj = _target_object(spec, scope)
    mapped = {**_mapped_fields(project, obj, d.criteria.entity), **scope.fields}
    prefix = f"{scope.via}." if scope.via else ""

    def test(c) -> Test | None:
        sf = mapped.get(c.field)
        text = f"{c.field} {c.op}" + ("" if c.value is None else f" {c.value}")
        return None if sf is None else Test(prefix + sf, c.op, c.value, text)

    all_tests, any_tests, unresolved = [], [], []
    for c in crit.all:
        t = test(c)
        if t is None:
            raise UsageError(f"{where}: criterion '{scope.criterion}' needs {c.field} on every record, but no "
                             f"mapping loads {d.criteria.entity}.{c.field} into a {obj} field",
                             hint=f"map it in {project.config.mappings_dir}/ or give scope.fields: "
                                  f"{{{c.field}: <{obj} field>}}")
        all_tests.append(t)
    for c in crit.any:
        t = test(c)
        if t is None:
            unresolved.append(f"{c.field} (no {obj} field: this test cannot include a record)")
        else:
            any_tests.append(t)
    if crit.any and not any_tests:
        raise UsageError(f"{where}: none of criterion '{scope.criterion}''s tests "
                         f"({', '.join(c.field for c in crit.any)}) reaches a {obj} field",
                         hint=f"map one of them in {project.config.mappings_dir}/ or give scope.fields")
    source = f"{scope.definition} criteria.{scope.criterion} (version {d.version}, {d.status})"
    return ResolvedScope(source, tuple(all_tests), tuple(any_tests), tuple(unresolved))
