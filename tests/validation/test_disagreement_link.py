"""The disagreement report's companies: ``_load_edges`` keeps only the linking values two rows or more
share; the companies (each row's root after ``_link``) equal those of the previous edges (every value,
numbered by ``dense_rank``), row by row, on awkward values: CJK, full-width, NUL, emoji, blanks, None,
values held by one row, long chains across the fields."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation.disagreement import _duckdb, _link, _load_edges
from crmbridge.validation.rowfiles import sql_ident as ident, sql_literal as literal

AWKWARD = ["C001", "C001\0", "\0", "Ｃ００１", "客户一", "客户一 ", "😀", "😀\0😀", "", " ", "c001", "C001\n", "ß", "SS"]


def _previous_edges(con, path, fields: list[str]) -> None:
    """``_load_edges`` as it was: every linking value a node, numbered by ``dense_rank``."""
    k = max(1, len(fields))
    src = f"read_parquet({literal(str(path))}, file_row_number = true)"
    parts = [f"SELECT file_row_number AS rid, (dense_rank() OVER (ORDER BY {ident(f)}) - 1) * {k} + {i} AS node "
             f"FROM {src} WHERE {ident(f)} IS NOT NULL" for i, f in enumerate(fields)]
    con.execute("CREATE TABLE edges AS " + (" UNION ALL ".join(parts) if parts else
                                            "SELECT 0::BIGINT AS rid, 0::BIGINT AS node WHERE false"))


def _roots(load, path, fields, n, where) -> np.ndarray:
    with _duckdb(where) as con:
        load(con, path, fields)
        _link(con)
        lab = dict(con.execute("SELECT rid, l FROM lab").fetchall())
    return np.array([lab.get(r, r) for r in range(n)], dtype=np.int64)


def _frame(seed: int, n: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    pool = AWKWARD + [f"K{rnd.randint(0, n)}" for _ in range(n // 2)]  # many values held by one row

    def col() -> pd.Series:
        return pd.Series([None if rnd.random() < 0.2 else rnd.choice(pool) for _ in range(n)], dtype=object)

    return pd.DataFrame({"credit_code": col(), "customer_no": col(), "third": col()})


@pytest.mark.parametrize("seed,n", [(1, 1), (2, 7), (3, 200), (4, 3000)])
@pytest.mark.parametrize("fields", [["credit_code", "customer_no"], ["customer_no"], ["credit_code", "customer_no", "third"], []])
def test_companies_equal_previous_edges(tmp_path, seed, n, fields):
    path = tmp_path / "rows.parquet"
    _frame(seed, n).to_parquet(path)
    new = _roots(_load_edges, path, fields, n, tmp_path)
    old = _roots(_previous_edges, path, fields, n, tmp_path)
    assert new.tolist() == old.tolist()


def test_chain_through_both_fields_and_unshared_values(tmp_path):
    # rows 0-1 share X1, 1-2 share C2, 2-3 share X3; row 4 holds values nobody else has; row 5 has none;
    # "C001" and "C001\0" are different values: rows 6 and 7 are not linked
    df = pd.DataFrame({"credit_code": ["X1", "X1", "X3", "X3", "X9", None, "A\0", "A"],
                       "customer_no": ["C1", "C2", "C2", "C4", "C9", None, "C001", "C001\0"]}, dtype=object)
    df.to_parquet(tmp_path / "rows.parquet")
    roots = _roots(_load_edges, tmp_path / "rows.parquet", ["credit_code", "customer_no"], 8, tmp_path)
    assert roots.tolist() == [0, 0, 0, 0, 4, 5, 6, 7]


@pytest.mark.parametrize("seed,n", [(5, 1), (6, 40), (7, 2500)])
def test_company_flags_equal_previous_grouping(tmp_path, seed, n):
    """``comp`` (rows without a label taken as they are, labelled rows grouped) equals the previous
    grouping of every row by ``coalesce(label, row)`` over the previous edges, company by company."""
    from crmbridge.validation.disagreement import _load_flags
    from crmbridge.validation.rowfiles import open_rows
    from tests.validation.test_disagreement_equality import criteria, rows

    path = tmp_path / "rows.parquet"
    rows(seed, n).to_parquet(path)
    crit, fields = criteria(), ["credit_code", "customer_no"]
    cols = ["agreed", *(f"{p}_{i}" for i in range(len(crit.departments)) for p in ("own", "hit"))]
    got, want = [], []
    for load, out in ((_load_edges, got), (_previous_edges, want)):
        with _duckdb(tmp_path) as con:
            load(con, path, fields)
            _link(con)
            _load_flags(con, open_rows(path), crit, max(7, n // 4))
            query = ("SELECT * FROM comp" if load is _load_edges else "SELECT coalesce(lab.l, flags.rid) AS root, "
                     + ", ".join(f"bool_or({c}) AS {c}" for c in cols) + " FROM flags LEFT JOIN lab USING (rid) GROUP BY ALL")
            out += con.execute(f"SELECT * FROM ({query}) ORDER BY root").fetchall()
    assert got == want and len(got) >= 1
