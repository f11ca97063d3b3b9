"""``crmbridge map``: check mappings and turn a validated run into per-object load files."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option


def _pick_run(project, run_id: str | None, skip_validation: bool):
    from crmbridge.errors import UsageError
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    if run_id:
        return R.open_run(engine, project.runs_dir, run_id)
    run = R.latest_run(engine, project.runs_dir, with_stage="validate")
    if run is None and skip_validation:
        run = R.latest_run(engine, project.runs_dir, with_stage="extract")
    if run is None:
        raise UsageError("no validated run to map", hint="run `crmbridge validate` (or pass --skip-validation "
                         "after `crmbridge extract`), or name one with --run")
    return run


@click.command("map")
@click.option("--run", "run_id", help="Run to map (default: the newest validated run).")
@click.option("--check", "check_only", is_flag=True, help="Only check the mappings (offline and against the org).")
@click.option("--preview", type=click.IntRange(min=0), default=0,
              help="Print N mapped rows next to their source rows (look only: the run's map/ is not touched).")
@click.option("--force", is_flag=True, help="Map again a run whose load already started (overwrites its map/).")
@click.option("--skip-validation", is_flag=True, help="Map the extract output of a run that was not validated.")
@click.option("--no-org-check", is_flag=True, help="Skip the describe check (offline only; no owner/record type lookups).")
@json_option
def map_cmd(run_id: str | None, check_only: bool, preview: int, force: bool, skip_validation: bool,
            no_org_check: bool) -> None:
    """Check mappings and turn a validated run into load files.

    Reads mappings/*.yml, checks them offline and against the org's describe, maps every step
    parents-first into runs/<id>/map/ (load files, quarantine, plan.json, check.json).

    \b
    Example:
      crmbridge map --check
      crmbridge map --preview 5
      crmbridge map --run 20260101-120000-ab12 --skip-validation --json
    """
    from crmbridge.mappings.stage import run_check, run_map

    project = app().project()
    if check_only:
        run = None
        try:
            run = _pick_run(project, run_id, skip_validation)
        except Exception:
            if run_id:
                raise
        report = run_check(project, run, check_org=not no_org_check, skip_validation=skip_validation)
        emit(report, lambda r: click.echo(r.render()))
        if not report.ok:
            raise click.exceptions.Exit(1)
        return
    run = _pick_run(project, run_id, skip_validation)
    scratch = None
    if preview:
        import shutil

        # A preview is a look, not a stage: its files go to a scratch folder (inside the project, which
        # holds customer data anyway), the run's map/ and stage record stay the evidence of its load.
        from crmbridge.state import private_dir

        scratch = project.root / ".crmbridge" / "preview" / run.run_id
        shutil.rmtree(scratch, ignore_errors=True)
        private_dir(scratch)  # customer data under .crmbridge/: owner only
    result = run_map(project, run, check_org=not no_org_check, skip_validation=skip_validation, preview=preview,
                     scratch=scratch, force=force)
    emit(result, _human)
    if scratch is not None and not app().as_json:
        click.echo(f"preview only: run {run.run_id}'s map/ is unchanged; the preview's files are in {scratch / 'map'}")


def _human(result) -> None:
    for w in result.check.warnings:
        click.echo(w.line())
    click.echo(f"run {result.run_id}: mapped {len(result.steps)} step(s) (load order)")
    for s in result.steps:
        click.echo(f"  {s.step:<12} {s.entity} -> {s.object}: {s.rows_in} in, {s.rows} record(s) "
                   f"({s.rows_out} rows), {s.rows_quarantined} quarantined")
        for reason, n in sorted(s.reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"      {n:>6}  {reason}")
    for p in result.preview:
        _print_preview(p)
    click.echo(f"plan: {result.plan}")


def _print_preview(p: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    for i, row in enumerate(p["rows"], start=1):
        t = Table(title=f"{p['step']} #{i}", show_lines=False)
        t.add_column("Salesforce field")
        t.add_column("mapped value")
        for k, v in row["mapped"].items():
            if not k.startswith("_"):
                t.add_row(k, "" if v is None else str(v))
        con.print(t)
        for src in row["source"]:
            s = Table(title=f"source row {src.get('_row_id', '')} ({src.get('_department') or ''})")
            s.add_column("column")
            s.add_column("legacy value")
            for k, v in src.items():
                s.add_row(str(k), "" if v is None else str(v))
            con.print(s)
