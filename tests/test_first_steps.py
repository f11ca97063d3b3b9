"""What a new user meets first (issue 16 point 1): hints that work as printed, plain `init` saying what
to put where, projects found from a sub-folder, and `did you mean` for a mistyped command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmbridge.cli import cli


def _cli(cwd, *args):
    return subprocess.run([sys.executable, "-m", "crmbridge", *args], capture_output=True, text=True,
                          cwd=str(cwd), timeout=300)


def _line(out: str, prefix: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(prefix))[len(prefix):].strip()


def test_plain_init_says_what_to_put_where_and_its_hint_runs_as_printed(tmp_path):
    r = _cli(tmp_path, "init", "acme")
    assert r.returncode == 0, r.stderr
    # every source of the template and where its export goes
    for src, where in (("sales_customers", "data/sales_customers.csv"), ("finance_customers", "data/finance_customers.xlsx"),
                       ("crm_contacts", "sqlite:///data/legacy_crm.db"), ("contracts", "data/contracts.csv")):
        assert any(line.split() == [src, where] for line in r.stdout.splitlines()), r.stdout
    assert "--demo" in _line(r.stdout, "to try it with sample data instead:")
    # the printed command is found (no 127) and says what is missing, naming the file
    then = _line(r.stdout, "then:")
    run = subprocess.run(["bash", "-c", then], capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert run.returncode == 2, (then, run.stdout, run.stderr)
    assert "sales_customers.csv" in run.stderr and "Traceback" not in run.stderr


def test_init_demo_hint_suggests_migrate_only(tmp_path):
    r = CliRunner().invoke(cli, ["init", str(tmp_path / "d"), "--demo"])
    assert r.exit_code == 0, r.output
    nxt = _line(r.output, "next:")
    assert nxt.startswith(f"cd {tmp_path / 'd'} && ") and nxt.endswith(" migrate")
    assert "then:" not in r.output


def test_invocation_prints_a_command_that_exists(tmp_path, monkeypatch):
    from crmbridge.clikit import invocation

    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "crmbridge"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # venv not activated: the full path is printed
    assert invocation() == str(script)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")  # activated: the short name works
    assert invocation() == "crmbridge"
    monkeypatch.setattr(sys, "argv", ["/x/crmbridge/__main__.py"])  # python -m crmbridge
    assert invocation() == f"{sys.executable} -m crmbridge"


def test_commands_find_the_project_from_a_sub_folder(tmp_path):
    assert _cli(tmp_path, "init", "acme").returncode == 0
    deep = tmp_path / "acme" / "data" / "exports" / "2024"
    deep.mkdir(parents=True)
    r = _cli(deep, "--json", "runs", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert (tmp_path / "acme" / ".crmbridge").is_dir() and not (deep / ".crmbridge").exists()


def test_outside_any_project_the_error_says_where_it_looked(tmp_path):
    r = _cli(tmp_path, "runs", "list")
    assert r.returncode == 2
    assert f"no crmbridge.yml in {tmp_path} or any folder above it" in r.stderr
    assert "init DIR --demo" in r.stderr


def test_mistyped_command_gets_did_you_mean():
    r = subprocess.run([sys.executable, "-m", "crmbridge", "migrat"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "No such command 'migrat'. Did you mean 'migrate'?" in r.stderr
    r = CliRunner().invoke(cli, ["recnocile"])
    assert r.exit_code == 2 and "Did you mean 'reconcile'" in r.output
    r = CliRunner().invoke(cli, ["zzz"])
    assert r.exit_code == 2 and "Did you mean" not in r.output


def test_readme_says_how_to_reach_the_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert ". .venv/bin/activate" in readme and ".venv/bin/crmbridge" in readme
