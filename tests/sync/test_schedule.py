"""Scheduler definitions: crontab with CRON_TZ, systemd timer, Airflow 3 DAG that parses."""

from __future__ import annotations

import ast
from datetime import datetime
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from crmbridge.cli import cli
from crmbridge.sync.schedule import _on_calendar, airflow_dag_text, crontab_text, next_runs


def _project(tmp_path):
    from crmbridge.templates.commands import init_project

    init_project(tmp_path)
    return tmp_path


def test_airflow_dag_is_airflow3_style(tmp_path):
    res = CliRunner().invoke(cli, ["--project", str(_project(tmp_path)), "--json", "schedule", "airflow"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "schedule" / "crmbridge_sync_dag.py").read_text()
    tree = ast.parse(text)
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "airflow.sdk" in imports and "airflow.models" not in imports
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DAG")
    kw = {k.arg: k.value for k in call.keywords}
    assert ast.literal_eval(kw["schedule"]) == "30 1 * * *"
    assert kw["catchup"].value is False
    assert "tz=" in ast.unparse(kw["start_date"])
    assert f"'--project', '{tmp_path}', '--json', 'sync'" in text
    objects = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "OBJECTS")
    assert objects == ["customers", "contracts", "products", "inventory", "receivables", "account_balances"]
    assert "max_active_runs=1" in text and '"retries": 2' in text


def test_crontab_carries_time_zone_and_tag(tmp_path):
    text = crontab_text("30 1 * * *", "Asia/Shanghai", "crmbridge --project /p --json sync", tmp_path / "x.log")
    assert text.splitlines()[0] == "CRON_TZ=Asia/Shanghai"
    assert "30 1 * * * crmbridge --project /p --json sync >> " in text and text.rstrip().endswith("# crmbridge-sync")


def test_systemd_timer_and_next_runs(tmp_path):
    res = CliRunner().invoke(cli, ["--project", str(_project(tmp_path)), "--json", "schedule", "systemd"])
    assert res.exit_code == 0, res.output
    timer = (tmp_path / "schedule" / "crmbridge-sync.timer").read_text()
    assert "OnCalendar=*-*-* 1:30:00 Asia/Shanghai" in timer and "Persistent=true" in timer
    assert _on_calendar("0 2 * * 1-5") == "Mon..Fri *-*-* 2:0:00"
    now = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert next_runs("30 1 * * *", "Asia/Shanghai", 2, now) == ["2026-03-02T01:30:00+08:00", "2026-03-03T01:30:00+08:00"]


def test_unknown_scheduler_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(cli, ["--project", str(_project(tmp_path)), "schedule", "launchd"])
    assert res.exit_code == 2
    assert airflow_dag_text("0 3 * * *", "UTC", "echo hi").count("catchup=False") == 1
