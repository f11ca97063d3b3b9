"""validation.quarantine.steward_view: the ``<field> (legacy)`` columns, looked up once per batch, against
``stewardcsv.add_legacy`` (the per-field lookup the stage's view has always matched).

Tricky inputs: a raw ``_row_id`` twice (the first raw row wins), a quarantined row missing from the raw
batch, missing raw values (None, NaN, pandas' Arrow text nulls), ids that are numbers in one frame and
text in the other, a batch index that does not start at 0, and fields named by no row (kept, empty).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge import stewardcsv as S
from crmbridge.validation.gxsuite import RuleOutcome
from crmbridge.validation.rules import Rule
from crmbridge.validation.quarantine import steward_view


def _outcome(rule_id: str, fields: tuple[str, ...]) -> RuleOutcome:
    rule = Rule(rule_id=rule_id, kind="format", severity="blocking", mostly=None, description=rule_id,
                expectation="x", kwargs={}, fields=fields, message="bad")
    return RuleOutcome(rule=rule, success=False, element_count=0, unexpected_count=0, unexpected_percent=0.0,
                       failing_row_ids=np.array([], dtype=object))


OUTCOMES = [_outcome("r_phone", ("phone",)), _outcome("r_mail", ("email",)), _outcome("r_pair", ("city", "phone")),
            _outcome("r_code", ("code",))]
LEGACY = {"phone", "email", "city", "code"}


def _frames(seed: int, n: int, arrow: bool):
    rng = np.random.default_rng(seed)
    raw_values = np.array([None, np.nan, "", " 021-1234 ", "甲", "a;b", "1.0"], dtype=object)
    ids = [f"r{i}" for i in range(n)]
    raw_ids = ids + [ids[0], ids[1]] if n > 1 else ids  # repeated ids: the first raw row counts
    raw = pd.DataFrame({"_row_id": raw_ids, **{c: raw_values[rng.integers(0, len(raw_values), len(raw_ids))]
                                               for c in ("phone", "email", "city", "name")}})
    if arrow:
        raw = raw.astype({c: "str" for c in raw.columns})
    picked = rng.choice(n, size=max(1, n // 2), replace=False)
    reasons = ["; ".join(f"{r}: bad" for r in rng.choice(["r_phone", "r_mail", "r_pair", "r_code", "other"],
                                                         size=int(rng.integers(1, 4)), replace=False))
               for _ in picked]
    q = pd.DataFrame({"_reasons": reasons, "_blocking": reasons, "_warnings": None,
                      "phone": "x", "email": "y", "city": "z", "code": "c", "name": "n",
                      "_row_id": [ids[i] for i in picked]}, index=pd.RangeIndex(7, 7 + len(picked)))
    q.loc[q.index[0], "_row_id"] = "not-in-raw"
    return q, raw


def _cells(series) -> list:
    """A column's values, missing as None (pandas may store it as None or NaN, by the column's dtype)."""
    return [None if v is None or v != v else v for v in series]


@pytest.mark.parametrize("seed,n,arrow", [(0, 1, False), (1, 9, True), (2, 300, False), (3, 300, True)])
def test_legacy_columns_equal_add_legacy(seed, n, arrow):
    q, raw = _frames(seed, n, arrow)
    view, used = steward_view(q, raw, OUTCOMES, legacy=LEGACY)
    fields = {o.rule.rule_id: set(o.rule.fields) for o in OUTCOMES}
    named = [set().union(*(fields.get(p.split(":", 1)[0].strip(), set()) for p in S.split_reasons(t)))
             for t in q["_reasons"]]
    ref = S.add_legacy(q.assign(_stage="validate"), raw, named)
    present = {"phone", "email", "city"}  # code is not in raw, name is named by no rule
    assert used == present & set().union(*named)
    assert [c for c in view.columns if c.endswith(S.LEGACY)] == [S.legacy_column(f) for f in ("phone", "email", "city")]
    for f in present:
        got = _cells(view[S.legacy_column(f)])
        want = _cells(ref[S.legacy_column(f)]) if S.legacy_column(f) in ref.columns else [None] * len(q)
        assert got == want, f
    assert view.drop(columns=[S.legacy_column(f) for f in present]).equals(S.ordered(q.assign(_stage="validate")))


def test_numeric_raw_ids_meet_text_ids():
    raw = pd.DataFrame({"_row_id": [1, 2, 2], "phone": ["a", "b", "c"]})
    q = pd.DataFrame({"_reasons": ["r_phone: bad", "r_phone: bad"], "phone": ["x", "y"], "_row_id": ["2", "3"]})
    view, used = steward_view(q, raw, OUTCOMES, legacy=LEGACY)
    assert _cells(view[S.legacy_column("phone")]) == ["b", None] and used == {"phone"}


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 9), (2, 300), (3, 300)])
def test_an_arrow_raw_batch_gives_the_view_of_its_frame(seed, n):
    """The stage passes the extracted batch as an Arrow table: the view equals the one from the frame
    ``to_pandas`` makes of it (text columns read at the taken rows only, the others converted whole: an
    integer column with a missing value is floats in the frame)."""
    import pyarrow as pa

    q, raw = _frames(seed, n, arrow=False)
    raw["code"] = pd.array([None if i % 4 == 0 else i for i in range(len(raw))], dtype="Int64")
    table = pa.Table.from_pandas(raw, preserve_index=False)
    assert table.schema.field("code").type == "int64"
    want = steward_view(q, table.to_pandas(), OUTCOMES, legacy=LEGACY)
    got = steward_view(q, table, OUTCOMES, legacy=LEGACY)
    assert got[1] == want[1] and got[0].equals(want[0])
    assert list(got[0].columns) == list(want[0].columns)
    for c in got[0].columns:
        assert got[0][c].dtype == want[0][c].dtype and _cells(got[0][c]) == _cells(want[0][c]), c


@pytest.mark.parametrize("ids", [[1, 2, 2], ["2", "2", "x"], ["2", None, "3"], [None, "2", None]])
def test_arrow_raw_ids_of_other_types_and_repeated_quarantined_ids(ids):
    """Raw ids that are numbers (compared as their text), quarantined ids that repeat, missing ids on both
    sides (matched as the frame's NaN-s are)."""
    import pyarrow as pa

    table = pa.table({"_row_id": ids, "phone": ["a", None, "c"]})
    q = pd.DataFrame({"_reasons": ["r_phone: bad"] * 3, "phone": ["x", "y", "z"],
                      "_row_id": pd.Series(["2", "3", None if None in ids else "2"], dtype="str")})
    want = steward_view(q, table.to_pandas(), OUTCOMES, legacy=LEGACY)
    got = steward_view(q, table, OUTCOMES, legacy=LEGACY)
    assert got[1] == want[1] and got[0].equals(want[0])
    assert _cells(got[0][S.legacy_column("phone")]) == _cells(want[0][S.legacy_column("phone")])
