"""Finding ERP rows that disappeared, without reading every key every night.

The ERP rows are split into up to 1,000 buckets by their key (the last three characters of a text key,
the remainder modulo 1,000 of an integer key; composite keys by their first column). The ERP counts
the rows per bucket itself (one ``GROUP BY``, no key leaves the database); the state database knows
which keys the sync has seen, per bucket. Only buckets whose counts differ are read key by key:

- a key the sync knows that is no longer in the ERP: deleted (soft or hard, ``deletes.mode``);
- a key in the ERP the sync never saw: a row the change column did not show (inserted with an old
  timestamp, committed very late): it is read and synced now.

Rows the change column shows are read before this check, so an insert never hides a delete in the
same bucket. What counts cannot see is a delete and a never-seen insert in the same bucket in the same
night; ``changes: hash`` objects, which read every key anyway, compare the full key list instead.
Keys whose type cannot be bucketed (dates, query sources without column types) fall back to the
full key comparison.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

from crmbridge.sync import store

WIDTH = 3  # up to 10**3 buckets: ~1,000 rows each on a 1M-row table


def bucket_of(key: str, kind: type, composite: bool, width: int = WIDTH) -> Any:
    """The bucket of a stored key, as the ERP's ``bucket_expr`` computes it."""
    first = key.split("|", 1)[0] if composite else key
    if kind is int:
        return int(math.fmod(int(first), 10 ** width))  # SQL's % keeps the sign of the dividend
    return first[-width:]


def bucketing(view) -> store.Bucketing | None:
    """How this object's keys are bucketed, or None where the ERP cannot count them per bucket."""
    kind = view.types.get(view.spec.erp.key[0])
    if kind not in (int, str):
        return None
    return store.Bucketing(kind, len(view.spec.erp.key) > 1, WIDTH)


class ErpCounts:
    """The ERP's rows per bucket, counted in a thread while the object's changes are read and written.

    Counting first is at least as safe as counting last: every row committed before the count is also
    seen by the change read that follows it, so an insert cannot hide a delete in the same bucket; a
    row deleted after the count is found by the next run. Only for objects the sync never writes to
    the ERP (a SQLite ERP could not commit a write while the count reads)."""

    def __init__(self, erp, src, key: list[str]):
        self._result: dict | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(erp, src, key), name="sync-bucket-count",
                                        daemon=True)
        self._thread.start()

    def _run(self, erp, src, key) -> None:
        try:
            self._result = erp_bucket_counts(erp, src, key)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asks for the result
            self._error = exc

    def result(self) -> dict | None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def erp_bucket_counts(erp, src, key: list[str]) -> dict | None:
    """The ERP's rows per bucket of the first key column (which repeats in a composite key)."""
    return erp.bucket_counts(src, key[0], WIDTH, repeats=len(key) > 1)


def _known_counts(job, b: store.Bucketing) -> dict[str, int]:
    """Known keys per bucket: kept by save_records; rebuilt (and stored) when missing or stale."""
    st, name = job.ctx.state, job.spec.name
    mine = store.known_bucket_counts(st, name, b)
    if mine is not None:
        return mine
    counts = store.bucket_counts(st, name, b.width, b.composite) if b.kind is str else None
    if counts is None:
        counts = Counter(bucket_of(k, b.kind, b.composite, b.width) for k, st_ in store.iter_keys(st, name))
    mine = {str(k): n for k, n in counts.items() if n}
    if not job.ctx.dry_run:
        store.set_bucket_counts(st, name, b, mine, replace_all=True)
    return mine


def _known_in(job, b: store.Bucketing, buckets: list) -> list[str]:
    if b.kind is str:
        keys = store.keys_in_buckets(job.ctx.state, job.spec.name, b.width, b.composite, buckets)
        if keys is not None:
            return keys
    wanted = set(buckets)
    return [k for k, _ in store.iter_keys(job.ctx.state, job.spec.name)
            if bucket_of(k, b.kind, b.composite, b.width) in wanted]


def find_deletes(job, erp_counts: ErpCounts | None = None) -> dict:
    """Delete detection for one ObjectSync ``job``; returns what it looked at (buckets, keys read).
    ``erp_counts``: the ERP's counts, started earlier (default: counted now)."""
    view, ctx = job.view, job.ctx
    col = job.spec.erp.key[0]
    counts = erp_counts.result() if erp_counts is not None else erp_bucket_counts(ctx.erp, view.src, job.spec.erp.key)
    b = job.bucketing
    if counts is None or b is None:
        keys = view.all_keys()
        job.deletions(keys)
        return {"mode": "full", "keys_read": len(keys)}
    theirs = {str(k): n for k, n in counts.items() if k is not None}
    mine = _known_counts(job, b)
    differ = sorted(x for x in set(theirs) | set(mine) if theirs.get(x, 0) != mine.get(x, 0))
    info = {"mode": "buckets", "buckets": len(set(theirs) | set(mine)), "buckets_read": len(differ), "keys_read": 0}
    if not differ:
        return info
    as_erp = [int(x) for x in differ] if b.kind is int else differ  # the ERP compares them with its own type
    present: set[str] = set()
    from crmbridge.sync.reader import key_part

    for part in ctx.erp.keys_in_buckets(view.src, job.spec.erp.key, col, as_erp, WIDTH):
        if not b.composite:
            present.update(key_part(t[0]) for t in part)
        else:
            present.update("|".join(key_part(v) for v in t) for t in part)
    info["keys_read"] = len(present)
    known = set(_known_in(job, b, as_erp))
    unseen = sorted(k for k in present if k not in known and k not in job._seen_erp)
    for i in range(0, len(unseen), ctx.batch):  # rows the change column never showed: sync them now
        job.process(view.by_keys(unseen[i:i + ctx.batch]), {})
    info["unseen_rows"] = len(unseen)
    job.deletions_of(sorted(k for k in known if k not in present))
    if not ctx.dry_run:  # these buckets were counted key by key: store their true counts (heals any drift)
        now = Counter(bucket_of(k, b.kind, b.composite, b.width) for k in _known_in(job, b, as_erp))
        store.set_bucket_counts(ctx.state, job.spec.name, b, {str(x): now.get(int(x) if b.kind is int else x, 0)
                                                               for x in differ}, replace_all=False)
    return info
