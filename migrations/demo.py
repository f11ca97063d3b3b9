"""``crmbridge demo``: a sample project with realistic legacy data, migrated into the embedded sandbox."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from crmbridge.clikit import emit, invocation, json_option

# What write_demo_data puts under data/: its presence means the project already has its data.
DEMO_FILES = ("sales_customers.csv", "finance_customers.xlsx", "service_customers.csv", "legacy_crm.db",
              "contracts.csv", "erp.db")


def run_demo(target: Path, *, customers: int = 10_000, force: bool = False, seed: int = 20231105,
             on_stage=None) -> dict:
    """Create (or refresh) the demo project in ``target`` and run ``migrate`` on it.

    A folder that already holds a project keeps its files, its legacy data and its ERP database
    (unless ``force``): the sync keeps links to ERP rows, so the ERP must not be rewritten behind its
    back. A second demo on the same folder is then a delta run that writes nothing new. The sample
    data is written into an existing project only when none of its files are there yet.
    """
    from crmbridge.config import CONFIG_FILE, load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.templates.commands import init_project

    started = time.monotonic()
    target = target.resolve()
    fresh = force or not (target / CONFIG_FILE).exists()
    if fresh:
        init_project(target, force=force)
    write_data = fresh or not any((target / "data" / f).exists() for f in DEMO_FILES)
    data = write_demo_data(target, customers=customers, seed=seed) if write_data else {"rows": {}, "erp": None}
    project = load_project(target)
    result = run_migrate(project, on_stage=on_stage)
    sandbox_db = getattr(project.config.salesforce, "db", None)
    return {
        "project": str(target), "created_project": fresh, "wrote_data": write_data, "run_id": result.run_id,
        "sources": data["rows"], "erp_database": bool(data.get("erp")),
        "entities": {e.entity: {"extracted": e.extracted, "quarantined": e.quarantined, "filtered": e.filtered,
                                "loaded": e.loaded,
                                "rejected": e.rejected, "created": e.created, "updated": e.updated,
                                "unchanged": e.unchanged, "quarantined_by_stage": e.quarantined_by_stage}
                     for e in result.entities},
        "balanced": result.balanced, "reconcile_ok": result.reconcile_ok, "reports": result.reports,
        "sandbox_db": str(project.path(sandbox_db)) if sandbox_db else None,
        "api_calls": result.api_calls, "seconds": round(time.monotonic() - started, 1),
    }


@click.command("demo")
@click.argument("directory", required=False, default="demo-project",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--customers", default=10_000, show_default=True, help="How many legacy customers to generate.")
@click.option("--force", is_flag=True,
              help="Overwrite the template files and regenerate the sample data and ERP database of an existing project.")
@json_option
def demo(directory: Path, customers: int, force: bool) -> None:
    """Create a sample project and run a full migration into the sandbox.

    Writes ~10,000 legacy customers from three overlapping departmental sources (one of them a
    GB18030 file, one an Excel workbook), a legacy CRM database of contacts, contracts and a sample
    ERP database, starts the embedded sandbox org and runs `crmbridge migrate`. Running it again on
    the same folder keeps its data and ERP database and is a delta run (nothing changed, nothing
    written); --force starts the folder over from the templates and fresh sample data.

    \b
    Example:
      crmbridge demo ./demo-project
      crmbridge demo ./demo-project --json
    """
    from crmbridge.clikit import run_progress

    with run_progress():
        r = run_demo(directory, customers=customers, force=force)

    def human(res):
        click.echo(f"demo project: {res['project']} (run {res['run_id']}, {res['seconds']} s)")
        if not res["wrote_data"]:
            click.echo("kept the project's existing data/ and ERP database (pass --force to regenerate them)")
        click.echo(f"{'entity':<12}{'extracted':>10}{'quarantined':>12}{'filtered':>9}{'loaded':>8}{'rejected':>9}")
        for name, e in res["entities"].items():
            click.echo(f"{name:<12}{e['extracted']:>10}{e['quarantined']:>12}{e['filtered']:>9}{e['loaded']:>8}"
                       f"{e['rejected']:>9}")
        click.echo("reconcile: " + ("source, ledger and org agree" if res["reconcile_ok"] else "see the mismatches"))
        click.echo("reports:")
        for k, v in res["reports"].items():
            click.echo(f"  {k}: {v}")
        cmd = invocation()
        if res["sandbox_db"]:
            click.echo(f"sandbox org data: {res['sandbox_db']}  (browse it: {cmd} --project "
                       f"{shlex.quote(res['project'])} sandbox serve)")
        click.echo(f"next: cd {shlex.quote(res['project'])} && {cmd} runs show {res['run_id']}")

    emit(r, human)
