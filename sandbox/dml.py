"""Writes to the org with Salesforce's validation: insert, update, upsert, delete, hardDelete.

One function, ``save``, serves REST single-record calls, sObject Collections and Bulk API 2.0, so
the three report identical error codes for the same bad row. Every row gets a ``RowResult``; a
problem with the request as a whole (an unknown field, a body that does not deserialize) raises
``RequestError``. All checks and writes run in one write transaction with batched SQL (executemany
and chunked ``IN`` lookups), never one round trip per row, so a 100k-row Bulk job takes seconds.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

from crmbridge.sandbox import ids
from crmbridge.sandbox.schema import ObjectDef
from crmbridge.sandbox.store import Store
from crmbridge.sandbox.values import FieldValueError, coerce

READ_ONLY_OBJECTS = ("Organization",)  # the org's own record: read through the API, never written
CHUNK = 900  # bound variables per IN (...) lookup, under SQLite's limit
NA = "#N/A"  # Bulk CSV: set the field to null (an empty cell leaves it as it is)
ROLLED_BACK = ("ALL_OR_NONE_OPERATION_ROLLED_BACK",
               "Record rolled back because not all records were valid and the request was using AllOrNone header")


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def rest(self) -> dict:
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def collection(self) -> dict:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def bulk(self) -> str:
        fields = f"{','.join(self.fields)} " if self.fields else ""
        return f"{self.code}:{self.message}:{fields}--"


@dataclass
class RowResult:
    id: str | None = None
    success: bool = True
    created: bool = False
    errors: list[Error] = field(default_factory=list)

    def fail(self, code: str, message: str, fields=()) -> None:
        self.success = False
        self.errors.append(Error(code, message, tuple(fields)))


class RequestError(Exception):
    """The whole request is rejected (HTTP 400 for REST, a Failed job for Bulk)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class _Row:
    result: RowResult
    values: dict[str, Any]
    refs: dict[str, tuple[str, str, str]]  # field -> (object, ext field, value)
    given_id: Any = None
    existing: dict | None = None


def save(store: Store, obj: ObjectDef, op: str, rows: list[dict], *, user_id: str, ext_field: str | None = None,
         source: str = "json", all_or_none: bool = False,
         lock_fault: Callable[[], bool] | None = None, conn: sqlite3.Connection | None = None) -> list[RowResult]:
    """Apply ``op`` to ``rows`` (field name -> raw value) and return one result per row, in order.

    ``conn``: run inside the caller's write transaction (several objects in one all-or-none request).
    """
    if obj.name in READ_ONLY_OBJECTS:
        raise RequestError("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support {op}")
    parsed = [_parse(obj, r, op, source, ext_field) for r in rows]
    with (nullcontext(conn) if conn is not None else store.write()) as c:
        if op in ("delete", "hardDelete"):
            _delete(store, c, obj, parsed, op, user_id, all_or_none, lock_fault)
        else:
            _resolve_refs(store, c, obj, parsed)
            _find_targets(c, obj, op, parsed, ext_field)
            _check_writable(obj, parsed)
            _write(store, c, obj, parsed, user_id, all_or_none, lock_fault)
    return [p.result for p in parsed]


# ---------------------------------------------------------------------------- parsing
def _parse(obj: ObjectDef, raw: dict, op: str, source: str, ext_field: str | None) -> _Row:
    row = _Row(RowResult(), {}, {})
    for key, value in raw.items():
        if key == "attributes":
            continue
        if source == "csv":
            if value == "":
                continue  # leave as is on update, null on insert
            if value == NA:
                value = None
        if key.lower() == "id":
            row.given_id = value
            continue
        f = obj.field(key) if "." not in key else None
        if f is not None:
            try:
                row.values[f.name] = coerce(f, value, source)
            except FieldValueError as e:
                if e.code == "JSON_PARSER_ERROR":
                    raise RequestError(e.code, e.message) from None
                row.result.fail(e.code, e.message, e.fields)
            continue
        rel, _, ext = key.partition(".")
        ref = obj.relationship(rel)
        if ref is None:
            raise RequestError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
        if source == "json":
            if not isinstance(value, dict):
                raise RequestError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {obj.name} from "
                                                        f"VALUE_STRING value {value} for field {key}")
            keys = [k for k in value if k != "attributes"]
            if len(keys) != 1:
                raise RequestError("INVALID_FIELD", f"{obj.name}.{key}: give exactly one external ID field "
                                                    f"of the related record")
            ext, value = keys[0], value[keys[0]]
        if value is None:
            row.values[ref.name] = None
        else:
            row.refs[ref.name] = (ref.reference_to[0], ext, str(value))
    return row


# ---------------------------------------------------------------------------- lookups
def _chunks(seq: list) -> list[list]:
    return [seq[i:i + CHUNK] for i in range(0, len(seq), CHUNK)]


def _lookup(c: sqlite3.Connection, table: str, column: str, values: list[str], *, live: bool = True,
            cols: str = '"Id"') -> list[tuple]:
    out: list[tuple] = []
    coll = " COLLATE NOCASE" if column != "Id" else ""
    extra = ' AND "IsDeleted" = 0' if live else ""
    for part in _chunks(sorted(set(values))):
        out += c.execute(f'SELECT {cols}, "{column}" FROM "{table}" WHERE "{column}"{coll} IN '
                         f'({",".join("?" * len(part))}){extra}', part).fetchall()
    return out


def _resolve_refs(store: Store, c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row]) -> None:
    """Parent references by external id (``Account.Legacy_Id__c``) and checks of given parent Ids."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        for target, ext, value in r.refs.values():
            wanted.setdefault((target, ext), set()).add(value)
    found: dict[tuple[str, str], dict[str, list[str]]] = {}
    bad_ext: dict[tuple[str, str], str] = {}
    for (target, ext), values in wanted.items():
        tobj = store.schema.get(target)
        f = tobj.field(ext) if tobj else None
        if f is None or not (f.id_lookup or f.unique):
            bad_ext[(target, ext)] = f"Field name provided, {ext} is not an External ID or indexed field for {target}"
            continue
        hits: dict[str, list[str]] = {}
        for rid, val in _lookup(c, tobj.name, f.name, [ids.to18(v) or v for v in values] if f.name == "Id" else list(values)):
            hits.setdefault(val.lower() if f.name != "Id" else val, []).append(rid)
        found[(target, ext)] = hits
    for r in rows:
        for fname, (target, ext, value) in r.refs.items():
            if (target, ext) in bad_ext:
                r.result.fail("INVALID_FIELD", bad_ext[(target, ext)], [fname])
                continue
            key = value.lower() if ext.lower() != "id" else (ids.to18(value) or value)
            matches = found[(target, ext)].get(key, [])
            if len(matches) == 1:
                r.values[fname] = matches[0]
            elif not matches:
                r.result.fail("INVALID_FIELD", f"Foreign key external ID: {value} not found for field {ext} in entity "
                                               f"{target}", [fname])
            else:
                r.result.fail("INVALID_FIELD", f"Foreign key external ID: {value} matches more than one record for "
                                               f"field {ext} in entity {target}", [fname])
    _check_parent_ids(store, c, obj, rows)


def _check_parent_ids(store: Store, c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row]) -> None:
    by_target: dict[str, set[str]] = {}
    for r in rows:
        for fname, value in r.values.items():
            f = obj.fields[fname]
            if f.type == "reference" and value is not None and fname not in r.refs:
                target = store.schema.by_prefix(value[:3])
                if target is None or target.name not in f.reference_to:
                    r.result.fail("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [fname])
                else:
                    by_target.setdefault(target.name, set()).add(value)
    live = {t: {row[0] for row in _lookup(c, t, "Id", list(v))} for t, v in by_target.items()}
    for r in rows:
        for fname, value in r.values.items():
            f = obj.fields[fname]
            if f.type == "reference" and value is not None and fname not in r.refs:
                target = store.schema.by_prefix(value[:3])
                if target is not None and target.name in live and value not in live[target.name]:
                    r.result.fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [fname])


def _find_targets(c: sqlite3.Connection, obj: ObjectDef, op: str, rows: list[_Row], ext_field: str | None) -> None:
    """Which rows create and which update which existing record."""
    if op == "insert":
        for r in rows:
            if r.given_id not in (None, ""):
                r.result.fail("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"])
        return
    if op == "upsert" and ext_field and ext_field.lower() != "id":
        _match_external(c, obj, rows, obj.field(ext_field).name)
        return
    wanted = [ids.to18(str(r.given_id)) for r in rows if r.given_id not in (None, "")]
    existing = {row[-1]: row for row in _lookup(c, obj.name, "Id", [w for w in wanted if w], live=False, cols="*")}
    names = [d[1] for d in c.execute(f'PRAGMA table_info("{obj.name}")')]
    seen: set[str | None] = set()
    for r in rows:
        if r.given_id in (None, ""):
            if op == "upsert":
                continue  # upsert on Id without an Id creates
            r.result.fail("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            continue
        rid = ids.to18(str(r.given_id))
        if rid is not None and rid in seen:
            r.result.fail("DUPLICATE_VALUE", f"Duplicate id in list: {rid}", [])
            continue
        seen.add(rid)
        if rid is None or rid[:3] != obj.key_prefix:
            r.result.fail("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {r.given_id}", ["Id"])
        elif rid not in existing:
            r.result.fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
        else:
            r.existing = dict(zip(names, existing[rid][:len(names)]))
            if r.existing["IsDeleted"]:
                r.result.fail("ENTITY_IS_DELETED", "entity is deleted", [])
            r.result.id = rid


def _match_external(c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row], ext: str) -> None:
    names = [d[1] for d in c.execute(f'PRAGMA table_info("{obj.name}")')]
    keys = [r.values.get(ext) for r in rows]
    hits: dict[str, list[dict]] = {}
    for row in _lookup(c, obj.name, ext, [k for k in keys if k], cols="*"):
        hits.setdefault(row[-1].lower(), []).append(dict(zip(names, row[:len(names)])))
    seen: dict[str, int] = {}
    for k in keys:
        if k:
            seen[k.lower()] = seen.get(k.lower(), 0) + 1
    for r, k in zip(rows, keys):
        if not k:
            r.result.fail("MISSING_ARGUMENT", f"{ext} not specified", [ext])
        elif seen[k.lower()] > 1:
            r.result.fail("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {k}", [ext])
        elif len(hits.get(k.lower(), [])) > 1:
            found = ", ".join(h["Id"] for h in hits[k.lower()])
            r.result.fail("DUPLICATE_EXTERNAL_ID", f"{ext}: more than one record found for external id field: [{found}]",
                          [ext])
        elif hits.get(k.lower()):
            r.existing = hits[k.lower()][0]
            r.result.id = r.existing["Id"]


def _check_writable(obj: ObjectDef, rows: list[_Row]) -> None:
    for r in rows:
        creating = r.existing is None
        bad = [f for f in r.values if not (obj.fields[f].createable if creating else obj.fields[f].updateable)]
        if bad:
            verb = "create" if creating else "update"
            r.result.fail("INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to {verb} fields: {', '.join(bad)}. Please check the security settings of this "
                          f"field and verify that it is read/write for your profile or permission set.", bad)


# ---------------------------------------------------------------------------- writing
def _write(store: Store, c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row], user_id: str, all_or_none: bool,
           lock_fault: Callable[[], bool] | None) -> None:
    creates = [r for r in rows if r.result.success and r.existing is None]
    new_ids = iter(store.new_ids(c, obj, len(creates)))
    stamp = store.stamp(c)
    # Field lists worked out once per call, not once per row: this loop runs 100k times in a Bulk job.
    # On create only fields Salesforce would not fill itself are required (FieldDef.required_on_create, the
    # rule mappings/check_org.py uses): a non-nillable field defaulted on create (Lead.Status, OwnerId) gets
    # its default. On update, nulling any non-nillable field is refused.
    required_new = [f.name for f in obj.fields.values() if f.required_on_create and f.computed is None]
    required_upd = [f.name for f in obj.fields.values() if not f.nillable and f.createable and f.computed is None]
    # A defaulted field the sandbox had no default for stays null on create; an update that leaves it alone
    # is not refused for it (in an org it holds the org's default).
    defaulted = {f.name for f in obj.fields.values() if f.defaulted_on_create}
    filled = {f.name: f.default if f.default is not None else f.picklist_values[0] for f in obj.fields.values()
              if not f.nillable and f.defaulted_on_create and f.computed is None and f.name != "OwnerId"
              and (f.default is not None or f.picklist_values)}
    computed = [f for f in obj.fields.values() if f.computed in ("full_name", "contract_end")]
    defaults = {f.name: f.default if f.type != "boolean" else int(f.default or 0) for f in obj.fields.values()
                if f.default is not None or f.type == "boolean"}
    full: dict[int, dict] = {}
    for i, r in enumerate(rows):
        if not r.result.success:
            continue
        if r.existing is None:
            r.result.id, r.result.created = next(new_ids), True
            full[i] = _new_record(obj, r, user_id, stamp, defaults)
            for name, value in filled.items():
                if full[i].get(name) is None:
                    full[i][name] = int(value) if isinstance(value, bool) else value
        else:
            full[i] = {**r.existing, **r.values, "LastModifiedDate": stamp, "SystemModstamp": stamp,
                       "LastModifiedById": user_id}
        if computed:
            _compute(computed, full[i])
        if r.existing is None:
            missing = [n for n in required_new if full[i].get(n) is None]
        else:
            missing = [n for n in required_upd if full[i].get(n) is None and (n in r.values or n not in defaulted)]
        if missing:
            r.result.fail("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        elif lock_fault and lock_fault():
            r.result.fail("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "
                                                f"{r.result.id}", [])
    _check_unique(c, obj, rows, full)
    for r in rows:
        if not r.result.success and r.result.created:  # a create that failed has no Id
            r.result.id, r.result.created = None, False
    if all_or_none and any(not r.result.success for r in rows):
        roll_back([r.result for r in rows])
        return
    for i, r in enumerate(rows):
        if r.result.success and r.result.created:
            _autonumber(store, c, obj, full[i])
    inserts = [full[i] for i, r in enumerate(rows) if r.result.success and r.result.created]
    cols = list(obj.fields)
    _execute(c, f'INSERT INTO "{obj.name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in cols)}) '
                f'VALUES ({", ".join("?" * len(cols))})', [[rec.get(n) for n in cols] for rec in inserts])
    # An update sets only the fields the request sent, the audit fields and the computed ones: setting
    # every column made SQLite rewrite every index entry of the row (half of a 10,000-row upsert's time).
    # Rows are grouped by the fields they send (one group in a Bulk job, whose rows share a header).
    always = {"LastModifiedDate", "SystemModstamp", "LastModifiedById", *(f.name for f in computed)}
    groups: dict[tuple[str, ...], list[list]] = {}
    for i, r in enumerate(rows):
        if r.result.success and not r.result.created:
            upd = tuple(n for n in cols if n != "Id" and (n in r.values or n in always))
            groups.setdefault(upd, []).append([full[i].get(n) for n in upd] + [full[i]["Id"]])
    for upd, params in groups.items():
        _execute(c, f'UPDATE "{obj.name}" SET {", ".join(f"{chr(34)}{n}{chr(34)} = ?" for n in upd)} '
                    f'WHERE "Id" = ?', params)


def _new_record(obj: ObjectDef, r: _Row, user_id: str, stamp: str, defaults: dict) -> dict:
    rec = {**defaults, **r.values}
    rec.update({"Id": r.result.id, "IsDeleted": 0, "CreatedDate": stamp, "LastModifiedDate": stamp,
                "SystemModstamp": stamp, "CreatedById": user_id, "LastModifiedById": user_id})
    if "OwnerId" in obj.fields and rec.get("OwnerId") is None:
        rec["OwnerId"] = user_id
    return rec


def _compute(computed: list, rec: dict) -> None:
    for f in computed:
        if f.computed == "full_name":
            rec[f.name] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p).strip() or None
        elif f.computed == "contract_end":
            rec[f.name] = _contract_end(rec.get("StartDate"), rec.get("ContractTerm"))


def _contract_end(start: str | None, months: int | None) -> str | None:
    if not start or months is None:
        return None
    d = dt.date.fromisoformat(start)
    y, m = divmod(d.year * 12 + d.month - 1 + int(months), 12)
    day = min(d.day, calendar.monthrange(y, m + 1)[1])
    return (dt.date(y, m + 1, day) - dt.timedelta(days=1)).isoformat()


def _autonumber(store: Store, c: sqlite3.Connection, obj: ObjectDef, rec: dict) -> None:
    for f in obj.fields.values():
        if f.computed == "autonumber":
            rec[f.name] = f"{store.bump(c, f'auto:{obj.name}.{f.name}'):08d}"


def _check_unique(c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row], full: dict[int, dict]) -> None:
    for f in (f for f in obj.fields.values() if f.unique):
        owners: dict[str, str] = {}
        values = [full[i].get(f.name) for i, r in enumerate(rows) if r.result.success and full[i].get(f.name)]
        for rid, val in _lookup(c, obj.name, f.name, values):
            owners[val.lower()] = rid
        for i, r in enumerate(rows):
            val = full.get(i, {}).get(f.name) if r.result.success else None
            if not val:
                continue
            owner = owners.get(val.lower())
            if owner is not None and owner != r.result.id:
                r.result.fail("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on record with id: "
                                                 f"{owner}", [f.name])
            else:
                owners[val.lower()] = r.result.id


def roll_back(results: list[RowResult]) -> None:
    """All-or-none: nothing was written; rows without their own error say they were rolled back."""
    for r in results:
        r.id, r.created = None, False
        if r.success:
            r.fail(*ROLLED_BACK)


def _execute(c: sqlite3.Connection, sql: str, params: list[list]) -> None:
    if params:
        c.executemany(sql, params)


def _delete(store: Store, c: sqlite3.Connection, obj: ObjectDef, rows: list[_Row], op: str, user_id: str,
            all_or_none: bool, lock_fault: Callable[[], bool] | None) -> None:
    wanted = [ids.to18(str(r.given_id or "")) for r in rows]
    state = {row[0]: row[1] for row in _lookup(c, obj.name, "Id", [w for w in wanted if w], live=False,
                                                cols='"Id", "IsDeleted"')}
    seen: set[str] = set()
    for r, rid in zip(rows, wanted):
        if not r.result.success:
            continue
        if rid in seen:
            r.result.fail("DUPLICATE_VALUE", f"Duplicate id in list: {rid}", [])
            continue
        seen.add(rid)
        if rid is None or rid[:3] != obj.key_prefix:
            r.result.fail("MALFORMED_ID", f"malformed id {r.given_id}", [])
        elif rid not in state:
            r.result.fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        elif state[rid] and op == "delete":
            r.result.id = rid
            r.result.fail("ENTITY_IS_DELETED", "entity is deleted", [])
        elif lock_fault and lock_fault():
            r.result.id = rid
            r.result.fail("UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {rid}", [])
        else:
            r.result.id = rid
    if all_or_none and any(not r.result.success for r in rows):
        roll_back([r.result for r in rows])
        return
    done = [[r.result.id] for r in rows if r.result.success]
    if op == "hardDelete":
        _execute(c, f'DELETE FROM "{obj.name}" WHERE "Id" = ?', done)
    else:
        stamp = store.stamp(c)
        _execute(c, f'UPDATE "{obj.name}" SET "IsDeleted" = 1, "LastModifiedDate" = ?, "SystemModstamp" = ?, '
                    f'"LastModifiedById" = ? WHERE "Id" = ?', [[stamp, stamp, user_id, d[0]] for d in done])
