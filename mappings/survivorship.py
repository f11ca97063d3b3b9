"""One golden record per company, field by field, by the definition's survivorship rules.

The survivor (the row whose key the golden record keeps, and whose lineage it carries) is the first row
in department order (``resolution.prefer``), then source order. Every other field takes its value by
its own rule: ``department`` (first non-empty in department order), ``newest`` (the non-empty value of
the row with the latest ``by`` date) or ``most_complete`` (the longest non-empty value); ties always
fall back to department order, so the result never depends on file order alone. The record also keeps
every legacy key (``_legacy_keys``), every department it was seen in (``_departments``) and every
source row merged into it (``_merged_row_ids``, the survivor's first): the load writes one ledger row
per source row from that list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LINEAGE_OUT = ["_merged_row_ids", "_legacy_keys", "_departments", "_company"]


def _rank(frame: pd.DataFrame, prefer: list[str]) -> np.ndarray:
    dept = frame["_department"] if "_department" in frame.columns else pd.Series(None, index=frame.index)
    return dept.map(lambda d: prefer.index(d) if d in prefer else len(prefer)).to_numpy()


def _present(s: pd.Series) -> pd.Series:
    return s.notna() & (s.astype(str).str.strip() != "")


def _join(values: pd.Series, groups: np.ndarray) -> pd.Series:
    ok = _present(values)
    sub = values[ok].astype(str)
    return sub.groupby(groups[ok.to_numpy()], sort=False).agg(lambda s: ";".join(dict.fromkeys(s)))


def golden_records(frame: pd.DataFrame, labels: np.ndarray, *, key: str, resolution) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(golden records, row map). ``labels``: company label per row of ``frame`` (positional).

    The row map has one line per source row: ``_row_id``, its key, the survivor's key and ``_company``."""
    df = frame.reset_index(drop=True)
    prefer = list(resolution.prefer) if resolution is not None else []
    rank = _rank(df, prefer)
    pos = np.arange(len(df))
    order = np.lexsort((pos, rank, labels))  # by company, then department order, then source order
    ordered = df.iloc[order]
    lab = labels[order]
    first_of_company = np.r_[True, lab[1:] != lab[:-1]] if len(lab) else np.zeros(0, dtype=bool)
    size = pd.Series(lab).map(pd.Series(lab).value_counts()).to_numpy()
    multi = size > 1
    single = ordered[~multi]
    golden_single = single.copy()
    golden_single["_merged_row_ids"] = single["_row_id"].astype(str).values
    golden_single["_legacy_keys"] = single[key].astype(object).values if key in single.columns else None
    golden_single["_departments"] = single["_department"].values if "_department" in single.columns else None
    golden_single["_company"] = lab[~multi]
    many = ordered[multi]
    mlab = lab[multi]
    survivors = many[first_of_company[multi]].copy()
    survivors.index = mlab[first_of_company[multi]]
    fields = [c for c in df.columns if not c.startswith("_") and c != key]
    if len(many):
        _apply_rules(many, mlab, survivors, fields, resolution, prefer)
        survivors["_merged_row_ids"] = many["_row_id"].astype(str).groupby(mlab, sort=False).agg(";".join)
        survivors["_legacy_keys"] = _join(many[key], mlab) if key in many.columns else None
        survivors["_departments"] = _join(many["_department"], mlab) if "_department" in many.columns else None
        survivors["_company"] = survivors.index
    golden = pd.concat([golden_single, survivors.reset_index(drop=True)], ignore_index=True)
    golden = golden.sort_values("_company", kind="stable").reset_index(drop=True)
    # the row map: every source row -> its company's survivor key
    surv_key = golden.set_index("_company")[key] if key in golden.columns else None
    rowmap = pd.DataFrame({"_row_id": df["_row_id"].astype(str).values,
                           "key": df[key].values if key in df.columns else None,
                           "_company": labels})
    rowmap["survivor_key"] = rowmap["_company"].map(surv_key) if surv_key is not None else None
    return golden, rowmap


def _apply_rules(many: pd.DataFrame, mlab: np.ndarray, survivors: pd.DataFrame, fields: list[str], resolution,
                 prefer: list[str]) -> None:
    """Fill ``survivors`` (indexed by company) field by field from the rows of multi-row companies."""
    from crmbridge.validation.identity_rules import Survivorship

    by_rule: dict[tuple, list[str]] = {}
    for f in fields:
        rule = resolution.rule_for(f) if resolution is not None else Survivorship()
        by_rule.setdefault((rule.rule, tuple(rule.prefer), rule.by), []).append(f)
    base_rank = _rank(many, prefer)
    pos = np.arange(len(many))
    for (rule, own_prefer, by), cols in by_rule.items():
        rank = _rank(many, list(own_prefer)) if own_prefer else base_rank
        if rule == "department":
            order = np.lexsort((pos, rank, mlab))
            sub = many[cols].iloc[order].where(_present_frame(many[cols].iloc[order]))
            vals = sub.groupby(mlab[order], sort=False).first()
            survivors.loc[vals.index, cols] = vals[cols].values
            continue
        for c in cols:
            if rule == "newest":
                raw = many[by] if by in many.columns else pd.Series(None, index=many.index, dtype=object)
                when = pd.to_datetime(raw, errors="coerce", format="mixed")
                ns = when.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
                ns[when.isna().to_numpy()] = -np.inf  # rows without a date come last
                secondary = -ns
            else:  # most_complete
                secondary = -many[c].astype(str).str.len().where(_present(many[c]), 0).to_numpy()
            order = np.lexsort((pos, rank, secondary, mlab))
            col = many[c].iloc[order]
            vals = col.where(_present(col)).groupby(mlab[order], sort=False).first()
            survivors.loc[vals.index, c] = vals.values


def _present_frame(f: pd.DataFrame) -> pd.DataFrame:
    return f.notna() & f.astype(str).apply(lambda s: s.str.strip() != "")
