"""The disagreement report's criteria, run once per distinct value, give the report (bytes of its JSON)
and the flags the previous row-by-row evaluation gave, on tricky data: missing and empty values,
full-width digits, numbers beyond 2^53 and int64, non-numbers, CJK, absent columns, a single row,
batches without a missing value."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crmbridge.validation import disagreement as D
from crmbridge.validation.definition import Criteria

NUMS = [None, "", " ", "0", "1", "-1", "2.5", "１", "9007199254740993", "9007199254740992", "99999999999999999999",
        "1e3", "abc", "客户", "nan", "inf", "-0", "0x10", " 3 "]
INTS = [None, "0", "7", "-3", "9007199254740993", "9007199254740992"]
WORDS = [None, "", "Active", "active", "Ａctive", "活跃", "Active ", "Blocked"]


def criteria(depts=("sales", "finance", "服务")) -> Criteria:
    tests = [{"field": f, "op": op, "value": v} for f in ("n", "k") for op in ("gt", "ge", "lt", "le")
             for v in (0, 1, 2.5, 9007199254740992, -1)]
    tests += [{"field": "s", "op": op, "value": v} for op, v in
              [("eq", "Active"), ("ne", "Active"), ("in", ["Active", "活跃", 1]), ("not_in", ["Blocked"]), ("eq", 1)]]
    tests += [{"field": f, "op": op} for f in ("n", "s", "absent") for op in ("present", "missing")]
    tests += [{"field": "absent", "op": "gt", "value": 0}, {"field": "line", "op": "gt", "value": 3},
              {"field": "line", "op": "eq", "value": 3}]
    rnd = random.Random(len(depts))
    return Criteria.model_validate({
        "entity": "customers",
        "departments": {d: {"any": rnd.sample(tests, 4), "all": rnd.sample(tests, 1)} for d in depts},
        "agreed": {"any": tests[:: 3], "all": [tests[-1]] if len(depts) == 2 else []},
    })


def rows(seed: int, n: int, nulls: bool = True) -> pd.DataFrame:
    rnd = random.Random(seed)
    pick = (lambda pool: rnd.choice(pool)) if nulls else (lambda pool: rnd.choice([v for v in pool if v is not None]))
    return pd.DataFrame({
        "customer_no": pd.Series([pick([None, *(f"C{rnd.randint(0, n // 2)}" for _ in range(3))]) for _ in range(n)],
                                 dtype=object),
        "credit_code": pd.Series([pick([None, f"X{rnd.randint(0, n // 3)}"]) for _ in range(n)], dtype=object),
        "_department": pd.Series([pick([None, "sales", "finance", "服务", "other"]) for _ in range(n)], dtype=object),
        "n": pd.Series([pick(NUMS) for _ in range(n)], dtype=object),
        "s": pd.Series([pick(WORDS) for _ in range(n)], dtype=object),
        "k": pd.Series([pick(INTS) for _ in range(n)], dtype=object),  # integers only: to_numeric keeps int64
        "line": np.arange(n, dtype=np.int64),
        "_row_id": [f"r{i}" for i in range(n)],
    })


def row_by_row(table, field, fn):
    """The previous evaluation: ``fn`` on the whole column as object values (None where absent)."""
    index = pd.RangeIndex(table.num_rows)
    if field not in table.column_names:
        return pd.Series(fn(pd.Series(None, index=index, dtype=object)).to_numpy(dtype=bool), index=index)
    values = pd.Series(table.column(field).to_numpy(zero_copy_only=False), dtype=object)
    return pd.Series(fn(values).to_numpy(dtype=bool), index=index)


@pytest.mark.parametrize("seed,n,nulls", [(1, 1, True), (2, 1, False), (3, 60, True), (4, 60, False), (5, 2000, True)])
def test_flags_per_distinct_value_equal_the_row_by_row_tests(seed, n, nulls):
    table = pa.Table.from_pandas(rows(seed, n, nulls), preserve_index=False)
    crit = criteria()
    conditions = [t for c in [crit.agreed, *crit.departments.values()] for t in [*c.all, *c.any]]
    frame = pd.DataFrame({c: pd.Series(table.column(c).to_numpy(zero_copy_only=False), dtype=object)
                          for c in table.column_names})
    memo = D._memo(table, conditions)
    for t in conditions:
        want = D._test(frame, t)
        assert memo[(t.field, t.op, repr(t.value))].tolist() == want.fillna(False).astype(bool).tolist(), t
    for c in [crit.agreed, *crit.departments.values()]:
        assert D.evaluate(pd.DataFrame(index=range(n)), c, memo).tolist() == D.evaluate(frame, c).tolist()
    for d in crit.departments:
        own = D._by_distinct(table, "_department", lambda v, d=d: v == d)
        assert own.tolist() == (frame["_department"] == d).tolist()


@pytest.mark.parametrize("seed,n,batch,depts", [(6, 1, 1, ("sales", "finance")), (7, 300, 7, ("sales", "finance", "服务")),
                                                (8, 5000, 1000, ("sales", "finance", "服务"))])
def test_report_bytes_equal_the_row_by_row_report(monkeypatch, tmp_path, seed, n, batch, depts):
    path = tmp_path / "rows.parquet"
    rows(seed, n).to_parquet(path, index=False, row_group_size=max(1, n // 3))
    crit = criteria(depts)

    def report():
        rep = D.disagreement_from_file(path, crit, ["customer_no"], ["credit_code", "customer_no"], batch)
        return json.dumps(rep, ensure_ascii=False, sort_keys=True).encode()

    new = report()
    monkeypatch.setattr(D, "_by_distinct", row_by_row)
    assert new == report()
