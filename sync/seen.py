"""Row versions already synced, so that the overlap window's re-reads stop at the key and timestamp.

Each ERP read starts ``overlap_seconds`` before the watermark (docs/sync.md, *Rows committed long after
their timestamp*). Reading and hashing those rows again is most of what a small incremental run reads.
``sync_erp_seen`` keeps, per object, the (key, change-column value) of the rows in that window that the
last run read and left synced (status ``ok``, the content hash read stored): a window row showing the same
pair again is that same version and is counted unchanged without reading its columns.

Only *settled* versions are kept: stamped at least ``overlap_seconds`` plus one clock tick (1 s) before
the ERP's clock when they were read, and before the oldest ERP transaction open then (where the database
reports it). A second version of a row carrying the same timestamp would have to come from a transaction
that took its timestamp in that tick and committed after the read, i.e. later than the overlap window
allows for; anything newer is still read and compared by content hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, String, Table, delete, select
from sqlalchemy.engine import Connection, Engine

from crmbridge.state import metadata

TICK = timedelta(seconds=1)  # the coarsest common timestamp resolution (MySQL DATETIME, SQLite, Oracle DATE)

sync_erp_seen = Table(
    "sync_erp_seen",
    metadata,
    Column("object", String(64), primary_key=True),
    Column("erp_key", String(400), primary_key=True),
    Column("stamp", String(40), nullable=False),  # the change column's value, isoformat
)


def stamp_text(v: datetime) -> str:
    return v.isoformat()


def settled_line(clock: datetime | None, horizon: datetime | None, overlap_seconds: float) -> datetime | None:
    """Versions stamped before this are settled (see above); None: nothing is (no ERP clock)."""
    if clock is None:
        return None
    line = clock - timedelta(seconds=overlap_seconds)
    if horizon is not None:
        h = horizon
        if (h.tzinfo is None) != (line.tzinfo is None):
            h = h.replace(tzinfo=line.tzinfo)
        line = min(line, h)
    return line - TICK


def load(engine: Engine, obj: str) -> dict[str, str]:
    """erp key -> stamp of the settled versions the last run left synced."""
    with engine.connect() as c:
        q = select(sync_erp_seen.c.erp_key, sync_erp_seen.c.stamp).where(sync_erp_seen.c.object == obj)
        return dict(c.execute(q).all())  # all at once: tens of thousands of rows at 1M


def replace(engine: Engine, obj: str, entries: dict[str, str]) -> None:
    """The object's kept versions become ``entries`` (one transaction)."""
    with engine.begin() as c:
        c.execute(delete(sync_erp_seen).where(sync_erp_seen.c.object == obj))
        rows = [{"object": obj, "erp_key": k, "stamp": s} for k, s in entries.items()]
        for i in range(0, len(rows), 5000):
            c.execute(sync_erp_seen.insert(), rows[i:i + 5000])


def forget(conn: Connection, obj: str, keys: list[str]) -> None:
    """Rows saved as anything but synced (error, pending, deleted, a postponed change) are no longer
    known versions: called by ``store.save_records`` in the same transaction."""
    for i in range(0, len(keys), 500):
        conn.execute(delete(sync_erp_seen).where(sync_erp_seen.c.object == obj,
                                                 sync_erp_seen.c.erp_key.in_(keys[i:i + 500])))


class SeenTracker:
    """One object's run: which versions it found synced in the overlap window, which ones it read and
    left synced, and at the end the versions the next run's window may skip (written with the watermark
    they belong to: a memory written for another watermark, e.g. by a run killed half way, is not used)."""

    def __init__(self, state: Engine, obj: str, marker_scope: str):
        from crmbridge.state import get_watermark

        self.state, self.obj, self.scope = state, obj, marker_scope
        self.marker = get_watermark(state, marker_scope)
        self.before: dict[str, str] = {}
        self.keep: dict[str, str] = {}  # key -> stamp text: found synced in the window
        self.read: dict[str, tuple[datetime, str]] = {}  # key -> (stamp, content hash read)
        self.synced: dict[str, str] = {}  # key -> content hash stored as synced by this run

    def memory(self, watermark: str | None) -> dict[str, str] | None:
        """The versions the window may skip, if they belong to the stored watermark (else None)."""
        if watermark is None or self.marker != watermark:
            return None
        self.before = load(self.state, self.obj)
        return self.before

    def note(self, known: dict[str, str], stamps: dict[str, datetime], hashes: dict[str, str]) -> None:
        self.keep.update(known)
        for k, st in stamps.items():
            if isinstance(st, datetime):
                self.read[k] = (st, hashes[k])

    def note_synced(self, recs) -> None:
        """Records as saved by a committed batch (``store.Record``)."""
        for r in recs:
            if r.status == "ok" and r.erp_hash:
                self.synced[r.erp_key] = r.erp_hash
            else:
                self.synced.pop(r.erp_key, None)

    def finish(self, watermark: str | None, lo: datetime | None, settled: datetime | None) -> None:
        """Keep the settled, synced versions stamped in the next run's window (from ``lo``)."""
        if watermark is None or lo is None:
            return
        out = {k: s for k, s in self.keep.items() if datetime.fromisoformat(s) >= lo}
        if settled is not None:
            for k, (st, h) in self.read.items():
                if lo <= st <= settled and self.synced.get(k) == h:
                    out[k] = stamp_text(st)
        if out != self.before or self.marker != watermark:
            from crmbridge.state import set_watermark

            replace(self.state, self.obj, out)
            set_watermark(self.state, self.scope, watermark)
