"""The department disagreement report: who counts as a customer under each department's own
criterion versus the agreed one, with overlaps, differences and sample keys.

Rows are first linked into companies: rows sharing a value of any ``identity.match_on`` field (the
credit code, the customer number ...) belong to the same company, transitively (connected
components). A department counts a company when one of *its own* rows meets its criterion; the
agreed criterion counts a company when any of its rows, from any department, meets it.

The linking and the per-company sets run in DuckDB over the validate stage's spill (``rowfiles``), with
a memory limit and a temporary directory it spills to: no array of the whole entity is held in Python
(the criteria are evaluated in pandas batch by batch, as before, and their flags appended to DuckDB).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from crmbridge.validation.definition import Condition, Criteria, Criterion
from crmbridge.validation.rowfiles import open_rows, sql_literal

SAMPLES = 10
# DuckDB's own memory cap for the linking; past it DuckDB spills to its temporary directory. One thread:
# the report is a small part of validate and the machine is shared (see docs/performance.md).
DUCKDB_FLOOR_MB = 256
DUCKDB_MEMORY = f"{DUCKDB_FLOOR_MB}MB"  # the buffer pool's cap up to about 5M rows
# Above that the cap grows with the rows: DuckDB's DISTINCT ran out of memory at 128MB on 5M rows
# (26 bytes a row) and at 64MB on 1M, 256MB (54 bytes a row) held at 5M.
DUCKDB_BYTES_PER_ROW = 52
DUCKDB_THREADS = 1


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


def evaluate(frame: pd.DataFrame, c: Criterion, memo: dict | None = None) -> pd.Series:
    """Rows meeting ``c``: every ``all`` test and (when given) at least one ``any`` test. ``memo``: the
    tests already run on this frame (the agreed and the departments' criteria repeat tests)."""
    def test(t: Condition) -> pd.Series:
        if memo is None:
            return _test(frame, t)
        key = (t.field, t.op, repr(t.value))
        if key not in memo:
            memo[key] = _test(frame, t)
        return memo[key]

    ok = pd.Series(True, index=frame.index)
    for t in c.all:
        ok &= test(t)
    if c.any:
        some = pd.Series(False, index=frame.index)
        for t in c.any:
            some |= test(t)
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
    """Counts per criterion, department-vs-agreed comparisons and the pairwise department overlap, for
    rows in memory (written to a temporary Parquet file: one code path with ``disagreement_from_file``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="crmbridge-disagreement-") as tmp:
        path = Path(tmp) / "rows.parquet"
        pq.write_table(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False), path)
        return disagreement_from_file(path, criteria, key, match_on)


def disagreement_for(definition, entity: str, spill_path, batch_rows: int) -> dict[str, Any]:
    """The report for ``entity``, the one the definition's criteria judge, from validate's normalised spill."""
    ident = definition.entities[entity].identity
    return disagreement_from_file(spill_path, definition.criteria, ident.key, ident.match_on, batch_rows)


def disagreement_from_file(path, criteria: Criteria, key: list[str], match_on: list[str],
                           batch_rows: int = 100_000) -> dict[str, Any]:
    """``disagreement`` over a file of the normalised rows (the validate stage's spill, Arrow IPC, or a
    Parquet file: ``rowfiles.open_rows``): rows are linked into companies in DuckDB, the criteria evaluated
    batch by batch on their own columns, and key text built only for the rows shown as samples."""
    rows = open_rows(path)
    with _duckdb(Path(path).parent, rows.num_rows) as con:
        _load_edges(con, rows, [f for f in (match_on or key) if f in rows.names])
        _link(con)
        _load_flags(con, rows, criteria, batch_rows)
        return _report(con, criteria, rows.num_rows, lambda at: _sample_keys(rows, key, at))


@contextmanager
def _duckdb(where: Path, rows: int = 0) -> Iterator[Any]:
    """A DuckDB in a temporary directory under ``where``, its buffer pool capped at ``DUCKDB_MEMORY``
    (``DUCKDB_BYTES_PER_ROW`` a row for more ``rows`` than that covers)."""
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix=".disagreement-", dir=where))
    con = duckdb.connect(str(tmp / "link.duckdb"))  # tables on disk: only the buffer pool is capped memory
    try:
        con.execute("SET enable_progress_bar = false")
        grown = rows * DUCKDB_BYTES_PER_ROW >> 20
        limit = f"{grown}MB" if grown > DUCKDB_FLOOR_MB else DUCKDB_MEMORY
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET threads = {int(DUCKDB_THREADS)}")
        con.execute("SET preserve_insertion_order = false")  # every order the report needs is an ORDER BY
        con.execute(f"SET temp_directory = {sql_literal(str(tmp))}")
        yield con
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _load_edges(con, rows, fields: list[str]) -> None:
    """``edges(rid, node)``: each row (its position in the file) to each of its linking values that
    another row holds too; a value is a node numbered per field (its number among the field's shared
    values, times the field count, plus the field). A value only one row holds links that row to
    nothing (a leaf of the row/value graph): leaving it out changes no company, and a row left with no
    edge is a company of its own, as ``lab``'s readers take it. Most values are such leaves (customer
    numbers), so the linking runs over a fraction of the rows and no value is sorted. ``rows``: a
    ``rowfiles`` reader, or the path of a file for one."""
    rows = open_rows(rows) if isinstance(rows, (str, Path)) else rows
    k = max(1, len(fields))
    parts = [f"SELECT rid, (n - 1) * {k} + {i} AS node FROM (SELECT rid, v FROM {rows.relation(con, f)} "
             f"WHERE v IS NOT NULL) JOIN (SELECT v, row_number() OVER () AS n FROM (SELECT v FROM "
             f"{rows.relation(con, f)} WHERE v IS NOT NULL) GROUP BY v HAVING count(*) > 1) USING (v)"
             for i, f in enumerate(fields)]
    con.execute("CREATE TABLE edges AS " + (" UNION ALL ".join(parts) if parts else
                                            "SELECT 0::BIGINT AS rid, 0::BIGINT AS node WHERE false"))


def _link(con) -> None:
    """``lab(rid, l)``: for every row with a linking value, its company's root, the smallest row number
    among the rows linked to it (connected components of rows and values). Min-label propagation with
    hooking and pointer jumping, as in the numpy version it replaces: a few passes of SQL over the edges
    (``tests/validation/test_disagreement.py`` checks the components against scipy's)."""
    con.execute("CREATE TABLE lab AS SELECT DISTINCT rid, rid AS l FROM edges")
    while True:
        con.execute("""CREATE OR REPLACE TABLE low AS
            WITH node_low AS (SELECT node, min(l) AS m FROM edges JOIN lab USING (rid) GROUP BY node),
                 row_low AS (SELECT rid, min(m) AS m FROM edges JOIN node_low USING (node) GROUP BY rid)
            SELECT rid, l, m FROM row_low JOIN lab USING (rid) WHERE m < l""")
        if not con.execute("SELECT count(*) FROM low").fetchone()[0]:
            return
        # lower the rows and hook their old labels' roots too, so whole trees move at once
        _replace(con, "lab", """SELECT rid, least(l, coalesce(h, l)) AS l FROM lab LEFT JOIN
            (SELECT t, min(m) AS h FROM (SELECT rid AS t, m FROM low UNION ALL SELECT l AS t, m FROM low)
             GROUP BY t) ON t = rid""")
        while True:  # pointer jumping: every row straight to its root
            _replace(con, "lab", "SELECT a.rid, b.l, b.l <> a.l AS moved FROM lab a JOIN lab b ON b.rid = a.l")
            if not con.execute("SELECT bool_or(moved) FROM lab").fetchone()[0]:
                break


def _replace(con, table: str, query: str) -> None:
    con.execute(f"CREATE TABLE {table}_next AS {query}")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {table}_next RENAME TO {table}")


def _by_distinct(table, field: str, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``fn`` (a row-by-row test of one column, True/False per value) on ``table``'s column ``field``
    as object values (str or None; None where the column is absent), run once per distinct value when
    the column is text (Arrow dictionary codes: no Python string per row) and spread to the rows. Other
    columns go through ``fn`` whole, as before."""
    import pyarrow as pa
    import pyarrow.compute as pc

    index = pd.RangeIndex(table.num_rows)
    if field not in table.column_names:
        return pd.Series(fn(pd.Series(None, index=index, dtype=object)).to_numpy(dtype=bool), index=index)
    col = table.column(field).combine_chunks()
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return pd.Series(fn(pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)).to_numpy(dtype=bool),
                         index=index)
    enc = pc.dictionary_encode(col)
    uniques = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    if col.null_count:  # None only where the column has it: to_numeric's dtype follows the values seen
        uniques = np.append(uniques, None)
    codes = pc.fill_null(enc.indices, len(uniques) - 1).to_numpy(zero_copy_only=False)
    return pd.Series(fn(pd.Series(uniques, dtype=object)).to_numpy(dtype=bool)[codes], index=index)


def _memo(table, conditions: list[Condition]) -> dict:
    """``evaluate``'s memo for ``table``: every test, each on the distinct values of its own field
    (a test reads only that field of the row)."""
    memo: dict = {}
    for t in conditions:
        key = (t.field, t.op, repr(t.value))
        if key not in memo:
            memo[key] = _by_distinct(table, t.field, lambda v, t=t: _test(pd.DataFrame({t.field: v}), t))
    return memo


def _load_flags(con, rows, criteria: Criteria, batch_rows: int) -> None:
    """``flags(rid, agreed, own_i, hit_i)`` per row: the agreed criterion, whether the row is department
    i's, and department i's criterion on its own rows; then ``comp``: the same per company (any row). Both
    are views of the flags packed as bits (``_packed``): DuckDB writes a word a row, not a column a flag."""
    import pyarrow as pa

    depts = list(criteria.departments.values())
    fields = {t.field for c in [criteria.agreed, *depts] for t in [*c.all, *c.any]}
    cols = [c for c in rows.names if c in fields or c == "_department"]
    flag_cols = ["agreed", *(f"{p}_{i}" for i in range(len(depts)) for p in ("own", "hit"))]
    words = [f"bits_{w}" for w in range((len(flag_cols) + 63) // 64)]
    con.execute("CREATE TABLE flag_bits (rid BIGINT, " + ", ".join(f"{w} UBIGINT" for w in words) + ")")
    conditions = [t for c in [criteria.agreed, *depts] for t in [*c.all, *c.any]]
    start = 0
    for table in rows.tables(cols, batch_rows):
        n = table.num_rows
        frame = pd.DataFrame(index=range(n))  # every test is in the memo: evaluate needs the rows only
        memo = _memo(table, conditions)
        flags = [evaluate(frame, criteria.agreed, memo).to_numpy(dtype=bool)]
        for d, crit in criteria.departments.items():
            own = _by_distinct(table, "_department", lambda v, d=d: v == d).to_numpy(dtype=bool)
            flags += [own, evaluate(frame, crit, memo).to_numpy(dtype=bool) & own]
        rid = np.arange(start, start + n, dtype=np.int64)
        batch = pa.table({"rid": rid, **_packed(flags)})  # noqa: F841 - DuckDB reads the local variable by name
        con.execute("INSERT INTO flag_bits SELECT * FROM batch")
        start += n
    # a row without a label links to no other row: its own company, its flags as they are (no grouping)
    con.execute(f"CREATE TABLE comp_bits AS SELECT rid AS root, {', '.join(words)} FROM flag_bits ANTI JOIN lab "
                "USING (rid) UNION ALL SELECT lab.l AS root, " + ", ".join(f"bit_or({w}) AS {w}" for w in words)
                + " FROM flag_bits JOIN lab USING (rid) GROUP BY lab.l")
    unpacked = ", ".join(f"({words[j // 64]} >> {j % 64}) & 1 = 1 AS {c}" for j, c in enumerate(flag_cols))
    con.execute(f"CREATE VIEW flags AS SELECT rid, {unpacked} FROM flag_bits")
    con.execute(f"CREATE VIEW comp AS SELECT root, {unpacked} FROM comp_bits")


def _packed(flags: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Flag ``j`` (a bool per row) as bit ``j % 64`` of word ``bits_{j // 64}`` (``UBIGINT``)."""
    out: dict[str, np.ndarray] = {}
    for j, flag in enumerate(flags):
        word = out.setdefault(f"bits_{j // 64}", np.zeros(len(flag), dtype=np.uint64))
        word |= flag.astype(np.uint64) << np.uint64(j % 64)
    return out


def _sample_keys(rows, key: list[str], at: np.ndarray) -> pd.Series:
    """The key text of the rows at these positions, read from the parts of the file holding them only."""
    wanted = list(key) if key else ["_row_id"]
    have = [c for c in wanted if c in rows.names]
    t = rows.take(have, np.asarray(at, dtype=np.int64))
    df = pd.DataFrame({c: pd.Series(t.column(c).to_numpy(zero_copy_only=False), dtype=object) for c in have},
                      index=range(len(at)))
    for c in wanted:
        if c not in df.columns:
            df[c] = pd.Series(None, index=range(len(at)), dtype=object)
    return _key_text(df, key)


def _report(con, criteria: Criteria, n: int, key_text: Callable[[np.ndarray], pd.Series]) -> dict[str, Any]:
    """The report from the ``comp`` view (one row per company: its root row and its flags), as SQL
    conditions over it; ``key_text(rows)`` gives the key text of those row positions (only the sampled
    companies' first rows, their roots, are asked for). Every count is taken in one scan of ``comp``: the
    conditions are first collected by building the report without querying."""
    shown: dict[int, str] = {}

    def samples(cond: str) -> list[str]:
        picked = [int(r) for (r,) in con.execute(  # the first rows of the lowest companies, as sorted() gave
            f"SELECT root FROM comp WHERE {cond} ORDER BY root LIMIT {SAMPLES}").fetchall()]
        missing = [r for r in picked if r not in shown]
        if missing:
            for r, text in zip(missing, key_text(np.array(missing, dtype=np.int64))):
                shown[r] = str(text)
        return [shown[r] for r in picked]

    asked: list[str] = []
    _report_of(criteria, n, lambda cond: asked.append(cond) or 0, lambda cond: [])
    conds = list(dict.fromkeys(asked))
    counts = con.execute("SELECT " + ", ".join(f"count_if({c})" for c in conds) + " FROM comp").fetchone()
    counted = dict(zip(conds, map(int, counts)))
    return _report_of(criteria, n, counted.__getitem__, samples)


def _report_of(criteria: Criteria, n: int, count: Callable[[str], int],
               samples: Callable[[str], list[str]]) -> dict[str, Any]:
    """The report, given the companies meeting an SQL condition over ``comp``: ``count`` of them, ``samples``
    of their keys."""
    comparisons = []
    for i, (d, crit) in enumerate(criteria.departments.items()):
        seen, mine = f"own_{i}", f"hit_{i}"
        only_agreed = f"agreed AND NOT {mine}"
        comparisons.append({
            "department": d, "criterion": crit.description, "companies_in_department_data": count(seen),
            "department_counts": count(mine), "agreed_counts": count("agreed"), "both": count(f"{mine} AND agreed"),
            "only_department": count(f"{mine} AND NOT agreed"), "only_agreed": count(only_agreed),
            "only_agreed_in_department_data": count(f"{only_agreed} AND {seen}"),
            "samples_only_department": samples(f"{mine} AND NOT agreed"),
            "samples_only_agreed": samples(f"{only_agreed} AND {seen}") or samples(only_agreed),
        })
    hits = [f"hit_{i}" for i in range(len(criteria.departments))]
    overlap = {a: {b: count(f"{hits[i]} AND {hits[j]}") for j, b in enumerate(criteria.departments)}
               for i, a in enumerate(criteria.departments)}
    any_dept = "(" + " OR ".join(hits) + ")" if hits else "false"
    return {
        "entity": criteria.entity, "rows": n, "companies": count("true"),
        "agreed": {"criterion": criteria.agreed.description, "counts": count("agreed")},
        "departments": comparisons, "overlap": overlap,
        "counted_by_some_department": count(any_dept),
        "counted_by_all_departments": count(" AND ".join(hits)) if hits else 0,
        "agreed_but_no_department": count(f"agreed AND NOT {any_dept}"),
        "samples_agreed_but_no_department": samples(f"agreed AND NOT {any_dept}"),
    }
