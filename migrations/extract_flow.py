"""``migrate``'s extract and validate at once, on two cores: extract in a forked process, validate's first
pass here, reading each batch as soon as extract has written it (``extracted.FollowedExtract``).

Extract goes to the child, not validate: validate is the longer stage and goes on after extract ends (its
second pass, the reports), forks its own workers from this process, and keeps its error and Ctrl-C
handling as when run alone; extract's outcome crosses back as one pickled value, its result or its
exception (type, message and hint intact, so ``migrate`` says and exits what it said before). The child
is forked first, before GX or any batch is in this process, so it copies little; it never draws
progress (the parent's refresher thread does not exist in it) and never uses the parent's database
connections. It dies with the parent (``kill -9`` of ``migrate``): a resumed run must not meet it.
"""

from __future__ import annotations

import os
import pickle
import signal
from typing import Any, Callable

from crmbridge.errors import RunFailed


def available() -> bool:
    """Whether extract can run in a forked process here (Linux)."""
    from crmbridge.validation.parallel import fork_available

    return fork_available()


def extract_and_validate(run_dir, extract: Callable[[], Any], validate: Callable[[Any], Any],
                         between: Callable[[], None]):
    """``extract()`` (publishing, see ``extracted.ExtractPublisher``) in a child process while
    ``validate(followed)`` runs here; ``between()`` runs once extract succeeded, before validate's
    record. Extract's error is raised as it is (before any of validate's), validate's work then
    discarded. If extract stops publishing but succeeds (a source read again in another encoding),
    validate runs again on the finished extract (``validate(None)``). Returns validate's result."""
    from crmbridge.migrations.extracted import FollowedExtract, FollowStopped, clear_flow

    clear_flow(run_dir)
    child = _Child(extract)

    def finished() -> None:
        child.result()
        between()

    try:
        try:
            return validate(FollowedExtract(run_dir, finished, child.alive))
        except FollowStopped:
            finished()  # raises extract's error, if that is why
            return validate(None)
        except Exception:
            child.result()  # extract's error first, as when extract ran first
            raise
    finally:
        child.reap()
        clear_flow(run_dir)


class _Child:
    """``fn()`` in a forked process; ``result()`` its return value, or raises its exception."""

    def __init__(self, fn: Callable[[], Any]):
        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(fn, write, parent)  # never returns
        os.close(write)
        self.pid, self.fd = pid, read
        self.status: int | None = None
        self.outcome: tuple | None = None

    def alive(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is None

    def result(self) -> Any:
        if self.outcome is None:
            with os.fdopen(self.fd, "rb") as f:
                data = f.read()
            if self.status is None:
                self.status = os.waitpid(self.pid, 0)[1]
            self.outcome = pickle.loads(data) if data else ("error", RunFailed(
                f"the extract process ended without a word ({_ended(self.status)})",
                hint="`crmbridge migrate` runs extract again"))
        kind, value = self.outcome
        if kind == "error":
            raise _rebuilt(*value) if isinstance(value, tuple) else value
        return value

    def reap(self) -> None:
        """Wait for the child (it finishes its extract, or stops on its own Ctrl-C)."""
        if self.outcome is None:
            try:
                self.result()
            except BaseException:  # noqa: BLE001 - the caller is already raising its own error
                pass


def _child(fn: Callable[[], Any], fd: int, parent: int) -> None:
    code = 1
    try:
        from crmbridge import progress
        from crmbridge.state import after_fork

        _die_with(parent)
        after_fork()
        try:
            with progress.reporting(progress.Reporter()):
                payload, code = ("ok", fn()), 0
        except BaseException as exc:  # noqa: BLE001 - every outcome goes to the parent
            # as class, args and attributes: an exception whose __init__ takes other arguments than its
            # args (ConfigError) does not unpickle as itself
            error, payload = exc, ("error", (type(exc), exc.args, exc.__dict__))
        try:
            data = pickle.dumps(payload)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its type and text
            data = pickle.dumps(("error", RunFailed(f"{type(error).__name__}: {error}")))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    finally:
        os._exit(code)  # never back into the parent's stack (or a test runner's)


def _rebuilt(cls: type, args: tuple, attrs: dict) -> BaseException:
    exc = cls.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.__dict__.update(attrs)
    return exc


def _die_with(parent: int) -> None:
    """The child gets SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took hold
        os._exit(1)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
