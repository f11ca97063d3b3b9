"""The department disagreement report: who counts as a customer under each department's own
criterion versus the agreed one, with overlaps, differences and sample keys.

Rows are first linked into companies: rows sharing a value of any ``identity.match_on`` field (the
credit code, the customer number ...) belong to the same company, transitively (connected
components). A department counts a company when one of *its own* rows meets its criterion; the
agreed criterion counts a company when any of its rows, from any department, meets it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmbridge.validation.definition import Condition, Criteria, Criterion

SAMPLES = 10


def link_companies(frame: pd.DataFrame, match_on: list[str]) -> np.ndarray:
    """A company label per row: rows sharing any ``match_on`` value get the same label."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(frame)
    rows, cols = [np.arange(n)], [np.arange(n)]
    offset = n
    for f in match_on:
        if f not in frame.columns:
            continue
        vals = frame[f]
        present = vals.notna().to_numpy()
        codes, uniques = pd.factorize(vals[present])
        rows.append(np.flatnonzero(present))
        cols.append(codes + offset)
        offset += len(uniques)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def _test(frame: pd.DataFrame, t: Condition) -> pd.Series:
    if t.field not in frame.columns:
        return pd.Series(t.op == "missing", index=frame.index)
    col = frame[t.field]
    if t.op == "present":
        return col.notna()
    if t.op == "missing":
        return col.isna()
    if t.op in ("gt", "ge", "lt", "le"):
        num = pd.to_numeric(col.astype(object), errors="coerce")
        res = {"gt": num > t.value, "ge": num >= t.value, "lt": num < t.value, "le": num <= t.value}[t.op]
        return res.fillna(False).astype(bool)
    text = col.astype(object).where(col.notna(), None)
    wanted = [str(v) for v in (t.value if isinstance(t.value, list) else [t.value])]
    hit = text.isin(wanted)
    return hit if t.op in ("eq", "in") else (~hit & col.notna())


def evaluate(frame: pd.DataFrame, c: Criterion) -> pd.Series:
    """Rows meeting ``c``: every ``all`` test and (when given) at least one ``any`` test."""
    ok = pd.Series(True, index=frame.index)
    for t in c.all:
        ok &= _test(frame, t)
    if c.any:
        some = pd.Series(False, index=frame.index)
        for t in c.any:
            some |= _test(frame, t)
        ok &= some
    return ok


def _samples(labels: np.ndarray, names: pd.Series) -> list[str]:
    return [str(names.iloc[i]) for i in sorted(labels)[:SAMPLES]] if len(labels) else []


def disagreement(frame: pd.DataFrame, criteria: Criteria, key: list[str], match_on: list[str]) -> dict[str, Any]:
    """Counts per criterion, department-vs-agreed comparisons and the pairwise department overlap."""
    labels = link_companies(frame, match_on or key)
    key_text = frame["_row_id"].astype(object).astype(str)
    if key:
        key_text = frame[key[0]].astype(object).fillna("").astype(str)
        for k in key[1:]:
            key_text = key_text + "/" + frame[k].astype(object).fillna("").astype(str)
    first = pd.Series(np.arange(len(frame))).groupby(labels).first()
    company_key = key_text.iloc[first.to_numpy()].reset_index(drop=True)  # indexed by company label
    dept = frame["_department"].astype(object)
    agreed = set(np.unique(labels[evaluate(frame, criteria.agreed).to_numpy()]))
    counted: dict[str, set] = {}
    for d, crit in criteria.departments.items():
        own = (dept == d).to_numpy()
        hit = evaluate(frame, crit).to_numpy() & own
        counted[d] = set(np.unique(labels[hit]))
    comparisons = []
    for d, crit in criteria.departments.items():
        seen = set(np.unique(labels[(dept == d).to_numpy()]))
        mine = counted[d]
        comparisons.append({
            "department": d, "criterion": crit.description, "companies_in_department_data": len(seen),
            "department_counts": len(mine), "agreed_counts": len(agreed), "both": len(mine & agreed),
            "only_department": len(mine - agreed), "only_agreed": len(agreed - mine),
            "only_agreed_in_department_data": len((agreed - mine) & seen),
            "samples_only_department": _samples(mine - agreed, company_key),
            "samples_only_agreed": _samples((agreed - mine) & seen, company_key) or
            _samples(agreed - mine, company_key),
        })
    depts = list(criteria.departments)
    overlap = {a: {b: len(counted[a] & counted[b]) for b in depts} for a in depts}
    any_dept = set().union(*counted.values()) if counted else set()
    return {
        "entity": criteria.entity, "rows": len(frame), "companies": int(len(first)),
        "agreed": {"criterion": criteria.agreed.description, "counts": len(agreed)},
        "departments": comparisons, "overlap": overlap,
        "counted_by_some_department": len(any_dept),
        "counted_by_all_departments": len(set.intersection(*counted.values())) if counted else 0,
        "agreed_but_no_department": len(agreed - any_dept),
        "samples_agreed_but_no_department": _samples(agreed - any_dept, company_key),
    }
