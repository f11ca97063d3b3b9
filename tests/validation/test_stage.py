"""The validate stage on really extracted case files (UTF-8 with BOM, GB18030 with ';'), row by row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crmbridge.migrations.runs import stage_result, stage_status
from crmbridge.state import open_state
from crmbridge.validation.stage import run_validate

# _row_id -> the rule ids that must quarantine it (exactly these, no more).
QUARANTINED = {
    "customers": {
        "sales_customers:4": {"format.credit_code"},
        "sales_customers:5": {"format.name", "format.email"},
        "sales_customers:6": {"required.name"},
        "sales_customers:7": {"required.customer_no"},
        "sales_customers:8": {"allowed.status", "format.created_on"},
        "sales_customers:9": {"unique.customer_no"},
        "sales_customers:10": {"unique.customer_no"},
        "sales_customers:12": {"cross.annual_revenue_ge_0"},
        "sales_customers:14": {"format.postal_code"},
        "sales_customers:16": {"format.country"},
        "service_customers:4": {"format.name"},
        "service_customers:5": {"format.service_contracts"},
    },
    "contacts": {
        "crm_contacts:3": {"ref.customer_no"},  # parent C999999 does not exist
        "crm_contacts:4": {"ref.customer_no"},  # parent C000003 was quarantined
        "crm_contacts:5": {"required.full_name"},
        "crm_contacts:6": {"format.email"},
        "crm_contacts:7": {"unique.contact_no"},
        "crm_contacts:8": {"unique.contact_no"},
    },
    "contracts": {
        "contracts:3": {"cross.end_date_ge_start_date"},
        "contracts:4": {"cross.amount_ge_0"},
        "contracts:5": {"allowed.status"},
        "contracts:6": {"ref.customer_no"},
        "contracts:7": {"allowed.payment_terms"},
        "contracts:8": {"required.start_date"},
    },
}
VALID = {
    "customers": {"sales_customers:2", "sales_customers:3", "sales_customers:11", "sales_customers:13",
                  "sales_customers:15", "service_customers:2", "service_customers:3", "service_customers:6"},
    "contacts": {"crm_contacts:2"},
    "contracts": {"contracts:2"},
}


def _rule_ids(reasons: str) -> set[str]:
    return {part.split(":", 1)[0].strip() for part in reasons.split("; ")}


def test_quarantine_row_by_row(case_run):
    project, run = case_run
    report = run_validate(project, run)
    assert report.blocking_failed and not report.ok
    for entity, expected in QUARANTINED.items():
        q = pd.read_csv(run.dir / "validate" / "quarantine" / f"{entity}.csv", dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
        got = {rid: _rule_ids(r) for rid, r in zip(q["_row_id"], q["_reasons"])}
        assert got == expected, entity
        valid = pd.read_parquet(run.dir / "validate" / f"{entity}.parquet")
        assert set(valid["_row_id"]) == VALID[entity]
        counts = report.entities[entity]
        assert counts["rows_in"] == counts["rows_valid"] + counts["rows_quarantined"]
        assert counts["rows_quarantined"] == len(expected)
    # The quarantine file leads with the key and keeps every column and the lineage.
    q = pd.read_csv(run.dir / "validate" / "quarantine" / "customers.csv", dtype=str, encoding="utf-8-sig")
    assert list(q.columns[:5]) == ["customer_no", "_stage", "_reasons", "_blocking", "_warnings"]
    assert {"_source", "_line", "_department", "credit_code"} <= set(q.columns)
    row = q.set_index("_row_id").loc["sales_customers:5", "_reasons"]
    assert "format.email: email 'bad@' is not a valid e-mail address" in row


def test_valid_rows_are_normalised(case_run):
    project, run = case_run
    run_validate(project, run)
    v = pd.read_parquet(run.dir / "validate" / "customers.parquet").set_index("_row_id")
    s1 = v.loc["sales_customers:2"]
    assert (s1.customer_no, s1.phone, s1.email) == ("C000001", "+862162345678", "info@example.cn")
    assert (s1.postal_code, s1.country, s1.created_on, s1.annual_revenue, s1.status) == \
        ("200120", "CN", "2023-01-05", "1234500", "Active")
    s2 = v.loc["sales_customers:3"]
    assert (s2.customer_no, s2.phone, s2.created_on, s2.annual_revenue, s2.status, s2.country) == \
        ("C000002", "+8613800138000", "2023-01-05", "1234500", "Prospect", "CN")
    assert v.loc["sales_customers:11", "phone"] == "+862162345678"  # area code taken from the city
    gb = v.loc["service_customers:6"]  # GB18030 source, Excel serial date
    assert (gb["name"], gb.created_on, gb.status) == ("广州佳禾食品有限公司", "2023-01-05", "Blocked")
    assert v.loc["service_customers:2", "phone"] == "+862162345678"
    assert v["_warnings"].isna().all()
    k = pd.read_parquet(run.dir / "validate" / "contracts.parquet").iloc[0]
    assert (k.amount, k.status) == ("1234.5", "Draft")


def test_stage_recorded_and_reports_written(case_run):
    project, run = case_run
    report = run_validate(project, run)
    engine = open_state(project.state_url)
    assert stage_status(engine, run.run_id, "validate") == "succeeded"
    res = stage_result(engine, run.run_id, "validate")
    assert res["entities"]["customers"]["rows_quarantined"] == 12
    assert res["entities"]["customers"]["fixed"]["customer_no:nfkc"] == 1
    assert res["definition_status"] == "draft"
    summary = json.loads((run.dir / "validate" / "summary.json").read_text("utf-8"))
    rules = {r["rule_id"]: r for r in summary["entities"]["customers"]["rules"]}
    assert rules["format.credit_code"]["unexpected_count"] == 1 and not rules["format.credit_code"]["passed"]
    assert rules["required.customer_no"]["unexpected_percent"] == pytest.approx(100 / 20)
    assert rules["format.phone"]["passed"]
    for name in ("report.html", "disagreement.html", "disagreement.json", "data_docs/index.html",
                 "data_docs/customers.html"):
        assert (run.dir / "validate" / name).is_file(), name
    assert "DRAFT definition" in (run.dir / "validate" / "report.html").read_text("utf-8")
    assert report.reports["report"] == str(run.dir / "validate" / "report.html")
    assert not (run.dir / ".validate.tmp").exists()


def test_warning_and_dataset_level_rules_do_not_quarantine(tmp_path, project_factory, template_definition):
    import yaml

    make_project, extract = project_factory
    d = yaml.safe_load(template_definition.read_text("utf-8"))
    for f in d["entities"]["customers"]["formats"]:
        if f["field"] == "email":
            f["severity"] = "warning"
        if f["field"] == "credit_code":
            f["mostly"] = 0.5  # 1 bad code of 9 present: the dataset passes, the row is only warned
    for o in d["owners"]:
        o["signed_on"] = "2026-01-15"
    path = tmp_path / "lenient.yml"
    path.write_text(yaml.safe_dump(d, allow_unicode=True), "utf-8")
    project = make_project(tmp_path / "p", definition=path)
    run = extract(project)
    report = run_validate(project, run)
    assert report.definition_status == "signed"
    v = pd.read_parquet(run.dir / "validate" / "customers.parquet").set_index("_row_id")
    assert v.loc["sales_customers:4", "_warnings"].startswith("format.credit_code: ")
    q = pd.read_csv(run.dir / "validate" / "quarantine" / "customers.csv", dtype=str, encoding="utf-8-sig")
    reasons = q.set_index("_row_id")["_reasons"]
    # Quarantined for the markup in its name; the e-mail warning is listed too, after the blocking reason.
    assert _rule_ids(reasons["sales_customers:5"]) == {"format.name", "format.email"}
    assert reasons["sales_customers:5"].startswith("format.name")
    rules = {r["rule_id"]: r for r in report.entities["customers"]["rules"]}
    assert rules["format.credit_code"]["passed"] and rules["format.credit_code"]["level"] == "dataset"
    assert rules["format.credit_code"]["rows_quarantined"] == 0
    assert "DRAFT" not in (run.dir / "validate" / "report.html").read_text("utf-8")


def test_failed_definition_leaves_nothing_half_written(case_run, tmp_path):
    from crmbridge.errors import ConfigError

    project, run = case_run
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nowners: [{department: sales, person: x}]\nentities:\n  customers:\n"
                   "    identity: {key: customer_no}\n    formats:\n      - {field: email, format: emial}\n", "utf-8")
    with pytest.raises(ConfigError) as err:
        run_validate(project, run, definition_path=bad)
    assert str(bad) in str(err.value) and ":7:" in str(err.value)
    assert not (run.dir / "validate").exists()
