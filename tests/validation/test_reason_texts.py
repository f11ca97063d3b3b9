"""validation.outcome.messages and the fields a quarantine view's reasons name (validation.quarantine.steward_view),
against the previous expressions, text by text.

Tricky values: ones holding ``{value}``, ``{left}`` or ``{right}`` themselves (the placeholders are replaced one
after the other, so a value's own placeholder is replaced too), ``"; "`` and ``:`` inside a value (a fake
reason after the separator), None and NaN, long text, several fields and templates with one, two or no
placeholder; reasons naming unknown rules, with spaces around the id, or no colon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge import stewardcsv as S
from crmbridge.validation.gxsuite import RuleOutcome
from crmbridge.validation.outcome import messages
from crmbridge.validation.quarantine import steward_view
from crmbridge.validation.rules import Rule

VALUES = np.array([None, np.nan, "", "a", "{right}", "{left}x", "x{value}", "p; r_mail: q", "甲" * 90, "a:b",
                   "{value}{left}{right}"], dtype=object)


def _rule(message: str, fields: tuple[str, ...], kind: str = "format", rule_id: str = "r_x") -> Rule:
    return Rule(rule_id=rule_id, kind=kind, severity="blocking", mostly=None, description=rule_id, expectation="x",
                kwargs={}, fields=fields, message=message)


def _shown(v) -> str:
    """The previous way a value is shown in a reason (outcome.py at main 2b3f078)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "(empty)"
    s = str(v)
    return "'" + (s if len(s) <= 80 else s[:79] + "…") + "'"


def _previous_messages(rule: Rule, frame: pd.DataFrame, positions: np.ndarray) -> list[str]:
    first = frame[rule.fields[0]].take(positions).to_numpy(dtype=object)
    if rule.kind == "unique" and len(rule.fields) > 1:
        parts = [frame[f].take(positions).to_numpy(dtype=object) for f in rule.fields]
        first = np.array(["/".join("" if x is None else str(x) for x in row) for row in zip(*parts)], dtype=object)
    second = frame[rule.fields[1]].take(positions).to_numpy(dtype=object) if len(rule.fields) > 1 else first
    tpl = f"{rule.rule_id}: {rule.message}"
    return [tpl.replace("{value}", _shown(a)).replace("{left}", _shown(a)).replace("{right}", _shown(b))
            for a, b in zip(first, second)]


@pytest.mark.parametrize("message", ["{value} is bad", "{left} must not exceed {right}", "no placeholder",
                                     "{right} then {value}", "{left}{left}"])
@pytest.mark.parametrize("fields,kind", [(("a",), "format"), (("a", "b"), "cross_field"), (("a", "b"), "unique")])
def test_messages_equal_the_previous_texts(message, fields, kind):
    rng = np.random.default_rng(len(message) + len(fields))
    frame = pd.DataFrame({"a": VALUES[rng.integers(0, len(VALUES), 200)], "b": VALUES[rng.integers(0, len(VALUES), 200)]})
    positions = np.sort(rng.choice(200, size=120, replace=False))
    rule = _rule(message, fields, kind)
    assert messages(rule, frame, positions) == _previous_messages(rule, frame, positions)


def test_named_fields_equal_the_previous_lookup():
    rules = {"r_phone": ("phone",), "r_mail": ("email",), "r_pair": ("city", "phone")}
    outcomes = [RuleOutcome(rule=_rule("bad", f, rule_id=r), success=False, element_count=0, unexpected_count=0,
                            unexpected_percent=0.0, failing_row_ids=np.array([], dtype=object))
                for r, f in rules.items()]
    reasons = ["r_phone: bad", "r_mail: 'p; r_pair: q'", " r_mail : x", "r_pair: a; r_phone: b", "unknown: x",
               "no colon", "r_phone", "r_phone: a; ; r_mail: b", "; r_mail: lead", "r_mail: 'x:y'"]
    q = pd.DataFrame({"_reasons": reasons, "phone": "p", "email": "e", "city": "c", "_row_id": [f"r{i}" for i in
                                                                                                range(len(reasons))]})
    raw = pd.DataFrame({"_row_id": q["_row_id"], "phone": "P", "email": "E", "city": "C"})
    fields = {o.rule.rule_id: set(o.rule.fields) for o in outcomes}
    named = [set().union(*(fields.get(p.split(":", 1)[0].strip(), set()) for p in S.split_reasons(t)))
             for t in q["_reasons"]]
    view, used = steward_view(q, raw, outcomes, legacy={"phone", "email", "city"})
    assert used == set().union(*named)
    for f in ("phone", "email", "city"):
        assert list(view[S.legacy_column(f)].notna()) == [f in n for n in named], f
    assert steward_view(q, raw, outcomes).equals(S.ordered(S.add_legacy(q.assign(_stage="validate"), raw, named)))
