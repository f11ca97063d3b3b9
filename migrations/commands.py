"""Click commands ``load``, ``migrate``, ``reconcile``, ``rollback`` and ``runs`` (thin: parse, call, render)."""

from __future__ import annotations

import click

from crmbridge.clikit import app, console, emit, json_option, run_progress


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

    t = Table(title=f"load {'(dry run) ' if r.dry_run else ''}run {r.run_id}",
              caption="rows: legacy source rows; records: Salesforce records (merged duplicates make them fewer)")
    t.add_column("step", no_wrap=True)
    t.add_column("object", no_wrap=True)
    for c in ("source rows", "records", "created", "updated", "unchanged", "rejected"):
        t.add_column(c, justify="right")
    for s in r.steps:
        t.add_row(s.step, s.object, *(f"{x:,}" for x in (sum(s.source_rows.values()), s.records, s.created,
                                                          s.updated, s.unchanged, s.failed)))
    console().print(t)
    for s in r.steps:
        if s.success_file:
            click.echo(f"  {s.step}: {s.success_file}" + (f"  errors: {s.error_file}" if s.error_file else ""))
    click.echo(f"Salesforce API calls: {r.api_calls}")


@click.command("load")
@click.option("--run", "run_id", help="Run to load: an id, a unique id prefix or `latest` (default: the newest "
              "migrate run whose map stage succeeded).")
@click.option("--dry-run", is_flag=True, help="Write nothing; print what would be created, updated or left unchanged.")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), default=None,
              help="Records per journaled DML batch (default 10,000).")
@click.option("--fail-on-reject", is_flag=True,
              help="Exit 1 when Salesforce rejected any record (for schedulers); default: exit 0 and report them.")
@json_option
def load(run_id: str | None, dry_run: bool, batch_rows: int | None, fail_on_reject: bool) -> None:
    """Load a mapped run into Salesforce (upsert on external IDs).

    Records whose content is unchanged since their last successful load are skipped. Running it
    again on an interrupted run continues it (Bulk jobs already submitted are picked up).

    Records Salesforce rejects are data, not a failure of the load: they are listed with Salesforce's
    error code in load/<Object>_error.csv and the exit code stays 0. Schedulers that must notice
    them pass --fail-on-reject (exit 1 when anything was rejected).

    \b
    Example:
      crmbridge load
      crmbridge load --run latest --dry-run
      crmbridge load --fail-on-reject --json
    """
    from crmbridge.migrations.load import run_load

    project, engine = _engine_and_project()
    run = _pick_run(project, engine, run_id, "map")
    with run_progress() as rep:
        rep.stage("load" + (" (dry run)" if dry_run else ""))
        result = run_load(project, run, dry_run=dry_run, **({"batch_rows": batch_rows} if batch_rows else {}))
    emit(result, _render_load)
    if result.failed and not app().as_json:
        click.echo(f"{result.failed} records rejected by Salesforce: see the error files above")
    if result.failed and fail_on_reject:
        from crmbridge.errors import RunFailed

        raise RunFailed(f"run {result.run_id}: Salesforce rejected {result.failed} records (--fail-on-reject)",
                        hint="the error files under load/ give each record's error code; fix and run `crmbridge load` again")


def _render_migrate(r) -> None:
    from rich.table import Table

    t = Table(title=f"migrate run {r.run_id}" + (" (resumed)" if r.resumed else "") + (" (dry run)" if r.dry_run else ""),
              caption="legacy source rows: extracted = quarantined + filtered + loaded + rejected")
    t.add_column("entity", no_wrap=True)
    for c in ("rows extracted", "quarantined", "filtered", "loaded", "rejected"):
        t.add_column(c, justify="right")
    for e in r.entities:
        t.add_row(e.entity, *(f"{x:,}" for x in (e.extracted, e.quarantined, e.filtered, e.loaded, e.rejected)))
    console().print(t)
    if r.load_steps:
        _records_table(r.load_steps, "would be " if r.dry_run else "")
    for s in r.dry_run_steps:
        click.echo(f"dry run {s['step']} ({s['object']}): list of what would be written: {s['success_file']}")
    if r.reconcile_ok is not None:
        click.echo("reconcile: " + ("source, ledger and org agree" if r.reconcile_ok else "MISMATCHES found"))
    click.echo("reports:")
    for k, v in r.reports.items():
        click.echo(f"  {k}: {v}")


def _records_table(steps, would: str) -> None:
    """Salesforce records per load step, next to the source rows they came from (merges make them differ)."""
    from rich.table import Table

    t = Table(title="Salesforce records" + (" (dry run: what would be written)" if would else ""),
              caption="a record merged from several source rows counts once")
    t.add_column("object", no_wrap=True)
    for c in ("from rows", "records", "created", "updated", "unchanged", "rejected"):
        t.add_column(c, justify="right")
    for s in steps:
        rows = sum((s.get("source_rows") or {}).values())
        t.add_row(s["object"], *(f"{int(x):,}" for x in (rows, s["records"], s["created"], s["updated"],
                                                         s["unchanged"], s.get("failed", 0))))
    console().print(t)


@click.command("migrate")
@click.option("--new", is_flag=True, help="Start a new run even if the last one did not finish.")
@click.option("--run", "run_id", help="Continue this run (id, unique prefix or `latest`) instead of the newest "
              "unfinished one.")
@click.option("--dry-run", is_flag=True, help="Extract, validate and map, but write nothing to Salesforce.")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), default=None,
              help="Records per journaled DML batch (default 10,000).")
@click.option("--allow-shrink", is_flag=True,
              help="Accept a source that reads 0 rows or under half of the last successful run.")
@click.option("--fail-on-reject", is_flag=True,
              help="Exit 1 when Salesforce rejected any record (for schedulers); default: exit 0 and report them.")
@json_option
def migrate(new: bool, run_id: str | None, dry_run: bool, batch_rows: int | None, allow_shrink: bool,
            fail_on_reject: bool) -> None:
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
    with run_progress():
        result = run_migrate(project, new=new, run_id=run_id, dry_run=dry_run, batch_rows=batch_rows,
                             allow_shrink=allow_shrink)
    emit(result, _render_migrate)
    if result.reconcile_ok is False:
        raise RunFailed(f"run {result.run_id}: reconcile found mismatches",
                        hint=f"see {result.reports.get('reconcile', 'reconcile/')}")
    rejected = sum(e.rejected for e in result.entities)
    if rejected and fail_on_reject:
        raise RunFailed(f"run {result.run_id}: Salesforce rejected {rejected} source rows (--fail-on-reject)",
                        hint=f"the error files in {result.reports.get('load', 'load/')} give each record's error code")


@click.command("reconcile")
@click.option("--run", "run_id", help="Run to reconcile: id, unique prefix or `latest` (default: the newest "
              "migrate run whose load succeeded).")
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
    run = _pick_run(project, engine, run_id, "load")
    with run_progress() as rep:
        rep.stage("reconcile")
        result = run_reconcile(project, run)

    def human(r):
        from rich.table import Table

        from rich import box

        t = Table(title=f"reconcile run {r.run_id}", caption="rows: legacy source rows; records: Salesforce records",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("step", no_wrap=True)
        for c in ("source rows", "ledger rows", "records loaded", "records in org", "missing", "duplicated",
                  "field diffs"):
            t.add_column(c, justify="right", min_width=max(len(w) for w in c.split()))
        for s in r.steps:
            t.add_row(s.step, *(f"{x:,}" for x in (s.source_rows, s.ledger_rows, s.ledger_loaded, s.org_found,
                                                   s.missing_in_org, s.duplicates_in_org, s.field_mismatches)))
        console().print(t)
        if r.ok:  # a mismatch is reported once, by the error below
            click.echo("OK: " + r.summary_file)

    emit(result, human)
    if not result.ok:
        parts = [f"{n} {what}" for n, what in ((sum(s.missing_in_org for s in result.steps), "missing in the org"),
                                               (sum(s.duplicates_in_org for s in result.steps), "duplicated"),
                                               (sum(s.field_mismatches for s in result.steps), "field differences"))
                 if n]
        raise RunFailed(f"reconcile of run {result.run_id}: {result.mismatches} mismatches ({', '.join(parts)})",
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
      crmbridge rollback latest
    """
    from crmbridge.migrations.rollback import run_rollback

    with run_progress():
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

        from rich import box

        t = Table(title="runs", caption="rows: legacy source rows created/updated/unchanged/rejected",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        # The id is what people copy: it is never folded or cut, the other columns give way.
        t.add_column("run", no_wrap=True, min_width=max([len(r["run_id"]) for r in rs] + [3]))
        t.add_column("kind")
        t.add_column("status")
        t.add_column("created UTC", no_wrap=True)
        t.add_column("rows c/u/=/x", no_wrap=True)
        for r in rs:
            a = r["actions"]
            t.add_row(r["run_id"], r["kind"] + (" (dry run)" if r["dry_run"] else ""), r["status"],
                      str(r["created_at"])[5:16], f"{a['created']}/{a['updated']}/{a['unchanged']}/{a['failed']}")
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
      crmbridge runs show latest
    """
    from crmbridge.migrations.runinfo import show_run

    project, engine = _engine_and_project()
    info = show_run(engine, project, run_id)

    def human(r):
        from rich.table import Table

        click.echo(f"run {r['run_id']} ({r['kind']}): {r['status']}  {r['dir']}")
        for s in r["stages"]:
            click.echo(f"  {s['stage']:<14} {s['status']:<10} {s['error'] or ''}")
        t = Table(title="per object (legacy source rows)")
        cols = ("created", "updated", "unchanged", "failed", "quarantined", "other")
        for c in ("step", "object", *cols):
            t.add_column(c)
        for o in r["objects"]:
            t.add_row(o["step"], o["object"], *(str(o.get(k, 0)) for k in cols))
        console().print(t)

    emit(info, human)
