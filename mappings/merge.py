"""One record per external ID: merge rows of several departments, or quarantine duplicates.

With ``merge: {prefer: [sales, finance, service]}`` the rows sharing an external-ID value become one
record; each field takes the first non-missing value in department preference order (then source
order). The record keeps the representative ``_row_id`` and all ``_merged_row_ids``. Without merge,
every row of a duplicated external ID is quarantined (Salesforce rejects them with
DUPLICATE_EXTERNAL_ID, and picking one silently would lose data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.mappings.models import Aggregate, LoadedStep
from crmbridge.mappings.transforms import as_text, is_missing


def _aggregate(agg: Aggregate, values: pd.Series, groups: pd.Series) -> pd.Series:
    vals = as_text(values)
    if agg.how in ("count", "sum", "min", "max"):
        num = pd.to_numeric(vals, errors="coerce")
        g = num.groupby(groups, sort=False)
        out = getattr(g, agg.how)() if agg.how != "count" else vals.notna().groupby(groups, sort=False).sum()
        return out.astype(object).where(out.notna(), None)
    present = ~is_missing(vals)
    sub = vals[present].str.strip()
    g = sub.groupby(groups[present], sort=False)
    if agg.how == "first":
        return g.first()
    return join_groups(sub, groups[present], agg.sep, distinct=True)


def join_groups(values: pd.Series, groups: pd.Series, sep: str, *, distinct: bool = False) -> pd.Series:
    """``values.groupby(groups, sort=False).agg(sep.join)`` (with ``distinct``: each value once, in
    order) without a pandas call per group: one stable sort, then one ``str.join`` per group."""
    codes, uniques = pd.factorize(groups, use_na_sentinel=True)
    keep = codes >= 0
    codes, vals = codes[keep], values.to_numpy(dtype=object)[keep]
    order = np.argsort(codes, kind="stable")
    codes, vals = codes[order], vals[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds]) if len(codes) else np.array([], dtype=np.intp)
    ends = np.concatenate([bounds, [len(codes)]]) if len(codes) else np.array([], dtype=np.intp)
    lists = vals.tolist()
    if distinct:
        out = [sep.join(dict.fromkeys(lists[a:b])) for a, b in zip(starts, ends)]
    else:
        out = [sep.join(lists[a:b]) for a, b in zip(starts, ends)]
    # dtype inferred, as pandas' own agg does (str under pandas 3)
    return pd.Series(out, index=pd.Index(list(uniques[codes[starts]]) if len(codes) else uniques[:0], name=groups.name),
                     dtype=None if out else object)


def combine(loaded: LoadedStep, df: pd.DataFrame, out: pd.DataFrame, reasons) -> tuple[pd.DataFrame, pd.Series | None, int]:
    """(records, duplicate mask or None, source rows represented). ``out`` holds only rows that mapped."""
    step = loaded.step
    ext = step.external_id
    key = as_text(out[ext]).str.strip()
    out = out.assign(**{ext: key})
    dup_mask = None
    if step.merge is None:
        dup_mask = key.duplicated(keep=False)
        if dup_mask.any():
            full = pd.Series(False, index=df.index)
            full.loc[dup_mask[dup_mask].index] = True
            reason = pd.Series("", index=df.index, dtype=object)
            reason.loc[key.index] = f"duplicate_external_id: {ext}=" + key.fillna("")
            reasons.add(full, reason)
        out = out[~dup_mask]
        key = key[~dup_mask]
    else:
        prefer = list(step.merge.prefer)
        dept = df.loc[out.index, "_department"] if "_department" in df.columns else pd.Series(None, index=out.index)
        rank = dept.map(lambda d: prefer.index(d) if d in prefer else len(prefer))
        pos = pd.Series(range(len(out)), index=out.index)
        order = pd.DataFrame({"r": rank, "p": pos}).sort_values(["r", "p"], kind="stable").index
        out = out.loc[order]
        key = key.loc[order]

    groups = key
    row_ids = as_text(df.loc[out.index, "_row_id"])
    if step.merge is not None:
        records = out.groupby(groups, sort=False).first().reset_index(drop=True)
        records.index = pd.Series(out.index, index=out.index).groupby(groups, sort=False).first().values
        merged = join_groups(row_ids, groups, ";").values
        gkey = groups
    else:
        records = out.copy()
        merged = row_ids.values
        gkey = pd.Series(out.index, index=out.index)
    order_keys = gkey.drop_duplicates().values
    for fname, spec in step.fields.items():
        if spec.aggregate is not None:
            agg = _aggregate(spec.aggregate, df.loc[out.index, spec.aggregate.column], gkey).reindex(order_keys)
            records[fname] = agg.astype(object).where(agg.notna(), None).values
    rows_out = len(out)
    records["_row_id"] = as_text(df.loc[records.index, "_row_id"]).values
    records["_merged_row_ids"] = merged
    records["_entity"] = step.entity
    records["_source_key"] = (as_text(df.loc[records.index, "_source_key"]).values
                              if "_source_key" in df.columns else records[ext].values)
    records["_step"] = loaded.name
    ordered = [c for c in _field_order(loaded) if c in records.columns]
    lineage = ["_row_id", "_merged_row_ids", "_entity", "_source_key", "_step"]
    return records[ordered + lineage].reset_index(drop=True), dup_mask, rows_out


def _field_order(loaded: LoadedStep) -> list[str]:
    step = loaded.step
    cols = list(step.fields)
    cols += [lk.output_column(f) for f, lk in step.lookups.items()]
    if step.owner is not None:
        cols.append("OwnerId")
    if step.record_type is not None:
        cols.append("RecordTypeId")
    return cols
