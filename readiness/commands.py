"""``crmbridge readiness`` (gates, GO / NO-GO, dashboard) and ``crmbridge kpi`` (baseline KPIs)."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option

_STATUS_STYLE = {"pass": "green", "fail": "red", "unknown": "yellow", "blocked": "yellow"}


def _print_evaluation(ev) -> None:
    from rich.table import Table

    from rich.console import Console

    t = Table(title="cutover readiness")
    for col in ("phase", "gate", "owner", "priority", "value", "target", "status", "change"):
        t.add_column(col, overflow="fold")
    for g in ev.gates:
        change = "" if g.change is None or g.change == 0 else f"{g.change:+.4g}"
        status = f"[{_STATUS_STYLE[g.status]}]{g.status}[/]" + (" (overdue)" if g.overdue else "")
        t.add_row(g.phase, g.id, g.owner, g.priority, g.value_text, g.target_text, status, change)
    import shutil

    # a pipe or CI log has no width; give the eight columns room instead of folding every word
    c = Console(highlight=False, width=max(shutil.get_terminal_size((150, 24)).columns, 150))
    c.print(t, markup=True)
    c.print("phases: " + "  ".join(f"{p.id} [{_STATUS_STYLE.get(p.status, 'green')}]{p.status}[/]"
                                    for p in ev.phases))
    word = "GO" if ev.decision == "go" else "NO-GO"
    c.print(f"decision: [bold {'green' if ev.decision == 'go' else 'red'}]{word}[/]"
            + (f" (previous snapshot: {ev.previous_decision.upper()})" if ev.previous_decision else ""))
    if ev.dashboard:
        c.print(f"dashboard: {ev.dashboard}", markup=False, highlight=False)


@click.group("readiness", invoke_without_command=True)
@click.option("--no-snapshot", is_flag=True, help="Evaluate without storing a snapshot in the history.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the dashboard (default reports/readiness.html).")
@json_option
@click.pass_context
def readiness(ctx: click.Context, no_snapshot: bool, out: str | None) -> None:
    """Evaluate cutover readiness gates: GO or NO-GO.

    Without a sub-command: evaluates every gate of readiness.yml from the project's own records,
    stores a snapshot (history in the state database), writes the HTML dashboard
    (reports/readiness.html) and prints the table and the decision. Exit code 0 for GO, 1 for
    NO-GO, 2 for a bad plan.

    \b
    Example:
      crmbridge readiness
      crmbridge readiness --json
      crmbridge readiness sign sales_reps_trained --by 王芳 --dept sales
    """
    if ctx.invoked_subcommand is not None:
        return
    from crmbridge.readiness.evaluate import run_readiness

    ev = run_readiness(app().project(), snapshot=not no_snapshot, out=out)
    emit(ev, _print_evaluation)
    if ev.exit_code:
        raise click.exceptions.Exit(ev.exit_code)


@readiness.command("sign")
@click.argument("gate")
@click.option("--by", "by", required=True, help="Who signs the gate off (name).")
@click.option("--dept", required=True, help="Their department.")
@click.option("--note", default=None, help="Optional remark stored with the sign-off.")
@click.option("--revoke", is_flag=True, help="Withdraw the gate's sign-off instead.")
@json_option
def sign(gate: str, by: str, dept: str, note: str | None, revoke: bool) -> None:
    """Sign off (or --revoke) a manual gate; recorded with the time.

    \b
    Example:
      crmbridge readiness sign sales_reps_trained --by 王芳 --dept sales --note "32 of 32 trained"
    """
    from crmbridge.readiness.signoff import sign_gate

    row = sign_gate(app().project(), gate, by=by, dept=dept, note=note, revoke=revoke)
    emit(row, lambda r: click.echo(f"{'revoked' if r['revoked'] else 'signed off'} gate {r['gate_id']}: "
                                   f"{r['signed_by']} ({r['department']}) at {r['signed_at']}"))


@readiness.command("dashboard")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file (default reports/readiness.html).")
@json_option
def dashboard(out: str | None) -> None:
    """Write the HTML readiness dashboard without storing a snapshot.

    \b
    Example:
      crmbridge readiness dashboard --out steering/readiness.html
    """
    from crmbridge.readiness.evaluate import run_readiness

    ev = run_readiness(app().project(), snapshot=False, out=out)
    emit({"dashboard": ev.dashboard, "decision": ev.decision}, lambda r: click.echo(f"dashboard: {r['dashboard']}"))


@readiness.command("history")
@click.option("--limit", default=20, show_default=True, help="How many snapshots to show.")
@json_option
def history_cmd(limit: int) -> None:
    """List stored readiness snapshots, newest first.

    \b
    Example:
      crmbridge readiness history --limit 5
    """
    from crmbridge.readiness import store

    rows = store.snapshots(store.engine_for(app().project()), limit=limit)
    out = [{"id": r["id"], "taken_at": str(r["taken_at"]), "decision": r["decision"],
            "passed": sum(g["status"] == "pass" for g in r["gates"]), "gates": len(r["gates"])} for r in rows]

    def human(rs):
        for r in rs:
            click.echo(f"#{r['id']:<5} {r['taken_at']:<28} {r['decision'].upper():<6} {r['passed']}/{r['gates']} pass")

    emit(out, human)


@readiness.command("metrics")
@json_option
def metrics_cmd() -> None:
    """List the metric catalogue: what each metric measures, from where, how.

    \b
    Example:
      crmbridge readiness metrics
    """
    from crmbridge.readiness.metrics import CATALOGUE

    rows = [m.as_dict() for m in CATALOGUE.values()]

    def human(rs):
        for m in rs:
            click.echo(f"{m['name']}{' [entity]' if m['per_entity'] else ''}: {m['what']}")
            click.echo(f"    from: {m['source']}\n    how:  {m['how']}")

    emit(rows, human)


from crmbridge.readiness.kpi_commands import kpi  # noqa: E402,F401  (cli.py looks for `kpi` here)
