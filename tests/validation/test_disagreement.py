"""The department disagreement: companies linked across departments, counted per criterion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.validation.definition import Criteria
from crmbridge.validation.disagreement import disagreement, link_companies

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


def test_rows_link_transitively_into_companies():
    labels = link_companies(_rows(), ["credit_code", "customer_no"])
    assert labels[0] == labels[1] and labels[3] == labels[4]
    assert len(set(labels)) == 4


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


def test_company_labels_equal_scipy_connected_components():
    from crmbridge.validation.disagreement import _components

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
        assert np.array_equal(_components(n, parts), _scipy_components(n, parts))
