"""The sync's run lock: one sync at a time per project, recovered when its holder died.

The mechanism is shared with the migration commands and lives in :mod:`crmbridge.locks`; the sync
uses the lock named ``sync``.
"""

from __future__ import annotations

from crmbridge.locks import LockBusy, RunLock, run_locks

LOCK_NAME = "sync"

__all__ = ["LOCK_NAME", "LockBusy", "RunLock", "run_locks"]
