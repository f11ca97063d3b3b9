"""``crmbridge resolve`` and ``crmbridge matches list/accept/reject``: entity resolution and the steward's queue."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option


@click.command("resolve")
@click.option("--run", "run_id", help="Run to resolve (default: the newest validated run).")
@json_option
def resolve(run_id: str | None) -> None:
    """Group the rows of one real company into one golden record.

    Reads runs/<id>/validate/, writes runs/<id>/resolve/ (golden records, re-pointed children,
    matches.json, report.html) and queues uncertain pairs for `crmbridge matches list`.
    `crmbridge migrate` runs this between validate and map.

    \b
    Example:
      crmbridge resolve
      crmbridge resolve --run 20260101-120000-ab12 --json
    """
    from crmbridge.mappings.commands import _pick_run
    from crmbridge.mappings.resolve import run_resolve

    project = app().project()
    result = run_resolve(project, _pick_run(project, run_id, False))
    emit(result, _human_resolve)


def _human_resolve(result) -> None:
    click.echo(f"run {result.run_id}: resolved {len(result.entities)} entit{'y' if len(result.entities) == 1 else 'ies'}")
    for e in result.entities:
        click.echo(f"  {e.entity}: {e.rows_in} rows -> {e.companies} companies ({e.rows_merged} rows merged; "
                   f"{e.pairs_exact} exact pairs, {e.pairs_fuzzy_merged} fuzzy pairs merged, "
                   f"{e.pairs_review} waiting for review)")
    for c in result.children:
        click.echo(f"  {c.entity}.{c.field}: {c.repointed} of {c.rows} re-pointed to the surviving {c.parent}")
    for label, p in result.reports.items():
        click.echo(f"{label}: {p}")


@click.group("matches")
def matches() -> None:
    """The steward's review queue of possible duplicates.

    Pairs scored in the review band (and shared keys with contradicting names) wait here.
    A decision is kept across runs and applied by the next resolve / migrate.

    \b
    Example:
      crmbridge matches list
      crmbridge matches accept 3f2a9c81d0e4
      crmbridge matches reject 77b01c2e9a10 --json
    """


@matches.command("list")
@click.option("--entity", help="Only this entity's pairs.")
@json_option
def list_cmd(entity: str | None) -> None:
    """List the open pairs, best score first.

    \b
    Example:
      crmbridge matches list --entity customers
    """
    from crmbridge.mappings.review import open_pairs
    from crmbridge.state import open_state

    rows = open_pairs(open_state(app().project().state_url), entity)
    emit({"pairs": rows, "count": len(rows)}, _human_list)


def _human_list(data) -> None:
    rows = data["pairs"]
    if not rows:
        click.echo("no pairs waiting for review")
        return
    for r in rows:
        click.echo(f"{r['pair_id']}  {r['entity']}  score {r['score']:.4f}  {r['kind']}")
        click.echo(f"    {r['left_ref']}: {r['left_name'] or ''}")
        click.echo(f"    {r['right_ref']}: {r['right_name'] or ''}")
        click.echo(f"    {r['evidence']}")
    click.echo(f"{len(rows)} pair(s); decide with `crmbridge matches accept PAIR` or `reject PAIR`")


def _decide(pair: str, decision: str) -> None:
    from crmbridge.mappings.review import decide
    from crmbridge.state import open_state

    d = decide(open_state(app().project().state_url), pair, decision)
    emit(d, lambda x: click.echo(f"{x.pair_id}: {x.decision}ed ({x.left_ref} / {x.right_ref}); "
                                 "applied by the next `crmbridge migrate` or `crmbridge resolve`"))


@matches.command("accept")
@click.argument("pair")
@json_option
def accept(pair: str) -> None:
    """Merge the two rows of PAIR from the next run on.

    \b
    Example:
      crmbridge matches accept 3f2a9c81d0e4
    """
    _decide(pair, "accept")


@matches.command("reject")
@click.argument("pair")
@json_option
def reject(pair: str) -> None:
    """Keep the two rows of PAIR apart from the next run on (even when a later score is high).

    \b
    Example:
      crmbridge matches reject 3f2a9c81d0e4
    """
    _decide(pair, "reject")
