"""One sync object (an ERP table <-> a Salesforce object), batch by batch.

Per batch: read both sides' current values, decide per field (``merge``), then write the ERP in one
transaction, Salesforce through journaled DML, and only then the new baselines and the watermark.
A run killed anywhere in between repeats at most one batch, and repeating it writes nothing twice:
Salesforce writes are upserts/updates by key, ERP inserts are journaled with their keys first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from crmbridge.connectors.erp import watermark_param
from crmbridge.state import get_watermark, set_watermark
from crmbridge.sync import conflicts as cq
from crmbridge.sync import store
from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.deletes import ErpCounts, bucketing, find_deletes
from crmbridge.sync.linking import LinkPlan, plan_links
from crmbridge.sync.merge import creates_in_erp
from crmbridge.sync.paces import JobPaces
from crmbridge.sync.reader import ErpView, sf_changed, sf_deleted, sf_select_fields, sf_where_in
from crmbridge.sync.seen import SeenTracker
from crmbridge.sync.values import canon, to_erp

log = logging.getLogger("crmbridge.sync")


@dataclass
class Ctx:
    """The narrow parts one object's sync needs."""

    state: Any  # Engine
    erp: Any  # ErpConnector
    sf: Any  # SalesforceConnector or None
    run_id: str
    dry_run: bool = False
    to_sf_ok: bool = True
    to_erp_ok: bool = True
    batch: int = 10_000
    heartbeat: Any = None  # called after each committed batch (keeps the run lock fresh)
    scopes: dict = field(default_factory=dict)  # object name -> ResolvedScope (sync/scope.py)


@dataclass
class Counts:
    read_erp: int = 0
    read_salesforce: int = 0
    written_salesforce: int = 0
    written_erp: int = 0
    created_salesforce: int = 0
    created_erp: int = 0
    unchanged: int = 0
    conflicts: int = 0
    errors: int = 0
    skipped: int = 0
    deleted: int = 0
    error_samples: list = field(default_factory=list)
    conflict_samples: list = field(default_factory=list)  # what a dry run shows before anything is written
    delete_check: dict = field(default_factory=dict)  # how deletes were looked for (sync/deletes.py)
    # every record looked at ends in exactly one of these (rows in = rows out)
    records: dict = field(default_factory=lambda: dict.fromkeys(
        ("unchanged", "synced", "conflict", "pending", "skipped", "error", "deleted"), 0))

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["records"] = dict(self.records)
        d["read"] = self.read_erp + self.read_salesforce
        d["written"] = self.written_salesforce + self.written_erp
        d["error_samples"] = self.error_samples[:10]
        d["conflict_samples"] = self.conflict_samples[:CONFLICT_SAMPLES]
        return d

    def error(self, key: str, msg: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append({"key": key, "error": msg})


CONFLICT_SAMPLES = 20


@dataclass
class Pair:
    key: str
    rec: store.Record | None
    erp: dict | None  # {sf field: raw} plus "__row__"
    sf: dict | None
    sf_id: str | None = None
    issues: list | None = None  # link conflicts (sync/linking.py): nothing is written for this row
    link_applied: list = field(default_factory=list)  # resolved link conflicts this link carries out


class ObjectSync:
    use_seen = True  # skip overlap rows of versions already synced (sync/seen.py); False: read them all

    def __init__(self, ctx: Ctx, spec: ObjectSpec):
        self.ctx, self.spec, self.n = ctx, spec, Counts()
        self.view = ErpView(spec, ctx.erp)
        self.bucketing = bucketing(self.view)  # delete-check buckets, counted in the state as rows are saved
        self.paces = JobPaces(ctx.state, spec.name, ctx.dry_run)
        self.seen = SeenTracker(ctx.state, spec.name, f"sync:{spec.name}:erp_seen")  # overlap re-reads
        self.scope_erp = f"sync:{spec.name}:erp"
        self.scope_sf = f"sync:{spec.name}:salesforce"
        self.reads_sf = spec.reads_salesforce and ctx.sf is not None
        self.scope = ctx.scopes.get(spec.name)
        self.sf_cols = list(dict.fromkeys([*sf_select_fields(spec), *(self.scope.fields if self.scope else [])]))
        self.blocked_sf: set[str] = set()  # records in a link conflict (never created in the ERP)
        self._linked_now: dict[str, str] = {}  # sf id -> erp key linked in this run
        self._link_todo: dict[str, list[int]] = {}  # erp key -> resolved link conflicts to mark applied
        self._seen_erp: set[str] = set()  # ERP rows already decided in this run

    # ------------------------------------------------------------------ driver
    def run(self) -> Counts:
        c, spec = self.ctx, self.spec
        if not c.dry_run:
            self.recover()
        sf_changes, sf_wm, sf_gone = {}, None, []
        if self.reads_sf:
            since = get_watermark(c.state, self.scope_sf)
            sf_changes, sf_wm = sf_changed(c.sf, spec, since, self.sf_cols)
            self.n.read_salesforce += len(sf_changes)
            if spec.deletes.erp_column and c.to_erp_ok and since:
                sf_gone = sf_deleted(c.sf, spec, since)
        hash_mode = bool(spec.erp.changes.hash)
        stored = store.all_hashes(c.state, spec.name) if hash_mode else None
        want_deletes = spec.deletes.mode != "ignore" and c.to_sf_ok
        all_keys: set[str] | None = set() if (hash_mode and want_deletes) else None
        erp_counts = None
        if want_deletes and all_keys is None and self.bucketing is not None and not self.reads_sf:
            # an object the sync never writes to the ERP: count the ERP's keys per bucket meanwhile
            erp_counts = ErpCounts(c.erp, self.view.src, spec.erp.key)
        # Rows waiting for a Salesforce counterpart are looked at again only where Salesforce is not read:
        # where it is, a new or changed Salesforce record finds them through link_on / the external ID.
        waiting = ("error",) if self.reads_sf else ("pending", "error")
        retry = set(store.keys_with_status(c.state, spec.name, waiting))
        retry |= set(cq.keys_to_apply(c.state, spec.name))
        ordered = sorted(retry)
        for i in range(0, len(ordered), c.batch):
            self.process(self.view.by_keys(ordered[i:i + c.batch]), sf_changes)
        erp_wm = get_watermark(c.state, self.scope_erp)
        memory = self.seen.memory(erp_wm) if self.use_seen and not hash_mode else None
        for b in self.view.changed(erp_wm, stored, c.batch, all_keys, memory):
            todo = {k: v for k, v in b.rows.items() if k not in retry}
            recs = None
            if not hash_mode:
                known = {k: s for k, s in b.known.items() if k not in retry}
                self._count_unchanged(list(known))
                self.seen.note(known, {k: b.stamps[k] for k in todo if k in b.stamps}, b.hashes)
                todo, recs = self._drop_rereads(todo, b.hashes)
            self.process(todo, sf_changes, recs)
            if not c.dry_run and c.to_sf_ok and b.watermark:
                set_watermark(c.state, self.scope_erp, b.watermark)
            if c.heartbeat:
                c.heartbeat()
        if self.use_seen and not hash_mode and not c.dry_run and c.to_sf_ok:
            wm = get_watermark(c.state, self.scope_erp)
            self.seen.finish(wm, watermark_param(wm, spec.erp.changes.overlap_seconds), self.view.settled)
        if sf_changes:
            self.process_sf_only(sf_changes)
        if want_deletes:
            if all_keys is not None:  # hash mode read every key anyway
                self.deletions(all_keys)
                self.n.delete_check = {"mode": "full", "keys_read": len(all_keys)}
            else:
                self.n.delete_check = find_deletes(self, erp_counts)
        if sf_gone:
            self.deleted_in_salesforce(sf_gone)
        if not c.dry_run and c.to_erp_ok and sf_wm and self.n.errors == 0:
            set_watermark(c.state, self.scope_sf, sf_wm)
        self.paces.save()
        return self.n

    def _drop_rereads(self, rows: dict[str, dict], hashes: dict[str, str]
                      ) -> tuple[dict[str, dict], dict[str, store.Record]]:
        """Rows read again by the overlap window whose content is what the sync last saw (synced, same
        content hash): counted as unchanged and not looked at further (content-hash deduplication,
        docs/sync.md). Returns the other rows and the state's records of them (one lookup per key)."""
        recs = store.load_records(self.ctx.state, self.spec.name, list(rows))
        same = [k for k in rows if (r := recs.get(k)) is not None and r.status == "ok" and r.erp_hash
                and r.erp_hash == hashes[k]]
        self._count_unchanged(same)
        self.seen.synced.update((k, hashes[k]) for k in same)
        if not same:
            return rows, recs
        drop = set(same)
        return {k: v for k, v in rows.items() if k not in drop}, {k: r for k, r in recs.items() if k not in drop}

    def _count_unchanged(self, keys: list[str]) -> None:
        self.n.read_erp += len(keys)
        self.n.unchanged += len(keys)
        self.n.records["unchanged"] += len(keys)
        self._seen_erp.update(keys)

    # ------------------------------------------------------------------ gathering pairs
    def process(self, erp_rows: dict[str, dict], sf_changes: dict[str, dict],
                recs: dict[str, store.Record] | None = None) -> None:
        """Decide and write these ERP rows. ``recs``: their state records, if already loaded."""
        if not erp_rows:
            return
        self.n.read_erp += len(erp_rows)
        self._seen_erp.update(erp_rows)
        if recs is None:
            recs = store.load_records(self.ctx.state, self.spec.name, list(erp_rows))
        gone = {k for k, r in recs.items() if r.status == "sf_deleted" and k in erp_rows}
        self.n.skipped += len(gone)  # its Salesforce record was deleted: the ERP row no longer syncs
        self.n.records["skipped"] += len(gone)
        pairs = [Pair(k, recs.get(k), v, None, recs[k].sf_id if k in recs else None)
                 for k, v in erp_rows.items() if k not in gone]
        if self.reads_sf or not self.spec.create.salesforce:
            self._attach_sf(pairs, sf_changes)
        self.apply(pairs, [])

    def _attach_sf(self, pairs: list[Pair], sf_changes: dict[str, dict]) -> None:
        """Find each ERP row's Salesforce record: linked Id, then external ID, then ``link_on``."""
        spec, sf = self.spec, self.ctx.sf
        if sf is None:
            return
        fetch = [p.sf_id for p in pairs if p.sf_id and p.sf_id not in sf_changes]
        got = {r["Id"]: r for r in sf_where_in(sf, spec, "Id", fetch, self.sf_cols)} if self.reads_sf else {}
        for p in pairs:
            if p.sf_id:
                p.sf = sf_changes.pop(p.sf_id, None) or got.get(p.sf_id)
        unlinked = [p for p in pairs if not p.sf_id]
        if unlinked:
            found = {canon(r.get(spec.salesforce.external_id)): r for r in
                     sf_where_in(sf, spec, spec.salesforce.external_id, [p.key for p in unlinked], self.sf_cols)}
            for p in unlinked:
                self._link(p, found.get(p.key), sf_changes)
        unlinked = [p for p in pairs if not p.sf_id]
        if spec.link_on and unlinked:
            rows = {p.key: p.erp["__row__"] for p in unlinked}
            sf_recs = self._sf_candidates(list(rows.values()))
            if not sf_recs:
                return
            erp_all = {k: v["__row__"] for k, v in self._erp_candidates(list(sf_recs.values())).items()}
            erp_all.update(rows)
            plan = self._plan(erp_all, sf_recs)
            self.blocked_sf |= plan.blocked_sf
            for p in unlinked:
                if p.key in plan.links:
                    self._link(p, sf_recs[plan.links[p.key]], sf_changes)
                elif p.key in plan.issues:
                    p.issues = plan.issues[p.key]
                p.link_applied = self._link_todo.pop(p.key, [])  # decisions carried out (link or apart)

    def _link(self, p: Pair, rec: dict | None, sf_changes: dict) -> None:
        if rec is not None:
            sf_changes.pop(rec["Id"], None)
            p.sf_id, p.sf = rec["Id"], (rec if self.reads_sf else None)
            self._linked_now[rec["Id"]] = p.key

    # ------------------------------------------------------------------ link_on (sync/linking.py)
    def _sf_candidates(self, erp_rows: list[dict]) -> dict[str, dict]:
        """Every record matching one of these ERP rows on some ``link_on`` rule."""
        out: dict[str, dict] = {}
        for rule in self.spec.link_on:
            vals = [r.get(rule.erp) for r in erp_rows if r.get(rule.erp) not in (None, "")]
            if vals:
                out.update((r["Id"], r) for r in sf_where_in(self.ctx.sf, self.spec, rule.salesforce, vals,
                                                             self.sf_cols))
        return out

    def _erp_candidates(self, sf_recs: list[dict]) -> dict[str, dict]:
        """Every ERP row matching one of these records on some ``link_on`` rule (key -> values)."""
        out: dict[str, dict] = {}
        for rule in self.spec.link_on:
            vals = [r.get(rule.salesforce) for r in sf_recs if r.get(rule.salesforce) not in (None, "")]
            if vals:
                out.update(self.view._batch(self.ctx.erp.find_by(self.view.src, self.view.columns, rule.erp,
                                                                 vals)).rows)
        return out

    def _plan(self, erp_rows: dict[str, dict], sf_recs: dict[str, dict]) -> LinkPlan:
        st, name = self.ctx.state, self.spec.name
        known = store.load_records(st, name, list(erp_rows))
        taken_erp = {k for k, r in known.items() if r.sf_id and r.status != "pending"}
        taken_sf = {sid: r.erp_key for sid, r in store.load_by_sf_ids(st, name, list(sf_recs)).items()}
        for sid, r in sf_recs.items():  # a record naming an ERP key in its external ID is linked to that row
            v = canon(r.get(self.spec.salesforce.external_id))
            if v and sid not in taken_sf:
                taken_sf[sid] = v
        taken_sf.update(self._linked_now)
        taken_erp |= set(self._linked_now.values())
        decisions, todo = cq.link_decisions(st, name, list(erp_rows))
        self._link_todo.update(todo)
        return plan_links(self.spec, erp_rows, sf_recs, taken_sf=taken_sf, taken_erp=taken_erp, decisions=decisions)

    def _link_from_sf(self, rest: dict[str, dict]) -> list[Pair]:
        """Changed records with no link yet: link each to its ERP row where that is unambiguous; queue a
        conflict where it is not. Linked and conflicting records leave ``rest``."""
        erp_found = self._erp_candidates(list(rest.values()))
        if not erp_found:
            return []
        rows = {k: v["__row__"] for k, v in erp_found.items()}
        sf_recs = self._sf_candidates(list(rows.values()))
        sf_recs.update(rest)
        plan = self._plan(rows, sf_recs)
        recs = store.load_records(self.ctx.state, self.spec.name, list(erp_found))
        pairs: list[Pair] = []
        for k, sid in plan.links.items():
            if sid in rest:
                pairs.append(Pair(k, recs.get(k), erp_found[k], rest.pop(sid), sid,
                                  link_applied=self._link_todo.pop(k, [])))
                self._linked_now[sid] = k
                self._seen_erp.add(k)
        for k, issues in plan.issues.items():
            if k not in self._seen_erp and any(x.sf_id in rest for x in issues):
                pairs.append(Pair(k, recs.get(k), erp_found[k], None, None, issues=issues))
                self._seen_erp.add(k)
        self.blocked_sf |= plan.blocked_sf
        return pairs

    def in_scope(self, rec: dict) -> bool:
        """Whether a Salesforce record may become an ERP row: ``create_when`` and the definition's scope."""
        return creates_in_erp(self.spec, rec) and (self.scope is None or self.scope.meets(rec))

    def process_sf_only(self, sf_changes: dict[str, dict]) -> None:
        """Salesforce changes with no ERP change in this run: linked, linkable, or new for the ERP."""
        spec, ext = self.spec, self.spec.salesforce.external_id
        index = store.load_by_sf_ids(self.ctx.state, spec.name, list(sf_changes))
        by_key: dict[str, dict] = {}
        for sid, rec in sf_changes.items():
            key = index[sid].erp_key if sid in index else canon(rec.get(ext))
            if key:
                by_key[key] = rec
        erp_rows = self.view.by_keys(list(by_key)) if by_key else {}
        recs = store.load_records(self.ctx.state, spec.name, list(erp_rows))
        pairs, seen = [], set()
        for key, row in erp_rows.items():
            rec = by_key[key]
            seen.add(rec["Id"])
            pairs.append(Pair(key, recs.get(key), row, rec, rec["Id"]))
        # a linked record whose ERP row is gone is never "new": it must not re-create a deleted ERP row
        rest = {sid: r for sid, r in sf_changes.items() if sid not in seen and sid not in index}
        orphans = sum(1 for sid in sf_changes if sid in index and sid not in seen)
        self.n.skipped += orphans
        self.n.records["skipped"] += orphans
        if spec.link_on and rest:
            pairs += self._link_from_sf(rest)
        blocked = [sid for sid in rest if sid in self.blocked_sf]
        for sid in blocked:  # in a link conflict: never created in the ERP while it is open
            del rest[sid]
        self.n.records["conflict"] += len(blocked)
        self.n.read_erp += len(pairs)
        new = [r for r in rest.values() if spec.create.erp and self.in_scope(r)]
        self.n.skipped += len(rest) - len(new)
        self.n.records["skipped"] += len(rest) - len(new)  # not in scope (create_when / the definition)
        self.apply(pairs, new)

    # ------------------------------------------------------------------ deciding and writing
    def apply(self, pairs: list[Pair], new_in_erp: list[dict]) -> None:
        from crmbridge.sync.writer import Writer

        w = Writer(self, self.ctx, self.spec)
        w.preload([p.key for p in pairs])
        for p in pairs:
            w.decide(p)
        for r in new_in_erp:
            w.new_erp_row(r)
        w.commit()
        if not self.ctx.dry_run:
            self.seen.note_synced(w.recs.values())

    def deletions(self, present: set[str]) -> None:
        """Linked rows gone from the ERP: flag (soft) or delete (hard) the Salesforce record."""
        from crmbridge.sync.writer import Writer

        gone = [k for k in store.keys_with_status(self.ctx.state, self.spec.name, ("ok",)) if k not in present]
        for i in range(0, len(gone), self.ctx.batch):
            w = Writer(self, self.ctx, self.spec)
            recs = store.load_records(self.ctx.state, self.spec.name, gone[i:i + self.ctx.batch])
            for rec in recs.values():
                w.delete(rec)
            w.commit()

    def deletions_of(self, gone: list[str]) -> None:
        """Rows gone from the ERP (found by sync/deletes.py): linked ones flag or delete their Salesforce
        record; rows that never got one (pending, rejected before creation) are just marked deleted."""
        from crmbridge.sync.writer import Writer

        for i in range(0, len(gone), self.ctx.batch):
            w = Writer(self, self.ctx, self.spec)
            for rec in store.load_records(self.ctx.state, self.spec.name, gone[i:i + self.ctx.batch]).values():
                w.delete(rec, quiet=not (rec.sf_id and rec.status in ("ok", "error")))
            w.commit()

    def deleted_in_salesforce(self, sf_ids: list[str]) -> None:
        """Linked records deleted in Salesforce: flag the ERP row (``deletes.erp_column``), never delete it."""
        from crmbridge.sync.writer import Writer

        index = store.load_by_sf_ids(self.ctx.state, self.spec.name, sf_ids)
        w = Writer(self, self.ctx, self.spec)
        for rec in index.values():
            if rec.status != "sf_deleted":
                w.deleted_in_salesforce(rec)
        w.commit()

    def recover(self) -> None:
        """Finish what a killed run left half done: link ERP rows it inserted but never recorded."""
        for entry in store.unfinished_journal(self.ctx.state, self.spec.name):
            if entry.side == "erp" and entry.operation == "insert":
                new = entry.payload.get("keys", {})  # sf_id -> erp key
                rows = self.view.by_keys(list(new.values()))
                recs = []
                for sid, key in new.items():
                    if key in rows:
                        vals = rows[key]
                        base = {f: canon(vals[f]) for f in self.spec.fields}
                        recs.append(store.Record(key, sid, base, self.view.hash_of(
                            {f: vals[f] for f in self.spec.fields}), "pending"))
                with self.ctx.state.begin() as conn:
                    store.save_records(conn, self.spec.name, recs, self.bucketing)
                    store.journal_done(self.ctx.state, entry.id, "recovered", {"linked": len(recs)}, conn=conn)
                log.warning("sync %s: recovered %d ERP row(s) inserted by killed run %s", self.spec.name,
                            len(recs), entry.run_id)
            else:
                store.journal_done(self.ctx.state, entry.id, "abandoned")


def erp_values(spec: ObjectSpec, vals: dict[str, Any], types: dict) -> dict[str, Any]:
    """{Salesforce field: value} -> {ERP column: value typed for that column}."""
    return {spec.fields[f].erp: to_erp(v, types.get(spec.fields[f].erp)) for f, v in vals.items()}


__all__ = ["Ctx", "Counts", "ObjectSync", "Pair", "erp_values"]
