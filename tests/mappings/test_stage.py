"""The map stage end to end: demo data extracted, mapped through the real sandbox org, CLI included."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from crmbridge.cli import cli


def demo_project(root):
    """The template project with 300 demo customers (no ERP data) in ``root``, extracted: (project, run id)."""
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.extract import run_extract
    from crmbridge.templates.commands import init_project

    init_project(root)
    write_demo_data(root, customers=300, erp=False)
    proj = load_project(root)
    res = run_extract(proj)
    return proj, res.run_id


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return demo_project(tmp_path_factory.mktemp("proj"))


def _run(proj, run_id):
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    return R.open_run(open_state(proj.state_url), proj.runs_dir, run_id)


def test_map_requires_validation_unless_skipped(project):
    from crmbridge.errors import UsageError
    from crmbridge.mappings.stage import run_map

    proj, run_id = project
    with pytest.raises(UsageError, match="--skip-validation"):
        run_map(proj, _run(proj, run_id))


def test_map_run_balances_and_writes_plan(project):
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    proj, run_id = project
    run = _run(proj, run_id)
    res = run_map(proj, run, skip_validation=True, preview=2)
    assert res.ok and [s.step for s in res.steps] == ["Account", "Contact", "Contract"]
    plan = json.loads((run.dir / "map" / "plan.json").read_text("utf-8"))["steps"]
    assert [p["object"] for p in plan] == ["Account", "Contact", "Contract"]
    assert plan[1]["parents"] == ["Account"] and plan[0]["operation"] == "upsert"
    for s, p in zip(res.steps, plan):
        assert s.rows_in == s.rows_out + s.rows_quarantined
        df = pd.read_parquet(run.dir / p["file"])
        q = pd.read_csv(run.dir / "map" / "quarantine" / f"{s.step}.csv", dtype=str, encoding="utf-8-sig")
        assert len(df) == p["rows"] and len(q) == p["rows_quarantined"] and q["_reasons"].notna().all()
        ids = [i for m in df["_merged_row_ids"] for i in m.split(";")] + q["_row_id"].tolist()
        assert len(ids) == len(set(ids)) == p["rows_in"]  # every source row exactly once
    contacts = pd.read_parquet(run.dir / "map" / "Contact.parquet")
    assert "Account.Legacy_Id__c" in contacts.columns and "AccountId" not in contacts.columns
    acc = pd.read_parquet(run.dir / "map" / "Account.parquet")
    assert acc["OwnerId"].str.startswith("005").all()
    # without validate + resolve nothing merges the departments' rows: a shared customer number is quarantined
    assert res.steps[0].reasons.get("duplicate_external_id: Legacy_Id__c", 0) > 0
    assert R.stage_status(open_state(proj.state_url), run_id, "map") == "succeeded"
    assert len(res.preview[0]["rows"]) == 2 and res.preview[0]["rows"][0]["source"]


def test_validated_input_is_preferred(project):
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations.extracted import read_entity

    proj, run_id = project
    run = _run(proj, run_id)
    (run.dir / "validate").mkdir(exist_ok=True)
    for e in ("customers", "contacts", "contracts"):
        df = read_entity(run.dir, e)
        if e == "contracts":
            df = df.head(10)
        df.to_parquet(run.dir / "validate" / f"{e}.parquet")
    res = run_map(proj, run)
    assert next(s for s in res.steps if s.step == "Contract").rows_in == 10


def test_cli_check_help_and_json(project):
    proj, run_id = project
    r = CliRunner().invoke(cli, ["--project", str(proj.root), "map", "-h"])
    assert r.exit_code == 0 and "crmbridge map --check" in r.output
    r = CliRunner().invoke(cli, ["--project", str(proj.root), "map", "--check", "--run", run_id])
    assert r.exit_code == 0, r.output
    assert "0 error(s), 0 warning(s)" in r.output
    r = CliRunner().invoke(cli, ["--project", str(proj.root), "map", "--run", run_id, "--skip-validation", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ok"] and {s["step"] for s in out["steps"]} == {"Account", "Contact", "Contract"}


def test_cli_check_reports_org_errors_with_exit_1(project):
    proj, run_id = project
    bad = proj.root / "mappings" / "zz_bad.yml"
    bad.write_text("steps:\n  Bad:\n    entity: customers\n    object: Account\n    external_id: Legacy_Id__c\n"
                   "    fields:\n      Legacy_Id__c: customer_no\n      Name: name\n      Phnoe: phone\n", "utf-8")
    try:
        r = CliRunner().invoke(cli, ["--project", str(proj.root), "map", "--check", "--run", run_id])
        assert r.exit_code == 1
        assert "step Bad field Phnoe: Account has no field 'Phnoe' (did you mean 'Phone'?)" in r.output
        bad.write_text("steps:\n  Bad:\n    entity: customers\n    objekt: Account\n", "utf-8")
        from crmbridge.cli import main

        with pytest.raises(SystemExit) as e:
            main(["--project", str(proj.root), "map", "--check"])
        assert e.value.code == 2
    finally:
        bad.unlink()
