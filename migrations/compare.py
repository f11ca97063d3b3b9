"""Reconcile's comparison of the mapped records with the org's rows, column by column.

Everything that needs only the source (the cells' comparison form, their hashes, whether that form is
its own comparison form) is computed before the org answers (``SourceSide``, while the load waits);
what is left once the org's rows are in is a few numpy passes per field. ``norm`` runs only on the
org cells that differ from the source's comparison form: an org cell equal to it has the same
comparison form whenever that form is a fixed point of ``norm`` (checked per cell ahead of time).
An org cell equal to the one the load sent (the Phone ``+86...`` whose comparison form drops the
``+``) or to an integer's form with ``.0`` appended (what the org hands back for a number) needs no
``norm`` either.
The checksums are sums of per-cell hashes (``pandas.util.hash_array`` hashes each cell on its own),
so the org's sum reuses the source cells' hashes wherever both sides agree.
"""

from __future__ import annotations

from dataclasses import dataclass


def cell_hashes(values):
    """The 64-bit hash of every cell (numpy uint64), the terms of reconcile's column checksum."""
    import numpy as np
    import pandas as pd

    arr = np.asarray(values, dtype=object) if not hasattr(values, "to_numpy") else values.to_numpy(dtype=object)
    if not len(arr):
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_array(arr, categorize=False)


def checksum_of(hashes) -> str:
    """The order-independent checksum of a column from its cells' hashes (their sum mod 2**64)."""
    import numpy as np

    return f"{int(hashes.sum(dtype=np.uint64)) % (1 << 64):016x}"


_NO_CELL = object()  # equal to no org cell
_INTEGER = "^-?[1-9][0-9]*$"
_SHORT_INTEGER = "^-?[1-9][0-9]{0,14}$"


@dataclass(frozen=True, eq=False)
class FieldSide:
    """One compared field of the source, row by row: the comparison form (object array), its cells'
    hashes, where that form is a fixed point of ``norm`` (so an org cell equal to it compares equal),
    and another org cell per row known to have that comparison form (``_NO_CELL`` where none is)."""

    normed: object
    hashes: object
    fixed: object
    alt: object

    def __eq__(self, other) -> bool:
        import numpy as np

        return isinstance(other, FieldSide) and all(
            np.array_equal(getattr(self, n), getattr(other, n)) for n in ("normed", "hashes", "fixed", "alt"))

    __hash__ = None


def _objects(values):
    import numpy as np

    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _matches(text, pattern):
    """Where the Arrow strings ``text`` match the RE2 ``pattern``, as a writable numpy bool array."""
    import numpy as np
    import pyarrow.compute as pc

    return np.array(pc.match_substring_regex(text, pattern).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def field_side(cells, normed: list, normed_fn) -> FieldSide:
    """``FieldSide`` of a field whose load-file cells are ``cells`` and their ``norm`` ``normed``."""
    import numpy as np
    import pyarrow as pa

    arr, cells = _objects(normed), _objects(cells)
    text = pa.array(arr, type=pa.string())
    integer = _matches(text, _INTEGER)
    fixed = _matches(text, _SHORT_INTEGER)  # at most 15 digits: a float exactly, norm's number rule gives it back
    rest = np.flatnonzero(~fixed)
    fixed[rest] = _objects(normed_fn(arr[rest])) == arr[rest]
    # the load's own cell (text or null: norm(cell) is the source's form by definition; a number could
    # equal an org cell of another type with another form, 1 == True)
    if set(map(type, cells)) <= {str, type(None)}:
        usable, alt = np.ones(len(cells), dtype=bool), cells.copy()
    else:
        usable = np.fromiter((type(c) is str or c is None for c in cells), dtype=bool, count=len(cells))
        alt = np.where(usable, cells, _NO_CELL).astype(object)
    # For a number the org hands back "<integer>.0". A fixed point of norm that is an integer came out
    # of its number rule as str(int(x)) for a float x; float("<it>.0") is that same x again, so norm
    # gives it back: tests/migrations/test_reconcile_compare.py checks this on integers past 2**53.
    ints = np.flatnonzero(integer & fixed & (~usable | (alt == arr)))  # not where the load's own cell is of use
    if len(ints):
        alt[ints] = _objects([v + ".0" for v in arr[ints].tolist()])
    return FieldSide(arr, cell_hashes(arr), fixed, alt)


def _blank_side(n: int) -> FieldSide:
    import numpy as np

    arr = np.full(n, "", dtype=object)
    return FieldSide(arr, cell_hashes(arr), np.ones(n, dtype=bool), np.full(n, _NO_CELL, dtype=object))


@dataclass(frozen=True)
class Compared:
    problems: list
    fields: dict
    found: int
    missing: int
    duplicates: int


def _problem(key, kind, sf_id, field="", source="", org="") -> dict:
    return {"external_id": key, "kind": kind, "field": field, "source": source, "org": org, "sf_id": sf_id}


def compare(side, loaded_keys: set, sf_ids, org_rows: list, cols: list[str], normed_fn, lower_keys) -> Compared:
    """Compare the source side ``side`` (``SourceSide``) of the records in ``loaded_keys`` with the
    org's rows (tuples ``(Id, ext, *cols)``); ``sf_ids``: the ledger's Id per external ID (a Series);
    ``lower_keys``: the org's external IDs in their lower-cased comparison form, in ``org_rows``' order."""
    import numpy as np

    n_org = len(org_rows)
    org_cols = list(zip(*org_rows)) if n_org else [()] * (2 + len(cols))
    ids = org_cols[0]
    first = dict(zip(reversed(lower_keys), range(n_org - 1, -1, -1)))  # the first org row per key
    holders: dict = {}
    if len(first) < n_org:  # keys more than one org record holds: their Ids, in the org's order
        for i, k in enumerate(lower_keys):
            holders.setdefault(k, []).append(ids[i])
    dup_keys = {k for k, v in holders.items() if len(v) > 1}
    src_keys, lowered = side.keys, side.lowered
    kept = [i for i, k in enumerate(src_keys) if k in loaded_keys]
    problems = [_problem(src_keys[i], "missing_in_org", sf_ids.get(src_keys[i])) for i in kept
                if lowered[i] not in first]
    pos = np.array([i for i in kept if lowered[i] in first], dtype=np.int64)
    found_keys = [src_keys[i] for i in pos.tolist()]
    found_low = [lowered[i] for i in pos.tolist()]
    dups = [(key, k) for key, k in zip(found_keys, found_low) if k in dup_keys]
    problems += [_problem(key, "duplicate_in_org", sf_ids.get(key), org=";".join(holders[k])) for key, k in dups]
    at = np.array([first[k] for k in found_low], dtype=np.int64)
    org_ids = np.empty(n_org, dtype=object)
    org_ids[:] = ids
    fields_out = {}
    for j, f in enumerate(cols):
        fs = side.fields.get(f) or _blank_side(len(src_keys))
        a = fs.normed[pos]
        raw = np.empty(n_org, dtype=object)
        raw[:] = org_cols[2 + j]
        raw = raw[at]
        known = ((raw == a) & fs.fixed[pos]) | (raw == fs.alt[pos])
        other = np.flatnonzero(~known)  # org cells whose comparison form is computed
        b = a.copy()
        b[other] = normed_fn(raw[other]) if len(other) else []
        diff = other[a[other] != b[other]] if len(other) else other
        hb = fs.hashes[pos]
        if len(diff):
            hb[diff] = cell_hashes(b[diff])
        ids_at = org_ids[at[diff]]
        problems += [_problem(found_keys[i], "field_mismatch", sf_id, f, a[i], b[i])
                     for i, sf_id in zip(diff.tolist(), ids_at.tolist())]
        fields_out[f] = {"source_checksum": checksum_of(fs.hashes[pos]), "org_checksum": checksum_of(hb),
                         "mismatches": int(len(diff))}
    return Compared(problems, fields_out, len(pos), len(kept) - len(pos), len(dups))
