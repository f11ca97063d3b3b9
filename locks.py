"""Project locks: one writer at a time per project and lock name, recovered when the holder died.

A row in ``run_locks`` (state database, so it works for several hosts sharing a PostgreSQL state). A
lock is *stale* when its process is gone (same host, pid not alive) or its heartbeat is older than
``stale_minutes``; a stale lock is taken over with a compare-and-swap on the holder.

Two names are used: ``sync`` (the nightly sync) and ``migration`` (``migrate`` and the commands that
write a run: extract, validate, map, load, reconcile, rollback). ``project_lock`` is re-entrant within
a process, so ``migrate`` holding it can call the stage functions that take it too.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta, timezone
from typing import Iterator

from sqlalchemy import Column, DateTime, Integer, String, Table, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from crmbridge.errors import RunFailed
from crmbridge.state import metadata, open_state, utcnow

MIGRATION = "migration"

run_locks = Table(
    "run_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("command", String(200)),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("acquired_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
)


class LockBusy(RunFailed):
    """Another process holds the lock (exit 1, so a scheduler shows the skipped run)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aware(dt):
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def describe_holder(row) -> str:
    """``command`` (holder), pid, host and since when: what a refused user needs to find the other process."""
    since = _aware(row.acquired_at)
    what = f"`{row.command}`" if getattr(row, "command", None) else f"run {row.holder}"
    return f"{what}, pid {row.pid} on {row.host}, since {since:%Y-%m-%d %H:%M:%S} UTC"


class RunLock:
    """``with RunLock(engine, holder): ...``; ``stolen_from`` names a stale holder it replaced."""

    def __init__(self, engine: Engine, holder: str, *, stale_minutes: float = 240, name: str = "sync",
                 command: str | None = None):
        self.engine, self.holder, self.name, self.command = engine, holder, name, command
        self.stale = timedelta(minutes=stale_minutes)
        self.stolen_from: str | None = None

    def _busy(self, cur) -> LockBusy:
        if self.name == "sync":
            return LockBusy(f"another sync is running (run {cur.holder}, pid {cur.pid} on {cur.host}, "
                            f"since {_aware(cur.acquired_at):%Y-%m-%d %H:%M:%S})",
                            hint="wait for it to finish; a lock whose process died is taken over automatically")
        return LockBusy(f"another crmbridge command is writing to this project: {describe_holder(cur)}",
                        hint="wait for it to finish (or stop that process); a lock whose process died is taken "
                             "over automatically by the next command")

    def acquire(self) -> None:
        host, pid, now = socket.gethostname(), os.getpid(), utcnow()
        row = dict(name=self.name, holder=self.holder, command=(self.command or "")[:200] or None, host=host,
                   pid=pid, acquired_at=now, heartbeat_at=now)
        try:
            with self.engine.begin() as c:
                c.execute(run_locks.insert().values(**row))
            return
        except IntegrityError:
            pass
        with self.engine.connect() as c:
            cur = c.execute(select(run_locks).where(run_locks.c.name == self.name)).first()
        if cur is None:  # released between our insert and read: try once more
            return self.acquire()
        if not self._is_stale(cur, host):
            raise self._busy(cur)
        with self.engine.begin() as c:
            taken = c.execute(update(run_locks).where(run_locks.c.name == self.name,
                                                      run_locks.c.holder == cur.holder).values(**row)).rowcount
        if not taken:
            raise LockBusy(f"another process took over the stale {self.name} lock at the same moment",
                           hint="run the command again once it has finished")
        self.stolen_from = cur.holder

    def _is_stale(self, cur, host: str) -> bool:
        if cur.host == host and cur.pid and not _alive(cur.pid):
            return True
        beat = _aware(cur.heartbeat_at)
        return beat is not None and utcnow() - beat > self.stale

    def heartbeat(self) -> None:
        with self.engine.begin() as c:
            c.execute(update(run_locks).where(run_locks.c.name == self.name, run_locks.c.holder == self.holder)
                      .values(heartbeat_at=utcnow()))

    def release(self) -> None:
        with self.engine.begin() as c:
            c.execute(delete(run_locks).where(run_locks.c.name == self.name, run_locks.c.holder == self.holder))

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------- the project lock

_held: dict[tuple[str, str], list] = {}  # (state url, name) -> [RunLock, depth, last heartbeat]
_held_lock = threading.Lock()
HEARTBEAT_SECONDS = 60


@contextmanager
def project_lock(project, command: str, *, name: str = MIGRATION, stale_minutes: float = 240) -> Iterator[RunLock]:
    """Hold the project's ``name`` lock for ``command`` (re-entrant within this process).

    A second process gets :class:`LockBusy` naming the holder's command, pid, host and start time."""
    key = (project.state_url, name)
    with _held_lock:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        holder = f"{command.split()[0] if command else name}-{os.getpid()}-{secrets.token_hex(4)}"[:64]
        lock = RunLock(open_state(project.state_url), holder, stale_minutes=stale_minutes, name=name,
                       command=_command_line(command))
        lock.acquire()
        entry = [lock, 1, time.monotonic()]
        with _held_lock:
            _held[key] = entry
    try:
        yield entry[0]
    finally:
        with _held_lock:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                _held.pop(key, None)
        if last:
            entry[0].release()


def _command_line(command: str) -> str:
    """What the holder is doing, as the user typed it when this process is the crmbridge CLI."""
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith(("crmbridge", "crmbridge/__main__.py", "crmbridge\\__main__.py")) and len(sys.argv) > 1:
        from crmbridge.secretref import redact

        return redact("crmbridge " + " ".join(sys.argv[1:]))[:200]
    return f"crmbridge {command}"


def heartbeat_held() -> None:
    """Refresh the heartbeat of the locks this process holds (at most once a minute): a long load on
    another host is not mistaken for a dead one."""
    now = time.monotonic()
    with _held_lock:
        due = [e for e in _held.values() if now - e[2] >= HEARTBEAT_SECONDS]
        for e in due:
            e[2] = now
    for e in due:
        e[0].heartbeat()


def locked(command: str, *, name: str = MIGRATION):
    """Decorator for a stage function ``fn(project, ...)``: it runs holding the project's lock."""
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(project, *args, **kwargs):
            with project_lock(project, command, name=name):
                return fn(project, *args, **kwargs)

        return wrapper

    return deco
