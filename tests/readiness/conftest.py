"""A small demo project (legacy data written, nothing migrated yet) for the readiness tests."""

from __future__ import annotations

import json

import pytest

from crmbridge import cli

PLAN = """
phases:
  - id: agreed
    title: definition agreed
    gates:
      - {id: definition_signed, metric: definition_signed_share, op: ">=", target: 1, owner: {department: steering}}
  - id: checked
    gates:
      - {id: mapping_clean, metric: mapping_check_errors, op: "==", target: 0, owner: {department: it}}
  - id: rehearsed
    gates:
      - {id: one_rehearsal, metric: rehearsals, op: ">=", target: 1, owner: {department: it}}
      - {id: customers_quarantine, metric: rehearsal_quarantine_rate, entity: customers, op: "<=", target: 0.15,
         owner: {department: sales, person: "<b>Sales</b> lead"}}
      - {id: rejects, metric: rehearsal_rejected_rate, op: "<=", target: 0.01, owner: {department: it}}
      - {id: reconciles, metric: rehearsal_reconcile_mismatches, op: "==", target: 0, owner: {department: it}}
      - {id: fits_window, metric: rehearsal_window_share, op: "<=", target: 0.5, owner: {department: it}}
  - id: go
    gates:
      - {id: reps_trained, metric: manual, priority: must, owner: {department: sales}}
      - {id: no_conflicts, metric: open_sync_conflicts, op: "==", target: 0, priority: could, owner: {department: it}}
"""


@pytest.fixture
def crm(capsys):
    """``crm(project, *args)``: run ``crmbridge --project P ARGS`` through the real entry point and
    return (exit code, stdout, stderr); with ``--json`` among the args stdout is parsed."""

    def run(project, *args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            cli.main(["--project", str(project), *args])
        out = capsys.readouterr()
        body = json.loads(out.out) if "--json" in args and exc.value.code in (0, 1) else out.out
        return exc.value.code, body, out.err

    return run


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    """init + sample legacy data (120 customers), the test plan; no run yet."""
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path_factory.mktemp("readiness-project")
    init_project(root)
    write_demo_data(root, customers=120)
    (root / "readiness.yml").write_text(PLAN, "utf-8")
    return root
