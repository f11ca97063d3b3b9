"""Contract suite (issue 15): CumulusCI's recorded real-org traffic replayed against the sandbox org.

One test per recorded interaction: status, Content-Type and JSON shape must match what Salesforce
answered, unless the interaction is in the known-differences table of docs/sandbox.md, which skips it
with the table's reason. The match rate on the endpoints the sandbox claims must stay >= 95%.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("sandbox_contract_replay", Path(__file__).parent / "contract"
                                               / "replay.py")
replay = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = replay  # dataclasses look their module up there
_spec.loader.exec_module(replay)

INTERACTIONS = replay.all_interactions()
MIN_MATCH_RATE = 0.95


@pytest.fixture(scope="module")
def figures():
    rules = replay.load_rules()
    result = replay.replay(rules)
    result.rules = rules
    return result


@pytest.mark.parametrize("key", [i.key for i in INTERACTIONS])
def test_interaction_matches_recording(figures, key):
    outcome = next(o for o in figures.outcomes if o.interaction.key == key)
    if outcome.rule is not None:
        pytest.skip(f"{outcome.rule.kind}: {outcome.rule.reason}")
    assert outcome.matched, f"{outcome.interaction.text[:200]}: {outcome.detail}"


def test_match_rate_on_claimed_endpoints(figures):
    claimed = figures.claimed
    matched = sum(o.matched for o in claimed)
    print(f"\ncontract: {len(figures.outcomes)} interactions, {len(claimed)} on claimed endpoints, "
          f"{matched} matched ({figures.rate:.1%})")
    assert len(figures.outcomes) == len(INTERACTIONS) > 400
    assert figures.rate >= MIN_MATCH_RATE


def test_every_documented_difference_is_still_needed(figures):
    unused = [r.pattern.pattern for r in figures.rules if not r.used]
    assert not unused, f"rows of the known-differences table that match no recorded interaction: {unused}"
    wrongly_matched = [o.interaction.key for o in figures.outcomes
                       if o.rule is not None and o.rule.kind == "difference" and o.detail == "known difference"]
    assert not wrongly_matched, f"documented as differences but matched: {wrongly_matched}"


def test_difference_rules_come_from_the_docs_table(tmp_path):
    docs = tmp_path / "sandbox.md"
    docs.write_text("# x\n### Contract suite: known differences\n\n| kind | rule | reason |\n|---|---|---|\n"
                    "| difference | `TYPEOF` | not built |\n| not emulated | `/services/async/` | refused |\n\nmore\n",
                    encoding="utf-8")
    rules = replay.load_rules(docs)
    assert [(r.kind, r.pattern.pattern, r.reason) for r in rules] == [
        ("difference", "TYPEOF", "not built"), ("not emulated", "/services/async/", "refused")]
