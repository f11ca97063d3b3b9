"""The run lock: a live holder blocks, a dead one is taken over."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import update

from crmbridge.state import open_state
from crmbridge.sync.lock import LockBusy, RunLock
from crmbridge.sync.store import sync_locks


def test_live_lock_blocks_and_release_frees(tmp_path):
    eng = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with RunLock(eng, "run-a"):
        with pytest.raises(LockBusy, match="another sync is running \\(run run-a"):
            RunLock(eng, "run-b").acquire()
    with RunLock(eng, "run-b") as lock:
        assert lock.stolen_from is None


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    eng = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    RunLock(eng, "crashed").acquire()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with eng.begin() as c:
        c.execute(update(sync_locks).values(pid=int(dead.stdout)))
    with RunLock(eng, "next") as lock:
        assert lock.stolen_from == "crashed"


def test_lock_with_old_heartbeat_on_another_host_is_stale(tmp_path):
    from datetime import timedelta

    from crmbridge.state import utcnow

    eng = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    RunLock(eng, "elsewhere").acquire()
    with eng.begin() as c:
        c.execute(update(sync_locks).values(host="other-host", heartbeat_at=utcnow() - timedelta(hours=1)))
    with pytest.raises(LockBusy):
        RunLock(eng, "early", stale_minutes=120).acquire()
    with RunLock(eng, "late", stale_minutes=30) as lock:
        assert lock.stolen_from == "elsewhere"
