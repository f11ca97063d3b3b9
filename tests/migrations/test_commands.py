"""Every migration command has -h with a summary and an example; usage errors exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crmbridge.cli import cli

COMMANDS = [["load"], ["migrate"], ["reconcile"], ["rollback"], ["runs"], ["runs", "list"], ["runs", "show"], ["demo"]]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_help(args):
    r = CliRunner().invoke(cli, [*args, "-h"])
    assert r.exit_code == 0, r.output
    assert "Example:" in r.output and "crmbridge " + args[0] in r.output


def test_migrate_help_says_how_resume_works():
    out = CliRunner().invoke(cli, ["migrate", "-h"]).output
    assert "--new" in out and "continues" in out


def test_load_without_a_mapped_run_is_a_usage_error(project, helpers):
    r = helpers.cli(project.root, "load")
    assert r.returncode == 2
    assert "no migrate run whose map stage succeeded" in r.stderr and "crmbridge migrate" in r.stderr


def test_runs_list_on_an_empty_project(project, helpers):
    r = helpers.cli(project.root, "runs", "list", "--json")
    assert r.returncode == 0 and r.stdout.strip() == "[]"
