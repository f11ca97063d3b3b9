"""Owners and record types of mapped rows, looked up once per distinct value (moved out of engine.py).

An owner column holds a few sales reps' codes over every row: its distinct values are strip-ped, looked
up in ``owners.csv`` and in the org's users, and the results are spread to the rows by the column's
codes (``distinct.encode``). Every step works value by value, and ``map_distinct`` picks its way as for
the rows (``rows=``), so the result, its dtype and the reasons are those of the same steps on every row
(tests/mappings/test_owner_ids.py).
"""

from __future__ import annotations

import pandas as pd

from crmbridge.errors import UsageError
from crmbridge.mappings.textops import strip_text


def map_distinct(s: pd.Series, fn, rows: int | None = None) -> pd.Series:
    """``s.map(fn)`` for a pure ``fn`` of text, called once per distinct value: ``map`` of the distinct
    values (so pandas infers the result's dtype from the same set of results), then taken row by row.
    Missing values are told apart by type and repr (None, NaN and NA can map differently). ``rows``: how
    many rows ``s`` stands for when it holds a column's distinct values (the way is chosen for them)."""
    values = s.to_numpy(dtype=object)
    # factorize would take 1, 1.0 and True for one value: text (and missing) only
    if (len(values) if rows is None else rows) < 64 or \
            pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return s.map(fn)
    missing = pd.isna(values)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    reps = list(uniques)
    if missing.any():
        kinds: dict[tuple, int] = {}
        miss_codes = []
        for v in values[missing].tolist():
            k = (type(v), repr(v))
            if k not in kinds:
                kinds[k] = len(reps)
                reps.append(v)
            miss_codes.append(kinds[k])
        codes = codes.copy()
        codes[missing] = miss_codes
    mapped = pd.Series(reps, dtype=object).map(fn)
    out = mapped.take(codes)
    out.index = s.index
    out.name = s.name
    return out


def owner_ids(own, raw: pd.Series, refs, reasons) -> pd.Series:
    """The OwnerId of each row from its owner column's values ``raw`` (after the owner's transforms)."""
    from crmbridge.mappings.distinct import encode

    enc = encode(raw)  # None: not text, then row by row

    def rows(s: pd.Series) -> pd.Series:
        if enc is None:
            return s
        out = s.take(enc.codes)
        out.index, out.name = raw.index, raw.name
        return out

    n = len(raw)
    code = strip_text(raw if enc is None else enc.uniques)
    table = {k.strip(): v.strip() for k, v in refs.owners.items()}
    username = map_distinct(code, lambda c: table.get(c) if c is not None else None, rows=n)
    miss = username.isna()
    if own.on_missing == "default":
        username = username.where(~miss, own.default)
    elif own.on_missing == "quarantine":
        reasons.add(rows(miss), lambda: f"owner_not_mapped: {own.column}=" + rows(code).fillna("(empty)"))
    users = {k.lower(): v for k, v in refs.users.items()}
    ids = map_distinct(username, lambda u: users.get(str(u).lower()) if u is not None else None, rows=n)
    unknown = username.notna() & ids.isna()
    reasons.add(rows(unknown), lambda: "owner_user_not_found: Username=" + rows(username).fillna(""))
    return rows(ids)


def record_type_ids(loaded, work: pd.DataFrame, refs, reasons) -> pd.Series:
    rt, obj = loaded.step.record_type, loaded.step.object
    if rt.developer_name is not None:
        rid = refs.record_types.get((obj, rt.developer_name))
        if rid is None:
            raise UsageError(f"mapping {loaded.file} step {loaded.name}: record type '{rt.developer_name}' "
                             f"does not exist for {obj} in the org", hint="check the DeveloperName in Setup")
        return pd.Series(rid, index=work.index, dtype=object)
    legacy = strip_text(work[rt.column])
    dev = map_distinct(legacy, lambda v: rt.map.get(v, v) if v is not None else None)
    ids = map_distinct(dev, lambda d: refs.record_types.get((obj, d)) if d is not None else None)
    reasons.add(dev.notna() & ids.isna(), "record_type_not_found: DeveloperName=" + dev.fillna(""))
    return ids
