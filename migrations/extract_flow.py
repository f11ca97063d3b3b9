"""``migrate``'s extract and validate at once, on two cores: extract in a child process, validate's first
pass here, reading each batch as soon as extract has written it (``extracted.FollowedExtract``).

Extract goes to the child, not validate: validate is the longer stage and goes on after extract ends (its
second pass, the reports), forks its own workers from this process, and keeps its error and Ctrl-C
handling as when run alone; extract's outcome crosses back as one pickled value, its result or its
exception (type, message and hint intact, so ``migrate`` says and exits what it said before).
The child is a new interpreter, not a fork: a fork of this process copies whatever lock another of its
threads held at that moment (the embedded sandbox's server threads use SQLite, whose allocator mutex a
forked child then waits on for ever; seen in CI). It is given the job (``ExtractJob``: the project and
the run, pickled) on its standard input, never draws progress, opens its own database connections, and
dies with the parent (``kill -9`` of ``migrate``): a resumed run must not meet it.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crmbridge.errors import RunFailed


def available() -> bool:
    """Whether extract can run beside validate here: on Linux, where its process dies with ``migrate``
    (``_die_with``); elsewhere ``migrate`` runs them one after the other."""
    return sys.platform.startswith("linux")


@dataclass(frozen=True)
class ExtractJob:
    """What the child runs: a full extract of ``run`` that publishes its batches (picklable, see the module)."""

    project: Any
    run: Any
    allow_shrink: bool = False

    def __call__(self) -> Any:
        from crmbridge.migrations.extract import run_extract

        # unlocked: the parent holds the project's lock for the child, which dies with it
        return run_extract.__wrapped__(self.project, run=self.run, full=True, allow_shrink=self.allow_shrink,
                                       publish=True)


def extract_and_validate(run_dir, extract: ExtractJob, validate: Callable[[Any], Any],
                         between: Callable[[], None]):
    """``extract()`` (publishing, see ``extracted.ExtractPublisher``) in a child process while
    ``validate(followed)`` runs here; ``between()`` runs once extract succeeded, before validate's
    record. Extract's error is raised as it is (before any of validate's), validate's work then
    discarded. If extract stops publishing but succeeds (a source read again in another encoding),
    validate runs again on the finished extract (``validate(None)``). Returns validate's result."""
    from crmbridge.migrations.extracted import FollowedExtract, FollowStopped, clear_flow

    clear_flow(run_dir)
    child = _Child(extract)

    done: list[bool] = []

    def finished() -> None:  # once
        if not done:
            child.result()
            done.append(True)
            between()

    try:
        try:
            out = validate(FollowedExtract(run_dir, finished, child.alive))
            finished()  # validate waits for it before its record; a caller's ``validate`` may not
            return out
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
    """``job()`` in a new interpreter; ``result()`` its return value, or raises its exception."""

    def __init__(self, job: ExtractJob):
        import crmbridge

        read, write = os.pipe()
        # the folder crmbridge is imported from, first: a checkout run in place, not an installed copy
        path = [str(Path(crmbridge.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from crmbridge.migrations.extract_flow import child_main; child_main()",
                 str(write), str(os.getpid())], stdin=subprocess.PIPE, pass_fds=(write,),
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
                # its own process group: a Ctrl-C at the terminal reaches only ``migrate``, which stops it
                # (``reap``), never a child still importing (a traceback) or one half-way through its outcome
                process_group=0)
        finally:
            os.close(write)
        self.pipe = os.fdopen(read, "rb")
        self.outcome: tuple | None = None
        try:
            with self.proc.stdin as f:
                f.write(pickle.dumps(job))
        except BrokenPipeError:  # it ended at once: result() says how
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def result(self) -> Any:
        if self.outcome is None:
            with self.pipe as f:
                data = f.read()
            code = self.proc.wait()
            self.outcome = pickle.loads(data) if data else ("error", RunFailed(
                f"the extract process ended without a word ({_ended(code)})",
                hint="`crmbridge migrate` runs extract again"))
        kind, value = self.outcome
        if kind == "error":
            raise _rebuilt(*value) if isinstance(value, tuple) else value
        return value

    def reap(self) -> None:
        """Stop the child if its outcome was not taken (``migrate`` is leaving on a Ctrl-C or an error of its
        own), and wait for it. Killed outright: the run is recorded interrupted or failed, and a resumed run
        extracts again from the start, as after ``kill -9`` of ``migrate`` (its scratch is removed, a
        transaction it left open is rolled back by the database)."""
        if self.outcome is None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.pipe.close()
            self.outcome = ("error", RunFailed("the extract process was stopped"))


def child_main() -> None:
    """The child's entry point: ``argv`` holds the result's pipe and the parent's pid, stdin the job."""
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    code, error = 1, None
    # Not in the terminal's foreground process group (``_Child``): a terminal set to ``stty tostop`` would
    # stop it at its first warning on stderr, with ``migrate`` waiting for it. Ignored, the write goes through.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        from crmbridge import progress

        _die_with(parent)
        job = pickle.loads(sys.stdin.buffer.read())
        try:
            with progress.reporting(progress.Reporter()):
                payload, code = ("ok", job()), 0
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
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no interpreter shutdown work: the outcome is written


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


def _ended(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
