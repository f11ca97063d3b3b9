"""Per-step checks against describe metadata (phase 2). See ``check.check_against_org``."""

from __future__ import annotations

from typing import Any, Callable

from crmbridge.mappings.models import FieldSpec, LoadedStep

TEXT = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "encryptedstring", "combobox"}
NUMERIC = {"double", "currency", "percent"}

FieldsOf = Callable[[str], "dict[str, dict] | None"]


def output_kind(spec: FieldSpec) -> str:
    """What a field assignment produces: text, int, number, date, datetime, bool, or any."""
    kind = "text"
    if spec.value is not None:
        v = spec.value
        kind = "bool" if isinstance(v, bool) else "int" if isinstance(v, int) else \
            "number" if isinstance(v, float) else "text"
    if spec.aggregate is not None and spec.aggregate.how in ("count", "sum", "min", "max"):
        kind = "int" if spec.aggregate.how == "count" else "number"
    for t in spec.transforms:
        p = t.model
        if t.name == "number":
            kind = "int" if p.integer else "number"
        elif t.name in ("date", "datetime"):
            kind = t.name
        elif t.name == "months_between":
            kind = "int"
        elif t.name == "value_map":
            vals = [*p.map.values(), *([p.default] if p.default is not None else [])]
            kind = "bool" if vals and all(isinstance(v, bool) for v in vals) else \
                "int" if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals) else \
                "any" if p.on_missing == "keep" else "text"
        elif t.name == "default" and not isinstance(p.value, str):
            kind = "any" if kind == "text" else kind
        elif t.name in ("trim", "case", "nfkc", "strip_html", "replace", "split", "truncate", "affix",
                        "name_part", "concat", "phone", "email"):
            kind = "text"
    return kind


def _compat(kind: str, sf_type: str) -> tuple[str, str] | None:
    """(severity, message) when ``kind`` does not fit ``sf_type``; None when it does."""
    if kind == "any" or sf_type in TEXT or sf_type in ("id", "reference"):
        return None
    if sf_type == "int":
        if kind == "int":
            return None
        if kind == "number":
            return "warning", "int field receives decimals: use number with integer: true"
        return "error", f"{sf_type} field receives {kind}: add a number transform (integer: true)"
    if sf_type in NUMERIC:
        return None if kind in ("int", "number") else ("error", f"{sf_type} field receives {kind}: add a number transform")
    if sf_type == "date":
        return None if kind == "date" else ("error", f"date field receives {kind}: add a date transform with formats")
    if sf_type == "datetime":
        return None if kind == "datetime" else ("error", f"datetime field receives {kind}: add a datetime transform")
    if sf_type == "boolean":
        return None if kind == "bool" else ("error", "boolean field: use value: true/false or a value_map to true/false")
    return None


def _constants(spec: FieldSpec) -> list[Any]:
    """Values the assignment can produce that are known without data."""
    out: list[Any] = []
    if spec.value is not None:
        out.append(spec.value)
    for t in spec.transforms:
        p = t.model
        if t.name == "value_map":
            out = list(p.map.values()) + ([p.default] if p.default is not None else [])
        elif t.name == "default":
            out.append(p.value)
    return [v for v in out if v is not None]


def _check_field(c, s: LoadedStep, name: str, spec: FieldSpec, f: dict) -> None:
    t = f.get("type", "string")
    if not f.get("createable", True):
        hint = ""
        if s.step.object.lower() == "contract" and name == "EndDate":
            hint = "; the org computes EndDate from StartDate + ContractTerm: map ContractTerm (months_between)"
        c.add("error", s, name, "not_createable", f"{s.step.object}.{name} is not createable{hint}")
        return
    if not f.get("updateable", True) and name != s.step.external_id:
        c.add("warning", s, name, "not_updateable", f"{s.step.object}.{name} is not updateable: upserts of "
              "existing records will be rejected")
    if t == "reference":
        c.add("warning", s, name, "reference_as_field", f"{name} is a lookup; declare it under lookups: so "
              "the parent is found by external ID")
    bad = _compat(output_kind(spec), t)
    if bad:
        c.add(bad[0], s, name, "type_mismatch", f"{bad[1]} (field type {t})")
    length = f.get("length") or 0
    consts = _constants(spec)
    if t in ("picklist", "multipicklist"):
        allowed = {p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)}
        sev = "error" if f.get("restrictedPicklist") else "warning"
        for v in consts:
            parts = str(v).split(";") if t == "multipicklist" else [str(v)]
            for part in parts:
                if part not in allowed:
                    c.add(sev, s, name, "picklist_value", f"'{part}' is not a value of picklist {s.step.object}.{name}"
                          f" (values: {', '.join(sorted(allowed))})")
        if spec.column and not any(tr.name == "value_map" for tr in spec.transforms) and f.get("restrictedPicklist"):
            c.add("warning", s, name, "picklist_unmapped", f"restricted picklist {name} takes column values as-is; "
                  "rows with other values will be quarantined (add a value_map)")
    if t in TEXT and length:
        for v in consts:
            if len(str(v)) > length:
                c.add("error", s, name, "too_long", f"value '{v}' is longer than {name}'s {length} characters")
        for tr in spec.transforms:
            if tr.name == "truncate" and tr.model.length > length:
                c.add("warning", s, name, "truncate_too_long", f"truncate length {tr.model.length} exceeds the "
                      f"field length {length}")


def check_step(c, s: LoadedStep, fields_of: FieldsOf) -> None:
    step = s.step
    obj = fields_of(step.object)
    if obj is None:
        c.add("error", s, None, "unknown_object", f"object '{step.object}' does not exist in the org")
        return
    ext = obj.get(step.external_id.lower())
    if ext is not None and not ext.get("externalId") and ext.get("name") != "Id":
        c.add("error", s, step.external_id, "not_external_id", f"{step.object}.{step.external_id} is not an "
              "external ID field: upsert needs one (mark it External ID in the org)")
    for name, spec in step.fields.items():
        f = obj.get(name.lower())
        if f is None:
            c.add("error", s, name, "unknown_field", _unknown(step.object, name, obj))
            continue
        _check_field(c, s, name, spec, f)
    for name, lk in step.lookups.items():
        _check_lookup(c, s, name, lk, obj, fields_of)
    for special, present in (("OwnerId", step.owner), ("RecordTypeId", step.record_type)):
        if present is not None and special.lower() not in obj:
            c.add("error", s, special, "unknown_field", f"{step.object} has no {special}")
    assigned = {n.lower() for n in [*step.fields, *step.lookups]}
    assigned |= {"ownerid"} if step.owner else set()
    assigned |= {"recordtypeid"} if step.record_type else set()
    for f in obj.values():
        required = (not f.get("nillable", True) and f.get("createable", True) and not f.get("defaultedOnCreate")
                    and f.get("type") != "boolean")
        if required and f["name"].lower() not in assigned:
            c.add("error", s, f["name"], "required_not_mapped", f"{step.object}.{f['name']} is required on create "
                  "but not mapped")


def _check_lookup(c, s: LoadedStep, name: str, lk, obj: dict, fields_of: FieldsOf) -> None:
    f = obj.get(name.lower())
    if f is None:
        c.add("error", s, name, "unknown_field", _unknown(s.step.object, name, obj))
        return
    if f.get("type") != "reference":
        c.add("error", s, name, "not_a_lookup", f"{s.step.object}.{name} is a {f.get('type')} field, not a lookup")
        return
    targets = [t.lower() for t in f.get("referenceTo") or []]
    if lk.object.lower() not in targets:
        c.add("error", s, name, "wrong_parent", f"{name} references {', '.join(f.get('referenceTo') or [])}, "
              f"not {lk.object}")
    rel = lk.relationship_name(name)
    if (f.get("relationshipName") or "").lower() != rel.lower():
        c.add("error", s, name, "relationship_name", f"relationship of {name} is '{f.get('relationshipName')}', "
              f"not '{rel}' (set relationship:)")
    if not f.get("createable", True):
        c.add("error", s, name, "not_createable", f"{s.step.object}.{name} is not createable")
    parent = fields_of(lk.object)
    if parent is None:
        c.add("error", s, name, "unknown_object", f"parent object '{lk.object}' does not exist in the org")
        return
    pf = parent.get(lk.external_id.lower())
    if pf is None or not pf.get("externalId"):
        c.add("error", s, name, "parent_not_external_id", f"{lk.object}.{lk.external_id} is not an external ID "
              "field, so Salesforce cannot resolve the parent by it")


def _unknown(obj_name: str, name: str, obj: dict) -> str:
    import difflib

    names = sorted(f["name"] for f in obj.values())
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"{obj_name} has no field '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
