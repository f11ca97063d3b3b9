"""Readable output (issue 16 point 3): run ids never cut and given as `latest` or a prefix, rows vs
records, the reconcile error said once, rejections exit 0 unless --fail-on-reject, KPI formats."""

from __future__ import annotations

import pytest


def _runs(project, n=3):
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    ids = [f"20261105-10150{i}-ab1{i}" for i in range(n)]
    for rid in ids:
        R.create_run(engine, project.runs_dir, "migrate", command="test", run_id=rid)
    R.create_run(engine, project.runs_dir, "rollback", command="test", run_id=ids[0] + ".rb")
    return engine, ids


def test_run_ids_resolve_exactly_by_latest_or_unique_prefix(project):
    from crmbridge.errors import UsageError
    from crmbridge.migrations.runs import open_run, resolve_run_id

    engine, ids = _runs(project)
    assert resolve_run_id(engine, ids[1]) == ids[1]
    assert resolve_run_id(engine, "20261105-101502") == ids[2]
    # created in the same second: newest by id; the rollback journal is not "latest"
    assert resolve_run_id(engine, "latest") == ids[2]
    assert resolve_run_id(engine, "latest", kind="rollback") == ids[0] + ".rb"
    assert open_run(engine, project.runs_dir, "20261105-101501").dir == project.runs_dir / ids[1]
    with pytest.raises(UsageError, match="ambiguous: it starts 20261105-101502-ab12, 20261105-101501-ab11"):
        resolve_run_id(engine, "20261105-10150")
    with pytest.raises(UsageError, match="no run '2025'"):
        resolve_run_id(engine, "2025")
    with pytest.raises(UsageError, match="no run '20261105-1015%'"):  # LIKE wildcards are literal
        resolve_run_id(engine, "20261105-1015%")


def test_runs_list_never_cuts_an_id_and_show_takes_a_prefix(project, helpers):
    _, ids = _runs(project)
    r = helpers.cli(project.root, "runs", "list", env_extra={"COLUMNS": "60"})
    assert r.returncode == 0, r.stderr
    for rid in ids:
        assert rid in r.stdout
    assert "…" not in r.stdout
    r = helpers.cli(project.root, "runs", "show", "20261105-101501")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"run {ids[1]} (migrate)")
    r = helpers.cli(project.root, "--json", "runs", "show", "latest")
    assert r.returncode == 0 and f'"run_id": "{ids[2]}"' in r.stdout
    r = helpers.cli(project.root, "runs", "show", "2026")
    assert r.returncode == 2 and "ambiguous" in r.stderr


def test_load_labels_rows_and_records_and_exits_0_on_rejects_unless_asked(project, mapped_run, helpers):
    accounts = helpers.accounts(9, merged_every=3)  # rows 0, 3, 6 merge two source rows each
    accounts.loc[4, "Name"] = None  # Salesforce rejects it: REQUIRED_FIELD_MISSING
    run = mapped_run(accounts)
    r = helpers.cli(project.root, "load", "--run", run.run_id[:15], env_extra={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    assert "source rows" in r.stdout and "records" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("│ Account"))
    assert [c.strip() for c in row.split("│")[1:-1]] == ["Account", "Account", "12", "9", "8", "0", "0", "1"]
    assert "1 records rejected by Salesforce" in r.stdout
    r = helpers.cli(project.root, "load", "--run", "latest", "--fail-on-reject")
    assert r.returncode == 1
    assert "Salesforce rejected 1 records (--fail-on-reject)" in r.stderr
    # the retried rejection is still one record; nothing else is touched
    r = helpers.cli(project.root, "--json", "load", "--run", "latest", "--fail-on-reject")
    assert r.returncode == 1 and '"failed": 1' in r.stdout


def test_reconcile_mismatch_is_reported_once(project, mapped_run, helpers, sf):
    from crmbridge.migrations.load import run_load

    run = mapped_run(helpers.accounts(6, merged_every=0))
    run_load(project, run, connector=sf)
    gone = next(iter(sf.query("SELECT Id FROM Account WHERE Legacy_Id__c = 'C000002'")))["Id"]
    sf.dml("delete", "Account", [{"Id": gone}], keys=["C000002"])
    r = helpers.cli(project.root, "reconcile")
    assert r.returncode == 1
    both = r.stdout + r.stderr
    assert both.count(" mismatches") == 1 and "MISMATCH" not in both, both
    assert "…" not in r.stdout  # no header or step cut at 80 columns
    assert "reconcile of run " + run.run_id + ": 1 mismatches (1 missing in the org)" in r.stderr


@pytest.mark.parametrize("kind,value,diff,text", [
    ("avg_contract_value", 990812.346, False, "990,812.35"),
    ("receivables_per_customer", 1234.5, True, "+1,234.50"),
    ("share_with", 0.4567, False, "45.7%"),
    ("share_with", 0.021, True, "+2.1 pp"),
    ("share_with", -0.5, True, "-50.0 pp"),
    ("customers", 9581.0, False, "9,581"),
    ("contacts_per_customer", 1.1634, False, "1.16"),
    ("customers", None, False, "n/a"),
])
def test_kpi_values_format_money_and_percentages(kind, value, diff, text):
    from crmbridge.readiness.kpi_commands import _fmt

    assert _fmt(value, kind, diff=diff) == text
