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

        # Like git and dbt: from a sub-folder of a project, the project above it is meant.
        return load_project(self.project_dir, search_parents=True)


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


def invocation() -> str:
    """How to call crmbridge again so that a printed ``next:`` hint works as printed.

    ``crmbridge`` when that name on PATH is the program running now; otherwise the absolute path of
    the script (e.g. ``/home/me/crmbridge/.venv/bin/crmbridge`` before the venv is activated), or
    ``python -m crmbridge`` with this interpreter's absolute path.
    """
    import os
    import shlex
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    module = f"{shlex.quote(sys.executable)} -m crmbridge"
    if not os.path.basename(argv0).lower().startswith("crmbridge"):  # python -m crmbridge, or embedded
        return module
    script = os.path.abspath(argv0) if os.sep in argv0 else shutil.which(argv0)
    on_path = shutil.which("crmbridge")
    if script and on_path and os.path.realpath(on_path) == os.path.realpath(script):
        return "crmbridge"
    return shlex.quote(script) if script else module


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


@contextmanager
def run_progress() -> Iterator[Any]:
    """Show the stages and objects of one command while it runs (see ``crmbridge.progress``).

    On a terminal: one rich Progress on stderr with a task per stage and per object (totals from the
    plan), stage lines printed through the same console so they never glue onto a bar. Without a
    terminal: only the stage lines, plainly on stderr. Under --json: nothing.
    """
    from crmbridge.progress import Reporter, reporting

    if wants_json():
        with reporting(Reporter()) as rep:
            yield rep
        return
    if not sys.stderr.isatty():
        with reporting(_PlainReporter()) as rep:
            yield rep
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), _count_column(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as p:
        with reporting(_RichReporter(p)) as rep:
            try:
                yield rep
            finally:
                rep.close()


def _count_column():
    """A column showing ``done/total`` with thousands separators, or the running count without a total."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task):
            done = int(task.completed)
            return Text(f"{done:,}" if task.total is None else f"{done:,}/{int(task.total):,}")

    return CountColumn()


class _PlainReporter:
    """No terminal: stage lines only, so logs show where a run was."""

    def stage(self, name: str, total: int | None = None) -> None:
        click.echo(f"-> {name}", err=True)

    def expect(self, total: int) -> None:
        pass

    def task(self, label: str, total: int | None = None):
        from crmbridge.progress import Task

        return Task()

    def note(self, text: str) -> None:
        click.echo(text, err=True)


class _RichReporter:
    def __init__(self, progress):
        self.p = progress
        self.stage_task = None

    def _finish_stage(self) -> None:
        if self.stage_task is not None:
            t = self.p.tasks[self.p.task_ids.index(self.stage_task)]
            self.p.update(self.stage_task, total=max(t.completed, t.total or 0), completed=max(t.completed, t.total or 0))

    def stage(self, name: str, total: int | None = None) -> None:
        self._finish_stage()
        self.p.console.print(f"-> {name}")
        self.stage_task = self.p.add_task(f"[bold]{name}[/bold]", total=total)

    def expect(self, total: int) -> None:
        if self.stage_task is not None:
            self.p.update(self.stage_task, total=total)

    def task(self, label: str, total: int | None = None):
        return _RichTask(self, self.p.add_task(f"  {label}", total=total))

    def note(self, text: str) -> None:
        self.p.console.print(text)

    def close(self) -> None:
        self._finish_stage()


class _RichTask:
    def __init__(self, rep: _RichReporter, task_id):
        self.rep, self.id, self.stage = rep, task_id, rep.stage_task

    def advance(self, n: int = 1) -> None:
        self.rep.p.advance(self.id, n)

    def done(self) -> None:
        p = self.rep.p
        t = p.tasks[p.task_ids.index(self.id)]
        p.update(self.id, total=t.completed if t.total is None else t.total,
                 completed=t.completed if t.total is None else t.total)
        if self.stage is not None:
            p.advance(self.stage, 1)
