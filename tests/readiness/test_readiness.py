"""Readiness over real rehearsals of a demo project: NO-GO before any rehearsal, GO after a clean one and
the sign-offs, NO-GO when a later rehearsal regresses, GO again; phases pass only in order."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from crmbridge.config import load_project
from crmbridge.readiness.evaluate import run_readiness
from crmbridge.readiness.signoff import sign_gate

CASES = Path(__file__).with_name("cases")
BAD_CREDIT_CODE = "91110000XYH0DMWB5L"  # wrong GB 32100 check character: a blocking rule quarantines it


def _gates(ev) -> dict:
    return {g.id: g for g in ev.gates}


def _dirty_sales_file(root: Path, extra: int) -> None:
    """Append ``extra`` copies of sales customers with new numbers and a broken credit code."""
    path = root / "data" / "sales_customers.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    no, cc = head.index("客户编号"), head.index("统一社会信用代码")
    added = []
    for i in range(extra):
        r = list(body[i % len(body)])
        r[no], r[cc] = f"Z{900000 + i}", BAD_CREDIT_CODE
        added.append(r)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([head, *body, *added])


def _sign_definition(root: Path) -> None:
    p = root / "definitions" / "customer.yml"
    p.write_text(p.read_text("utf-8").replace("signed_on: null", "signed_on: 2024-05-06"), "utf-8")


@pytest.fixture(scope="module")
def scenario(demo_project):
    """Three rehearsals (clean, regressed, clean again) with an evaluation after each step."""
    from crmbridge.migrations.pipeline import run_migrate

    root = demo_project
    project = load_project(root)
    steps = {"before": run_readiness(project)}
    r1 = run_migrate(project, new=True)
    steps["unsigned"] = run_readiness(project)
    _sign_definition(root)
    sign_gate(project, "reps_trained", by="王芳 <i>trainer</i>", dept="sales", note="all reps")
    steps["clean"] = run_readiness(project)
    original = (root / "data" / "sales_customers.csv").read_bytes()
    _dirty_sales_file(root, extra=80)
    r2 = run_migrate(project, new=True)
    steps["regressed"] = run_readiness(project)
    (root / "data" / "sales_customers.csv").write_bytes(original)
    r3 = run_migrate(project, new=True)
    steps["recovered"] = run_readiness(project)
    return {"root": root, "project": project, "steps": steps, "runs": [r1.run_id, r2.run_id, r3.run_id]}


def test_no_go_before_any_rehearsal_with_rehearsal_gates_unknown(scenario):
    ev = scenario["steps"]["before"]
    g = _gates(ev)
    assert ev.decision == "no-go" and ev.exit_code == 1
    for gid in ("one_rehearsal",):
        assert g[gid].status == "fail" and g[gid].value == 0
    for gid in ("customers_quarantine", "rejects", "reconciles", "fits_window", "mapping_clean"):
        assert g[gid].status == "unknown" and g[gid].value is None, gid
    assert g["no_conflicts"].status == "unknown"  # no sync night yet: an empty queue proves nothing


def test_a_phase_cannot_pass_before_the_one_before_it(scenario):
    ev = scenario["steps"]["unsigned"]
    phases = {p.id: p.status for p in ev.phases}
    g = _gates(ev)
    assert g["definition_signed"].status == "fail" and g["definition_signed"].value == 0
    assert all(g[x].status == "pass" for x in ("mapping_clean", "one_rehearsal", "customers_quarantine", "reconciles"))
    assert phases == {"agreed": "fail", "checked": "blocked", "rehearsed": "blocked", "go": "fail"}
    assert ev.decision == "no-go"


def test_go_after_clean_rehearsal_and_sign_offs(scenario):
    ev = scenario["steps"]["clean"]
    g = _gates(ev)
    assert ev.decision == "go" and ev.exit_code == 0, [(x.id, x.status, x.value_text) for x in ev.gates]
    assert g["reps_trained"].signed["by"] == "王芳 <i>trainer</i>"
    assert g["no_conflicts"].status == "unknown"  # a `could` gate never blocks, but is not counted as passed
    assert g["customers_quarantine"].value < 0.15


def test_no_go_again_when_a_later_rehearsal_regresses(scenario):
    ev = scenario["steps"]["regressed"]
    g = _gates(ev)
    clean = _gates(scenario["steps"]["clean"])["customers_quarantine"].value
    assert ev.decision == "no-go" and ev.previous_decision == "go"
    assert g["customers_quarantine"].status == "fail" and g["customers_quarantine"].value > 0.15
    assert g["customers_quarantine"].change == pytest.approx(g["customers_quarantine"].value - clean)
    assert {p.id: p.status for p in ev.phases}["rehearsed"] == "fail"
    rec = scenario["steps"]["recovered"]
    assert rec.decision == "go" and _gates(rec)["customers_quarantine"].value == pytest.approx(clean)


def test_trend_charts_have_one_point_per_rehearsal(scenario):
    from crmbridge.readiness.dashboard import trend_charts
    from crmbridge.readiness.history import rehearsals
    from crmbridge.readiness.store import engine_for

    reh = rehearsals(engine_for(scenario["project"]))
    assert [r.run_id for r in reh] == scenario["runs"]
    rates = [r.rate("quarantined", "customers") for r in reh]
    assert rates[1] > rates[0] and rates[2] == pytest.approx(rates[0])
    charts = trend_charts(reh)
    assert [c["title"] for c in charts] == ["Quarantine rate", "Rejected rate", "Reconcile mismatches", "Duration"]
    assert all(c["points"] == 3 and c["uri"].startswith("data:image/png;base64,") for c in charts)
    assert reh[1].delta and reh[2].delta  # later rehearsals found the first one's records in the org


def test_cli_json_history_and_exit_codes(scenario, crm):
    root = scenario["root"]
    code, body, _ = crm(root, "readiness", "--json")
    assert code == 0 and body["decision"] == "go"
    for g in body["gates"]:
        assert {"id", "phase", "metric", "value", "target", "status", "priority", "owner"} <= set(g)
        assert g["status"] in ("pass", "fail", "unknown")
    code, hist, _ = crm(root, "readiness", "history", "--json")
    assert code == 0 and [h["decision"] for h in hist][:4] == ["go", "go", "no-go", "go"]
    code, out, _ = crm(root, "readiness", "--no-snapshot")
    assert code == 0 and "decision: GO" in out and "customers_quarantine" in out


def test_sign_rejects_unknown_and_measured_gates(scenario, crm):
    root = scenario["root"]
    code, _, err = crm(root, "readiness", "sign", "reps_traned", "--by", "x", "--dept", "sales")
    assert code == 2 and "no gate 'reps_traned'" in err and "reps_trained" in err
    code, _, err = crm(root, "readiness", "sign", "rejects", "--by", "x", "--dept", "it")
    assert code == 2 and "not signed off" in err


def test_revoked_sign_off_turns_the_gate_back(demo_project, tmp_path):
    shutil.copytree(demo_project, tmp_path / "p", ignore=shutil.ignore_patterns("runs", ".crmbridge", "reports"))
    project = load_project(tmp_path / "p")
    sign_gate(project, "reps_trained", by="a", dept="sales")
    assert _gates(run_readiness(project, dashboard=False))["reps_trained"].status == "pass"
    sign_gate(project, "reps_trained", by="a", dept="sales", revoke=True)
    assert _gates(run_readiness(project, dashboard=False))["reps_trained"].status == "fail"


def test_phase_order_with_measured_later_phase(demo_project, tmp_path):
    shutil.copytree(demo_project, tmp_path / "p", ignore=shutil.ignore_patterns("runs", ".crmbridge", "reports"))
    shutil.copy(CASES / "plan__later_phase_first.yml", tmp_path / "p" / "readiness.yml")
    project = load_project(tmp_path / "p")
    from crmbridge.migrations.runs import create_run, finish_stage, start_stage
    from crmbridge.readiness.store import engine_for

    eng = engine_for(project)
    run = create_run(eng, project.runs_dir, "map")
    start_stage(eng, run.run_id, "map")
    finish_stage(eng, run.run_id, "map", {"check": {"ok": True, "errors": 0, "warnings": 0}})
    ev = run_readiness(project, dashboard=False)
    assert {p.id: p.status for p in ev.phases} == {"signed": "fail", "mapped": "blocked"}
    assert ev.decision == "no-go"
    sign_gate(project, "kickoff_signed", by="lead", dept="steering")
    assert run_readiness(project, dashboard=False).decision == "go"


def test_bad_plan_exits_2_naming_file_and_line(demo_project, tmp_path, crm):
    shutil.copytree(demo_project, tmp_path / "p", ignore=shutil.ignore_patterns("runs", ".crmbridge", "reports"))
    shutil.copy(CASES / "plan__unknown_metric.yml", tmp_path / "p" / "readiness.yml")
    code, _, err = crm(tmp_path / "p", "readiness")
    assert code == 2
    assert "readiness.yml:" in err and "rehearsal_quarantine_rat" in err and "rehearsal_quarantine_rate" in err
    assert not (tmp_path / "p" / "reports" / "readiness.html").exists()
