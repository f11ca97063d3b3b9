"""``sync.yml``: which ERP tables map onto which Salesforce objects, field by field.

Every field names exactly one system of record (``owner``): ``erp`` (the ERP's value wins and flows to
Salesforce), ``salesforce`` (flows to the ERP) or ``both`` (either side may edit it; then a ``conflict``
policy is mandatory). Checked offline by pydantic with file and line in every error (``load_sync_config``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crmbridge.secretref import EnvRef

Owner = Literal["erp", "salesforce", "both"]
Conflict = Literal["queue", "salesforce_wins", "erp_wins"]
COMPUTES = {"days_overdue", "concat"}  # computed ERP-side values; see sync.values.compute
_COMPUTE_RE = re.compile(r"^(\w+)\(\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpec(Strict):
    """One Salesforce field and where its value comes from on the ERP side."""

    erp: str | None = Field(None, description="ERP column")
    compute: str | None = Field(None, description="computed from ERP columns, e.g. days_overdue(due_date, open_balance)")
    owner: Owner | None = None
    conflict: Conflict | None = None

    @model_validator(mode="after")
    def _source(self):
        if bool(self.erp) == bool(self.compute):
            raise ValueError("give exactly one of 'erp' (a column) or 'compute'")
        if self.compute:
            m = _COMPUTE_RE.match(self.compute)
            if not m or m.group(1) not in COMPUTES:
                raise ValueError(f"compute must be one of {sorted(COMPUTES)} written like days_overdue(due_date, open_balance)")
        return self

    @property
    def compute_args(self) -> tuple[str, list[str]]:
        m = _COMPUTE_RE.match(self.compute or "")
        assert m
        return m.group(1), [a for a in m.groups()[1:] if a]


class Changes(Strict):
    """How ERP changes are found: a column that grows on every change, or content hashes."""

    column: str | None = Field(None, description="updated-at timestamp or row-version column")
    hash: bool = False
    overlap_seconds: float = Field(60, ge=0, description="re-read this much before the timestamp watermark "
                                   "(rows committed late by long ERP transactions)")

    @model_validator(mode="after")
    def _one(self):
        if bool(self.column) == bool(self.hash):
            raise ValueError("give either 'column: <updated_at or row version>' or 'hash: true'")
        return self


class ErpSide(Strict):
    table: str | None = None
    query: str | None = Field(None, description="a SELECT (view-like); read only")
    key: list[str] = Field(..., min_length=1, description="column(s) identifying a row")
    changes: Changes = Field(default_factory=lambda: Changes(hash=True))
    new_key: str | None = Field(None, description="format of keys for rows created from Salesforce, e.g. K{n:07d}")

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("changes", mode="before")
    @classmethod
    def _changes_short(cls, v):
        return {"hash": True} if v == "hash" else v

    @field_validator("new_key")
    @classmethod
    def _fmt(cls, v):
        if v is not None:
            try:
                v.format(n=1)
            except (KeyError, IndexError, ValueError):
                raise ValueError("new_key must be a format with {n}, e.g. K{n:07d}") from None
            if "{n" not in v:
                raise ValueError("new_key must contain {n}")
        return v

    @model_validator(mode="after")
    def _table_or_query(self):
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class SalesforceSide(Strict):
    object: str
    external_id: str = Field(..., description="Salesforce field holding the ERP key (an external ID)")


class LinkOn(Strict):
    """Match a record that exists on both sides but is not linked yet (e.g. migrated Accounts)."""

    salesforce: str
    erp: str


class Scope(Strict):
    """Which Salesforce records count as customers: a criterion of the agreed definition, not a condition
    of its own (``sync.scope`` resolves its fields through the mapping files; see docs/sync.md)."""

    definition: str = Field("definitions/customer.yml", description="the agreed definition file")
    criterion: str = Field("agreed", description="'agreed' or a department's criterion")
    via: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
                            description="relationship to the record the criterion is about, e.g. Account "
                                        "(for Contracts: only contracts of in-scope customers)")
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="definition field -> Salesforce field, where no mapping says it")


class Create(Strict):
    salesforce: bool = True
    erp: bool = False


class Deletes(Strict):
    """What happens when a linked ERP row disappears. Soft by default: a flag, nothing is deleted."""

    mode: Literal["soft", "hard", "ignore"] = "soft"
    salesforce_field: str | None = None
    salesforce_value: bool | str | int = False
    erp_column: str | None = Field(None, description="set when a linked Salesforce record is deleted "
                                   "(the ERP row is always kept)")
    erp_value: bool | str | int = False


class ObjectSpec(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    salesforce: SalesforceSide
    erp: ErpSide
    owner: Owner = "erp"
    conflict: Conflict | None = None
    fields: dict[str, FieldSpec]
    link_on: list[LinkOn] = Field(default_factory=list)
    create: Create = Field(default_factory=Create)
    create_when: dict[str, list[str | bool | int | None]] = Field(
        default_factory=dict, description="Salesforce records become ERP rows only when every field is in its list")
    scope: Scope | None = Field(None, description="records created in the ERP must meet this definition criterion")
    deletes: Deletes = Field(default_factory=Deletes)

    @field_validator("fields", mode="before")
    @classmethod
    def _short_fields(cls, v):
        if isinstance(v, dict):
            return {k: ({"erp": s} if isinstance(s, str) else s) for k, s in v.items()}
        return v

    @model_validator(mode="after")
    def _has_fields(self):
        if not self.fields:
            raise ValueError("fields: map at least one Salesforce field")
        return self

    def problems(self) -> list[tuple[tuple, str]]:
        """Cross-field rules as (location inside the object, message); checked by ``load_sync_config``
        so that the error points at the offending line, not at the start of the object."""
        out: list[tuple[tuple, str]] = []
        for sf, spec in self.fields.items():
            owner = self.owner_of(sf)
            if owner == "both" and self.conflict_of(sf) is None:
                out.append((("fields", sf), f"field {sf} is edited on both sides: give conflict: queue, "
                                            "salesforce_wins or erp_wins"))
            if spec.compute and owner != "erp":
                out.append((("fields", sf), f"field {sf}: a computed value can only flow from the ERP (owner: erp)"))
            if "." in sf and owner == "both":
                out.append((("fields", sf), f"field {sf}: a relationship field flows one way only"))
            if self.erp.query and owner != "erp":
                out.append((("fields", sf), f"field {sf}: erp.query is read only, so every field must be owner: erp"))
        if self.salesforce.external_id in self.fields:
            out.append((("fields", self.salesforce.external_id),
                        f"{self.salesforce.external_id} is the external ID; it is filled from erp.key"))
        if self.create.erp:
            if self.erp.query:
                out.append((("create", "erp"), "create.erp needs erp.table (a query cannot be written to)"))
            elif len(self.erp.key) != 1 or not self.erp.new_key:
                out.append((("erp",), "create.erp needs a single-column erp.key and erp.new_key (e.g. K{n:07d})"))
            if not any(self.owner_of(f) != "erp" for f in self.fields):
                out.append((("create", "erp"), "no field is owned by salesforce or both: nothing would reach the ERP"))
        if self.scope is not None and not self.create.erp:
            out.append((("scope",), "scope selects the Salesforce records created in the ERP: it needs "
                                    "create: {erp: true}"))
        if self.deletes.mode == "soft" and self.create.salesforce and not self.deletes.salesforce_field:
            out.append((("deletes",) if "deletes" in self.model_fields_set else (),
                        "deletes: soft needs salesforce_field (e.g. Is_Active__c), or mode: ignore / hard"))
        return out

    def owner_of(self, sf_field: str) -> Owner:
        return self.fields[sf_field].owner or self.owner

    def conflict_of(self, sf_field: str) -> Conflict | None:
        return self.fields[sf_field].conflict or self.conflict

    @property
    def reads_salesforce(self) -> bool:
        """Salesforce is read only where it is a source for some field (cheap one-way objects)."""
        return self.create.erp or any(self.owner_of(f) != "erp" for f in self.fields)

    @property
    def sf_fields(self) -> list[str]:
        """Fields queried from Salesforce (a relationship reference the ERP owns is written, not read)."""
        return [f for f in self.fields if "." not in f or self.owner_of(f) == "salesforce"]


class ErpConnection(Strict):
    url: str | EnvRef
    schema_name: str | None = Field(None, alias="schema")

    @field_validator("url")
    @classmethod
    def _no_password(cls, v):
        from crmbridge.config import _no_literal_password

        return _no_literal_password(v)


class ScheduleSettings(Strict):
    cron: str = "30 1 * * *"
    timezone: str = "Asia/Shanghai"
    direction: Literal["both", "to-salesforce", "to-erp"] = "both"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v):
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"'{v}' is not a valid 5-field cron expression")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone '{v}' (use an IANA name such as Asia/Shanghai)") from None
        return v


class SyncConfig(Strict):
    erp: ErpConnection | None = Field(None, description="default: erp.url in crmbridge.yml")
    objects: list[ObjectSpec] = Field(..., min_length=1)
    lock_stale_minutes: float = Field(240, gt=0, description="a lock older than this whose holder is gone is taken over")
    batch_size: int = Field(10_000, ge=1, description="rows per ERP read / Salesforce DML call")
    log_file: str = "logs/sync.log"
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @model_validator(mode="after")
    def _unique(self):
        names = [o.name for o in self.objects]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"object name '{sorted(dup)[0]}' is used twice")
        return self

    def object(self, name: str) -> ObjectSpec:
        for o in self.objects:
            if o.name == name:
                return o
        from crmbridge.errors import UsageError

        raise UsageError(f"no sync object '{name}'", hint=f"sync.yml has: {', '.join(o.name for o in self.objects)}")


def load_sync_config(path: str | Path) -> SyncConfig:
    """Read and check ``sync.yml`` (ConfigError with file:line on any problem)."""
    from crmbridge.errors import ConfigError
    from crmbridge.yamlconf import format_loc, line_of, load_model, read_yaml

    cfg = load_model(path, SyncConfig)
    for i, obj in enumerate(cfg.objects):
        found = obj.problems()
        if found:
            loc, msg = found[0]
            _, node = read_yaml(path)
            full = ("objects", i, *loc)
            more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
            raise ConfigError(path, f"{format_loc(full)}: {msg}{more}", line=line_of(node, full))
    return cfg
