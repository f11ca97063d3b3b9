"""The state database and the .crmbridge folder are private to the owner (issue 13 point 9)."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from crmbridge.cli import cli


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # the common default that makes new files world-readable
    yield
    os.umask(old)


def test_default_state_db_and_folder_are_owner_only(tmp_path, loose_umask):
    from crmbridge.state import dispose_all

    (tmp_path / "crmbridge.yml").write_text("name: t\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["--project", str(tmp_path), "runs", "list"])
    assert res.exit_code == 0, res.output
    dispose_all()
    state_dir = tmp_path / ".crmbridge"
    assert _mode(state_dir) == 0o700
    files = sorted(p.name for p in state_dir.iterdir() if p.name.startswith("state.db"))
    assert "state.db" in files
    for name in files:  # state.db and SQLite's -wal / -shm companions
        assert _mode(state_dir / name) == 0o600, name


def test_existing_world_readable_state_is_tightened(tmp_path, loose_umask):
    import sqlite3

    from crmbridge.config import load_project
    from crmbridge.state import dispose_all, open_state

    d = tmp_path / ".crmbridge"
    d.mkdir(mode=0o755)
    sqlite3.connect(d / "state.db").close()
    os.chmod(d / "state.db", 0o644)
    (tmp_path / "crmbridge.yml").write_text("name: t\n", encoding="utf-8")
    open_state(load_project(tmp_path).state_url)
    dispose_all()
    assert _mode(d) == 0o700 and _mode(d / "state.db") == 0o600


def test_explicit_sqlite_state_url_is_owner_only(tmp_path, loose_umask):
    from crmbridge.state import dispose_all, open_state

    db = tmp_path / "elsewhere" / "state.sqlite"
    db.parent.mkdir()
    with open_state(f"sqlite:///{db}").connect() as c:
        c.exec_driver_sql("SELECT 1")
    dispose_all()
    assert _mode(db) == 0o600


def test_private_dir_creates_missing_parents_owner_only(tmp_path, loose_umask):
    from crmbridge.state import private_dir

    leaf = private_dir(tmp_path / ".crmbridge" / "preview" / "20260101-000000-abcd")
    for d in (tmp_path / ".crmbridge", tmp_path / ".crmbridge" / "preview", leaf):
        assert _mode(d) == 0o700, d
