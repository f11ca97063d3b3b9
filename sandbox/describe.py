"""Describe metadata in Salesforce's JSON shapes: describeGlobal, sObject basic info and full describe."""

from __future__ import annotations

from typing import Any

from crmbridge.sandbox.schema import SYSTEM_FIELDS, ObjectDef, Schema

_NOT_CREATEABLE = {"User", "RecordType", "Organization"}  # set up by the org, not by data loads


def plural(label: str) -> str:
    if label.endswith("y") and not label.endswith(("ay", "ey", "oy")):
        return label[:-1] + "ies"
    return label + ("es" if label.endswith(("s", "x", "ch", "sh")) else "s")


def _urls(obj: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def global_entry(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of describeGlobal's ``sobjects`` list (also the ``objectDescribe`` of basic info)."""
    writable = obj.name not in _NOT_CREATEABLE
    return {
        "activateable": False, "associateEntityType": None, "associateParentEntity": None,
        "createable": writable, "custom": obj.custom, "customSetting": False, "deepCloneable": False,
        "deletable": writable, "deprecatedAndHidden": False, "feedEnabled": False, "hasSubtypes": False,
        "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix, "label": obj.label,
        "labelPlural": plural(obj.label), "layoutable": True, "mergeable": obj.name in ("Account", "Contact"),
        "mruEnabled": True, "name": obj.name, "queryable": True, "replicateable": True, "retrieveable": True,
        "searchable": True, "triggerable": True, "undeletable": writable, "updateable": writable,
        "urls": _urls(obj, version),
    }


def child_relationships(schema: Schema, parent: ObjectDef) -> list[dict[str, Any]]:
    """References to ``parent`` from other objects, named like Salesforce names them (Contacts, Receivables__r)."""
    out = []
    for child in schema.objects.values():
        for f in child.fields.values():
            if parent.name not in f.reference_to or f.name in SYSTEM_FIELDS:
                continue
            if f.name == "OwnerId":
                continue  # Salesforce hides the many owner relationships
            name = plural(child.name[:-3]).replace(" ", "") + "__r" if child.custom else plural(child.name)
            if f.name != f"{parent.name}Id" and not f.custom and f.name != "OwnerId":
                name = "Child" + name if f.name == "ParentId" else f.name[:-2] + name
            out.append({"cascadeDelete": False, "childSObject": child.name, "deprecatedAndHidden": False,
                        "field": f.name, "junctionIdListNames": [], "junctionReferenceTo": [],
                        "relationshipName": name, "restrictedDelete": False})
    return out


def record_type_infos(rows: list[tuple[str, str, str]], obj: ObjectDef) -> list[dict[str, Any]]:
    """``recordTypeInfos``: the object's record types plus the Master one, as rows of (Id, Name, DeveloperName)."""
    master = {"active": True, "available": True, "defaultRecordTypeMapping": not rows, "developerName": "Master",
              "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
              "urls": {"layout": f"/services/data/sobjects/{obj.name}/describe/layouts/012000000000000AAA"}}
    infos = [{"active": True, "available": True, "defaultRecordTypeMapping": i == 0, "developerName": dev,
              "master": False, "name": name, "recordTypeId": rid,
              "urls": {"layout": f"/services/data/sobjects/{obj.name}/describe/layouts/{rid}"}}
             for i, (rid, name, dev) in enumerate(rows)]
    return infos + [master]


def describe(schema: Schema, obj: ObjectDef, version: str, record_types: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The full ``sobjects/{Object}/describe`` document."""
    fields = []
    for f in obj.fields.values():
        d = f.describe()
        if f.name in SYSTEM_FIELDS or f.name == "OwnerId":
            d["custom"] = False
        fields.append(d)
    return {
        **global_entry(obj, version),
        "actionOverrides": [], "childRelationships": child_relationships(schema, obj), "compactLayoutable": True,
        "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None, "fields": fields,
        "implementedBy": None, "implementsInterfaces": None, "listviewable": None, "lookupLayoutable": None,
        "namedLayoutInfos": [], "networkScopeFieldName": None, "recordTypeInfos": record_type_infos(record_types, obj),
        "searchLayoutable": True, "sobjectDescribeOption": "FULL", "supportedScopes": [
            {"label": "All " + plural(obj.label).lower(), "name": "everything"}],
        "urls": {**_urls(obj, version), "compactLayouts": f"/services/data/v{version}/sobjects/{obj.name}/describe/"
                                                           "compactLayouts"},
    }
