"""Definition files: the shipped template loads; each broken case names its file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmbridge.errors import ConfigError, UsageError
from crmbridge.validation.definition import load_definition
from crmbridge.validation.rules import compile_rules

CASES = Path(__file__).parent / "definitions"


def test_template_loads_as_draft_and_compiles(template_definition):
    d = load_definition(template_definition)
    assert d.status == "draft" and {o.department for o in d.unsigned} == {"sales", "finance", "service"}
    assert d.entity_order() == ["customers", "contacts", "contracts"]
    rules = compile_rules("customers", d.entities["customers"])
    ids = [r.rule_id for r in rules]
    assert len(ids) == len(set(ids)) >= 20
    assert {"required.customer_no", "unique.customer_no", "unique.credit_code", "format.credit_code",
            "allowed.status"} <= set(ids)
    assert d.entities["customers"].identity.scope == "department"
    assert set(d.criteria.departments) == {"sales", "finance", "service"}


@pytest.mark.parametrize("case, line, text", [
    ("definition__unknown_key.yml", 6, "unknown field 'requried' (did you mean 'required'?)"),
    ("definition__map_target_not_allowed.yml", 7, "'Actve', which is not among the allowed values"),
    ("definition__unknown_transform.yml", 7, "normalise.phone[0]: unknown transform 'phon' (did you mean 'phone'?)"),
    ("definition__reference_unknown_entity.yml", 1, "reference to unknown entity 'customer'"),
    ("definition__signoff_date_not_iso.yml", 3, "owners[0].signed_on"),
    ("definition__criterion_without_tests.yml", 8, "needs at least one test"),
])
def test_broken_definition_names_file_line_and_field(case, line, text):
    with pytest.raises(ConfigError) as err:
        load_definition(CASES / case)
    msg = str(err.value)
    assert msg.startswith(f"{CASES / case}:{line}: "), msg
    assert text in msg


def test_duplicate_rule_ids_are_a_usage_error():
    d = load_definition(CASES / "definition__duplicate_rule_id.yml")
    with pytest.raises(UsageError, match="two rules with id 'format.email'"):
        compile_rules("customers", d.entities["customers"])


def test_signed_when_every_owner_signed(tmp_path):
    p = tmp_path / "d.yml"
    p.write_text("version: 2\nowners:\n  - {department: sales, person: a, signed_on: 2026-01-15}\n"
                 "  - {department: finance, person: b, signed_on: 2026-01-16}\n"
                 "entities:\n  customers:\n    identity: {key: customer_no}\n", "utf-8")
    d = load_definition(p)
    assert d.status == "signed" and d.version == "2"
    assert d.sign_off_dict()["owners"][1] == {"department": "finance", "person": "b", "signed_on": "2026-01-16"}


def test_impossible_date_is_a_config_error_not_a_crash():
    case = CASES / "definition__impossible_signoff_date.yml"
    with pytest.raises(ConfigError, match=r":3: owners\[0\]\.signed_on: .*outside expected range") as err:
        load_definition(case)
    assert str(err.value).startswith(str(case))
