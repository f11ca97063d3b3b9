"""Both checking phases against the sandbox schema's describe."""

from __future__ import annotations

import shutil
from pathlib import Path

from crmbridge.mappings.check import check_against_org, check_offline, schema_describe
from crmbridge.mappings.models import load_mappings
from crmbridge.sandbox.schema import load_schema

CASES = Path(__file__).with_name("cases")
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings"
CUSTOMER_COLUMNS = ["customer_no", "name", "credit_code", "phone", "email", "address", "city", "province",
                    "postal_code", "country", "industry", "status", "sales_rep", "created_on", "annual_revenue",
                    "_row_id", "_department", "_source_key", "_departments", "_legacy_keys"]


def test_templates_pass_both_phases():
    m = load_mappings(TEMPLATES)
    cols = {"customers": CUSTOMER_COLUMNS,
            "contacts": ["contact_no", "customer_no", "full_name", "title", "phone", "mobile", "email", "department",
                         "updated_at", "_row_id", "_department"],
            "contracts": ["contract_no", "customer_no", "start_date", "end_date", "amount", "status",
                          "payment_terms", "signed_on", "_row_id", "_department"]}
    assert check_offline(m, columns=cols, entities=["customers", "contacts", "contracts"]).issues == ()
    assert check_against_org(m, schema_describe(load_schema())).issues == ()


def test_offline_missing_column_and_entity():
    m = load_mappings(TEMPLATES)
    cols = {"customers": [c for c in CUSTOMER_COLUMNS if c != "sales_rep"]}
    r = check_offline(m, columns=cols, entities=["customers", "contacts"])
    codes = {(i.step, i.field, i.code) for i in r.errors}
    assert ("Account", "OwnerId", "unknown_column") in codes
    assert ("Contract", None, "unknown_entity") in codes


def test_org_check_reports_every_problem(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(CASES / "mapping_org__everything_wrong.yml", d / "w.yml")
    r = check_against_org(load_mappings(d), schema_describe(load_schema()))
    got = {(i.step, i.field, i.code) for i in r.errors}
    assert ("Account", "Name", "not_external_id") in got
    assert ("Account", "Phnoe", "unknown_field") in got
    assert ("Account", "AnnualRevenue", "type_mismatch") in got
    assert ("Account", "Customer_Status__c", "picklist_value") in got  # restricted: error
    assert ("Account", "BillingCity", "too_long") in got
    assert ("Contract", "EndDate", "not_createable") in got
    assert ("Contract", "StartDate", "type_mismatch") in got
    assert ("Contract", "Status", "required_not_mapped") not in got  # Status has a default in the org
    assert ("Contract", "AccountId", "parent_not_external_id") in got
    assert ("Widget", None, "unknown_object") in got
    warn = {(i.step, i.field, i.code) for i in r.warnings}
    assert ("Account", "Industry", "picklist_value") in warn  # unrestricted picklist: warning
    assert "did you mean 'Phone'" in next(i.message for i in r.errors if i.field == "Phnoe")
    assert "ContractTerm" in next(i.message for i in r.errors if i.field == "EndDate")
    assert not r.ok and "error(s)" in r.render()


def test_required_field_not_mapped(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "c.yml").write_text("steps:\n  C:\n    entity: contacts\n    object: Contact\n"
                             "    external_id: Legacy_Id__c\n    fields: {Legacy_Id__c: contact_no}\n", "utf-8")
    r = check_against_org(load_mappings(d), schema_describe(load_schema()))
    assert [(i.field, i.code) for i in r.errors] == [("LastName", "required_not_mapped")]


def test_docs_worked_example_passes_the_org_check(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mapping.md").read_text("utf-8")
    block = doc.split("## 11.")[1].split("```yaml")[1].split("```")[0]
    (tmp_path / "dealers.yml").write_text(block, "utf-8")
    r = check_against_org(load_mappings(tmp_path), schema_describe(load_schema()))
    assert r.issues == ()
