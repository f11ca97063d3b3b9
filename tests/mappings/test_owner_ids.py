"""``owners.owner_ids`` (the owner column's distinct values looked up, then spread to the rows) against the
previous ``engine._owners`` on every row (kept below as the reference): the same OwnerId values, dtype,
index and name, and the same reasons, for each ``on_missing`` policy, on object and ``str`` columns, short
and long, with missing values of every kind, padded and full-width codes, codes not in the table and
usernames the org does not have."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings.engine import OrgRefs, _Reasons
from crmbridge.mappings.models import Owner
from crmbridge.mappings.owners import map_distinct, owner_ids
from crmbridge.mappings.textops import strip_text


def _reference(own, raw, refs, reasons):
    """``engine._owners`` before this change, after its ``_chain``."""
    code = strip_text(raw)
    table = {k.strip(): v.strip() for k, v in refs.owners.items()}
    username = map_distinct(code, lambda c: table.get(c) if c is not None else None)
    miss = username.isna()
    if own.on_missing == "default":
        username = username.where(~miss, own.default)
    elif own.on_missing == "quarantine":
        reasons.add(miss, f"owner_not_mapped: {own.column}=" + code.fillna("(empty)"))
    users = {k.lower(): v for k, v in refs.users.items()}
    ids = map_distinct(username, lambda u: users.get(str(u).lower()) if u is not None else None)
    unknown = username.notna() & ids.isna()
    reasons.add(unknown, "owner_user_not_found: Username=" + username.fillna(""))
    return ids


CODES = ["R001", " R001", "R001\u3000", "R002", "r002", "R003", "Ｒ001", "R404", "", " ", None, np.nan, "销售甲"]
REFS = OrgRefs(owners={"R001": "ann@x.cn", " R002 ": " Bob@X.cn ", "R003": "gone@x.cn", "销售甲": "ann@x.cn"},
               users={"ANN@x.cn": "005A", "bob@x.cn": "005B", "admin@x.cn": "005Z"})
POLICIES = [{"default": "admin@x.cn"}, {"default": "nobody@x.cn"}, {"on_missing": "quarantine"}, {"on_missing": "none"}]


@pytest.mark.parametrize("policy", range(len(POLICIES)))
@pytest.mark.parametrize("n", [5, 63, 64, 3000])
@pytest.mark.parametrize("dtype", ["object", "str"])
def test_owner_ids_equal_the_lookup_on_every_row(policy, n, dtype):
    rng = random.Random(n + policy)
    values = [rng.choice(CODES) for _ in range(n)]
    if dtype == "str":
        values = [None if isinstance(v, float) else v for v in values]
    raw = pd.Series(values, dtype=dtype, index=pd.RangeIndex(n) * 2 + 1, name="sales_rep")
    own = Owner.model_validate({"column": "sales_rep", **POLICIES[policy]})
    got_reasons, ref_reasons = _Reasons(raw.index), _Reasons(raw.index)
    got = owner_ids(own, raw, REFS, got_reasons)
    ref = _reference(own, raw, REFS, ref_reasons)
    pd.testing.assert_series_equal(got, ref, check_exact=True)
    assert got_reasons.text.tolist() == ref_reasons.text.tolist()
    if policy in (1, 2) and n > 5:
        assert got_reasons.bad.any()


@pytest.mark.parametrize("users", [{}, {"ann@x.cn": "005A"}])
def test_no_user_found_at_all(users):
    raw = pd.Series(["R001", "R404", None] * 40, dtype="str", name="sales_rep")
    own = Owner.model_validate({"column": "sales_rep", "default": "admin@x.cn"})
    refs = OrgRefs(owners=REFS.owners, users=users)
    got_reasons, ref_reasons = _Reasons(raw.index), _Reasons(raw.index)
    pd.testing.assert_series_equal(owner_ids(own, raw, refs, got_reasons), _reference(own, raw, refs, ref_reasons),
                                   check_exact=True)
    assert got_reasons.text.tolist() == ref_reasons.text.tolist()


def test_owner_codes_that_are_not_text_go_row_by_row():
    raw = pd.Series([1, 2.0, None, "R001"] * 30, dtype=object, name="sales_rep")
    own = Owner.model_validate({"column": "sales_rep", "on_missing": "quarantine"})
    refs = OrgRefs(owners={"1": "ann@x.cn", "R001": "ann@x.cn"}, users=REFS.users)
    got_reasons, ref_reasons = _Reasons(raw.index), _Reasons(raw.index)
    pd.testing.assert_series_equal(owner_ids(own, raw, refs, got_reasons), _reference(own, raw, refs, ref_reasons),
                                   check_exact=True)
    assert got_reasons.text.tolist() == ref_reasons.text.tolist()
