"""outcome.split_rows: the reasons per row, joined without pandas' groupby, against a plain reference.

The reference is written the obvious way (a list of reasons per row, blocking ones first, each kind in
rule order); the frames are random, with rows failing none, one or many rules of both kinds, repeated
rules per row, an empty rule and a dataset-level rule, so a wrong order, a lost or doubled reason or a
reason on the wrong row fails the comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation.gxsuite import RuleOutcome
from crmbridge.validation.outcome import REASON_SEP, messages, split_rows
from crmbridge.validation.rules import Rule


def _rule(rule_id: str, severity: str, mostly: float | None = None) -> Rule:
    return Rule(rule_id=rule_id, kind="format", severity=severity, mostly=mostly, description=rule_id,
                expectation="expect_column_values_to_match_regex", kwargs={}, fields=("name",),
                message="bad {value}")


def _case(seed: int, n: int) -> tuple[pd.DataFrame, list[RuleOutcome]]:
    rng = np.random.default_rng(seed)
    names = np.array([None, "", "a", "甲乙", "x" * 100, "line\nbreak", "semi; colon"], dtype=object)
    frame = pd.DataFrame({"_row_id": [f"r{i}" for i in rng.permutation(n)],
                          "name": names[rng.integers(0, len(names), n)]},
                         index=pd.RangeIndex(100, 100 + n))  # a batch's index need not start at 0
    rules = [_rule("b1", "blocking"), _rule("w1", "warning"), _rule("b2", "blocking"), _rule("w2", "warning"),
             _rule("b3", "blocking"), _rule("d1", "blocking", mostly=0.9), _rule("none", "blocking")]
    outcomes = []
    for r in rules:
        k = 0 if r.rule_id == "none" else int(rng.integers(0, max(1, n // 2)))
        ids = frame["_row_id"].to_numpy()[rng.choice(n, size=k, replace=False)] if k else np.array([], dtype=object)
        outcomes.append(RuleOutcome(rule=r, success=not k, element_count=n, unexpected_count=k,
                                    unexpected_percent=100.0 * k / max(n, 1), failing_row_ids=ids))
    return frame, outcomes


def _reference(frame: pd.DataFrame, outcomes: list[RuleOutcome]) -> dict[str, list]:
    ids = list(frame["_row_id"])
    per_row: list[list[tuple[int, str]]] = [[] for _ in ids]
    for o in outcomes:
        blocks = o.rule.blocking and o.rule.level == "row"
        pos = np.array([ids.index(i) for i in o.failing_row_ids], dtype=np.intp)
        for p, text in zip(pos, messages(o.rule, frame, pos)):
            per_row[p].append((0 if blocks else 1, text))
    quarantined = [any(k == 0 for k, _ in row) for row in per_row]

    def joined(row, kinds):
        texts = [t for k in kinds for kk, t in row if kk == k]
        return REASON_SEP.join(texts) if texts else None

    return {"quarantined": quarantined,
            "reasons": [joined(row, (0, 1)) for row in per_row],
            "blocking": [joined(row, (0,)) for row in per_row],
            "warnings": [joined(row, (1,)) for row in per_row]}


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 7), (2, 200), (3, 1000)])
def test_split_rows_reasons_equal_the_plain_reference(seed, n):
    frame, outcomes = _case(seed, n)
    ref = _reference(frame, outcomes)
    split = split_rows(frame, outcomes)
    q = np.array(ref["quarantined"])

    def col(frame, name):  # pandas may hold a missing reason as None or NaN, depending on the column's dtype
        return [None if v is None or v != v else v for v in frame[name]]

    assert list(split.valid.index) == list(frame.index[~q])
    assert list(split.quarantine.index) == list(frame.index[q])
    assert col(split.valid, "_warnings") == [r for r, x in zip(ref["reasons"], q) if not x]
    assert col(split.quarantine, "_reasons") == [r for r, x in zip(ref["reasons"], q) if x]
    assert col(split.quarantine, "_blocking") == [r for r, x in zip(ref["blocking"], q) if x]
    assert col(split.quarantine, "_warnings") == [r for r, x in zip(ref["warnings"], q) if x]
    assert list(split.quarantine.columns[:3]) == ["_reasons", "_blocking", "_warnings"]
    assert split.rows_warned == sum(r is not None for r, x in zip(ref["reasons"], q) if not x)
    assert split.quarantined_by_rule == {o.rule.rule_id: (len(o.failing_row_ids) if o.rule.blocking and
                                                          o.rule.level == "row" else 0)
                                         for o in outcomes if len(o.failing_row_ids)}


def test_split_rows_without_failures_keeps_every_row_valid():
    frame, outcomes = _case(4, 50)
    split = split_rows(frame, [o for o in outcomes if o.rule.rule_id == "none"])
    assert len(split.valid) == 50 and split.quarantine.empty
    assert split.valid["_warnings"].isna().all() and split.rows_warned == 0
