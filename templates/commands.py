"""``crmbridge init``: create a project folder from the shipped templates."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import click

from crmbridge.clikit import app, emit, invocation, json_option

TEMPLATE_DIR = Path(__file__).with_name("project")


def init_project(target: Path, *, force: bool = False) -> list[Path]:
    """Copy the project templates into ``target``; refuses to overwrite files unless ``force``."""
    from crmbridge.errors import UsageError

    target.mkdir(parents=True, exist_ok=True)
    files = [p for p in sorted(TEMPLATE_DIR.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    clashes = [target / p.relative_to(TEMPLATE_DIR) for p in files if (target / p.relative_to(TEMPLATE_DIR)).exists()]
    if clashes and not force:
        raise UsageError(
            f"{target} already has {clashes[0].relative_to(target)}"
            + (f" and {len(clashes) - 1} other template file(s)" if len(clashes) > 1 else ""),
            hint="choose an empty folder, or pass --force to overwrite the template files",
        )
    written = []
    for src in files:
        dst = target / src.relative_to(TEMPLATE_DIR)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    (target / "data").mkdir(exist_ok=True)
    return written


def expected_inputs(target: Path) -> list[tuple[str, str]]:
    """(source name, file path or database URL) for every legacy source the project's crmbridge.yml reads."""
    from crmbridge.config import load_project

    out = []
    for src in load_project(target).config.sources:
        where = getattr(src, "path", None) or getattr(src, "url", None)
        out.append((src.name, where if isinstance(where, str) else f"{src.type} source (see crmbridge.yml)"))
    return out


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--demo", is_flag=True, help="Also write the sample legacy data and reference ERP database.")
@click.option("--force", is_flag=True, help="Overwrite template files that already exist.")
@json_option
def init(directory: Path | None, demo: bool, force: bool) -> None:
    """Create a new project folder with templates.

    Writes crmbridge.yml, the customer definition, mappings, sync, readiness and KPI files.

    \b
    Example:
      crmbridge init ./acme-migration
      crmbridge init ./try-it --demo
    """
    target = (directory or Path(app().project_dir)).resolve()
    written = init_project(target, force=force)
    extra: dict = {}
    if demo:
        from crmbridge.migrations.demo_data import write_demo_data

        extra = write_demo_data(target)
    result = {"project": str(target), "files": [str(p.relative_to(target)) for p in written], "demo_data": extra,
              "inputs": expected_inputs(target)}

    def human(r):
        click.echo(f"created project in {r['project']} ({len(r['files'])} template files)")
        for f in r["files"]:
            click.echo(f"  {f}")
        cmd, where = invocation(), shlex.quote(r["project"])
        if demo:
            click.echo("sample legacy data and reference ERP written under data/")
            click.echo(f"next: cd {where} && {cmd} migrate")
            return
        click.echo("next: put your legacy exports where crmbridge.yml's `sources:` expects them "
                   "(or edit `sources:` to point at yours):")
        for name, where_from in r["inputs"]:
            click.echo(f"  {name:<20} {where_from}")
        click.echo(f"then: cd {where} && {cmd} migrate")
        click.echo(f"to try it with sample data instead: {cmd} init {where} --demo --force")

    emit(result, human)
