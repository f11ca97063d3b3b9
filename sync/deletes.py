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
from collections import Counter
from typing import Any

from crmbridge.sync import store

WIDTH = 3  # up to 10**3 buckets: ~1,000 rows each on a 1M-row table


def bucket_of(key: str, kind: type, composite: bool) -> Any:
    """The bucket of a stored key, as the ERP's ``bucket_expr`` computes it."""
    first = key.split("|", 1)[0] if composite else key
    if kind is int:
        return int(math.fmod(int(first), 10 ** WIDTH))  # SQL's % keeps the sign of the dividend
    return first[-WIDTH:]


def _known_counts(job, kind: type, composite: bool) -> Counter:
    """Known keys per bucket: counted by the state database for text keys, else here."""
    if kind is str:
        counts = store.bucket_counts(job.ctx.state, job.spec.name, WIDTH, composite)
        if counts is not None:
            return Counter(counts)
    return Counter(bucket_of(k, kind, composite) for k, _ in store.iter_keys(job.ctx.state, job.spec.name))


def _known_in(job, kind: type, composite: bool, buckets: list) -> list[str]:
    if kind is str:
        keys = store.keys_in_buckets(job.ctx.state, job.spec.name, WIDTH, composite, buckets)
        if keys is not None:
            return keys
    wanted = set(buckets)
    return [k for k, _ in store.iter_keys(job.ctx.state, job.spec.name) if bucket_of(k, kind, composite) in wanted]


def find_deletes(job) -> dict:
    """Delete detection for one ObjectSync ``job``; returns what it looked at (buckets, keys read)."""
    view, ctx = job.view, job.ctx
    col = job.spec.erp.key[0]
    counts = ctx.erp.bucket_counts(view.src, col, WIDTH)
    if counts is None:
        keys = view.all_keys()
        job.deletions(keys)
        return {"mode": "full", "keys_read": len(keys)}
    kind = int if view.types.get(col) is int else str
    single = len(job.spec.erp.key) == 1
    mine = _known_counts(job, kind, not single)
    differ = sorted((b for b in set(counts) | set(mine) if counts.get(b, 0) != mine.get(b, 0)), key=str)
    info = {"mode": "buckets", "buckets": len(set(counts) | set(mine)), "buckets_read": len(differ), "keys_read": 0}
    if not differ:
        return info
    present: set[str] = set()
    from crmbridge.sync.reader import key_part

    for part in ctx.erp.keys_in_buckets(view.src, job.spec.erp.key, col, differ, WIDTH):
        if single:
            present.update(key_part(t[0]) for t in part)
        else:
            present.update("|".join(key_part(v) for v in t) for t in part)
    info["keys_read"] = len(present)
    known = set(_known_in(job, kind, not single, differ))
    unseen = sorted(k for k in present if k not in known and k not in job._seen_erp)
    for i in range(0, len(unseen), ctx.batch):  # rows the change column never showed: sync them now
        job.process(view.by_keys(unseen[i:i + ctx.batch]), {})
    info["unseen_rows"] = len(unseen)
    job.deletions_of(sorted(k for k in known if k not in present))
    return info
