"""Load order from lookups."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crmbridge.mappings.check import check_offline
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.order import CycleError, load_order

CASES = Path(__file__).with_name("cases")
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings"


def test_parents_first_even_when_declared_last(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(TEMPLATES / "contract.yml", d / "a_contract.yml")
    shutil.copy(TEMPLATES / "contact.yml", d / "b_contact.yml")
    shutil.copy(TEMPLATES / "account.yml", d / "z_account.yml")
    order = [s.name for s in load_order(load_mappings(d))]
    assert order.index("Account") < order.index("Contract") and order.index("Account") < order.index("Contact")
    assert order[0] == "Account"


def test_cycle_reported_with_path(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(CASES / "mapping_lookup__cycle.yml", d / "c.yml")
    m = load_mappings(d)
    with pytest.raises(CycleError) as e:
        load_order(m)
    assert e.value.cycle == ["A", "C", "A"]
    assert "lookup cycle between steps: A -> C -> A" in str(e.value)
    report = check_offline(m)
    assert [i.code for i in report.errors] == ["lookup_cycle"]
