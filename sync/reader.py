"""Reading what changed since the last sync, on each side.

ERP: rows whose change column is at or past the stored watermark (ordered by it, so the watermark can
move after each committed batch), or every row whose content hash differs from the stored one.
Salesforce: records whose ``SystemModstamp`` is at or past the stored watermark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from crmbridge.connectors.erp import ErpConnector, watermark_param, watermark_value
from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.seen import settled_line, stamp_text
from crmbridge.sync.values import COMPUTE, canon, row_hasher


@dataclass
class ErpBatch:
    rows: dict[str, dict]  # erp key -> {sf field: raw value}
    hashes: dict[str, str]
    watermark: str | None = None  # change-column value to store once this batch is committed
    stamps: dict[str, Any] = field(default_factory=dict)  # erp key -> change-column value, rows read
    known: dict[str, str] = field(default_factory=dict)  # overlap rows of a version already synced (sync/seen.py)


@dataclass
class ErpView:
    """One object's ERP relation and the columns the sync needs from it."""

    spec: ObjectSpec
    erp: ErpConnector
    src: Any = None
    columns: list[str] = field(default_factory=list)
    types: dict[str, type | None] = field(default_factory=dict)
    _plan: list = field(default_factory=list)
    _hasher: Any = None  # per field: (sf field, ERP column or None, compute fn, its args)
    settled: datetime | None = None  # this run's settled line (sync/seen.py), for timestamp change columns

    def __post_init__(self):
        e = self.spec.erp
        self.src = self.erp.source(table=e.table, query=e.query)
        cols = list(e.key)
        for spec in self.spec.fields.values():
            cols += [spec.erp] if spec.erp else spec.compute_args[1]
        cols += [link.erp for link in self.spec.link_on]
        if e.changes.column:
            cols.append(e.changes.column)
        self.columns = list(dict.fromkeys(cols))
        self._hasher = row_hasher(self.spec.fields)
        self._plan = [(sf, spec.erp, None, ()) if spec.erp else (sf, None, COMPUTE[spec.compute_args[0]],
                                                                  spec.compute_args[1])
                      for sf, spec in self.spec.fields.items()]
        self.erp.check_columns(self.src, self.columns, f"sync.yml object {self.spec.name}")
        self.types = self.erp.python_types(self.src)

    def key_of(self, row: dict) -> str:
        return "|".join(key_part(row[k]) for k in self.spec.erp.key)

    def values(self, row: dict) -> dict[str, Any]:
        """ERP row -> {Salesforce field: raw value} (computed fields evaluated here)."""
        out: dict[str, Any] = {}
        for sf, col, fn, args in self._plan:
            out[sf] = row[col] if fn is None else fn(*[row[a] for a in args])
        return out

    def hash_of(self, vals: dict[str, Any]) -> str:
        """Content hash of {Salesforce field: raw value} (mapped fields only; ``__row__`` and the like
        are left out)."""
        if any(k[:2] == "__" for k in vals):
            vals = {k: v for k, v in vals.items() if k[:2] != "__"}
        return self._hasher(vals)

    def changed(self, since: str | None, stored_hashes: dict[str, str | None] | None, batch: int,
                all_keys: set[str] | None = None, seen: dict[str, str] | None = None) -> Iterator[ErpBatch]:
        """Batches of changed rows. Hash mode also fills ``all_keys`` (for delete detection). ``seen``:
        versions already synced (sync/seen.py); with it, the overlap window is first read as keys and
        timestamps only, and only its other rows are read in full."""
        e = self.spec.erp
        if e.changes.column:
            col = e.changes.column
            param = watermark_param(since, e.changes.overlap_seconds)
            horizon = self._horizon()  # before the read: transactions open now may commit rows behind it
            self.settled = self._settled(horizon)
            top_wm = watermark_param(since, 0)
            after = seen is not None and isinstance(top_wm, datetime)
            if after:  # the window [param, top_wm] here, the rows past the watermark below
                yield self._window(param, top_wm, seen, batch)
            q_rows = self.erp.read(self.src, self.columns, since_column=col, since=top_wm if after else param,
                                   batch=batch, order_by=col, after=after)
            for rows in q_rows:
                b = self._batch(rows)
                b.stamps = {k: v["__row__"][col] for k, v in b.rows.items()}
                top = max((r[col] for r in rows if r[col] is not None), default=None)
                if isinstance(top, datetime) and horizon is not None:
                    h = horizon.replace(tzinfo=None) if top.tzinfo is None else horizon
                    if h.tzinfo is None and top.tzinfo is not None:
                        h = h.replace(tzinfo=top.tzinfo)
                    top = min(top, h)
                b.watermark = watermark_value(top) if top is not None else since
                yield b
            return
        for rows in self.erp.read(self.src, self.columns, batch=batch):
            b = self._batch(rows)
            if all_keys is not None:
                all_keys.update(b.rows)
            keep = [k for k, h in b.hashes.items() if stored_hashes is None or stored_hashes.get(k) != h]
            if keep:
                yield ErpBatch({k: b.rows[k] for k in keep}, {k: b.hashes[k] for k in keep})

    def _window(self, lo: datetime, hi: datetime, seen: dict[str, str], batch: int) -> ErpBatch:
        """The overlap window's rows: versions in ``seen`` as keys only, the others read in full."""
        col = self.spec.erp.changes.column
        known: dict[str, str] = {}
        other: list[str] = []
        key = self.spec.erp.key
        at = len(key)  # the change column's place in a narrow row (a key column itself: read twice)
        for rows in self.erp.read(self.src, [*key, col], since_column=col, since=lo, until=hi, batch=batch,
                                  as_rows=True):
            for r in rows:
                k = key_part(r[0]) if at == 1 else "|".join([key_part(v) for v in r[:at]])
                v = r[at]
                if v is not None and seen.get(k) == stamp_text(v):
                    known[k] = seen[k]
                else:
                    other.append(k)
        rows: list[dict] = []
        if other:  # by the window's range again, not by key: a key IN list is a table scan on SQLite
            want = set(other)
            for part in self.erp.read(self.src, self.columns, since_column=col, since=lo, until=hi, batch=batch):
                rows += [r for r in part if self.key_of(r) in want]
        b = self._batch(rows)
        b.stamps = {k: v["__row__"][col] for k, v in b.rows.items()}
        b.known = known
        return b

    def _settled(self, horizon: datetime | None) -> datetime | None:
        if not self._stamped():
            return None
        col = self.src.c[self.spec.erp.changes.column]
        clock = self.erp.clock(aware=bool(getattr(col.type, "timezone", False)))
        return settled_line(clock, horizon, self.spec.erp.changes.overlap_seconds)

    def _stamped(self) -> bool:
        """Whether the change column holds timestamps (not row versions or dates)."""
        try:
            return self.src.c[self.spec.erp.changes.column].type.python_type is datetime
        except NotImplementedError:
            return False

    def _horizon(self) -> datetime | None:
        """The oldest open ERP transaction's start, for timestamp change columns (see ErpConnector)."""
        col = self.src.c[self.spec.erp.changes.column]
        if not self._stamped():
            return None
        aware = bool(getattr(col.type, "timezone", False))
        h = self.erp.open_transactions_since(aware=aware)
        if h is not None:
            age = (datetime.now(h.tzinfo) - h).total_seconds() if h.tzinfo else None
            if age is not None and age > 3600:
                import logging

                logging.getLogger("crmbridge.sync").warning(
                    "sync %s: an ERP transaction open since %s holds the change watermark back", self.spec.name, h)
        return h

    def by_keys(self, keys: list[str]) -> dict[str, dict]:
        """Current values of the rows with these keys (rows that are gone are simply absent)."""
        return self._batch(self._rows_by_keys(keys)).rows

    def _rows_by_keys(self, keys: list[str]) -> list[dict]:
        if not keys:
            return []
        return self.erp.read_by_keys(self.src, self.columns, self.spec.erp.key, [self._split(k) for k in keys])

    def _split(self, key: str) -> tuple:
        vals = key.split("|") if len(self.spec.erp.key) > 1 else [key]
        out = []
        for col, v in zip(self.spec.erp.key, vals):
            t = self.types.get(col)
            out.append(int(v) if t is int else v)
        return tuple(out)

    def _batch(self, rows: list[dict]) -> ErpBatch:
        out, hashes = {}, {}
        for r in rows:
            k = self.key_of(r)
            v = self.values(r)
            h = hashes[k] = self.hash_of(v)
            v["__row__"] = r
            v["__hash__"] = h  # the decision reuses it when nothing is written to the ERP row
            out[k] = v
        return ErpBatch(out, hashes)

    def all_keys(self, batch: int = 50_000) -> set[str]:
        keys: set[str] = set()
        single = len(self.spec.erp.key) == 1
        for part in self.erp.read_keys(self.src, self.spec.erp.key, batch):
            if single:
                keys.update(key_part(t[0]) for t in part)
            else:
                keys.update("|".join([key_part(v) for v in t]) for t in part)
        return keys


def key_part(v: Any) -> str:
    """One key column as text (fast path for strings: whole tables of keys go through here)."""
    if type(v) is str:
        return v
    c = canon(v)
    return "" if c is None else c


# --------------------------------------------------------------------------- Salesforce
def soql_literal(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sf_select_fields(spec: ObjectSpec) -> list[str]:
    cols = ["Id", "SystemModstamp", spec.salesforce.external_id, *spec.sf_fields, *spec.create_when,
            *[link.salesforce for link in spec.link_on]]
    return list(dict.fromkeys(cols))


def soql_datetime(stamp: str) -> str:
    """A SystemModstamp as a SOQL datetime literal (whole seconds, UTC; ``>=`` re-reads the boundary)."""
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("+0000", "+00:00"))
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sf_changed(sf, spec: ObjectSpec, since: str | None, fields: list[str] | None = None
               ) -> tuple[dict[str, dict], str | None]:
    """Records changed since ``since`` (all records on the first run) and the new watermark."""
    soql = f"SELECT {', '.join(fields or sf_select_fields(spec))} FROM {spec.salesforce.object}"
    if since:
        soql += f" WHERE SystemModstamp >= {soql_datetime(since)}"
    soql += " ORDER BY SystemModstamp"
    out: dict[str, dict] = {}
    top = since
    for rec in sf.query(soql):
        rec = flatten(rec)
        out[rec["Id"]] = rec
        top = rec.get("SystemModstamp") or top
    return out, top


def sf_deleted(sf, spec: ObjectSpec, since: str | None) -> list[str]:
    """Ids of records deleted in Salesforce since ``since`` (queryAll sees the recycle bin)."""
    soql = f"SELECT Id FROM {spec.salesforce.object} WHERE IsDeleted = true"
    if since:
        soql += f" AND SystemModstamp >= {soql_datetime(since)}"
    return [r["Id"] for r in sf.query(soql, include_deleted=True)]


def sf_where_in(sf, spec: ObjectSpec, field_name: str, values: list[Any], fields: list[str] | None = None
                ) -> list[dict]:
    """Records whose ``field_name`` is one of ``values`` (chunked to keep SOQL short)."""
    out: list[dict] = []
    vals = [v for v in dict.fromkeys(values) if v not in (None, "")]
    for i in range(0, len(vals), 200):
        lits = ", ".join(soql_literal(v) for v in vals[i:i + 200])
        soql = (f"SELECT {', '.join(fields or sf_select_fields(spec))} FROM {spec.salesforce.object} "
                f"WHERE {field_name} IN ({lits})")
        out.extend(flatten(r) for r in sf.query(soql))
    return out


def flatten(rec: dict) -> dict:
    """Parent fields (``Account.ERP_Customer_Code__c``) come back nested; key them by their dotted path."""
    out = {}
    for k, v in rec.items():
        if k == "attributes":
            continue
        if isinstance(v, dict):
            for sk, sv in flatten(v).items():
                out[f"{k}.{sk}"] = sv
        else:
            out[k] = v
    return out
