"""The department disagreement: companies linked across departments, counted per criterion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.validation.definition import Criteria
from crmbridge.validation.disagreement import _duckdb, _link, _load_edges, disagreement, disagreement_from_file

CRITERIA = Criteria.model_validate({
    "entity": "customers",
    "departments": {
        "sales": {"description": "open deals or active",
                  "any": [{"field": "open_opportunities", "op": "gt", "value": 0},
                          {"field": "status", "op": "eq", "value": "Active"}]},
        "finance": {"description": "has invoices", "all": [{"field": "invoice_count", "op": "gt", "value": 0}]},
    },
    "agreed": {"description": "has invoices", "any": [{"field": "invoice_count", "op": "gt", "value": 0}]},
})


def _rows():
    # Company A: C1 in sales + finance (same code); B: C2 sales only; C: finance row with credit code
    # only, linked to C3's sales row through the code; D: C4 finance without invoices.
    return pd.DataFrame([
        {"customer_no": "C1", "credit_code": "X1", "_department": "sales", "open_opportunities": "2",
         "status": "Prospect", "invoice_count": None},
        {"customer_no": "C1", "credit_code": "X1", "_department": "finance", "open_opportunities": None,
         "status": "Active", "invoice_count": "3"},
        {"customer_no": "C2", "credit_code": None, "_department": "sales", "open_opportunities": "0",
         "status": "Active", "invoice_count": None},
        {"customer_no": "C3", "credit_code": "X3", "_department": "sales", "open_opportunities": "0",
         "status": "Prospect", "invoice_count": None},
        {"customer_no": None, "credit_code": "X3", "_department": "finance", "open_opportunities": None,
         "status": "Active", "invoice_count": "1"},
        {"customer_no": "C4", "credit_code": None, "_department": "finance", "open_opportunities": None,
         "status": "Inactive", "invoice_count": "0"},
    ]).assign(_row_id=lambda d: [f"r{i}" for i in range(len(d))])


def _roots(con, n):
    """Per row its company's root (the row itself when it has no linking value)."""
    lab = dict(con.execute("SELECT rid, l FROM lab").fetchall())
    return np.array([lab.get(r, r) for r in range(n)])


def test_rows_link_transitively_into_companies(tmp_path):
    _rows().to_parquet(tmp_path / "rows.parquet")
    with _duckdb(tmp_path) as con:
        _load_edges(con, tmp_path / "rows.parquet", ["credit_code", "customer_no"])
        _link(con)
        roots = _roots(con, 6)
    assert list(roots) == [0, 0, 2, 3, 3, 5]  # each company's first row
    assert [p.name for p in tmp_path.iterdir()] == ["rows.parquet"]  # DuckDB's temporary directory is gone


def test_counts_overlaps_and_samples():
    rep = disagreement(_rows(), CRITERIA, ["customer_no"], ["credit_code", "customer_no"])
    assert rep["companies"] == 4 and rep["agreed"]["counts"] == 2  # C1 and C3 have invoices
    sales, finance = rep["departments"]
    assert (sales["department_counts"], sales["both"], sales["only_department"], sales["only_agreed"]) == (2, 1, 1, 1)
    assert sales["samples_only_department"] == ["C2"] and sales["samples_only_agreed"] == ["C3"]
    assert (finance["department_counts"], finance["only_department"], finance["only_agreed"]) == (2, 0, 0)
    assert finance["companies_in_department_data"] == 3
    assert rep["overlap"] == {"sales": {"sales": 2, "finance": 1}, "finance": {"sales": 1, "finance": 2}}
    assert rep["counted_by_all_departments"] == 1 and rep["agreed_but_no_department"] == 0


def _duckdb_components(n, parts, where):
    """Dense company labels (numbered by first row) from DuckDB's linking of ``parts``."""
    import pyarrow as pa

    k = max(1, len(parts))
    rid = np.concatenate([p for p, _c, _k in parts] or [np.zeros(0, dtype=np.int64)]).astype(np.int64)
    node = np.concatenate([c * k + i for i, (_p, c, _k) in enumerate(parts)] or [np.zeros(0, dtype=np.int64)])
    edges_arrow = pa.table({"rid": rid, "node": node.astype(np.int64)})  # noqa: F841 - read by DuckDB
    with _duckdb(where) as con:
        con.execute("CREATE TABLE edges AS SELECT * FROM edges_arrow")
        _link(con)
        roots = _roots(con, n)
    return np.unique(roots, return_inverse=True)[1].reshape(-1)


def _scipy_components(n, parts):
    """The graph formulation the labels used to come from (rows and values as nodes)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols, off = [np.arange(n)], [np.arange(n)], n
    for p, c, k in parts:
        rows.append(p)
        cols.append(c + off)
        off += k
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(off, off))
    return connected_components(graph, directed=False)[1][:n]


def test_company_labels_equal_scipy_connected_components(tmp_path):
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(60):
        n = int(rng.integers(1, 300))
        parts = []
        for _f in range(int(rng.integers(0, 4))):
            present = np.flatnonzero(rng.random(n) < rng.random())
            uniq, codes = np.unique(rng.integers(0, int(rng.integers(1, max(2, n))), size=len(present)),
                                    return_inverse=True)
            parts.append((present, codes.reshape(-1), len(uniq)))
        cases.append((n, parts))
    rows = np.arange(3000)
    perm = rng.permutation(3000)
    for a, b in ((rows // 2, (rows + 1) // 2), ((rows // 2)[perm], ((rows + 1) // 2)[perm])):  # one long chain
        cases.append((3000, [(rows, a, a.max() + 1), (rows, b, b.max() + 1)]))
    for n, parts in cases:
        assert np.array_equal(_duckdb_components(n, parts, tmp_path), _scipy_components(n, parts))


# ----------------------------------------------------------------------------- the previous numpy version
# Kept as the reference the DuckDB linking is compared with (commit f820333): per-row labels by min-label
# propagation in numpy, company sets as boolean masks over the labels.

def _old_components(n, parts):
    lab = np.arange(n, dtype=np.int64)
    parts = [(np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64), int(k)) for r, c, k in parts if k]
    changed = True
    while changed:
        changed = False
        for rows, codes, k in parts:
            low = np.full(k, n, dtype=np.int64)
            np.minimum.at(low, codes, lab[rows])
            new = low[codes]
            upd = new < lab[rows]
            if upd.any():
                changed = True
                np.minimum.at(lab, lab[rows[upd]], new[upd])
                np.minimum.at(lab, rows[upd], new[upd])
        while True:
            nxt = lab[lab]
            if np.array_equal(nxt, lab):
                break
            lab = nxt
    return np.unique(lab, return_inverse=True)[1].reshape(-1)


def _old_disagreement(frame, criteria, key, match_on):
    from crmbridge.validation.disagreement import SAMPLES, _key_text, evaluate

    parts = []
    for f in match_on or key:
        if f in frame.columns:
            present = frame[f].notna().to_numpy()
            codes, uniques = pd.factorize(frame[f][present])
            parts.append((np.flatnonzero(present), codes, len(uniques)))
    labels = _old_components(len(frame), parts)
    uniq, first = np.unique(labels, return_index=True)
    size = int(uniq[-1]) + 1 if len(uniq) else 0
    dept = frame["_department"].astype(object) if "_department" in frame.columns else \
        pd.Series(None, index=frame.index, dtype=object)

    def companies(flags):
        mask = np.zeros(size, dtype=bool)
        mask[labels[np.flatnonzero(flags)]] = True
        return mask

    def samples(chosen):
        picked = [int(x) for x in np.flatnonzero(chosen)[:SAMPLES]]
        rows = first[np.searchsorted(uniq, picked)]
        return [str(t) for t in _key_text(frame.iloc[rows], key)] if picked else []

    def count(mask):
        return int(mask.sum())

    agreed = companies(evaluate(frame, criteria.agreed).to_numpy(dtype=bool))
    counted, comparisons = {}, []
    for d, crit in criteria.departments.items():
        own = (dept == d).to_numpy(dtype=bool)
        seen, mine = companies(own), companies(evaluate(frame, crit).to_numpy(dtype=bool) & own)
        counted[d] = mine
        only_agreed = agreed & ~mine
        comparisons.append({
            "department": d, "criterion": crit.description, "companies_in_department_data": count(seen),
            "department_counts": count(mine), "agreed_counts": count(agreed), "both": count(mine & agreed),
            "only_department": count(mine & ~agreed), "only_agreed": count(only_agreed),
            "only_agreed_in_department_data": count(only_agreed & seen),
            "samples_only_department": samples(mine & ~agreed),
            "samples_only_agreed": samples(only_agreed & seen) or samples(only_agreed),
        })
    depts = list(criteria.departments)
    any_dept, all_dept = np.zeros(size, dtype=bool), np.ones(size, dtype=bool)
    for m in counted.values():
        any_dept |= m
        all_dept &= m
    return {
        "entity": criteria.entity, "rows": len(frame), "companies": int(len(uniq)),
        "agreed": {"criterion": criteria.agreed.description, "counts": count(agreed)},
        "departments": comparisons, "overlap": {a: {b: count(counted[a] & counted[b]) for b in depts} for a in depts},
        "counted_by_some_department": count(any_dept),
        "counted_by_all_departments": count(all_dept) if counted else 0,
        "agreed_but_no_department": count(agreed & ~any_dept),
        "samples_agreed_but_no_department": samples(agreed & ~any_dept),
    }


def _random_rows(rng, n):
    """Departments' rows of few companies: shared and missing customer numbers and credit codes, so that
    companies chain across both fields, criteria fields as text, some missing."""
    def pick(prefix, k, missing):
        vals = np.array([f"{prefix}{i}" for i in rng.integers(0, k, size=n)], dtype=object)
        vals[rng.random(n) < missing] = None
        return vals

    return pd.DataFrame({
        "customer_no": pick("C", max(1, n // 2), 0.1), "credit_code": pick("X", max(1, n // 3), 0.4),
        "branch": pick("B", 4, 0.2),
        "_department": rng.choice(np.array(["sales", "finance", "service", None], dtype=object), size=n),
        "open_opportunities": pick("", 4, 0.3),
        "status": rng.choice(np.array(["Active", "Prospect", None], dtype=object), size=n),
        "invoice_count": pick("", 3, 0.5),
        "_row_id": [f"r{i}" for i in range(n)],
    })


def test_duckdb_report_equals_the_previous_numpy_report(tmp_path):
    rng = np.random.default_rng(14)
    criteria = Criteria.model_validate({**CRITERIA.model_dump(), "departments": {
        **CRITERIA.model_dump()["departments"],
        "service": {"description": "not inactive", "all": [{"field": "status", "op": "ne", "value": "Inactive"},
                                                           {"field": "nowhere", "op": "missing"}]}}})
    cases = [(_rows(), CRITERIA, ["customer_no"], ["credit_code", "customer_no"])]
    for i in range(24):
        frame = _random_rows(rng, int(rng.integers(1, 400)))
        key = [["customer_no"], ["customer_no", "branch"], []][i % 3]
        match_on = [["credit_code", "customer_no"], [], ["credit_code"], ["nowhere", "customer_no"]][i % 4]
        cases.append((frame, [CRITERIA, criteria][i % 2], key, match_on))
    for frame, crit, key, match_on in cases:
        old = _old_disagreement(frame, crit, key, match_on)
        assert disagreement(frame, crit, key, match_on) == old
        frame.to_parquet(tmp_path / "rows.parquet", row_group_size=7)  # samples read across row groups
        assert disagreement_from_file(tmp_path / "rows.parquet", crit, key, match_on, batch_rows=13) == old
    assert any(d["samples_only_agreed"] for _f, c, k, m in cases[1:4]
               for d in _old_disagreement(_f, c, k, m)["departments"])  # the comparison saw samples


def test_report_of_more_flags_than_one_word_holds_equals_the_previous_numpy_report(tmp_path):
    """40 departments: 81 flags a row, packed into two 64-bit words (``disagreement._packed``), read back by
    flag as the previous report had them."""
    rng = np.random.default_rng(40)
    depts = [f"d{i}" for i in range(40)]
    tests = [[{"field": "invoice_count", "op": "gt", "value": i % 3},
              {"field": "status", "op": "eq", "value": ["Active", "Prospect"][i % 2]}] for i in range(len(depts))]
    departments = {d: {"description": d, "any": t} for d, t in zip(depts, tests)}
    criteria = Criteria.model_validate({"entity": "customers", "agreed": CRITERIA.model_dump()["agreed"],
                                        "departments": departments})
    frame = _random_rows(rng, 600)
    frame["_department"] = rng.choice(np.array([*depts, None], dtype=object), size=len(frame))
    frame.to_parquet(tmp_path / "rows.parquet", row_group_size=50)
    old = _old_disagreement(frame, criteria, ["customer_no"], ["credit_code", "customer_no"])
    got = disagreement_from_file(tmp_path / "rows.parquet", criteria, ["customer_no"], ["credit_code", "customer_no"],
                                 batch_rows=70)
    assert got == old
    assert old["departments"][39]["department_counts"] and old["overlap"]["d38"]["d38"]  # the second word is read


def test_duckdb_memory_cap_grows_past_five_million_rows(tmp_path):
    def cap(rows):
        with _duckdb(tmp_path, rows) as con:
            return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    small, big = cap(1_000), cap(10_000_000)
    assert small == cap(5_000_000)  # the fixed cap up to about 5M rows
    to_mib = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    value, unit = big.split()
    assert float(value) * to_mib[unit] > 1.8 * 244  # 10M rows: about twice the 256MB (244 MiB) cap
    assert not any(tmp_path.glob(".disagreement-*"))  # the temporary directory is removed


def test_criteria_sharing_tests_through_a_memo_equal_each_evaluated_alone():
    """``_load_flags`` runs the agreed and the departments' criteria with one memo per batch: a test
    repeated across criteria is run once, and tests that differ only in their value stay apart."""
    from crmbridge.validation.definition import Criterion
    from crmbridge.validation.disagreement import evaluate

    frame = pd.DataFrame({"n": ["2", "0", None, " 3 ", "x", "1e1", "-1", "0.5"],
                          "status": ["Active", "active", None, "Active ", "Blocked", "Active", "", "Prospect"]},
                         index=range(10, 18))
    criteria = [Criterion.model_validate(c) for c in (
        {"description": "a", "any": [{"field": "n", "op": "gt", "value": 0},
                                     {"field": "status", "op": "eq", "value": "Active"}]},
        {"description": "b", "all": [{"field": "n", "op": "gt", "value": 1}]},
        {"description": "c", "all": [{"field": "n", "op": "gt", "value": 0}, {"field": "status", "op": "present"}]},
        {"description": "d", "any": [{"field": "status", "op": "in", "value": ["Active", "Blocked"]},
                                     {"field": "status", "op": "eq", "value": "Blocked"},
                                     {"field": "gone", "op": "missing"}]},
        {"description": "e", "all": [{"field": "n", "op": "le", "value": 0}, {"field": "status", "op": "ne",
                                                                                 "value": "Active"}]},
    )]
    memo: dict = {}
    for c in criteria:
        assert evaluate(frame, c, memo).tolist() == evaluate(frame, c).tolist(), c.description
    assert len(memo) == 9  # 11 tests, two of them repeated
