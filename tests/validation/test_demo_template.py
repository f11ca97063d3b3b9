"""The template definition `crmbridge init` ships fits the demo data: a real init + demo data +
extract + validate, every planted defect quarantined for its own rule, valid rows normalised."""

from __future__ import annotations

import re

import pandas as pd

from crmbridge.validation.checks import uscc_valid

# The defects the demo generator plants, and the rules that must catch them (nothing else may).
PLANTED_RULES = {
    "customers": {"format.credit_code", "format.email", "format.phone", "required.name", "format.name"},
    "contacts": {"ref.customer_no", "format.email", "required.full_name"},
    "contracts": {"ref.customer_no", "cross.end_date_ge_start_date", "allowed.status"},
}


def test_template_definition_fits_demo_data(tmp_path, extracted_demo):
    from crmbridge.validation.stage import run_validate

    project, run = extracted_demo(tmp_path / "demo", customers=400)
    report = run_validate(project, run)
    for entity, allowed in PLANTED_RULES.items():
        e = report.entities[entity]
        assert e["rows_in"] == e["rows_valid"] + e["rows_quarantined"] > 0
        q = pd.read_csv(e["quarantine_file"], dtype=str, keep_default_na=False, encoding="utf-8-sig")
        seen = {p.split(":", 1)[0] for r in q["_reasons"] for p in r.split("; ")}
        assert seen and seen <= allowed, (entity, seen - allowed)
    v = pd.read_parquet(run.dir / "validate" / "customers.parquet")
    assert v["phone"].dropna().str.match(r"^\+\d+( ext\. \d+)?$").all()
    assert v["created_on"].dropna().str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert set(v["status"].dropna()) <= {"Prospect", "Active", "Inactive", "Blocked"}
    assert set(v["country"].dropna()) <= {"CN", "US"}
    assert v["credit_code"].dropna().map(uscc_valid).all()
    assert not v["name"].dropna().map(lambda s: bool(re.search(r"<[a-z/]", s))).any()
    assert v["customer_no"].str.fullmatch(r"C\d{6}").all()
    q = pd.read_csv(run.dir / "validate" / "quarantine" / "customers.csv", dtype=str, keep_default_na=False,
                    encoding="utf-8-sig")
    bad_codes = q[q["_reasons"].str.contains("format.credit_code")]
    assert len(bad_codes) and not bad_codes["credit_code"].map(uscc_valid).any()
