"""Shared pieces of the CLI: the app context, ``--json`` handling, output and progress.

Commands parse options, call one library function, and hand its result record to ``emit``.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import click


@dataclass
class AppContext:
    project_dir: str = "."
    as_json: bool = False
    verbose: int = 0

    def project(self):
        from crmbridge.config import load_project

        return load_project(self.project_dir)


def app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppContext()
    return root.obj


def json_option(f: Callable) -> Callable:
    """``--json`` on a sub-command, equivalent to the global ``crmbridge --json``."""

    def _cb(ctx: click.Context, _param, value: bool):
        if value:
            app(ctx).as_json = True
        return value

    return click.option("--json", "as_json_local", is_flag=True, expose_value=False, callback=_cb,
                        is_eager=True, help="Print the machine-readable summary as JSON.")(f)


def wants_json() -> bool:
    return app().as_json


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    return obj


def emit(result: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print ``result`` as JSON under --json, otherwise with the ``human`` renderer."""
    if wants_json():
        click.echo(json.dumps(to_jsonable(result), ensure_ascii=False, indent=2, default=str))
    elif human is not None:
        human(result)
    else:
        click.echo(json.dumps(to_jsonable(result), ensure_ascii=False, indent=2, default=str))


def console():
    """A rich console on stderr for human output that must not pollute --json on stdout."""
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=False)


def show_progress() -> bool:
    return not wants_json() and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; silent under --json or when stderr is not a TTY.

    Yields ``advance(n)``.
    """
    if not show_progress():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=total)
        yield lambda n=1: p.advance(task, n)
