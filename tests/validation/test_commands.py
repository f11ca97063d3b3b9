"""``crmbridge validate`` through the CLI: exit codes, the one-screen summary, --json, -h."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from crmbridge.cli import cli


def test_help_has_summary_and_example():
    res = CliRunner().invoke(cli, ["validate", "-h"])
    assert res.exit_code == 0
    assert "Validate a run against the agreed customer definition." in res.output
    assert "crmbridge validate --run" in res.output and "--definition" in res.output


def test_blocking_failures_exit_1_with_summary(case_run):
    project, run = case_run
    res = CliRunner().invoke(cli, ["--project", str(project.root), "validate"])
    assert res.exit_code == 1, res.output
    assert "DRAFT definition v1.0" in res.output
    assert "customers" in res.output and "format.credit_code" in res.output
    assert "BLOCKING failures" in res.output
    assert str(run.dir / "validate" / "report.html") in res.output


def test_json_summary_and_exit_0_without_blocking_failures(case_run, tmp_path):
    project, run = case_run
    lenient = tmp_path / "lenient.yml"
    lenient.write_text("version: 3\nowners: [{department: sales, person: x, signed_on: 2026-01-15}]\n"
                       "entities:\n  customers:\n    identity: {key: _row_id}\n"
                       "    formats: [{field: email, format: email, severity: warning}]\n", "utf-8")
    res = CliRunner().invoke(cli, ["--project", str(project.root), "validate", "--run", run.run_id,
                                   "--definition", str(lenient), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["blocking_failed"] is False and out["definition_status"] == "signed"
    c = out["entities"]["customers"]
    assert (c["rows_in"], c["rows_valid"], c["rows_quarantined"], c["rows_warned"]) == (20, 20, 0, 2)  # 'bad@', 'INFO@EXAMPLE.CN ' (not normalised here)
    assert out["entities"]["contacts"]["note"].startswith("the definition has no rules")


def test_no_extracted_run_is_a_usage_error(tmp_path, project_factory):
    make_project, _ = project_factory
    project = make_project(tmp_path / "p")
    res = subprocess.run([sys.executable, "-m", "crmbridge", "--project", str(project.root), "validate"],
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "no run with a successful extract" in res.stderr and "Traceback" not in res.stderr
