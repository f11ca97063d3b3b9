"""``crmbridge migrate`` and ``crmbridge demo`` end to end through the CLI, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

SMALL = "300"


def _json(r):
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    """One small demo project, migrated once; tests below only read it or run further migrations."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("demo") / "proj"
    r = subprocess.run([sys.executable, "-m", "crmbridge", "demo", str(d), "--customers", SMALL, "--json"],
                       capture_output=True, text=True, timeout=600)
    return d, _json(r)


def test_demo_summary_balances_per_entity(demo_project):
    d, out = demo_project
    assert out["balanced"] is True and out["reconcile_ok"] is True
    assert set(out["entities"]) == {"customers", "contacts", "contracts"}
    for name, e in out["entities"].items():
        assert e["extracted"] == e["quarantined"] + e["filtered"] + e["loaded"] + e["rejected"], name
    cust = out["entities"]["customers"]
    assert cust["extracted"] == sum(out["sources"][s] for s in ("sales_customers", "finance_customers",
                                                                "service_customers"))
    assert cust["loaded"] > 0.8 * cust["extracted"] and cust["quarantined"] > 0  # realistic share of defects
    assert (d / "data" / "service_customers.csv").read_bytes().decode("gb18030").startswith("客户编号;")
    for key in ("validation_report", "load", "reconcile"):
        assert key in out["reports"]


def test_every_source_row_has_one_ledger_row(demo_project):
    """Loaded, rejected and quarantined rows are all in the ledger, each once, with its reason."""
    from crmbridge.config import load_project
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    d, out = demo_project
    project = load_project(d)
    led = L.ledger_frame(open_state(project.state_url), out["run_id"])
    assert led["row_id"].is_unique
    by_step = {"customers": "Account", "contacts": "Contact", "contracts": "Contract"}
    for entity, e in out["entities"].items():
        rows = led[led["step"] == by_step[entity]]
        assert len(rows) == e["extracted"], entity
        q = rows[rows["action"] == "quarantined"]
        assert (q["message"] != "").all()
        # rows a mapping filter leaves out on purpose are counted apart from data-quality quarantine
        dq = q[q["error_code"] != "filtered"]
        assert len(dq) == e["quarantined"] and len(q) - len(dq) == e["filtered"]
        assert dq["error_code"].value_counts().to_dict() == {k: v for k, v in e["quarantined_by_stage"].items() if v}
        assert q[q["error_code"] == "filtered"]["message"].str.startswith("filtered: ").all()
        assert (rows["action"] == "failed").sum() == e["rejected"]


def test_runs_list_and_show(demo_project, helpers):
    d, out = demo_project
    runs = _json(helpers.cli(d, "runs", "list", "--json"))
    assert runs[0]["run_id"] == out["run_id"] and runs[0]["status"] == "succeeded"
    shown = _json(helpers.cli(d, "runs", "show", out["run_id"], "--json"))
    objs = {o["object"]: o for o in shown["objects"]}
    assert objs["Account"]["created"] + objs["Account"].get("failed", 0) > 0
    assert {s["stage"] for s in shown["stages"]} >= {"extract", "validate", "map", "load", "reconcile"}
    missing = helpers.cli(d, "runs", "show", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_delta_run_after_source_edit_writes_only_changed_rows(demo_project, helpers):
    d, first = demo_project
    # edit one legacy customer's name in the sales export (sales is the preferred department)
    sales = d / "data" / "sales_customers.csv"
    text = sales.read_text(encoding="utf-8-sig").splitlines()
    first_row = text[1].split(",")
    customer_no = first_row[0].strip()
    first_row[1] = "德尔塔变更测试有限公司"
    text[1] = ",".join(first_row)
    sales.write_text("\n".join(text) + "\n", encoding="utf-8-sig")
    out = _json(helpers.cli(d, "migrate", "--json"))
    assert out["run_id"] != first["run_id"] and out["resumed"] is False
    cust = out["entities"]["customers"]
    assert cust["created"] == 0 and 1 <= cust["updated"] <= 3  # the edited record (and its merged rows)
    assert cust["unchanged"] > 0.9 * cust["loaded"]
    assert out["entities"]["contacts"]["created"] == out["entities"]["contacts"]["updated"] == 0
    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce import connect

    conn = connect(load_project(d))
    try:
        rec = list(conn.query(f"SELECT Name FROM Account WHERE Legacy_Id__c = '{customer_no}'"))
    finally:
        conn.close()
    assert rec and rec[0]["Name"] == "德尔塔变更测试有限公司"


def test_dry_run_writes_nothing(demo_project, helpers):
    d, _ = demo_project
    before = _json(helpers.cli(d, "runs", "list", "--json"))
    out = _json(helpers.cli(d, "migrate", "--dry-run", "--json"))
    assert out["dry_run"] is True and out["balanced"] is True
    assert out["entities"]["customers"]["loaded"] > 0
    after = _json(helpers.cli(d, "runs", "list", "--json"))
    assert len(after) == len(before) + 1 and after[0]["dry_run"] is True
    assert sum(after[0]["actions"].values()) == 0  # nothing in the ledger
    # a dry run is never resumed: the next migrate starts a fresh run
    assert _json(helpers.cli(d, "migrate", "--json"))["resumed"] is False


def test_migrate_resumes_after_crash_through_the_cli(tmp_path, helpers):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(tmp_path)
    write_demo_data(tmp_path, customers=2300, erp=False)  # > 2,000 accounts: a Bulk job
    crashed = helpers.cli(tmp_path, "migrate", "--batch-rows", "2000",
                          env_extra={"CRMBRIDGE_TEST_CRASH_AT": "load:after_job_created@1"})
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    runs = _json(helpers.cli(tmp_path, "runs", "list", "--json"))
    assert runs[0]["status"] == "running"
    out = _json(helpers.cli(tmp_path, "migrate", "--batch-rows", "2000", "--json"))
    assert out["resumed"] is True and out["run_id"] == runs[0]["run_id"]
    assert out["stages_run"] == ["load", "reconcile"] and out["reconcile_ok"] is True and out["balanced"]
    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce import connect

    conn = connect(load_project(tmp_path))
    try:
        keys = helpers.org_keys(conn, "Account")
    finally:
        conn.close()
    accounts = out["entities"]["customers"]
    assert len(keys) == len({k.lower() for k in keys}) > 2000  # no duplicates
    assert accounts["created"] == accounts["loaded"]  # every record created once, none "updated" by the rerun


def _small_project(path):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(path)
    write_demo_data(path, customers=int(SMALL), erp=False)


def test_migrate_resumes_after_crash_between_stages(tmp_path, helpers):
    _small_project(tmp_path)
    crashed = helpers.cli(tmp_path, "migrate", env_extra={"CRMBRIDGE_TEST_CRASH_AT": "migrate:after_map"})
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    out = _json(helpers.cli(tmp_path, "migrate", "--json"))
    assert out["resumed"] is True and out["stages_run"] == ["load", "reconcile"]
    assert out["balanced"] and out["reconcile_ok"]


def test_migrate_resumes_after_kill_9_during_validation(tmp_path, helpers):
    from sqlalchemy import create_engine, text

    _small_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(tmp_path), "migrate"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    engine = create_engine(f"sqlite:///{tmp_path / '.crmbridge' / 'state.db'}")
    killed, deadline = False, time.monotonic() + 120
    try:
        while not killed and time.monotonic() < deadline and child.poll() is None:
            try:
                with engine.connect() as c:
                    killed = bool(c.execute(text("SELECT 1 FROM run_stages WHERE stage = 'validate' "
                                                 "AND status = 'running'")).first())
            except Exception:  # the state database is not there yet
                pass
            if killed:
                os.kill(child.pid, signal.SIGKILL)
            time.sleep(0.02)
    finally:
        child.wait(timeout=60)
        engine.dispose()
    assert killed and child.returncode == -signal.SIGKILL
    out = _json(helpers.cli(tmp_path, "migrate", "--json"))
    assert out["resumed"] is True and out["stages_run"] == ["validate", "map", "load", "reconcile"]
    assert out["balanced"] and out["reconcile_ok"]


def test_dry_run_prints_what_would_be_written(tmp_path, helpers):
    _small_project(tmp_path)
    r = helpers.cli(tmp_path, "migrate", "--dry-run")
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("dry run Account (Account): would create "))
    assert int(line.split("would create ")[1].split(",")[0]) > 200 and "update 0" in line
    assert "dry_run.csv" in line
