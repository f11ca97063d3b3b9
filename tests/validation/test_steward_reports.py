"""Steward reports (issue 16 point 4): quarantine files of validate and map share their columns, keep
the legacy value next to every field a reason names, mark blocking vs warning reasons, name a
quarantined parent's own reason; the HTML report groups rows by rule with what to do and the owner."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

STATUS = ["_stage", "_reasons", "_blocking", "_warnings"]


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from crmbridge.config import load_project
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import dispose_all, open_state
    from crmbridge.templates.commands import init_project
    from crmbridge.validation.stage import run_validate

    root = tmp_path_factory.mktemp("steward") / "p"
    init_project(root)
    write_demo_data(root, customers=1500, seed=16, erp=False)
    project = load_project(root)
    run = open_run(open_state(project.state_url), project.runs_dir, run_extract(project).run_id)
    run_validate(project, run)
    result = run_map(project, run, preview=3)  # the embedded sandbox org supplies users and record types
    dispose_all()
    return project, run, result


def test_validate_and_map_quarantine_files_share_their_status_columns(demo_run):
    _, run, _ = demo_run
    files = sorted((run.dir / "validate" / "quarantine").glob("*.csv")) + \
        sorted((run.dir / "map" / "quarantine").glob("*.csv"))
    assert len(files) >= 6
    for f in files:
        cols = list(_read(f).columns)
        first = [c for c in cols if c in STATUS]
        assert first == STATUS, (f.name, cols)
        assert "_reason" not in cols, f.name
    v = _read(run.dir / "validate" / "quarantine" / "customers.csv")
    assert list(v.columns[:5]) == ["customer_no", *STATUS] and set(v["_stage"]) == {"validate"}
    m = _read(run.dir / "map" / "quarantine" / "Contract.csv")
    assert set(m["_stage"]) == {"map"}


def test_blocking_and_warning_reasons_are_told_apart(demo_run):
    _, run, _ = demo_run
    v = _read(run.dir / "validate" / "quarantine" / "customers.csv")
    assert (v["_blocking"] != "").all()  # a quarantined row has at least one blocking reason
    for reasons, blocking, warnings in zip(v["_reasons"], v["_blocking"], v["_warnings"]):
        parts = set(reasons.split("; "))
        assert parts == set(filter(None, blocking.split("; "))) | set(filter(None, warnings.split("; ")))
    m = _read(run.dir / "map" / "quarantine" / "Contract.csv")
    filtered = m["_reasons"].str.startswith("filtered: ")
    assert filtered.any() and (m.loc[filtered, "_blocking"] == "").all()


def test_legacy_value_next_to_each_field_a_reason_names(demo_run):
    _, run, _ = demo_run
    from crmbridge.migrations.extracted import read_entity

    raw = read_entity(run.dir, "customers").set_index("_row_id")
    v = _read(run.dir / "validate" / "quarantine" / "customers.csv")
    cols = list(v.columns)
    for field in ("credit_code", "email", "name"):
        assert cols.index(f"{field} (legacy)") == cols.index(field) + 1
    named = v[v["_reasons"].str.contains("format.email:", regex=False)]
    assert len(named)
    for _, row in named.iterrows():
        assert row["email (legacy)"] == (raw.loc[row["_row_id"], "email"] or "")
    # a field no reason of the row names stays blank in that row
    other = v[~v["_reasons"].str.contains("email", regex=False)]
    assert (other["email (legacy)"] == "").all()
    # contracts: the normalised and the legacy value really differ where normalisation changed them
    c = _read(run.dir / "validate" / "quarantine" / "contracts.csv")
    bad_status = c[c["_reasons"].str.contains("allowed.status:", regex=False)]
    assert len(bad_status) and (bad_status["status (legacy)"] != "").all()


def test_cascade_names_the_parents_own_reason(demo_run):
    _, run, _ = demo_run
    cust = _read(run.dir / "validate" / "quarantine" / "customers.csv").set_index("customer_no")
    c = _read(run.dir / "validate" / "quarantine" / "contracts.csv")
    refs = c[c["_reasons"].str.contains("ref.customer_no:", regex=False)]
    assert len(refs)
    named = 0
    for _, row in refs.iterrows():
        if row["customer_no"] in cust.index:
            parent = cust.loc[row["customer_no"]]
            parent = parent.iloc[0] if isinstance(parent, pd.DataFrame) else parent
            why = parent["_reasons"].replace("; ", " | ")
            assert (f"parent_quarantined: the customers row customer_no='{row['customer_no']}' was quarantined "
                    f"[{why}]") in row["_reasons"]
            named += 1
    assert named > 0


def test_map_preview_keeps_the_legacy_value(demo_run):
    _, _, result = demo_run
    contract = next(p for p in result.preview if p["step"] == "Contract")
    src = contract["rows"][0]["source"][0]
    assert src["legacy"]["amount"].startswith("¥") and src["amount"] == src["amount"].replace("¥", "")
    assert "contract_no" not in src["legacy"]  # unchanged values are not repeated


def test_html_report_groups_rows_by_rule_with_what_to_do_and_owner(demo_run):
    _, run, _ = demo_run
    import json
    import re

    html = (run.dir / "validate" / "report.html").read_text("utf-8")
    summary = json.loads((run.dir / "validate" / "summary.json").read_text("utf-8"))
    failing = [r for r in summary["entities"]["customers"]["rules"] if not r["passed"] and r["level"] == "row"]
    assert failing
    for r in failing:
        sec = re.search(rf'<section class="rule-group" id="customers-{re.escape(r["rule_id"])}">(.*?)</section>', html, re.S)
        assert sec, r["rule_id"]
        body = sec.group(1)
        assert "What to do:" in body and "Owner:" in body
        rows = int(re.search(r"(\d+) rows?</h4>", body).group(1))
        assert rows >= r["rows_quarantined"]
    # rules beyond the first 25 rows in file order are there too: every failing rule has a section
    sec = re.search(r'id="customers-required\.name">(.*?)</section>', html, re.S).group(1)
    assert "fix in source: fill name in the legacy system" in sec
    assert re.search(r"Owner:</strong>\s*(sales|finance|service) \(", sec)
