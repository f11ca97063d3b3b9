"""``crmbridge kpi``: baseline customer KPIs (snapshot, compare, list)."""

from __future__ import annotations

import click

from crmbridge.clikit import app, emit, json_option


# KPI kinds whose value is an amount of money, and those that are a share (0..1) of the customers.
MONEY_KINDS = frozenset({"avg_contract_value", "receivables_per_customer"})
SHARE_KINDS = frozenset({"share_with"})


def _fmt(v, kind: str | None = None, *, diff: bool = False) -> str:
    """A KPI value for people: money with thousands separators and cents, shares as percentages
    (differences of shares in percentage points), counts as integers, ratios with two decimals."""
    if v is None:
        return "n/a"
    sign = "+" if diff and v > 0 else ""
    if kind in SHARE_KINDS:
        return f"{sign}{v * 100:,.1f}" + (" pp" if diff else "%")
    if kind in MONEY_KINDS:
        return f"{sign}{v:,.2f}"
    return f"{sign}{v:,.0f}" if float(v).is_integer() else f"{sign}{v:,.2f}"


@click.group("kpi")
def kpi() -> None:
    """Baseline customer KPIs: snapshot and compare.

    \b
    Example:
      crmbridge kpi snapshot --from legacy --label before
      crmbridge kpi snapshot --from org --label after
      crmbridge kpi compare before after
    """


@kpi.command("snapshot")
@click.option("--from", "source", type=click.Choice(["legacy", "org"]), required=True,
              help="legacy: the newest validated run; org: the Salesforce org.")
@click.option("--label", required=True, help="Name of the snapshot, e.g. baseline-2024-06.")
@click.option("--replace", is_flag=True, help="Overwrite a snapshot with the same label.")
@json_option
def snapshot(source: str, label: str, replace: bool) -> None:
    """Compute the KPIs of kpis.yml and store them under a label.

    \b
    Example:
      crmbridge kpi snapshot --from legacy --label baseline
    """
    from crmbridge.readiness.kpi_snapshot import take_snapshot

    snap = take_snapshot(app().project(), source=source, label=label, replace=replace)

    def human(s):
        click.echo(f"KPI snapshot '{s.label}' from {s.source}" + (f" (run {s.run_id})" if s.run_id else "")
                   + f", as of {s.as_of}")
        for v in s.values.values():
            rate = f"  (rate {v['rate'] * 100:.1f}%)" if v.get("rate") is not None else ""
            note = f"  [{v['note']}]" if v.get("note") else ""
            val = _fmt(v["value"], v.get("kind"))
            click.echo(f"  {v['title']:<36} {val:>16}{rate}{note}")

    emit(snap, human)


@kpi.command("compare")
@click.argument("label_a")
@click.argument("label_b")
@json_option
def compare_cmd(label_a: str, label_b: str) -> None:
    """Show two KPI snapshots side by side (before / after).

    \b
    Example:
      crmbridge kpi compare baseline after-go-live --json
    """
    from crmbridge.readiness.kpi_snapshot import compare

    res = compare(app().project(), label_a, label_b)

    def human(r):
        a, b = r["a"], r["b"]
        click.echo(f"{'kpi':<36} {a['label'] + ' (' + a['source'] + ')':>20} {b['label'] + ' (' + b['source'] + ')':>20}"
                   f" {'diff':>12}")
        for k in r["kpis"]:
            kind = k.get("kind")
            click.echo(f"{k['title']:<36} {_fmt(k['a'], kind):>20} {_fmt(k['b'], kind):>20} "
                       f"{_fmt(k['diff'], kind, diff=True):>12}"
                       + (f"  [{k['note']}]" if k["note"] else ""))

    emit(res, human)


@kpi.command("list")
@json_option
def list_cmd() -> None:
    """List stored KPI snapshots.

    \b
    Example:
      crmbridge kpi list
    """
    from crmbridge.readiness.kpi_snapshot import list_snapshots

    snaps = [{"label": s.label, "source": s.source, "taken_at": s.taken_at, "run_id": s.run_id, "as_of": s.as_of,
              "kpis": len(s.values)} for s in list_snapshots(app().project())]
    emit(snaps, lambda rs: [click.echo(f"{r['label']:<24} {r['source']:<7} {r['taken_at']}  {r['kpis']} KPIs")
                            for r in rs] or click.echo("no KPI snapshots yet"))
