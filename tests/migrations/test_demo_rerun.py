"""`crmbridge demo DIR` on an existing project keeps its data and ERP database unless --force (issue 16)."""

from __future__ import annotations

import hashlib

import pytest

pytestmark = pytest.mark.slow


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "data").iterdir())}


def _erp_contracts(folder):
    import sqlite3

    with sqlite3.connect(folder / "data" / "erp.db") as c:
        tables = [r[0] for r in c.execute("select name from sqlite_master where type='table'")]
        return {t: c.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def test_demo_again_keeps_data_and_erp_unless_forced(tmp_path):
    from crmbridge.migrations.demo import run_demo
    from crmbridge.state import dispose_all

    target = tmp_path / "demo"
    try:
        first = run_demo(target, customers=120, seed=1)
        assert first["created_project"] and first["wrote_data"] and first["balanced"]
        # the steward edits a legacy export, and the ERP changes under the sync (a row deleted)
        sales = target / "data" / "sales_customers.csv"
        sales.write_bytes(sales.read_bytes() + b"")
        import sqlite3

        with sqlite3.connect(target / "data" / "erp.db") as c:
            t = next(r[0] for r in c.execute("select name from sqlite_master where type='table' order by name"))
            c.execute(f'delete from "{t}" where rowid = (select min(rowid) from "{t}")')
        before, erp_before = _digest(target), _erp_contracts(target)

        again = run_demo(target, customers=120, seed=2)  # another seed would write other data
        assert not again["created_project"] and not again["wrote_data"]
        assert _digest(target) == before and _erp_contracts(target) == erp_before
        assert again["balanced"] and again["entities"]["customers"]["created"] == 0  # a delta run

        forced = run_demo(target, customers=120, seed=2, force=True)
        assert forced["wrote_data"] and _digest(target) != before
    finally:
        dispose_all()


def test_demo_fills_an_empty_project_made_by_init(tmp_path):
    from crmbridge.migrations.demo import DEMO_FILES, run_demo
    from crmbridge.state import dispose_all
    from crmbridge.templates.commands import init_project

    init_project(tmp_path / "p")
    try:
        r = run_demo(tmp_path / "p", customers=60, seed=3)
        assert r["wrote_data"] and not r["created_project"]
        assert all((tmp_path / "p" / "data" / f).exists() for f in DEMO_FILES)
    finally:
        dispose_all()
