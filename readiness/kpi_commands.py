import click
@click.group("kpi")
def kpi():
    """Baseline customer KPIs: snapshot and compare."""
