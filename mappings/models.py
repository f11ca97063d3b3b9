"""Mapping files (``mappings/*.yml``): strict pydantic models and the loader.

One file holds one or more *steps*; a step maps one legacy entity to one Salesforce object::

    steps:
      Account:
        entity: customers
        object: Account
        external_id: Legacy_Id__c
        merge: {prefer: [sales, finance, service]}
        fields:
          Legacy_Id__c: {column: customer_no, transforms: [trim, nfkc, {case: {to: upper}}]}
          Name: {column: name, transforms: [strip_html, trim]}

Every error names the file, the line, the step and the field (via ``yamlconf``); unknown keys get a
did-you-mean. See docs/mapping.md for every key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from crmbridge.errors import ConfigError
from crmbridge.mappings.transforms import TRANSFORMS, TransformParamError, parse_params

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformRef(Strict):
    """One entry of a ``transforms:`` chain: a name and its checked parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def model(self) -> BaseModel:
        """The transform's validated parameter model (already checked when the file was loaded)."""
        return parse_params(self.name, self.params)

    @property
    def kind(self) -> str:
        return TRANSFORMS[self.name].kind


def _transform_ref(item: Any) -> TransformRef:
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        params = params or {}
        if not isinstance(params, dict):
            raise PydanticCustomError("transform", "parameters of transform '{n}' must be a mapping",
                                      {"n": name})
    else:
        raise PydanticCustomError("transform", "a transform is a name ('trim') or one name with its "
                                  "parameters ({case: {to: upper}})")
    try:
        parse_params(str(name), params)
    except TransformParamError as exc:
        raise PydanticCustomError("transform", "{m}", {"m": str(exc)}) from None
    return TransformRef(name=str(name), params=params)


class _WithTransforms(Strict):
    transforms: list[TransformRef] = Field(default_factory=list)

    @field_validator("transforms", mode="before")
    @classmethod
    def _refs(cls, v: Any) -> Any:
        if v is None:
            return []
        if not isinstance(v, list):
            v = [v]
        out = []
        for i, item in enumerate(v):
            if isinstance(item, TransformRef):
                out.append(item)
                continue
            try:
                out.append(_transform_ref(item))
            except PydanticCustomError as exc:
                raise PydanticCustomError("transform", "entry {i}: {m}", {"i": i + 1, "m": exc.message()}) from None
        return out


class Aggregate(Strict):
    """A value computed over the rows merged into one record (``Source_Departments__c``)."""

    column: str
    how: Literal["join_distinct", "first", "count", "sum", "min", "max"] = "join_distinct"
    sep: str = ";"


class FieldSpec(_WithTransforms):
    """How one Salesforce field gets its value: exactly one source, then the transform chain."""

    column: str | None = None
    value: Any = None
    template: str | None = Field(None, description="'{province}{city}{address}': columns in braces")
    aggregate: Aggregate | None = None
    required: bool = Field(False, description="quarantine rows where the final value is missing")
    on_failure: Literal["quarantine", "blank", "keep"] = Field(
        "quarantine", description="a failed transform quarantines the row, blanks the field, or keeps the input")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"column": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("column", "value", "template", "aggregate") if getattr(self, k) is not None]
        frame_first = bool(self.transforms) and self.transforms[0].kind == "frame"
        if len(given) > 1:
            raise PydanticCustomError("field_source", "give only one of column, value, template, aggregate "
                                      "(got {g})", {"g": ", ".join(given)})
        if not given and not frame_first:
            raise PydanticCustomError("field_source", "give a source: column, value, template or aggregate "
                                      "(or start the transforms with concat)")
        for t in self.transforms[1:]:
            if t.kind == "frame":
                raise PydanticCustomError("field_source", "'{n}' works on several columns and must come first",
                                          {"n": t.name})
        if self.template is not None:
            try:
                template_columns(self.template)
            except ValueError as exc:
                raise PydanticCustomError("template", "{m}", {"m": str(exc)}) from None
        return self

    def columns(self) -> list[str]:
        """Entity columns this field reads (source, template parts, transform column parameters)."""
        from crmbridge.mappings.transforms import column_params

        cols = [self.column] if self.column else []
        if self.template:
            cols += template_columns(self.template)
        if self.aggregate and not self.aggregate.column.startswith("_"):
            cols.append(self.aggregate.column)
        for t in self.transforms:
            cols += column_params(t.name, t.model)
        return cols


def template_columns(template: str) -> list[str]:
    """Column names referenced as ``{name}`` in a template (``{{`` escapes a brace)."""
    import string

    cols = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or spec or conv:
            raise ValueError(f"template {template!r}: use plain {{column}} placeholders")
        cols.append(name)
    if not cols:
        raise ValueError(f"template {template!r} names no column; use value: for a constant")
    return cols


class Lookup(_WithTransforms):
    """A parent reference by external ID: written as ``<relationship>.<external_id>`` for Salesforce."""

    object: str
    external_id: str
    column: str
    relationship: str | None = Field(None, description="relationship name; default AccountId -> Account, Foo__c -> Foo__r")
    required: bool = False
    on_missing_parent: Literal["quarantine", "keep"] = Field(
        "quarantine", description="when the parent is mapped in this run but this key is not among its records")

    def relationship_name(self, field: str) -> str:
        if self.relationship:
            return self.relationship
        if field.endswith("__c"):
            return field[:-3] + "__r"
        return field[:-2] if field.endswith("Id") and len(field) > 2 else field

    def output_column(self, field: str) -> str:
        return f"{self.relationship_name(field)}.{self.external_id}"


class Owner(_WithTransforms):
    """Legacy sales rep -> Salesforce user, through a CSV table (``legacy_code,username``)."""

    column: str
    table: str = "mappings/owners.csv"
    default: str | None = Field(None, description="username for reps missing from the table")
    on_missing: Literal["default", "quarantine", "none"] | None = None

    @model_validator(mode="after")
    def _policy(self):
        if self.on_missing is None:
            object.__setattr__(self, "on_missing", "default" if self.default else "quarantine")
        if self.on_missing == "default" and not self.default:
            raise PydanticCustomError("owner", "on_missing: default needs a 'default' username")
        return self


class RecordType(Strict):
    developer_name: str | None = None
    column: str | None = None
    map: dict[str, str] = Field(default_factory=dict, description="legacy value -> DeveloperName")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"developer_name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one(self):
        if (self.developer_name is None) == (self.column is None):
            raise PydanticCustomError("record_type", "give either developer_name or column (with map)")
        return self


class Filter(Strict):
    """Keep rows matching all given conditions; excluded rows are quarantined as ``filtered: <filter>``."""

    column: str
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    is_null: bool | None = None
    matches: str | None = None
    name: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_condition(self):
        conds = [k for k in ("equals", "not_equals", "in_", "not_in", "is_null", "matches") if getattr(self, k) is not None]
        if len(conds) != 1:
            raise PydanticCustomError("filter", "give exactly one of equals, not_equals, in, not_in, is_null, matches")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise PydanticCustomError("filter", "matches is not a valid regular expression: {e}", {"e": str(exc)})
        return self

    def describe(self) -> str:
        from crmbridge.config import describe_filter

        return describe_filter(self)


class Merge(Strict):
    prefer: list[str] = Field(min_length=1, description="department order: first non-null value wins")


class Step(Strict):
    """One entity -> one Salesforce object."""

    entity: str
    object: str
    external_id: str
    operation: Literal["upsert"] = "upsert"
    fields: dict[str, FieldSpec] = Field(min_length=1)
    lookups: dict[str, Lookup] = Field(default_factory=dict)
    owner: Owner | None = None
    record_type: RecordType | None = None
    filters: list[Filter] = Field(default_factory=list)
    merge: Merge | None = None

    @field_validator("object", "external_id")
    @classmethod
    def _api_name(cls, v: str) -> str:
        if not _API_NAME.match(v):
            raise PydanticCustomError("api_name", "'{v}' is not a Salesforce API name", {"v": v})
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.external_id not in self.fields:
            raise PydanticCustomError("external_id", "external_id '{f}' must also be assigned under fields",
                                      {"f": self.external_id})
        clash = set(self.fields) & set(self.lookups)
        if clash:
            raise PydanticCustomError("lookup", "{c} assigned both as field and lookup", {"c": ", ".join(sorted(clash))})
        if self.owner and "OwnerId" in self.fields:
            raise PydanticCustomError("owner", "OwnerId is assigned by owner:, remove it from fields")
        for name in [*self.fields, *self.lookups]:
            if not _API_NAME.match(name):
                raise PydanticCustomError("api_name", "'{v}' is not a Salesforce field API name", {"v": name})
        return self


class MappingFile(Strict):
    steps: dict[str, Step] = Field(min_length=1)


@dataclass(frozen=True)
class LoadedStep:
    """A step together with where it was declared (for messages)."""

    name: str
    file: str
    step: Step


@dataclass(frozen=True)
class Mappings:
    steps: tuple[LoadedStep, ...]

    def by_name(self, name: str) -> LoadedStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def for_object(self, obj: str) -> list[LoadedStep]:
        return [s for s in self.steps if s.step.object.lower() == obj.lower()]


def load_mappings(folder: str | Path) -> Mappings:
    """Load every ``*.yml`` / ``*.yaml`` in ``folder``; step names must be unique across files."""
    from crmbridge.yamlconf import load_model

    folder = Path(folder)
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []
    if not files:
        raise ConfigError(folder, "no mapping files (*.yml) found",
                          hint="`crmbridge init` writes template mappings; see docs/mapping.md")
    steps: list[LoadedStep] = []
    seen: dict[str, str] = {}
    for f in files:
        rel = _display(f)
        model = load_model(f, MappingFile)
        for name, step in model.steps.items():
            if name in seen:
                raise ConfigError(rel, f"steps.{name}: step name already used in {seen[name]}")
            seen[name] = rel
            steps.append(LoadedStep(name=name, file=rel, step=step))
    return Mappings(steps=tuple(steps))


def _display(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        parts = p.parts
        return str(Path(*parts[-2:])) if len(parts) >= 2 else str(p)
