"""kill -9 mid-sync then rerun: nothing lost, nothing duplicated; faults retried; the lock holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select

from crmbridge.config import load_project
from crmbridge.errors import RunFailed, UsageError
from crmbridge.state import open_state
from crmbridge.sync import store
from crmbridge.sync.reference_erp import create_reference_erp, customers, inventory



def _sf_stock(sf) -> dict[str, float]:
    return {r["ERP_Key__c"]: r["On_Hand__c"] for r in sf.query("SELECT ERP_Key__c, On_Hand__c FROM Inventory__c")}


def _erp_stock(url) -> dict[str, float]:
    eng = create_engine(url)
    with eng.connect() as c:
        out = {f"{r.item_code}|{r.warehouse}": float(r.on_hand) for r in c.execute(select(inventory))}
    eng.dispose()
    return out


def _done_batches(state_url: str) -> int:
    eng = open_state(state_url)
    with eng.connect() as c:
        return len(list(c.execute(select(store.sync_journal.c.id).where(
            store.sync_journal.c.object == "inventory", store.sync_journal.c.status == "done"))))


@pytest.fixture(params=["postgresql", "mariadb"])
def erp_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


def test_kill_9_mid_sync_then_rerun_loses_and_duplicates_nothing(tmp_path, erp_url, fresh_sandbox, kit):
    create_reference_erp(erp_url, items=300)
    root = kit.make_project(tmp_path / "p", erp_url, fresh_sandbox, sync_yml=kit.stock_yml(batch_size=100))
    project = load_project(root)
    fresh_sandbox.faults.set(latency_ms=120)
    proc = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(root), "sync"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _done_batches(project.state_url) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.02)
    sf = kit.connector(project)
    with pytest.raises(RunFailed, match="another sync is running"):
        kit.run(project, sf)  # the lock stops a concurrent run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    fresh_sandbox.faults.clear()
    partial = _sf_stock(sf)
    assert 300 <= len(partial) < 900  # really killed mid-way
    r = kit.run(project, sf)
    assert r.status == "succeeded" and r.lock_taken_over_from, r.as_dict()
    assert _sf_stock(sf) == _erp_stock(erp_url)
    assert sf.count("SELECT COUNT() FROM Inventory__c") == 900
    assert kit.run(project, sf).totals["written"] == 0


def test_erp_rows_inserted_by_a_killed_run_are_linked_not_duplicated(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=1)
    project = load_project(kit.make_project(tmp_path / "p", url, fresh_sandbox))
    sf = kit.connector(project)
    (acct,) = sf.dml("insert", "Account", [{"Name": "半途客户有限公司", "Customer_Status__c": "Active"}])
    # what a run killed between its ERP commit and its state update leaves behind
    state = open_state(project.state_url)
    store.journal_plan(state, "killed-run", "customers", "erp", "insert", {"keys": {acct.id: "K0000041"}}, 1)
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(insert(customers).values(customer_code="K0000041", name="半途客户有限公司", status="Active",
                                           updated_at=__import__("datetime").datetime(2026, 1, 2)))
    r = kit.run(project, sf, objects=["customers"])
    assert r.status == "succeeded", r.as_dict()
    with eng.connect() as c:
        names = [n for (n,) in c.execute(select(customers.c.name).where(customers.c.name == "半途客户有限公司"))]
    assert names == ["半途客户有限公司"]
    got = list(sf.query(f"SELECT ERP_Customer_Code__c FROM Account WHERE Id = '{acct.id}'"))
    assert got[0]["ERP_Customer_Code__c"] == "K0000041"
    eng.dispose()


def test_injected_salesforce_faults_are_retried(tmp_path, fresh_sandbox, kit, caplog):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=40)
    root = kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=kit.stock_yml(batch_size=100))
    project = load_project(root)
    sf = kit.connector(project)
    fresh_sandbox.faults.set(error_503_rate=0.3, lock_rate=0.1, seed=11)
    r = kit.run(project, sf)
    fresh_sandbox.faults.clear()
    assert r.status == "succeeded", r.as_dict()
    retried = " ".join(rec.getMessage() for rec in caplog.records if rec.name == "crmbridge.salesforce")
    assert "SERVER_UNAVAILABLE" in retried and "UNABLE_TO_LOCK_ROW" in retried
    assert _sf_stock(sf) == _erp_stock(url)


def test_cli_summary_exit_codes_and_conflict_commands(tmp_path, fresh_sandbox, kit):
    import json

    from crmbridge.cli import cli

    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=3)
    root = kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=kit.stock_yml(batch_size=100))
    res = CliRunner().invoke(cli, ["--project", str(root), "--json", "sync", "--dry-run"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["dry_run"] and out["objects"]["inventory"]["written_salesforce"] == 9
    sf = kit.connector(load_project(root))
    assert sf.count("SELECT COUNT() FROM Inventory__c") == 0  # a dry run writes nothing
    res = CliRunner().invoke(cli, ["--project", str(root), "--json", "sync"])
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["totals"]["written"] == 12 and out["objects"]["inventory"]["read"] == 9
    res = CliRunner().invoke(cli, ["--project", str(root), "sync", "conflicts", "list", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["count"] == 0
    res = CliRunner().invoke(cli, ["--project", str(root), "sync", "conflicts", "resolve", "99", "--take", "erp"])
    # main() turns a UsageError into exit code 2 (tests/test_cli.py covers that mapping)
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
    assert "no open conflict with id 99" in str(res.exception)
    res = CliRunner().invoke(cli, ["--project", str(root), "sync", "--direction", "sideways"])
    assert res.exit_code == 2
    for args in (["sync", "-h"], ["sync", "conflicts", "-h"], ["sync", "conflicts", "list", "-h"],
                 ["sync", "conflicts", "resolve", "-h"], ["schedule", "-h"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0 and "Example" in res.output
