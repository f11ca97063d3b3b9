import subprocess
import sys
import time

from click.testing import CliRunner

from crmbridge.cli import COMMANDS, cli


def test_help_lists_every_command():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for name in COMMANDS:
        assert name in res.output


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, time; t=time.perf_counter(); from crmbridge.cli import cli; "
            "cli.main(['--help'], standalone_mode=False); "
            "heavy=[m for m in ('pandas','pydantic','great_expectations','simple_salesforce','sqlalchemy','numpy','pyarrow') if m in sys.modules]; "
            "print(heavy, time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy = out.strip().splitlines()[-1]
    assert heavy.startswith("[]"), heavy


def test_missing_project_is_a_usage_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "crmbridge", "--project", str(tmp_path), "extract"],
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "crmbridge.yml" in res.stderr
    assert "Traceback" not in res.stderr
