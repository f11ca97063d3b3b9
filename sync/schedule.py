"""Ready-to-install definitions for the nightly sync: a crontab, systemd units, or an Airflow 3 DAG.

Each writer returns the text; ``write_schedule`` puts it in ``<project>/schedule/`` and previews the
next runs with croniter. The command line they run is always ``crmbridge --project DIR --json sync``,
whose exit code (0 ok, 1 failed, 2 config) is what the scheduler alerts on.
"""

from __future__ import annotations

import ast
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from crmbridge.errors import UsageError

KINDS = ("cron", "systemd", "airflow")
TAG = "crmbridge-sync"


@dataclass(frozen=True)
class ScheduleResult:
    kind: str
    files: list[str]
    cron: str
    timezone: str
    command: str
    next_runs: list[str] = field(default_factory=list)
    install: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sync_command(project_root: Path, direction: str, executable: str | None = None) -> str:
    exe = executable or str(Path(sys.executable).with_name("crmbridge"))
    parts = [exe, "--project", str(project_root), "--json", "sync"]
    if direction != "both":
        parts += ["--direction", direction]
    return shlex.join(parts)


def next_runs(cron: str, tz: str, n: int = 3, now: datetime | None = None) -> list[str]:
    from croniter import croniter

    zone = ZoneInfo(tz)
    it = croniter(cron, (now or datetime.now(zone)).astimezone(zone))
    return [it.get_next(datetime).isoformat() for _ in range(n)]


def crontab_text(cron: str, tz: str, command: str, log_path: Path) -> str:
    """A crontab with ``CRON_TZ`` so the schedule follows local time whatever the server's zone."""
    from crontab import CronTab

    tab = CronTab(tab="")
    tab.env["CRON_TZ"] = tz
    job = tab.new(command=f"{command} >> {shlex.quote(str(log_path))} 2>&1", comment=TAG)
    job.setall(cron)
    if not job.is_valid():
        raise UsageError(f"'{cron}' is not a valid cron expression", hint="fix schedule.cron in sync.yml")
    return tab.render()


def _on_calendar(cron: str) -> str:
    """A 5-field cron expression as a systemd OnCalendar= value (minute, hour, day, month, weekday)."""
    minute, hour, dom, month, dow = cron.split()
    names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    def part(v: str) -> str:
        return "*" if v == "*" else v.replace("*/", "0/") if v.startswith("*/") else v

    if any(ch in f"{minute}{hour}{dom}{month}" for ch in "LW#?"):
        raise UsageError(f"cron '{cron}' uses syntax systemd cannot express", hint="use plain numbers, lists and ranges")
    wd = ""
    if dow != "*":
        days = []
        for chunk in dow.split(","):
            if "-" in chunk:
                a, b = chunk.split("-")
                days.append(f"{names[int(a)]}..{names[int(b)]}")
            else:
                days.append(names[int(chunk)])
        wd = ",".join(days) + " "
    return f"{wd}*-{part(month)}-{part(dom)} {part(hour)}:{part(minute)}:00"


def systemd_texts(cron: str, tz: str, command: str, project_root: Path) -> dict[str, str]:
    service = (
        "[Unit]\nDescription=crmbridge nightly ERP <-> Salesforce sync\nAfter=network-online.target\n"
        "Wants=network-online.target\n\n[Service]\nType=oneshot\n"
        f"WorkingDirectory={project_root}\nExecStart={command}\n"
        "# Secrets ({env: NAME} in the YAML files) come from this file, never from the unit itself.\n"
        f"EnvironmentFile=-{project_root}/.crmbridge/sync.env\n"
    )
    timer = (
        "[Unit]\nDescription=Run the crmbridge sync nightly\n\n[Timer]\n"
        f"OnCalendar={_on_calendar(cron)} {tz}\nPersistent=true\nUnit={TAG}.service\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{TAG}.service": service, f"{TAG}.timer": timer}


def airflow_dag_text(cron: str, tz: str, command: str, objects: list[str] | None = None,
                     dag_id: str = "crmbridge_nightly_sync", retries: int = 2, retry_minutes: int = 10) -> str:
    """An Airflow 3 DAG (airflow.sdk): one task per sync object, chained in sync.yml's order.

    Each task runs ``<command> --object NAME``, which takes crmbridge's own run lock: a sync already
    running (a manual one, or another DAG run) makes the task exit 1 and Airflow retries it later.
    Exit 1 (failed, rows rejected, lock held) is retried ``retries`` times; exit 2 (configuration) fails
    the task at once, since retrying cannot fix a config file. A task runs when the one before it has
    finished, whatever its outcome (``all_done``), as ``crmbridge sync`` itself carries on after a
    failed object; the DAG run fails if any object failed."""
    argv = shlex.split(command)
    names = list(objects or [])
    text = f'''"""Nightly ERP <-> Salesforce sync, one task per sync object (written by `crmbridge schedule airflow`).

Regenerate it after changing sync.yml: `crmbridge schedule airflow --out $AIRFLOW_HOME/dags`.
"""

import subprocess
import sys
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

COMMAND = {argv!r}
OBJECTS = {names!r}  # in sync.yml order: parents (customers, products) before what references them


def sync_object(name):
    """Run `crmbridge sync --object NAME`; exit 2 (configuration) is not worth a retry."""
    proc = subprocess.run([*COMMAND, "--object", name], capture_output=True, text=True)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    if proc.returncode == 2:
        raise AirflowFailException(f"crmbridge sync --object {{name}}: configuration error (exit 2), see the log")
    if proc.returncode != 0:
        raise RuntimeError(f"crmbridge sync --object {{name}} failed with exit code {{proc.returncode}} "
                           "(rows rejected, an object failed, or another sync holds the lock); retried")
    return proc.stdout


with DAG(
    dag_id={dag_id!r},
    schedule={cron!r},
    start_date=pendulum.datetime(2026, 1, 1, tz={tz!r}),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    default_args={{"retries": {retries}, "retry_delay": timedelta(minutes={retry_minutes})}},
    tags=["crmbridge", "sync"],
) as dag:
    previous = None
    for name in OBJECTS:
        task = PythonOperator(task_id=f"sync_{{name}}", python_callable=sync_object, op_args=[name],
                              trigger_rule="all_done")
        if previous is not None:
            previous >> task
        previous = task
'''
    ast.parse(text)  # never hand out a DAG that does not even parse
    return text


def write_schedule(project, kind: str, *, out_dir: Path | None = None, executable: str | None = None) -> ScheduleResult:
    """Write the definition for ``kind`` (cron, systemd, airflow) using sync.yml's ``schedule``."""
    from crmbridge.sync.engine import load_config

    if kind not in KINDS:
        raise UsageError(f"unknown scheduler '{kind}'", hint=f"use one of {', '.join(KINDS)}")
    cfg = load_config(project)
    s = cfg.schedule
    cmd = sync_command(project.root, s.direction, executable)
    out = out_dir or project.path("schedule")
    out.mkdir(parents=True, exist_ok=True)
    project.path("logs").mkdir(parents=True, exist_ok=True)
    if kind == "cron":
        texts = {"crmbridge-sync.cron": crontab_text(s.cron, s.timezone, cmd, project.path("logs/sync-cron.log"))}
        install = f"crontab -l | cat - {out / 'crmbridge-sync.cron'} | crontab -"
    elif kind == "systemd":
        texts = systemd_texts(s.cron, s.timezone, cmd, project.root)
        install = (f"sudo cp {out}/{TAG}.service {out}/{TAG}.timer /etc/systemd/system/ && "
                   f"sudo systemctl daemon-reload && sudo systemctl enable --now {TAG}.timer")
    else:
        texts = {"crmbridge_sync_dag.py": airflow_dag_text(s.cron, s.timezone, cmd, [o.name for o in cfg.objects])}
        install = f"cp {out / 'crmbridge_sync_dag.py'} $AIRFLOW_HOME/dags/"
    files = []
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
        files.append(str(out / name))
    return ScheduleResult(kind, files, s.cron, s.timezone, cmd, next_runs(s.cron, s.timezone), install)
