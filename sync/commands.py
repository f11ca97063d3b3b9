"""``crmbridge sync`` (run, conflicts list|resolve) and ``crmbridge schedule``: thin click commands."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option


@click.group("sync", invoke_without_command=True)
@click.option("--direction", type=click.Choice(["both", "to-salesforce", "to-erp"]), default="both",
              show_default=True, help="Which way changes flow in this run.")
@click.option("--dry-run", is_flag=True, help="Read both sides and report what would be written; write nothing.")
@click.option("--object", "objects", multiple=True, metavar="NAME", help="Only this sync object (repeatable).")
@json_option
@click.pass_context
def sync(ctx: click.Context, direction: str, dry_run: bool, objects: tuple[str, ...]) -> None:
    """Two-way sync between the ERP and Salesforce.

    Runs every object in sync.yml once: incremental, idempotent, under a run lock. Exit code 0 when
    everything synced, 1 when the run failed or rows were rejected (see the summary), 2 on bad config.

    \b
    Example:
      crmbridge sync --dry-run
      crmbridge --json sync --direction to-salesforce
      crmbridge sync conflicts list
    """
    if ctx.invoked_subcommand is not None:
        return
    from crmbridge.sync.engine import run_sync

    project = app().project()
    import sys

    from crmbridge.clikit import run_progress

    with run_progress():
        result = run_sync(project, direction=direction, dry_run=dry_run, objects=list(objects) or None,
                          command="crmbridge " + " ".join(sys.argv[1:]))
    emit(result, _show_result)
    ctx.exit(result.exit_code)


def _show_result(r) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"sync {r.run_id}: {r.status}{' (dry run)' if r.dry_run else ''}")
    for col in ("object", "read", "written", "unchanged", "conflicts", "errors", "skipped", "deleted"):
        t.add_column(col, justify="left" if col == "object" else "right", no_wrap=True)
    for name, o in r.objects.items():
        t.add_row(name, *[str(o.get(k, 0)) for k in ("read", "written", "unchanged", "conflicts", "errors",
                                                     "skipped", "deleted")])
    c = Console(highlight=False, width=None if click.get_text_stream("stdout").isatty() else 120)
    c.print(t)
    for name, msg in r.failed_objects.items():
        c.print(f"[red]{name} failed:[/red] {msg}")
    for name, o in r.objects.items():
        for s in o.get("error_samples", [])[:3]:
            c.print(f"{name} {s['key']}: {s['error']}")
    c.print(f"{r.api_calls} Salesforce API calls, {r.seconds:.1f}s; log: {r.log_file}")


@sync.group("conflicts")
def conflicts() -> None:
    """List and resolve fields changed on both sides since the last sync.

    \b
    Example:
      crmbridge sync conflicts list
      crmbridge sync conflicts resolve 12 --take salesforce
    """


@conflicts.command("list")
@click.option("--object", "obj", metavar="NAME", help="Only conflicts of this sync object.")
@click.option("--all", "show_all", is_flag=True, help="Also resolved and applied conflicts.")
@json_option
def list_cmd(obj: str | None, show_all: bool) -> None:
    """List open conflicts with both values.

    \b
    Example:
      crmbridge sync conflicts list --object customers
    """
    from crmbridge.state import open_state
    from crmbridge.sync.conflicts import list_conflicts

    project = app().project()
    items = list_conflicts(open_state(project.state_url), status=None if show_all else "open", obj=obj)
    emit({"conflicts": [c.as_dict() for c in items], "count": len(items)}, _show_conflicts)


def _show_conflicts(res: dict) -> None:
    from rich.table import Table

    from crmbridge.clikit import console

    if not res["conflicts"]:
        click.echo("no conflicts")
        return
    t = Table()
    for col in ("id", "object", "erp key", "field", "ERP value", "Salesforce value", "last synced", "status"):
        t.add_column(col)
    for c in res["conflicts"]:
        t.add_row(str(c["id"]), c["object"], c["erp_key"], c["field"], str(c["erp_value"]), str(c["sf_value"]),
                  str(c["base_value"]), c["status"])
    console().print(t)


@conflicts.command("resolve")
@click.argument("ids", nargs=-1, type=int)
@click.option("--take", type=click.Choice(["erp", "salesforce"]), help="Keep this side's value.")
@click.option("--value", help="Write this value to both sides instead.")
@click.option("--object", "obj", metavar="NAME", help="With --all: every open conflict of this object.")
@click.option("--all", "all_of_object", is_flag=True, help="Resolve every open conflict of --object.")
@json_option
def resolve_cmd(ids: tuple[int, ...], take: str | None, value: str | None, obj: str | None,
                all_of_object: bool) -> None:
    """Resolve conflicts; the next `crmbridge sync` writes the chosen values to both sides.

    \b
    Example:
      crmbridge sync conflicts resolve 3 4 --take erp
      crmbridge sync conflicts resolve 7 --value "浦东新区世纪大道100号"
      crmbridge sync conflicts resolve --object customers --all --take salesforce
    """
    from crmbridge.errors import UsageError
    from crmbridge.state import open_state
    from crmbridge.sync.conflicts import resolve

    if (take is None) == (value is None):
        raise UsageError("give exactly one of --take erp|salesforce or --value TEXT")
    if all_of_object and not obj:
        raise UsageError("--all needs --object NAME")
    if not ids and not all_of_object:
        raise UsageError("give conflict ids, or --object NAME --all", hint="`crmbridge sync conflicts list`")
    project = app().project()
    n = resolve(open_state(project.state_url), take=take or "value", ids=list(ids) or None,
                obj=obj if all_of_object or obj else None, value=value)
    emit({"resolved": n}, lambda r: click.echo(f"{r['resolved']} conflict(s) resolved; run `crmbridge sync` to apply"))


@click.command("schedule")
@click.argument("kind", type=click.Choice(["cron", "systemd", "airflow"]))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder to write to (default: schedule/).")
@json_option
def schedule(kind: str, out_dir: str | None) -> None:
    """Write a cron, systemd or Airflow definition for the nightly sync.

    Uses `schedule:` in sync.yml (cron expression, time zone, direction) and previews the next runs.

    \b
    Example:
      crmbridge schedule cron
      crmbridge schedule airflow --out $AIRFLOW_HOME/dags
    """
    from pathlib import Path

    from crmbridge.sync.schedule import write_schedule

    res = write_schedule(app().project(), kind, out_dir=Path(out_dir) if out_dir else None)

    def human(r):
        for f in r.files:
            click.echo(f"wrote {f}")
        click.echo(f"schedule: {r.cron} ({r.timezone}); next runs: {', '.join(r.next_runs)}")
        click.echo(f"install: {r.install}")

    emit(res, human)
