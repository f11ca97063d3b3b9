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
    parts = []
    for f in match_on:
        if f not in frame.columns:
            continue
        vals = frame[f]
        present = vals.notna().to_numpy()
        codes, uniques = pd.factorize(vals[present])
        parts.append((np.flatnonzero(present), codes, len(uniques)))
    return _components(len(frame), parts)


def _components(n: int, parts: list[tuple[np.ndarray, np.ndarray, int]]) -> np.ndarray:
    """Connected components of rows and values: ``parts`` is per field (rows with a value, the value's
    code, how many distinct values). Labels are numbered by each company's first row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    size = n + sum(p[2] for p in parts)
    itype = np.int32 if size < 2 ** 31 - 1 else np.int64
    rows, cols = [np.arange(n, dtype=itype)], [np.arange(n, dtype=itype)]
    offset = n
    for present, codes, count in parts:
        rows.append(np.asarray(present, dtype=itype))
        cols.append(np.asarray(codes, dtype=itype) + itype(offset))
        offset += count
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def _arrow_codes(path, field: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``link_companies``' per-field codes for one column of a Parquet file, computed in Arrow (the
    distinct values stay Arrow text: no Python string per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[field]).column(field)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)
    present = col.is_valid().to_numpy(zero_copy_only=False)
    values = col.filter(col.is_valid())
    uniques = pc.unique(values)
    codes = pc.index_in(values, value_set=uniques).to_numpy(zero_copy_only=False)
    return np.flatnonzero(present), codes, len(uniques)


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


def _key_text(frame: pd.DataFrame, key: list[str]) -> pd.Series:
    if not key:
        return frame["_row_id"].astype(object).astype(str).reset_index(drop=True)
    key_text = frame[key[0]].astype(object).fillna("").astype(str)
    for k in key[1:]:
        key_text = key_text + "/" + frame[k].astype(object).fillna("").astype(str)
    return key_text.reset_index(drop=True)


def disagreement(frame: pd.DataFrame, criteria: Criteria, key: list[str], match_on: list[str]) -> dict[str, Any]:
    """Counts per criterion, department-vs-agreed comparisons and the pairwise department overlap."""
    labels = link_companies(frame, match_on or key)
    flags = _Flags(criteria)
    flags.add(frame)
    return _report(criteria, len(frame), labels, flags, lambda rows: _key_text(frame.iloc[rows], key))


def disagreement_from_parquet(path, criteria: Criteria, key: list[str], match_on: list[str],
                              batch_rows: int = 100_000) -> dict[str, Any]:
    """``disagreement`` over a Parquet file of the normalised rows (the validate stage's spill), without
    the whole frame: the linking fields are coded in Arrow, the criteria are evaluated batch by batch on
    their own columns, and key text is built only for the rows shown as samples."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    n = pf.metadata.num_rows
    parts = [_arrow_codes(path, f) for f in (match_on or key) if f in names]
    labels = _components(n, parts)
    fields = {t.field for c in [criteria.agreed, *criteria.departments.values()] for t in [*c.all, *c.any]}
    cols = [c for c in names if c in fields or c == "_department"]
    flags = _Flags(criteria)
    for batch in pf.iter_batches(batch_size=max(1, batch_rows), columns=cols):
        flags.add(pd.DataFrame({c: pd.Series(batch.column(c).to_numpy(zero_copy_only=False), dtype=object)
                                for c in batch.schema.names}))
    if not cols:  # no column at all: still one flag per row
        flags.add(pd.DataFrame(index=range(n)))

    def key_text(rows: np.ndarray) -> pd.Series:
        wanted = [c for c in ([*key] if key else ["_row_id"])]
        have = [c for c in wanted if c in names]
        t = pq.read_table(path, columns=have).take(rows)
        df = pd.DataFrame({c: pd.Series(t.column(c).to_numpy(zero_copy_only=False), dtype=object) for c in have})
        for c in wanted:
            if c not in df.columns:
                df[c] = pd.Series(None, index=range(len(rows)), dtype=object)
        return _key_text(df, key)

    return _report(criteria, n, labels, flags, key_text)


class _Flags:
    """Per row, added batch by batch: the agreed criterion, each department's criterion on its own rows,
    and which department the row belongs to."""

    def __init__(self, criteria: Criteria):
        self.criteria = criteria
        self._agreed: list[np.ndarray] = []
        self._own: dict[str, list[np.ndarray]] = {d: [] for d in criteria.departments}
        self._hit: dict[str, list[np.ndarray]] = {d: [] for d in criteria.departments}

    def add(self, frame: pd.DataFrame) -> None:
        dept = frame["_department"].astype(object) if "_department" in frame.columns else \
            pd.Series(None, index=frame.index, dtype=object)
        self._agreed.append(evaluate(frame, self.criteria.agreed).to_numpy(dtype=bool))
        for d, crit in self.criteria.departments.items():
            own = (dept == d).to_numpy(dtype=bool)
            self._own[d].append(own)
            self._hit[d].append(evaluate(frame, crit).to_numpy(dtype=bool) & own)

    @staticmethod
    def _cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def agreed(self) -> np.ndarray:
        return self._cat(self._agreed)

    def own(self, d: str) -> np.ndarray:
        return self._cat(self._own[d])

    def hit(self, d: str) -> np.ndarray:
        return self._cat(self._hit[d])


def _report(criteria: Criteria, n: int, labels: np.ndarray, flags: _Flags, key_text) -> dict[str, Any]:
    """The report from per-row company labels and criterion flags; ``key_text(rows)`` gives the key
    text of those row positions (only the sampled companies' first rows are asked for)."""
    uniq, first = np.unique(labels, return_index=True)  # company label -> its first row
    shown: dict[int, str] = {}

    def samples(chosen: set) -> list[str]:
        picked = sorted(chosen)[:SAMPLES]
        missing = [lab for lab in picked if lab not in shown]
        if missing:
            rows = first[np.searchsorted(uniq, missing)]
            for lab, text in zip(missing, key_text(rows)):
                shown[lab] = str(text)
        return [shown[lab] for lab in picked]

    agreed = set(np.unique(labels[flags.agreed()]))
    counted: dict[str, set] = {d: set(np.unique(labels[flags.hit(d)])) for d in criteria.departments}
    comparisons = []
    for d, crit in criteria.departments.items():
        seen = set(np.unique(labels[flags.own(d)]))
        mine = counted[d]
        comparisons.append({
            "department": d, "criterion": crit.description, "companies_in_department_data": len(seen),
            "department_counts": len(mine), "agreed_counts": len(agreed), "both": len(mine & agreed),
            "only_department": len(mine - agreed), "only_agreed": len(agreed - mine),
            "only_agreed_in_department_data": len((agreed - mine) & seen),
            "samples_only_department": samples(mine - agreed),
            "samples_only_agreed": samples((agreed - mine) & seen) or samples(agreed - mine),
        })
    depts = list(criteria.departments)
    overlap = {a: {b: len(counted[a] & counted[b]) for b in depts} for a in depts}
    any_dept = set().union(*counted.values()) if counted else set()
    return {
        "entity": criteria.entity, "rows": n, "companies": int(len(uniq)),
        "agreed": {"criterion": criteria.agreed.description, "counts": len(agreed)},
        "departments": comparisons, "overlap": overlap,
        "counted_by_some_department": len(any_dept),
        "counted_by_all_departments": len(set.intersection(*counted.values())) if counted else 0,
        "agreed_but_no_department": len(agreed - any_dept),
        "samples_agreed_but_no_department": samples(agreed - any_dept),
    }
