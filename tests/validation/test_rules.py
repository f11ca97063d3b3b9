"""Each rule kind compiled into a GX suite and run on a small frame: the failing rows come back by
``_row_id``. Input frames are built here because each case needs a handful of exact values."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from crmbridge.validation.definition import Definition
from crmbridge.validation.gxsuite import build_suite, run_rules
from crmbridge.validation.rules import RuleContext, compile_rules


def _rules(entity_yaml: str, entity: str = "customers"):
    data = {"version": 1, "owners": [{"department": "sales", "person": "x"}],
            "entities": {entity: yaml.safe_load(entity_yaml)}}
    if entity != "customers":
        data["entities"]["customers"] = {"identity": {"key": "customer_no"}}
    return compile_rules(entity, Definition.model_validate(data).entities[entity])


def _frame(rows: list[dict], dept: str = "sales") -> pd.DataFrame:
    df = pd.DataFrame(rows).astype(object)
    df = df.where(df.notna(), None)
    df["_row_id"] = [f"r{i}" for i in range(1, len(df) + 1)]
    if "_department" not in df:
        df["_department"] = dept
    return df


def _failing(rules, df, ctx=None) -> dict[str, list[str]]:
    run = run_rules("customers", df, rules, ctx or RuleContext())
    return {o.rule.rule_id: sorted(o.failing_row_ids) for o in run.outcomes if len(o.failing_row_ids)}


def test_suite_has_one_expectation_per_rule_tagged_with_its_id():
    rules = _rules("{identity: {key: customer_no}, required: [name], formats: [{field: email, format: email}]}")
    suite = build_suite("s", rules)
    assert [e.meta["rule_id"] for e in suite.expectations] == [r.rule_id for r in rules]
    # uniqueness is a derived per-row verdict (judged over the whole entity when validate streams batches)
    assert {type(e).__name__ for e in suite.expectations} == {"ExpectColumnValuesToNotBeNull",
                                                               "ExpectColumnValuesToBeInSet"}
    unique = next(e for e in suite.expectations if e.meta["rule_id"] == "unique.customer_no")
    assert unique.column == "_unique__customer_no"


def test_credit_code_checksum_including_a_n_y_authorities():
    from stdnum.cn import uscc

    good = "91310000MA1FL2XQ3" + uscc.calc_check_digit("91310000MA1FL2XQ3")
    y_good = "Y1310000MA1FL2XQ3" + uscc.calc_check_digit("Y1310000MA1FL2XQ3")
    n_bad = "N1310000MA1FL2XQ3" + ("0" if uscc.calc_check_digit("N1310000MA1FL2XQ3") != "0" else "1")
    rules = _rules("{identity: {key: customer_no}, formats: [{field: credit_code, format: uscc}]}")
    df = _frame([{"customer_no": "C1", "credit_code": good}, {"customer_no": "C2", "credit_code": y_good},
                 {"customer_no": "C3", "credit_code": n_bad}, {"customer_no": "C4", "credit_code": "91310000MA1FL2XQ3"},
                 {"customer_no": "C5", "credit_code": None}])
    assert _failing(rules, df) == {"format.credit_code": ["r3", "r4"]}


def test_phone_email_postal_country_formats():
    rules = _rules("""
identity: {key: customer_no}
formats:
  - {field: phone, format: phone, region: CN, country_field: country}
  - {field: email, format: email}
  - {field: postal_code, format: postal_code, country_field: country}
  - {field: country, format: iso_country}
""")
    df = _frame([
        {"customer_no": "C1", "phone": "+8613800138000", "email": "a@example.cn", "postal_code": "200120", "country": "CN"},
        {"customer_no": "C2", "phone": "62345678", "email": "bad@", "postal_code": "10001", "country": "CN"},
        {"customer_no": "C3", "phone": "+1 212-555-0100", "email": None, "postal_code": "10001", "country": "US"},
        {"customer_no": "C4", "phone": "12345", "email": "x@y", "postal_code": "ABC", "country": "Atlantis"},
    ])
    assert _failing(rules, df) == {"format.phone": ["r2", "r4"], "format.email": ["r2", "r4"],
                                   "format.postal_code": ["r2", "r4"], "format.country": ["r4"]}


def test_uniqueness_scope_department_vs_global():
    df = _frame([{"customer_no": "C1", "_department": "sales"}, {"customer_no": "C1", "_department": "finance"},
                 {"customer_no": "C2", "_department": "sales"}, {"customer_no": "C2", "_department": "sales"},
                 {"customer_no": None, "_department": "sales"}, {"customer_no": None, "_department": "sales"}])
    dept = _rules("{identity: {key: customer_no, scope: department}}")
    assert _failing(dept, df) == {"required.customer_no": ["r5", "r6"], "unique.customer_no": ["r3", "r4"]}
    glob = _rules("{identity: {key: customer_no, scope: global}}")
    assert _failing(glob, df)["unique.customer_no"] == ["r1", "r2", "r3", "r4"]


def test_cross_field_dates_and_amounts():
    rules = _rules("""
identity: {key: contract_no}
cross_field:
  - {left: end_date, op: ge, right: start_date, type: date}
  - {left: amount, op: gt, value: 0}
""", entity="contracts")
    df = _frame([{"contract_no": "H1", "start_date": "2023-01-05", "end_date": "2023-01-05", "amount": "10"},
                 {"contract_no": "H2", "start_date": "2023-02-01", "end_date": "2023-01-31", "amount": "0"},
                 {"contract_no": "H3", "start_date": None, "end_date": "2023-01-31", "amount": "-1.5"},
                 {"contract_no": "H4", "start_date": "2023-01-01", "end_date": "2024-01-01", "amount": None}])
    assert _failing(rules, df) == {"cross.end_date_ge_start_date": ["r2"], "cross.amount_gt_0": ["r2", "r3"]}


def test_reference_to_valid_parent_rows():
    rules = _rules("""
identity: {key: contact_no}
references: [{field: customer_no, entity: customers, key: customer_no}]
""", entity="contacts")
    df = _frame([{"contact_no": "P1", "customer_no": "C1"}, {"contact_no": "P2", "customer_no": "C9"},
                 {"contact_no": "P3", "customer_no": None}])
    ctx = RuleContext(valid_keys={("customers", "customer_no"): pd.Series(["C1", "C2"])})
    assert _failing(rules, df, ctx) == {"ref.customer_no": ["r2"]}


def test_mostly_makes_a_rule_dataset_level():
    rules = _rules("""
identity: {key: customer_no}
formats: [{field: email, format: email, mostly: 0.7}, {id: email_strict, field: email, format: email}]
""")
    df = _frame([{"customer_no": f"C{i}", "email": "ok@example.cn" if i < 8 else "bad@"} for i in range(10)])
    out = {o.rule.rule_id: o for o in run_rules("customers", df, rules, RuleContext()).outcomes}
    assert out["format.email"].success and out["format.email"].rule.level == "dataset"
    assert out["format.email"].unexpected_count == 2
    assert not out["email_strict"].success and out["email_strict"].rule.level == "row"
    assert out["email_strict"].unexpected_percent == pytest.approx(20.0)
