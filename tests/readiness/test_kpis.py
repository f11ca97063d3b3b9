"""KPI snapshots from the legacy data and from the org after a migration agree where they should."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("cases")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A demo project of 300 customers migrated once into its sandbox org."""
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.templates.commands import init_project

    root = tmp_path_factory.mktemp("kpi-project")
    init_project(root)
    write_demo_data(root, customers=300)
    project = load_project(root)
    run = run_migrate(project, new=True)
    return root, project, run


def test_legacy_and_org_agree_on_customers_and_contacts(migrated, crm):
    import pandas as pd

    root, _, run = migrated
    code, before, _ = crm(root, "kpi", "snapshot", "--from", "legacy", "--label", "before", "--json")
    assert code == 0 and before["source"] == "legacy" and before["run_id"] == run.run_id
    code, after, _ = crm(root, "kpi", "snapshot", "--from", "org", "--label", "after", "--json")
    assert code == 0
    b, a = before["values"], after["values"]
    # customers the map stage quarantined (every row of them) are legitimately missing from the org
    q = pd.read_csv(root / "runs" / run.run_id / "map" / "quarantine" / "Account.csv", dtype=str, encoding="utf-8-sig")
    loaded = set(pd.read_parquet(root / "runs" / run.run_id / "map" / "Account.parquet")["Legacy_Id__c"])
    lost_in_map = set(q["customer_no"].str.strip().str.upper()) - loaded
    assert a["customers"]["value"] == b["customers"]["value"] - len(lost_in_map)
    assert a["customers"]["value"] > 200
    if not lost_in_map:
        assert a["contacts_per_customer"]["value"] == pytest.approx(b["contacts_per_customer"]["value"])
        assert a["share_credit_code"]["value"] == pytest.approx(b["share_credit_code"]["value"])
        assert a["customers_finance"]["value"] == b["customers_finance"]["value"]
    assert a["receivables_per_customer"]["numerator"] > 0
    assert a["customers_agreed"]["value"] is None and "legacy" in a["customers_agreed"]["note"]
    assert 0 < b["customers_agreed"]["value"] <= b["customers"]["value"]

    code, cmp_, _ = crm(root, "kpi", "compare", "before", "after", "--json")
    assert code == 0 and cmp_["a"]["source"] == "legacy" and cmp_["b"]["source"] == "org"
    row = {k["id"]: k for k in cmp_["kpis"]}
    assert row["customers"]["diff"] == -len(lost_in_map)
    code, lst, _ = crm(root, "kpi", "list", "--json")
    assert [s["label"] for s in lst] == ["before", "after"]
    code, out, _ = crm(root, "kpi", "compare", "before", "after")
    assert code == 0 and "contacts per customer" in out


def test_baseline_feeds_the_readiness_metric(migrated):
    from crmbridge.readiness.metrics import Facts, measure
    from crmbridge.readiness.store import engine_for

    root, project, _ = migrated
    from crmbridge.readiness.kpi_snapshot import take_snapshot

    take_snapshot(project, source="legacy", label="baseline-metric", replace=True)
    assert measure(Facts(project, engine_for(project)), "baseline_kpis_captured") >= 1


def test_duplicate_label_and_unknown_label_are_usage_errors(migrated, crm):
    root, project, _ = migrated
    from crmbridge.readiness.kpi_snapshot import take_snapshot

    take_snapshot(project, source="legacy", label="dup", replace=True)
    code, _, err = crm(root, "kpi", "snapshot", "--from", "legacy", "--label", "dup")
    assert code == 2 and "exists" in err
    code, _, err = crm(root, "kpi", "compare", "dup", "nope")
    assert code == 2 and "no KPI snapshot labelled 'nope'" in err


def test_bad_kpi_file_names_file_and_line(migrated, tmp_path, crm):
    root, _, _ = migrated
    shutil.copytree(root, tmp_path / "p", ignore=shutil.ignore_patterns("runs", ".crmbridge"))
    shutil.copy(CASES / "kpis__share_without_field.yml", tmp_path / "p" / "kpis.yml")
    code, _, err = crm(tmp_path / "p", "kpi", "snapshot", "--from", "legacy", "--label", "x")
    assert code == 2 and "kpis.yml:" in err and "needs 'field'" in err
