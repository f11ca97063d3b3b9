"""``crmbridge validate``: check a run against the agreed customer definition."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option


@click.command("validate")
@click.option("--run", "run_id", help="Run to validate (default: the newest run whose extract succeeded).")
@click.option("--definition", "definition", type=click.Path(dir_okay=False),
              help="Definition file (default: definitions/customer.yml in the project).")
@click.option("--force", is_flag=True, help="Validate again a run whose load already started (overwrites its validate/).")
@click.option("--engine", type=click.Choice(["pandas", "sql"]), default="pandas", show_default=True,
              help="sql: run the rules inside the SQL sources' database (no run needed; writes "
                   "reports/validate-sql/<timestamp>/, see docs/validate-sql.md).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes beside the stage's own for each entity's batches (0: one process; "
                   "default: crmbridge.yml's validate: {workers}, which is 0 unless set). Each worker costs memory.")
@json_option
def validate(run_id: str | None, definition: str | None, force: bool, engine: str, workers: int | None) -> None:
    """Validate a run against the agreed customer definition.

    Normalises the extracted rows as the definition declares, runs its rules as great-expectations
    suites, quarantines rows that fail blocking rules and writes the reports: report.html,
    summary.json, quarantine/<entity>.csv, disagreement.html/.json and escaped Data Docs.
    Exit code 0 when no blocking rule failed, 1 otherwise.

    \b
    Example:
      crmbridge validate
      crmbridge validate --run 20250105-093000-ab12 --definition definitions/customer.yml --json
      crmbridge validate --engine sql
    """
    from crmbridge.errors import UsageError

    if engine == "sql":
        if run_id or force or workers is not None:
            raise UsageError("--run, --force and --workers apply to the pandas engine; "
                             "--engine sql reads the sources themselves")
        _validate_sql(definition)
        return
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    project = app().project()
    engine = open_state(project.state_url)
    if run_id:
        run = R.open_run(engine, project.runs_dir, run_id)
    else:
        run = R.latest_run(engine, project.runs_dir, with_stage="extract")
        if run is None:
            raise UsageError("no run with a successful extract to validate", hint="run `crmbridge extract` first")
    from crmbridge.clikit import run_progress

    with run_progress() as rep:
        rep.stage("validate")
        report = run_validate(project, run, definition_path=definition, force=force, workers=workers)

    def human(rep) -> None:
        import json
        from pathlib import Path

        from crmbridge.validation.reports import print_summary

        print_summary(json.loads(Path(rep.reports["summary"]).read_text("utf-8")))

    emit(report, human)
    if report.blocking_failed:
        raise click.exceptions.Exit(1)


def _validate_sql(definition: str | None) -> None:
    from crmbridge.clikit import run_progress
    from crmbridge.validation.sqlengine import print_sql_summary, run_validate_sql

    project = app().project()
    with run_progress() as rep:
        rep.stage("validate-sql")
        report = run_validate_sql(project, definition_path=definition)
    emit(report, print_sql_summary)
    if report.blocking_failed:
        raise click.exceptions.Exit(1)
