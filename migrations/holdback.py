"""Children held back at load: a record whose parent Salesforce rejected in this run is not sent.

Sending it would only earn a second, misleading rejection (``INVALID_FIELD``: the parent's external ID
is not found) and, where the org has other matching parents, could even attach it to the wrong one.
So before a child step's batches go out, every record whose lookup names a parent that this run's
ledger shows as rejected (or itself held back), and that the org does not already hold from an
earlier load, gets a ledger row ``failed`` with error code ``parent_rejected`` and a message naming
the parent and Salesforce's error for it. It then appears in ``<Object>_error.csv``; the next run
sends it again once the parent loads.
"""

from __future__ import annotations

from typing import Iterable

PARENT_REJECTED = "parent_rejected"


def lookup_columns(step: dict, columns: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(column, parent object, parent external id field)`` of each parent reference in the load file.

    The map stage lists them in the plan (``lookups``); for plans written before that, a column
    ``<Relationship>.<Field>`` is matched to a parent object by Salesforce's naming (``Account`` ->
    Account, ``Foo__r`` -> Foo__c).
    """
    if step.get("lookups") is not None:
        return [(lk["column"], lk["object"], lk["external_id"]) for lk in step["lookups"] if lk["column"] in columns]
    out = []
    for col in columns:
        if col.startswith("_") or "." not in col:
            continue
        rel, field = col.split(".", 1)
        obj = rel[:-3] + "__c" if rel.endswith("__r") else rel
        if obj in step.get("parents", []):
            out.append((col, obj, field))
    return out


def rejected_parents(engine, run_id: str, plan: list[dict], upto: str) -> dict[tuple[str, str], dict[str, str]]:
    """``(object lower, external id field) -> {key: why}`` for records of the steps before ``upto`` that
    this run could not load (rejected or held back) and that the org holds no record for."""
    from crmbridge.migrations import ledger as L

    out: dict[tuple[str, str], dict[str, str]] = {}
    for step in plan:
        if step["step"] == upto:
            break
        led = L.ledger_frame(engine, run_id, step["step"], ["external_id", "action", "error_code", "message"])
        bad = led[(led["action"] == "failed") & led["external_id"].notna()]
        if bad.empty:
            continue
        in_org = L.map_for(engine, step["object"])
        target = out.setdefault((step["object"].lower(), step["external_id_field"]), {})
        for key, code, msg in zip(bad["external_id"], bad["error_code"], bad["message"]):
            if key in in_org or key in target:
                continue
            target[key] = f"{code}: {msg}" if msg else str(code)
    return out


def held_back(by_key: dict, lookups: list[tuple[str, str, str]],
              rejected: dict[tuple[str, str], dict[str, str]]) -> dict[str, tuple[str, str]]:
    """``key -> (error code, message)`` for the records of a step whose parent was rejected."""
    from crmbridge.migrations.hashing import canonical

    out: dict[str, tuple[str, str]] = {}
    if not lookups or not rejected:
        return out
    for key, row in by_key.items():
        for col, obj, field in lookups:
            refused = rejected.get((obj.lower(), field))
            if not refused:
                continue
            parent = canonical(row.get(col))
            why = refused.get(parent) if parent else None
            if why is not None:
                out[key] = (PARENT_REJECTED, f"{obj}.{field}={parent} was not loaded ({why}); "
                                             "this record was held back, not sent")
                break
    return out
