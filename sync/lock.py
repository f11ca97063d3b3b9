"""The run lock: one sync at a time per project, recovered when its holder died.

A row in ``sync_locks`` (state database, so it works for several hosts sharing a PostgreSQL state).
A lock is *stale* when its process is gone (same host, pid not alive) or its heartbeat is older than
``stale_minutes``; a stale lock is taken over with a compare-and-swap on the holder.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from crmbridge.errors import RunFailed
from crmbridge.state import utcnow
from crmbridge.sync.store import sync_locks

LOCK_NAME = "sync"


class LockBusy(RunFailed):
    """Another sync is running (exit 1 so that a scheduler shows the skipped night)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aware(dt):
    from datetime import timezone

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class RunLock:
    """``with RunLock(engine, holder): ...``; ``stolen_from`` names a stale holder it replaced."""

    def __init__(self, engine: Engine, holder: str, *, stale_minutes: float = 240, name: str = LOCK_NAME):
        self.engine, self.holder, self.name = engine, holder, name
        self.stale = timedelta(minutes=stale_minutes)
        self.stolen_from: str | None = None

    def acquire(self) -> None:
        host, pid, now = socket.gethostname(), os.getpid(), utcnow()
        row = dict(name=self.name, holder=self.holder, host=host, pid=pid, acquired_at=now, heartbeat_at=now)
        try:
            with self.engine.begin() as c:
                c.execute(sync_locks.insert().values(**row))
            return
        except IntegrityError:
            pass
        with self.engine.connect() as c:
            cur = c.execute(select(sync_locks).where(sync_locks.c.name == self.name)).first()
        if cur is None:  # released between our insert and read: try once more
            return self.acquire()
        if not self._is_stale(cur, host):
            raise LockBusy(f"another sync is running (run {cur.holder}, pid {cur.pid} on {cur.host}, "
                           f"since {cur.acquired_at:%Y-%m-%d %H:%M:%S})",
                           hint="wait for it to finish; a lock whose process died is taken over automatically")
        with self.engine.begin() as c:
            taken = c.execute(update(sync_locks).where(sync_locks.c.name == self.name,
                                                       sync_locks.c.holder == cur.holder).values(**row)).rowcount
        if not taken:
            raise LockBusy("another sync took over the stale lock at the same moment")
        self.stolen_from = cur.holder

    def _is_stale(self, cur, host: str) -> bool:
        if cur.host == host and cur.pid and not _alive(cur.pid):
            return True
        beat = _aware(cur.heartbeat_at)
        return beat is not None and utcnow() - beat > self.stale

    def heartbeat(self) -> None:
        with self.engine.begin() as c:
            c.execute(update(sync_locks).where(sync_locks.c.name == self.name, sync_locks.c.holder == self.holder)
                      .values(heartbeat_at=utcnow()))

    def release(self) -> None:
        with self.engine.begin() as c:
            c.execute(delete(sync_locks).where(sync_locks.c.name == self.name, sync_locks.c.holder == self.holder))

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
