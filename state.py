"""The state database: runs, stages, ledger, journal, watermarks, sync and readiness history.

SQLite under the project folder by default; any SQLAlchemy URL works (PostgreSQL, MariaDB ...).
Every module that keeps state declares its tables on ``metadata`` below and calls ``open_state``,
which creates whatever is missing. Tables are SQLAlchemy Core, no ORM: they are plain records.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),  # migrate, extract, sync, rollback ...
    Column("status", String(16), nullable=False),  # running, succeeded, failed, rolled_back
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("command", Text),
    Column("dry_run", Integer, default=0),
    Column("summary", JSON),
)

run_stages = Table(
    "run_stages",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("stage", String(32), primary_key=True),  # extract, validate, map, load, reconcile ...
    Column("status", String(16), nullable=False),  # running, succeeded, failed, skipped
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("result", JSON),
    Column("error", Text),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("scope", String(200), primary_key=True),  # e.g. extract:source_name, sync:to_erp:Account
    Column("value", Text),
    Column("updated_at", DateTime(timezone=True)),
)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# The state db holds customer data (ledger, journal before-images, sync queue): owner-only on disk.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only; tighten it if it exists."""
    d = Path(path)
    missing = []
    p = d
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for m in reversed(missing):  # parents too: mkdir(parents=True) would give them the umask's mode
        m.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    if d.stat().st_mode & 0o077:
        d.chmod(PRIVATE_DIR_MODE)
    return d


def private_file(path: str | Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists; an existing file is tightened to 0600.

    SQLite creates its -wal, -shm and -journal files with the mode of the database file, so
    creating the database file first is what keeps all of them private.
    """
    f = Path(path)
    try:
        os.close(os.open(f, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE))
    except OSError:
        return f  # a missing folder or no permission: the database driver reports it in its own words
    for p in (f, *(f.with_name(f.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if p.stat().st_mode & 0o077:
                p.chmod(PRIVATE_FILE_MODE)
        except OSError:  # absent, or owned by someone else
            pass
    return f


def _private_sqlite(eng: Engine) -> None:
    db = eng.url.database
    if db and db != ":memory:" and not db.startswith("file:"):
        private_file(db)


def open_state(url: str) -> Engine:
    """Engine for the state database at ``url`` with every declared table created.

    A SQLite file is created owner-only (0600) before SQLite first opens it.
    """
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            eng = create_engine(url, future=True, pool_pre_ping=True)
            if eng.dialect.name == "sqlite":
                _private_sqlite(eng)
                event.listen(eng, "connect", _sqlite_pragmas)
            _engines[url] = eng
        metadata.create_all(eng)
        return eng


def dispose_all() -> None:
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()


def get_watermark(engine: Engine, scope: str) -> str | None:
    with engine.connect() as c:
        row = c.execute(watermarks.select().where(watermarks.c.scope == scope)).first()
        return row.value if row else None


def set_watermark(engine: Engine, scope: str, value: str, conn=None) -> None:
    """Store a watermark; pass ``conn`` to make it part of the caller's transaction."""

    def _do(c):
        updated = c.execute(
            watermarks.update().where(watermarks.c.scope == scope).values(value=value, updated_at=utcnow())
        ).rowcount
        if not updated:
            c.execute(watermarks.insert().values(scope=scope, value=value, updated_at=utcnow()))

    if conn is not None:
        _do(conn)
    else:
        with engine.begin() as c:
            _do(c)
