"""Click commands ``load``, ``migrate``, ``reconcile``, ``rollback`` and ``runs`` (thin: parse, call, render)."""

from __future__ import annotations

import click

from crmbridge.clikit import app, console, emit, json_option, progress


def _engine_and_project():
    from crmbridge.state import open_state

    project = app().project()
    return project, open_state(project.state_url)


def _pick_run(project, engine, run_id: str | None, with_stage: str):
    from crmbridge.errors import UsageError
    from crmbridge.migrations import runs as R

    if run_id:
        return R.open_run(engine, project.runs_dir, run_id)
    run = R.latest_run(engine, project.runs_dir, kind="migrate", with_stage=with_stage)
    if run is None:
        raise UsageError(f"no migrate run whose {with_stage} stage succeeded", hint="run `crmbridge migrate` first")
    return run


def _render_load(r) -> None:
    from rich.table import Table

    t = Table(title=f"load {'(dry run) ' if r.dry_run else ''}run {r.run_id}")
    for c in ("step", "object", "records", "created", "updated", "unchanged", "failed"):
        t.add_column(c, justify="right" if c not in ("step", "object") else "left")
    for s in r.steps:
        t.add_row(s.step, s.object, *(str(x) for x in (s.records, s.created, s.updated, s.unchanged, s.failed)))
    console().print(t)
    for s in r.steps:
        if s.success_file:
            click.echo(f"  {s.step}: {s.success_file}" + (f"  errors: {s.error_file}" if s.error_file else ""))
    click.echo(f"Salesforce API calls: {r.api_calls}")


@click.command("load")
@click.option("--run", "run_id", help="Run to load (default: the newest migrate run whose map stage succeeded).")
@click.option("--dry-run", is_flag=True, help="Write nothing; print what would be created, updated or left unchanged.")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), default=None,
              help="Records per journaled DML batch, one Bulk job each (default: as many as fit in one job, 150 MB).")
@json_option
def load(run_id: str | None, dry_run: bool, batch_rows: int | None) -> None:
    """Load a mapped run into Salesforce (upsert on external IDs).

    Records whose content is unchanged since their last successful load are skipped. Running it
    again on an interrupted run continues it (Bulk jobs already submitted are picked up).

    \b
    Example:
      crmbridge load
      crmbridge load --run 20261105-101500-ab12 --dry-run
    """
    from crmbridge.migrations.load import run_load

    project, engine = _engine_and_project()
    run = _pick_run(project, engine, run_id, "map")
    with progress("loading", None) as advance:
        result = run_load(project, run, dry_run=dry_run, advance=advance, **({"batch_rows": batch_rows} if batch_rows else {}))
    emit(result, _render_load)
    if result.failed and not app().as_json:
        click.echo(f"{result.failed} records rejected by Salesforce: see the error files above")


def _render_migrate(r) -> None:
    from rich.table import Table

    t = Table(title=f"migrate run {r.run_id}" + (" (resumed)" if r.resumed else "") + (" (dry run)" if r.dry_run else ""))
    for c in ("entity", "extracted", "quarantined", "filtered", "loaded", "created", "updated", "unchanged",
              "rejected"):
        t.add_column(c, justify="left" if c == "entity" else "right")
    for e in r.entities:
        t.add_row(e.entity, *(str(x) for x in (e.extracted, e.quarantined, e.filtered, e.loaded, e.created, e.updated,
                                              e.unchanged, e.rejected)))
    console().print(t)
    for s in r.dry_run_steps:
        click.echo(f"dry run {s['step']} ({s['object']}): would create {s['created']}, update {s['updated']}, "
                   f"leave {s['unchanged']} unchanged; list: {s['success_file']}")
    if r.reconcile_ok is not None:
        click.echo("reconcile: " + ("source, ledger and org agree" if r.reconcile_ok else "MISMATCHES found"))
    click.echo("reports:")
    for k, v in r.reports.items():
        click.echo(f"  {k}: {v}")


@click.command("migrate")
@click.option("--new", is_flag=True, help="Start a new run even if the last one did not finish.")
@click.option("--run", "run_id", help="Continue this run instead of the newest unfinished one.")
@click.option("--dry-run", is_flag=True, help="Extract, validate and map, but write nothing to Salesforce.")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), default=None,
              help="Records per journaled DML batch, one Bulk job each (default: as many as fit in one job, 150 MB).")
@click.option("--allow-shrink", is_flag=True,
              help="Accept a source that reads 0 rows or under half of the last successful run.")
@json_option
def migrate(new: bool, run_id: str | None, dry_run: bool, batch_rows: int | None, allow_shrink: bool) -> None:
    """Extract, validate, map, load and reconcile in one go.

    If the newest migrate run did not finish (crash, kill, network loss), `migrate` continues that
    run: finished stages are skipped and the load picks up its journal, so nothing is duplicated.
    Pass --new to start over with a fresh run. A run after a successful one is a delta run: only
    records that changed since their last load are written.

    \b
    Example:
      crmbridge migrate
      crmbridge migrate --dry-run
      crmbridge migrate --new --json
    """
    from crmbridge.errors import RunFailed
    from crmbridge.migrations.pipeline import run_migrate

    project = app().project()
    show = not app().as_json
    with progress("loading records", None) as advance:
        result = run_migrate(project, new=new, run_id=run_id, dry_run=dry_run, advance=advance, batch_rows=batch_rows,
                             allow_shrink=allow_shrink,
                             on_stage=(lambda s: click.echo(f"-> {s}", err=True)) if show else None)
    emit(result, _render_migrate)
    if result.reconcile_ok is False:
        raise RunFailed(f"run {result.run_id}: reconcile found mismatches",
                        hint=f"see {result.reports.get('reconcile', 'reconcile/')}")


@click.command("reconcile")
@click.option("--run", "run_id", help="Run to reconcile (default: the newest migrate run whose load succeeded).")
@json_option
def reconcile(run_id: str | None) -> None:
    """Compare source, ledger and what the org holds.

    Counts, per-field checksums and every mismatch (missing, duplicated or differing records) are
    written to runs/<run>/reconcile/. Exit code 1 when anything differs.

    \b
    Example:
      crmbridge reconcile
      crmbridge reconcile --run 20261105-101500-ab12 --json
    """
    from crmbridge.errors import RunFailed
    from crmbridge.migrations.reconcile import run_reconcile

    project, engine = _engine_and_project()
    result = run_reconcile(project, _pick_run(project, engine, run_id, "load"))

    def human(r):
        from rich.table import Table

        t = Table(title=f"reconcile run {r.run_id}")
        for c in ("step", "source rows", "ledger rows", "loaded", "in org", "missing", "duplicates", "field diffs"):
            t.add_column(c, justify="left" if c == "step" else "right")
        for s in r.steps:
            t.add_row(s.step, *(str(x) for x in (s.source_rows, s.ledger_rows, s.ledger_loaded, s.org_found,
                                                 s.missing_in_org, s.duplicates_in_org, s.field_mismatches)))
        console().print(t)
        click.echo(("OK: " if r.ok else "MISMATCHES: ") + r.summary_file)

    emit(result, human)
    if not result.ok:
        raise RunFailed(f"reconcile of run {result.run_id}: {result.mismatches} mismatches",
                        hint=f"the list is in {result.summary_file.rsplit('/', 1)[0]}/")


@click.command("rollback")
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Roll back even though newer runs wrote records after this one.")
@json_option
def rollback(run_id: str, force: bool) -> None:
    """Undo a run: delete what it created, restore what it updated.

    Children are undone before parents. Runs are rolled back newest first (--force overrides).
    A run that was killed mid-load is undone from its journal too: the org is asked for the
    batches that were in flight, and the run is marked rolled back only when nothing it created
    is left. The rollback is journaled: if it is interrupted, run the same command again.

    \b
    Example:
      crmbridge rollback 20261105-101500-ab12
    """
    from crmbridge.migrations.rollback import run_rollback

    result = run_rollback(app().project(), run_id, force=force)

    def human(r):
        for s in r.steps:
            click.echo(f"{s.step} ({s.object}): deleted {s.deleted}, restored {s.restored}, failed {s.failed}"
                       + (f" ({s.in_flight} found in the org from batches in flight when the run stopped)"
                          if s.in_flight else ""))
        click.echo(f"run {r.run_id} rolled back (journal: run {r.rollback_run_id})")

    emit(result, human)


@click.group("runs", invoke_without_command=True)
@click.pass_context
def runs(ctx: click.Context) -> None:
    """List runs or show one run's per-object counts.

    \b
    Example:
      crmbridge runs list
      crmbridge runs show 20261105-101500-ab12 --json
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(runs_list)


@runs.command("list")
@click.option("--limit", default=20, show_default=True, help="How many runs, newest first.")
@json_option
def runs_list(limit: int) -> None:
    """List the runs of this project, newest first.

    \b
    Example:
      crmbridge runs list --limit 5
    """
    from crmbridge.migrations.runinfo import list_runs

    project, engine = _engine_and_project()
    rows = list_runs(engine, limit=limit)

    def human(rs):
        from rich.table import Table

        t = Table(title="runs")
        for c in ("run", "kind", "status", "created", "dry run", "created/updated/unchanged/failed"):
            t.add_column(c)
        for r in rs:
            a = r["actions"]
            t.add_row(r["run_id"], r["kind"], r["status"], str(r["created_at"])[:19], "yes" if r["dry_run"] else "",
                      f"{a['created']}/{a['updated']}/{a['unchanged']}/{a['failed']}")
        console().print(t)

    emit(rows, human)


@runs.command("show")
@click.argument("run_id")
@json_option
def runs_show(run_id: str) -> None:
    """Show one run: its stages and per-object counts.

    \b
    Example:
      crmbridge runs show 20261105-101500-ab12
    """
    from crmbridge.migrations.runinfo import show_run

    project, engine = _engine_and_project()
    info = show_run(engine, project, run_id)

    def human(r):
        from rich.table import Table

        click.echo(f"run {r['run_id']} ({r['kind']}): {r['status']}  {r['dir']}")
        for s in r["stages"]:
            click.echo(f"  {s['stage']:<14} {s['status']:<10} {s['error'] or ''}")
        t = Table(title="per object")
        cols = ("created", "updated", "unchanged", "failed", "quarantined", "other")
        for c in ("step", "object", *cols):
            t.add_column(c)
        for o in r["objects"]:
            t.add_row(o["step"], o["object"], *(str(o.get(k, 0)) for k in cols))
        console().print(t)

    emit(info, human)
