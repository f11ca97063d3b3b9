"""The agreed customer definition (``definitions/customer.yml``) as strict pydantic models.

The file is the governed artefact the departments sign off: version, owners and their sign-offs,
and per entity the identity, required fields, declared normalisation, formats, allowed values with
value maps, cross-field rules and references, plus each department's own criterion for "customer"
next to the agreed one. ``load_definition`` reads it through ``yamlconf.load_model`` so every
error names the file, line and field.

Every check becomes one rule with a stable id (``required.name``, ``format.email`` ...), a severity
(``blocking``: the row is quarantined; ``warning``: loaded and reported) and optionally ``mostly``:
a rule with ``mostly`` is judged on the whole dataset (it fails when fewer than that share of rows
conform) and never quarantines single rows.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from crmbridge.validation.identity_rules import Resolution

Severity = Literal["blocking", "warning"]


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as written (no "Value error, " prefix)."""
    return PydanticCustomError("invalid", message)


_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_RULE_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(Strict):
    """A department owning the definition; ``signed_on`` empty means it has not signed (draft)."""

    department: str = Field(min_length=1)
    person: str = Field(min_length=1)
    signed_on: dt.date | None = None


class RuleBase(Strict):
    id: str | None = Field(None, pattern=_RULE_ID, description="stable rule id; generated when absent")
    severity: Severity = "blocking"
    mostly: float | None = Field(None, gt=0, le=1, description="dataset-level: share of rows that must conform")
    message: str | None = Field(None, description="what the steward reads in reports and quarantine files")


class Required(RuleBase):
    field: str = Field(pattern=_IDENT)


FormatKind = Literal["email", "phone", "uscc", "postal_code", "iso_country", "date", "number", "integer",
                     "regex", "no_markup"]


class Format(RuleBase):
    """A value format. ``email``, ``phone``, ``uscc`` and ``postal_code`` are computed in pandas with
    email-validator, phonenumbers, python-stdnum and per-country patterns; the others are GX built-ins."""

    field: str = Field(pattern=_IDENT)
    format: FormatKind
    region: str = Field("CN", min_length=2, max_length=2, description="phone/postal: default ISO region")
    country_field: str | None = Field(None, pattern=_IDENT, description="postal/phone: column with the row's country")
    pattern: str | None = Field(None, description="regex format: the pattern values must match")

    @model_validator(mode="after")
    def _pattern(self):
        if self.format == "regex":
            if not self.pattern:
                raise _invalid("format 'regex' needs a 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise _invalid(f"pattern is not a valid regular expression: {exc}") from None
        elif self.pattern is not None:
            raise _invalid(f"'pattern' only applies to format 'regex', not '{self.format}'")
        return self


class Allowed(RuleBase):
    """Allowed values; ``map`` turns legacy values into agreed ones first (a declared fix, counted)."""

    field: str = Field(pattern=_IDENT)
    values: list[str] = Field(min_length=1)
    map: dict[str, str] = Field(default_factory=dict, description="legacy value -> agreed value")
    ignore_case: bool = True

    @model_validator(mode="after")
    def _targets_allowed(self):
        bad = sorted({v for v in self.map.values() if v not in self.values})
        if bad:
            raise _invalid(f"map gives {bad[0]!r}, which is not among the allowed values {self.values}")
        return self


CompareOp = Literal["eq", "ne", "gt", "ge", "lt", "le"]


class CrossField(RuleBase):
    """``left op right`` (another field) or ``left op value`` (a constant), compared as ``type``."""

    left: str = Field(pattern=_IDENT)
    op: CompareOp
    right: str | None = Field(None, pattern=_IDENT)
    value: float | None = None
    type: Literal["date", "number"] = "number"

    @model_validator(mode="after")
    def _one_side(self):
        if (self.right is None) == (self.value is None):
            raise _invalid("give exactly one of 'right' (a field) or 'value' (a constant)")
        if self.value is not None and self.type == "date":
            raise _invalid("a date rule compares two fields: use 'right'")
        if self.right is not None and self.op == "ne":
            raise _invalid("op 'ne' between two fields is not supported; use eq, gt, ge, lt or le")
        return self


class Reference(RuleBase):
    """Every row's ``field`` must name a valid row of ``entity`` (by its ``key`` field)."""

    field: str = Field(pattern=_IDENT)
    entity: str = Field(pattern=_IDENT)
    key: str = Field(pattern=_IDENT)


class Identity(Strict):
    """Which fields identify a record, and where they must be unique.

    ``key``: the record key (shown in every quarantine row), required and unique within ``scope``.
    ``alternate_keys``: fields unique within ``scope`` when present (e.g. the credit code).
    ``scope``: ``department`` (duplicates across departments are expected; the mapping merges them) or
    ``global``. ``match_on``: fields that link rows of the same company across departments (exact keys).
    ``resolution``: probabilistic matching, thresholds and survivorship (validation/identity_rules.py)."""

    key: list[str] = Field(min_length=1)
    alternate_keys: list[str] = Field(default_factory=list)
    scope: Literal["department", "global"] = "department"
    match_on: list[str] = Field(default_factory=list)
    severity: Severity = "blocking"
    resolution: Resolution | None = None

    @field_validator("key", "alternate_keys", "match_on", mode="before")
    @classmethod
    def _listify(cls, v):
        return [v] if isinstance(v, str) else v


def _check_step(step: "str | dict[str, Any]") -> "str | dict[str, Any]":
    name, params = split_step(step)
    _check_transform(name, params)
    return step


# A step is checked where it stands, so an error points at its own line (normalise.phone[0]).
Step = Annotated[Union[str, dict[str, Any]], AfterValidator(_check_step)]


class EntityRules(Strict):
    identity: Identity
    required: list[Required] = Field(default_factory=list)
    normalise: dict[str, list[Step]] = Field(default_factory=dict,
                                             description="field (or '*' for every field) -> transform steps")
    formats: list[Format] = Field(default_factory=list)
    allowed_values: list[Allowed] = Field(default_factory=list)
    cross_field: list[CrossField] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)

    @field_validator("required", mode="before")
    @classmethod
    def _required_names(cls, v):
        return [{"field": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @field_validator("normalise")
    @classmethod
    def _field_names(cls, v: dict[str, list[Step]]) -> dict[str, list[Step]]:
        for field in v:
            if field != "*" and not re.match(_IDENT, field):
                raise _invalid(f"'{field}' is not a field name")
        return v


def split_step(step: Step) -> tuple[str, dict[str, Any]]:
    """``trim`` -> ("trim", {}); ``{phone: {region: CN}}`` -> ("phone", {"region": "CN"})."""
    if isinstance(step, str):
        return step, {}
    if len(step) != 1:
        raise _invalid(f"a step is a transform name or {{name: {{params}}}} with one key, got {sorted(step)}")
    name, params = next(iter(step.items()))
    if params is not None and not isinstance(params, dict):
        raise _invalid(f"parameters of transform '{name}' must be a mapping")
    return name, dict(params or {})


def _check_transform(name: str, params: dict[str, Any]) -> None:
    from crmbridge.mappings.transforms import TRANSFORMS, TransformParamError, parse_params

    try:
        parse_params(name, params)
    except TransformParamError as exc:
        raise _invalid(str(exc)) from None
    if TRANSFORMS[name].kind == "frame":
        raise _invalid(f"transform '{name}' works on several columns; not usable here")


class Condition(Strict):
    """One test of a criterion: ``{field: invoice_count, op: gt, value: 0}``."""

    field: str = Field(pattern=_IDENT)
    op: Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "present", "missing"]
    value: Any = None

    @model_validator(mode="after")
    def _value_shape(self):
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise _invalid(f"op '{self.op}' needs a list value")
        if self.op in ("gt", "ge", "lt", "le") and not isinstance(self.value, (int, float)):
            raise _invalid(f"op '{self.op}' needs a number value")
        if self.op in ("eq", "ne") and self.value is None:
            raise _invalid(f"op '{self.op}' needs a value")
        return self


class Criterion(Strict):
    """Who counts as a customer: all tests in ``all`` and at least one in ``any`` (when given)."""

    description: str = ""
    any: list[Condition] = Field(default_factory=list)
    all: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_test(self):
        if not self.any and not self.all:
            raise _invalid("a criterion needs at least one test under 'any' or 'all'")
        return self


class Criteria(Strict):
    """Each department's own criterion, evaluated on that department's rows, and the agreed one
    (evaluated on every row of a company, linked across departments by ``identity.match_on``)."""

    entity: str = Field("customers", pattern=_IDENT)
    departments: dict[str, Criterion] = Field(min_length=1)
    agreed: Criterion


class Definition(Strict):
    """The whole definition file."""

    version: str = Field(min_length=1)
    name: str = "customer"
    description: str = ""
    owners: list[Owner] = Field(min_length=1)
    entities: dict[str, EntityRules] = Field(min_length=1)
    criteria: Criteria | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v):
        return str(v) if isinstance(v, (int, float)) else v

    @model_validator(mode="after")
    def _cross_refs(self):
        for name, ent in self.entities.items():
            for ref in ent.references:
                if ref.entity not in self.entities:
                    raise _invalid(f"entities.{name}: reference to unknown entity '{ref.entity}'")
        if self.criteria and self.criteria.entity not in self.entities:
            raise _invalid(f"criteria.entity '{self.criteria.entity}' is not among the entities")
        _entity_order(self.entities)  # raises on reference cycles
        return self

    @property
    def signed(self) -> bool:
        return all(o.signed_on is not None for o in self.owners)

    @property
    def status(self) -> str:
        """``signed`` when every owner has signed, else ``draft``."""
        return "signed" if self.signed else "draft"

    @property
    def unsigned(self) -> list[Owner]:
        return [o for o in self.owners if o.signed_on is None]

    def entity_order(self) -> list[str]:
        """Entities with referenced ones first (customers before contacts and contracts)."""
        return _entity_order(self.entities)

    def sign_off_dict(self) -> dict[str, Any]:
        return {"version": self.version, "status": self.status,
                "owners": [{"department": o.department, "person": o.person,
                            "signed_on": o.signed_on.isoformat() if o.signed_on else None} for o in self.owners]}


def _entity_order(entities: dict[str, EntityRules]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise _invalid(f"references between entities form a cycle through '{name}'")
        visiting.add(name)
        for ref in entities[name].references:
            if ref.entity != name:
                visit(ref.entity)
        visiting.discard(name)
        order.append(name)

    for n in entities:
        visit(n)
    return order


def load_definition(path: str | Path) -> Definition:
    """Read and check a definition file; a ``ConfigError`` names file, line and field on any problem."""
    from crmbridge.errors import ConfigError
    from crmbridge.yamlconf import load_model

    try:
        return load_model(path, Definition)
    except ConfigError:
        raise
    except ValueError as exc:  # PyYAML builds dates itself: 2026-02-30 fails before pydantic sees it
        raise ConfigError(path, f"invalid value: {exc}", hint="dates are written YYYY-MM-DD") from None
