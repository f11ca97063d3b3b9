"""Progress from inside the stages to whoever shows it, without threading callbacks through every call.

A stage says what it is working on (``current().stage("load")``, then one ``task`` per object with its
total from the plan) and advances it. By default nothing listens: the reporter is a no-op, so library
use, tests and ``--json`` runs pay nothing. The CLI installs a rich reporter (``clikit.run_progress``)
for the duration of one command; see there for when it shows bars.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator


class Task:
    """One unit of work (an object, a source, an entity); ``total`` is None when not known ahead."""

    def advance(self, n: int = 1) -> None:
        """``n`` more rows or records done."""

    def done(self) -> None:
        """The unit is finished (its bar is shown full)."""


class Reporter:
    """The silent reporter; subclasses show something."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A stage begins; ``total`` is how many tasks it will run, when known."""

    def expect(self, total: int) -> None:
        """The running stage will run ``total`` tasks (known once the stage has read its plan)."""

    def task(self, label: str, total: int | None = None) -> Task:
        return Task()

    def note(self, text: str) -> None:
        """A line for the person watching (printed above the bars)."""


_NULL = Reporter()
_current: ContextVar[Reporter] = ContextVar("crmbridge_progress", default=_NULL)


def current() -> Reporter:
    """The reporter of the running command (a no-op one outside the CLI)."""
    return _current.get()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the code run inside the ``with`` block."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def tracked(label: str, total: int | None = None):
    """``with tracked("map Account", rows) as t:`` - a task that is marked done when the block ends."""
    return _Tracked(current().task(label, total))


class _Tracked:
    def __init__(self, task: Task):
        self.task = task

    def __enter__(self) -> Task:
        return self.task

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.task.done()
        return False
