"""Object and field metadata of the sandbox org.

Loaded from ``default_schema.yml`` plus any project schema files. Field types follow Salesforce's
describe ``type`` values. Storage (``store.py``) keeps one SQLite table per object, named after the
object, one column per field; ``soql.py`` compiles queries against the same layout:

- string-like types (string, textarea, picklist, email, phone, url, reference, id): TEXT
- boolean: INTEGER 0/1; int: INTEGER; double, currency, percent: REAL
- date: TEXT ``YYYY-MM-DD``; datetime: TEXT ``YYYY-MM-DDTHH:MM:SS.000+0000`` (UTC, so text order is time order)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCHEMA = Path(__file__).with_name("default_schema.yml")

TEXT_TYPES = {"id", "string", "textarea", "picklist", "multipicklist", "email", "phone", "url", "reference"}
NUMBER_TYPES = {"double", "currency", "percent"}
SQL_TYPES = {
    **{t: "TEXT" for t in TEXT_TYPES},
    "boolean": "INTEGER",
    "int": "INTEGER",
    **{t: "REAL" for t in NUMBER_TYPES},
    "date": "TEXT",
    "datetime": "TEXT",
}
SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
}

SYSTEM_FIELDS: dict[str, dict[str, Any]] = {
    "Id": {"type": "id", "length": 18, "createable": False, "updateable": False, "nillable": False},
    "IsDeleted": {"type": "boolean", "createable": False, "updateable": False, "nillable": False},
    "CreatedDate": {"type": "datetime", "createable": False, "updateable": False, "nillable": False},
    "CreatedById": {"type": "reference", "referenceTo": ["User"], "relationshipName": "CreatedBy",
                    "createable": False, "updateable": False, "nillable": False},
    "LastModifiedDate": {"type": "datetime", "createable": False, "updateable": False, "nillable": False},
    "LastModifiedById": {"type": "reference", "referenceTo": ["User"], "relationshipName": "LastModifiedBy",
                         "createable": False, "updateable": False, "nillable": False},
    "SystemModstamp": {"type": "datetime", "createable": False, "updateable": False, "nillable": False},
}
OWNER_FIELD = {"type": "reference", "referenceTo": ["User"], "relationshipName": "Owner", "nillable": False,
               "defaultedOnCreate": True}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    defaulted_on_create: bool = False
    default: Any = None
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    computed: str | None = None  # full_name, contract_end, autonumber
    custom: bool = False
    lookup: bool | None = None  # the schema's explicit ``idLookup``; None: Salesforce's usual rule

    @property
    def id_lookup(self) -> bool:
        """Whether the field identifies a record for upserts and ``sobjects/{Object}/{field}/{value}``: Id,
        external IDs, and fields the schema marks ``idLookup`` (Contact.Email, User.Username ...). A
        non-computed Name is one by default, as on custom objects and Opportunity (Account.Name is not)."""
        if self.lookup is not None:
            return self.lookup
        return self.name == "Id" or self.external_id or (self.name == "Name" and not self.computed)

    @property
    def required_on_create(self) -> bool:
        """Salesforce's REQUIRED_FIELD_MISSING rule: not nillable, createable, no default."""
        return not self.nillable and self.createable and not self.defaulted_on_create and self.default is None

    @property
    def sql_type(self) -> str:
        return SQL_TYPES.get(self.type, "TEXT")

    def describe(self) -> dict[str, Any]:
        """The field as Salesforce's describe returns it (the keys clients read)."""
        t = self.type
        return {
            "name": self.name,
            "label": self.label,
            "type": t,
            "soapType": SOAP_TYPES.get(t, "xsd:string"),
            "length": self.length if t in TEXT_TYPES and t not in ("reference", "id") else (18 if t in ("reference", "id") else 0),
            "byteLength": (self.length * 3) if t in TEXT_TYPES else 0,
            "precision": self.precision,
            "scale": self.scale,
            "digits": 9 if t == "int" else 0,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "filterable": t != "textarea" or self.length <= 255,
            "sortable": t != "textarea" or self.length <= 255,
            "groupable": t not in NUMBER_TYPES and t != "textarea",
            "custom": self.custom,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.id_lookup,
            "nameField": self.name == "Name",
            "calculated": self.computed is not None and self.computed != "autonumber",
            "autoNumber": self.computed == "autonumber",
            "defaultedOnCreate": self.defaulted_on_create or self.default is not None or self.name in SYSTEM_FIELDS,
            "defaultValue": self.default,
            "caseSensitive": False,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "validFor": None, "value": v}
                for v in self.picklist_values
            ],
            "restrictedPicklist": self.restricted_picklist,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "cascadeDelete": False,
            "htmlFormatted": False,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "inlineHelpText": None,
            "compoundFieldName": None,
            "polymorphicForeignKey": len(self.reference_to) > 1,
        }


@dataclass
class ObjectDef:
    name: str
    key_prefix: str
    label: str
    custom: bool
    fields: dict[str, FieldDef] = field(default_factory=dict)
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, f: FieldDef) -> None:
        self.fields[f.name] = f
        self._lower[f.name.lower()] = f.name

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup (SOQL and the REST API ignore case)."""
        real = self._lower.get(name.lower())
        return self.fields.get(real) if real else None

    def relationship(self, rel_name: str) -> FieldDef | None:
        """The reference field whose relationshipName is ``rel_name`` (case-insensitive)."""
        low = rel_name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None

    @property
    def external_id_fields(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.external_id]


class Schema:
    """All objects of the org, looked up case-insensitively."""

    def __init__(self) -> None:
        self.objects: dict[str, ObjectDef] = {}
        self._lower: dict[str, str] = {}

    def get(self, name: str) -> ObjectDef | None:
        real = self._lower.get(name.lower())
        return self.objects.get(real) if real else None

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        for o in self.objects.values():
            if o.key_prefix == prefix:
                return o
        return None

    def add_object(self, obj: ObjectDef) -> None:
        self.objects[obj.name] = obj
        self._lower[obj.name.lower()] = obj.name

    def extend(self, spec: dict[str, Any], source: str = "schema") -> None:
        """Merge a schema document (``{objects: {Name: {...}}}``) into this schema."""
        for oname, ospec in (spec.get("objects") or {}).items():
            ospec = ospec or {}
            obj = self.get(oname)
            if obj is None:
                custom = oname.endswith("__c")
                prefix = ospec.get("keyPrefix") or self._next_custom_prefix()
                if self.by_prefix(prefix):
                    raise ValueError(f"{source}: key prefix {prefix} of {oname} is already used")
                obj = ObjectDef(name=oname, key_prefix=str(prefix), label=ospec.get("label", oname.replace("__c", "").replace("_", " ")),
                                custom=custom)
                for fname, fspec in SYSTEM_FIELDS.items():
                    obj.add(_field(fname, fspec))
                if ospec.get("owned", True):
                    obj.add(_field("OwnerId", OWNER_FIELD))
                self.add_object(obj)
            for fname, fspec in (ospec.get("fields") or {}).items():
                obj.add(_field(fname, fspec or {}))

    def _next_custom_prefix(self) -> str:
        n = 0
        while self.by_prefix(f"a{n:02X}"):
            n += 1
        return f"a{n:02X}"


def _field(name: str, spec: dict[str, Any]) -> FieldDef:
    t = spec.get("type", "string")
    required = bool(spec.get("required", False))
    nillable = spec.get("nillable", not required)
    values = tuple(str(v) for v in spec.get("values", ()))
    length = int(spec.get("length", 255 if t in ("picklist", "multipicklist") else 0))
    if t in ("email", "phone", "url") and not length:
        length = 80 if t == "email" else 40 if t == "phone" else 255
    return FieldDef(
        name=name,
        type=t,
        label=spec.get("label", name.replace("__c", "").replace("_", " ")),
        length=length,
        precision=int(spec.get("precision", 0)),
        scale=int(spec.get("scale", 0)),
        nillable=bool(nillable) and t != "boolean",
        createable=bool(spec.get("createable", True)),
        updateable=bool(spec.get("updateable", True)),
        external_id=bool(spec.get("externalId", False)),
        unique=bool(spec.get("unique", False)),
        defaulted_on_create=bool(spec.get("defaultedOnCreate", False)) or t == "boolean",
        default=spec.get("default"),
        picklist_values=values,
        restricted_picklist=bool(spec.get("restricted", False)),
        reference_to=tuple(spec.get("referenceTo", ())),
        relationship_name=spec.get("relationshipName"),
        computed=spec.get("computed"),
        custom=name.endswith("__c"),
        lookup=spec.get("idLookup"),
    )


def load_schema(extra_files: list[str | Path] | None = None) -> Schema:
    """The default schema extended by the given schema files (same YAML format)."""
    schema = Schema()
    for path in [DEFAULT_SCHEMA, *(extra_files or [])]:
        with open(path, encoding="utf-8") as fh:
            schema.extend(yaml.safe_load(fh) or {}, source=str(path))
    return schema
