"""Writing one batch of decisions: ERP in one transaction, Salesforce journaled, then the state.

Order matters for crash safety: (1) ERP transaction (new rows' keys journaled before it commits),
(2) Salesforce DML (journaled before the call; upserts/updates by key, so a repeat never duplicates),
(3) new baselines and conflicts in one state transaction. The caller moves the watermark after (3).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from crmbridge.errors import RunFailed
from crmbridge.secretref import redact
from crmbridge.sync import conflicts as cq
from crmbridge.sync import store
from crmbridge.sync.merge import merge
from crmbridge.sync.values import canon

log = logging.getLogger("crmbridge.sync")


class Writer:
    def __init__(self, owner, ctx, spec):
        self.o, self.ctx, self.spec, self.n = owner, ctx, spec, owner.n
        self.ext = spec.salesforce.external_id
        self.sf_ops: dict[str, list[tuple[str, dict]]] = {"upsert": [], "update": [], "delete": []}
        self.erp_updates: list[tuple[str, dict]] = []
        self.erp_inserts: list[tuple[str, dict, dict]] = []
        self.erp_flags: list[tuple[str, dict]] = []  # key -> {ERP column: value}, already in column terms
        self.recs: dict[str, store.Record] = {}
        self.old: dict[str, store.Record | None] = {}
        self.conflicts: list[tuple] = []
        self.applied: dict[str, list[int]] = {}  # key -> resolved conflicts written by this batch
        self.outcome: dict[str, str] = {}  # per record: unchanged, synced, conflict, pending, error, deleted
        self.frozen: dict[str, set[str]] = {}
        self.forced: dict[str, dict[str, tuple[int, Any]]] = {}

    def preload(self, keys: list[str]) -> None:
        self.frozen, self.forced = cq.for_keys(self.ctx.state, self.spec.name, keys)

    # ------------------------------------------------------------------ deciding
    def link_conflict(self, p) -> None:
        """An ERP row whose link is ambiguous or contradicted: queue it with both candidates, write nothing."""
        from crmbridge.sync.linking import LINK_FIELD
        from crmbridge.sync.objectsync import CONFLICT_SAMPLES

        for x in p.issues:
            self.conflicts.append((p.key, x.sf_id, LINK_FIELD, x.erp_text, x.sf_text, f"{x.kind}: {x.why}"))
            if len(self.n.conflict_samples) < CONFLICT_SAMPLES:
                self.n.conflict_samples.append({"key": p.key, "field": LINK_FIELD, "kind": x.kind, "erp": x.erp_text,
                                                "salesforce": x.sf_text, "why": x.why})
        self.old[p.key] = p.rec
        self.recs[p.key] = store.Record(p.key, None, p.rec.base if p.rec else {}, None, "pending")
        self.n.conflicts += len(p.issues)
        self.outcome[p.key] = "conflict"

    def decide(self, p, *, second_pass: bool = False) -> None:
        spec, ctx = self.spec, self.ctx
        if p.issues:
            self.link_conflict(p)
            return
        base = p.rec.base if p.rec else {}
        erp = {f: p.erp[f] for f in spec.fields} if p.erp is not None else None
        forced = {f: v for f, (_, v) in self.forced.get(p.key, {}).items()}
        d = merge(spec, base, erp, p.sf, frozen=self.frozen.get(p.key, set()), forced=forced,
                  to_sf_ok=ctx.to_sf_ok, to_erp_ok=ctx.to_erp_ok)
        payload = dict(d.to_sf)
        v = spec.deletes.salesforce_value
        if p.rec is not None and p.rec.status == "deleted" and spec.deletes.salesforce_field and ctx.to_sf_ok \
                and isinstance(v, bool):
            payload[spec.deletes.salesforce_field] = not v  # the row is back in the ERP: flag it active again
        if p.sf is not None and canon(p.sf.get(self.ext)) != p.key and ctx.to_sf_ok:
            payload[self.ext] = p.key  # the ERP key written back to Salesforce as its external ID
        erp_vals = dict(erp or {})
        if d.to_erp and not second_pass:
            erp_vals.update(d.to_erp)
            self.erp_updates.append((p.key, d.to_erp))
        self.old[p.key] = p.rec
        status = "ok"
        if payload:
            if spec.create.salesforce:
                payload[self.ext] = p.key
                self.sf_ops["upsert"].append((p.key, payload))
            elif p.sf_id:
                payload["Id"] = p.sf_id
                self.sf_ops["update"].append((p.key, payload))
            else:  # nothing to attach it to in Salesforce yet: try again next run
                status = "pending"
                self.n.skipped += 1
        for f, e, s, b in d.conflicts:
            self.conflicts.append((p.key, p.sf_id, f, e, s, b))
            if len(self.n.conflict_samples) < 20:
                self.n.conflict_samples.append({"key": p.key, "field": f, "kind": "both_changed", "erp": e,
                                                "salesforce": s, "why": f"last synced value: {b}"})
        if not (d.blocked_sf | d.blocked_erp) & set(forced):  # a blocked direction applies it next run
            self.applied[p.key] = [cid for cid, _ in self.forced.get(p.key, {}).values()] + list(p.link_applied)
        if erp is None:
            h = p.rec.erp_hash if p.rec else None
        elif d.to_erp or second_pass or "__hash__" not in p.erp:
            h = self.o.view.hash_of(erp_vals)
        else:
            h = p.erp["__hash__"]  # the row as read (the same hash as hash_of(erp_vals))
        if d.blocked_sf or d.blocked_erp:
            h = None  # a change this run's direction postponed: the row must not count as seen (re-read dedup)
        self.recs[p.key] = store.Record(p.key, p.sf_id, d.base if status == "ok" else base, h, status)
        if not payload and not d.to_erp and not d.conflicts and status == "ok":
            self.n.unchanged += 1
        self.n.conflicts += len(d.conflicts)
        self.outcome[p.key] = ("conflict" if d.conflicts else "pending" if status == "pending"
                               else "synced" if (payload or d.to_erp or second_pass) else "unchanged")

    def new_erp_row(self, sf_rec: dict) -> None:
        cols = {f: sf_rec.get(f) for f in self.spec.sf_fields if self.spec.owner_of(f) != "erp"}
        if self.ctx.to_erp_ok:
            self.erp_inserts.append((sf_rec["Id"], cols, sf_rec))
        else:
            self.n.skipped += 1
            self.n.records["pending"] += 1

    def delete(self, rec: store.Record, *, quiet: bool = False) -> None:
        spec = self.spec
        if quiet:  # no Salesforce record to flag: an upsert by key would create one
            pass
        elif spec.deletes.mode == "hard":
            if rec.sf_id:
                self.sf_ops["delete"].append((rec.erp_key, {"Id": rec.sf_id}))
        elif spec.deletes.salesforce_field:
            payload = {spec.deletes.salesforce_field: spec.deletes.salesforce_value}
            if spec.create.salesforce:
                payload[self.ext] = rec.erp_key
                self.sf_ops["upsert"].append((rec.erp_key, payload))
            elif rec.sf_id:
                payload["Id"] = rec.sf_id
                self.sf_ops["update"].append((rec.erp_key, payload))
        self.old[rec.erp_key] = rec
        self.recs[rec.erp_key] = store.Record(rec.erp_key, rec.sf_id, rec.base, None, "deleted")
        self.n.deleted += 1
        self.outcome[rec.erp_key] = "deleted"

    def deleted_in_salesforce(self, rec: store.Record) -> None:
        d = self.spec.deletes
        self.erp_flags.append((rec.erp_key, {d.erp_column: d.erp_value}))
        self.old[rec.erp_key] = rec
        # its own status: later ERP changes to this row must not be pushed to (or revive) a deleted record
        self.recs[rec.erp_key] = store.Record(rec.erp_key, rec.sf_id, rec.base, None, "sf_deleted")
        self.n.deleted += 1
        self.outcome[rec.erp_key] = "deleted"

    # ------------------------------------------------------------------ writing
    def commit(self) -> None:
        try:
            self._commit()
        finally:
            for o in self.outcome.values():
                self.n.records[o] += 1

    def _commit(self) -> None:
        if self.ctx.dry_run:
            self._count_dry()
            self.n.records["synced"] += len(self.erp_inserts)  # rows that would be created in the ERP
            return
        self._write_erp()
        for op in ("upsert", "update", "delete"):
            if self.sf_ops[op]:
                self._write_sf(op, self.sf_ops[op])
        with self.ctx.state.begin() as conn:
            store.save_records(conn, self.spec.name, list(self.recs.values()), self.o.bucketing,
                               old={k: self.old.get(k) for k in self.recs})
            cq.record(conn, self.spec.name, self.ctx.run_id, self.conflicts)
            cq.mark_applied(conn, [i for ids in self.applied.values() for i in ids])

    def _count_dry(self) -> None:
        n = self.n
        n.written_erp += len(self.erp_updates) + len(self.erp_inserts) + len(self.erp_flags)
        n.created_erp += len(self.erp_inserts)
        n.written_salesforce += sum(len(v) for v in self.sf_ops.values())

    def _write_erp(self) -> None:
        if not (self.erp_updates or self.erp_inserts or self.erp_flags):
            return
        from crmbridge.sync.objectsync import Pair, erp_values

        spec, erp, view = self.spec, self.ctx.erp, self.o.view
        table = erp.table(spec.erp.table)
        touch = spec.erp.changes.column
        new_keys: dict[str, str] = {}
        jid = None
        try:
            with erp.begin() as conn:
                if self.erp_inserts:
                    keys = erp.next_keys(conn, table, spec.erp.key[0], spec.erp.new_key, len(self.erp_inserts))
                    new_keys = {sid: k for (sid, _, _), k in zip(self.erp_inserts, keys)}
                    jid = store.journal_plan(self.ctx.state, self.ctx.run_id, spec.name, "erp", "insert",
                                             {"keys": new_keys}, len(keys))
                    rows = [{**erp_values(spec, cols, view.types), spec.erp.key[0]: new_keys[sid]}
                            for sid, cols, _ in self.erp_inserts]
                    erp.insert_rows(conn, table, rows, touch=touch)
                if self.erp_updates:
                    upd = [(view._split(k), erp_values(spec, vals, view.types)) for k, vals in self.erp_updates]
                    erp.update_rows(conn, table, spec.erp.key, upd, touch=touch)
                if self.erp_flags:
                    flags = [(view._split(k), cols) for k, cols in self.erp_flags]
                    erp.update_rows(conn, table, spec.erp.key, flags, touch=touch)
        except SQLAlchemyError as exc:
            if jid is not None:
                store.journal_done(self.ctx.state, jid, "failed")
            raise RunFailed(f"sync {spec.name}: ERP write failed, nothing of this batch was committed: "
                            f"{type(exc).__name__}: {redact(getattr(exc, 'orig', exc))}",
                            hint="fix the ERP side and run `crmbridge sync` again") from None
        self.n.written_erp += len(self.erp_updates) + len(self.erp_inserts) + len(self.erp_flags)
        self.n.created_erp += len(self.erp_inserts)
        if new_keys:
            store.journal_done(self.ctx.state, jid, "done", {"inserted": len(new_keys)})
            rows = view.by_keys(list(new_keys.values()))
            for sid, cols, sf_rec in self.erp_inserts:
                k = new_keys[sid]
                if k in rows:  # decided like any linked pair: writes the new key back to Salesforce
                    self.decide(Pair(k, None, rows[k], sf_rec, sid), second_pass=True)

    def _write_sf(self, op: str, items: list[tuple[str, dict]]) -> None:
        spec, sf = self.spec, self.ctx.sf
        keys = [k for k, _ in items]
        jid = store.journal_plan(self.ctx.state, self.ctx.run_id, spec.name, "salesforce", op, {"keys": keys}, len(keys))
        kind = op
        if op == "upsert":
            linked = sum(1 for k in keys if (self.old.get(k) is not None and self.old[k].sf_id)
                         or (k in self.recs and self.recs[k].sf_id))
            kind = "update" if 2 * linked >= len(keys) else "create"
        with self.o.paces.used(sf, kind):
            results = sf.dml(op, spec.salesforce.object, [p for _, p in items], keys=keys,
                             external_id_field=self.ext if op == "upsert" else None)
        ok = 0
        for (key, _), res in zip(items, results):
            rec = self.recs.get(key)
            if res.success:
                ok += 1
                self.n.written_salesforce += 1
                self.n.created_salesforce += 1 if res.created else 0
                if rec is not None and res.id and op != "delete":
                    rec.sf_id = res.id
            else:
                msg = f"{res.error_code}: {res.message}"
                self.n.error(key, msg)
                self.outcome[key] = "error"
                self.applied.pop(key, None)  # a resolved conflict stays resolved until really written
                old = self.old.get(key)
                self.recs[key] = store.Record(key, old.sf_id if old else (rec.sf_id if rec else None),
                                              old.base if old else {}, None, "error", msg)
        store.journal_done(self.ctx.state, jid, "done", {"succeeded": ok, "failed": len(items) - ok})
        log.info("sync %s: %s %d record(s) in %s, %d failed", spec.name, op, len(items), spec.salesforce.object,
                 len(items) - ok)
