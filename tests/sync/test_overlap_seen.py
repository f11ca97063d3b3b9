"""The overlap window's rows of versions already synced are skipped by key and timestamp (sync/seen.py),
with the same outcome as reading and hashing them again (issue 14).

Each scenario runs twice, on two ERPs and two orgs built alike: once as before (``use_seen = False``:
every window row read in full and compared by content hash), once with the memory of synced versions.
Summaries, the org's records and the state's baselines must be the same; only the rows read in full
differ.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, delete, func, insert, select, update

from crmbridge.config import load_project
from crmbridge.state import open_state, set_watermark
from crmbridge.sync import objectsync, reader
from crmbridge.sync.reference_erp import STAMP0, create_reference_erp, inventory, items
from crmbridge.sync.store import sync_records

ITEMS = 30  # 30 products x 3 warehouses; inventory stamps run STAMP0 + 0..89 s, products STAMP0 + 0..29 s
_BATCH = reader.ErpView._batch


def _key(item: int, wh: str):
    return (inventory.c.item_code == f"ITEM{item:07d}") & (inventory.c.warehouse == wh)


def _last_stamp(erp):
    with erp.connect() as c:
        return c.execute(select(func.max(inventory.c.updated_at))).scalar_one()


def edit_new_and_late(erp, project) -> None:
    """A change stamped now, a row committed late (stamped inside the window, never seen), a window row
    changed to another timestamp inside the window, and a product committed late at its window's instant."""
    top = _last_stamp(erp)
    with erp.begin() as c:
        c.execute(update(inventory).where(_key(1, "WH-BJ")).values(on_hand=901, updated_at=func.current_timestamp()))
        row = dict(c.execute(select(inventory).where(_key(29, "WH-SH"))).mappings().one())
        c.execute(insert(inventory).values({**row, "warehouse": "WH-XA", "on_hand": 902,
                                            "updated_at": top - timedelta(seconds=5)}))
        c.execute(update(inventory).where(_key(29, "WH-SZ")).values(on_hand=903, updated_at=top - timedelta(seconds=7)))
        c.execute(insert(items).values(item_code="ITEM9999999", item_name="Late item", family="Hardware",
                                       unit="Each", active=True, updated_at=STAMP0))


def edit_same_stamp_recent(erp, project) -> None:
    """The row changed now is changed again with the same timestamp: too recent to be skipped by it."""
    with erp.begin() as c:
        c.execute(update(inventory).where(_key(1, "WH-BJ")).values(on_hand=904))


def drop_row(erp, project) -> None:
    with erp.begin() as c:
        c.execute(delete(inventory).where(_key(28, "WH-SH")))


def other_watermark(erp, project) -> None:
    """What a run killed after moving the watermark, before storing its memory, leaves behind."""
    state = open_state(project.state_url)
    for name in ("inventory", "products"):
        set_watermark(state, f"sync:{name}:erp_seen", '{"t": "datetime", "v": "2000-01-01T00:00:00"}')
    state.dispose()


def _scenario(tmp_path, kit, monkeypatch, use_seen: bool, steps: list):
    from crmbridge.sandbox.server import start_sandbox

    monkeypatch.setattr(objectsync.ObjectSync, "use_seen", use_seen)
    full_rows: list[int] = []  # per run: ERP rows read with all their columns

    def counting(self, rows):
        full_rows[-1] += len(rows)
        return _BATCH(self, rows)

    monkeypatch.setattr(reader.ErpView, "_batch", counting)
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=ITEMS, seed=5)
    handle = start_sandbox(tmp_path / "org.db")
    erp = create_engine(url)
    try:
        project = load_project(kit.make_project(tmp_path / "p", url, handle, sync_yml=kit.stock_yml(overlap_seconds=60)))
        sf = kit.connector(project)
        summaries = []
        for step in steps:
            if step:
                step(erp, project)
            full_rows.append(0)
            r = kit.run(project, sf)
            assert r.status == "succeeded", r.as_dict()
            summaries.append({n: {k: o[k] for k in ("read_erp", "written", "unchanged", "deleted", "errors",
                                                   "skipped", "records", "delete_check")} for n, o in r.objects.items()})
        org = {o: sorted(tuple(sorted((k, v) for k, v in rec.items() if k not in ("attributes", "Id")))
                         for rec in sf.query(f"SELECT {fields} FROM {o}"))
               for o, fields in (("Inventory__c", "ERP_Key__c, On_Hand__c, Is_Active__c, Name"),
                                 ("Product2", "ERP_Item_Code__c, Name, IsActive"))}
        state = open_state(project.state_url)
        with state.connect() as c:
            recs = [tuple(r) for r in c.execute(select(
                sync_records.c.object, sync_records.c.erp_key, sync_records.c.base, sync_records.c.erp_hash,
                sync_records.c.status).order_by(sync_records.c.object, sync_records.c.erp_key))]
        state.dispose()
        sf.close()
        return summaries, org, recs, full_rows
    finally:
        erp.dispose()
        handle.stop()


def test_skipping_known_versions_gives_what_reading_them_gives(tmp_path, kit, monkeypatch):
    steps = [None, edit_new_and_late, None, edit_same_stamp_recent, drop_row]
    old = _scenario(tmp_path / "old", kit, monkeypatch, False, steps)
    new = _scenario(tmp_path / "new", kit, monkeypatch, True, steps)
    assert new[0] == old[0]  # per run and object: rows read, written, unchanged, deleted, each outcome
    assert new[1] == old[1]  # the org's records
    assert new[2] == old[2]  # baselines, content hashes and statuses in the state
    inv = [s["inventory"] for s in new[0]]
    assert inv[1]["written"] == 3 and inv[1]["records"]["synced"] == 3  # now, the late row, the moved one
    assert new[0][1]["products"]["written"] == 1  # the product committed late at its window's instant
    assert inv[3]["written"] == 1 and inv[4]["deleted"] == 1  # the same-stamp change, the deleted row
    # run 2 read in full only the rows new or changed (3 inventory, 1 product); before, the whole window
    assert new[3][1] == 4 and old[3][1] == 61 + 1 + 1 + ITEMS + 1, (old[3], new[3])
    # run 3: the 31 products are known versions; the inventory row changed now is too recent to be
    assert new[3][2] == 1 and old[3][2] == 1 + ITEMS + 1, (old[3], new[3])


def test_a_memory_written_for_another_watermark_is_not_used(tmp_path, kit, monkeypatch):
    """A run killed after moving the watermark but before storing its memory: the next run reads the
    window in full and compares it by content hash, as before."""
    summaries, _, _, full_rows = _scenario(tmp_path, kit, monkeypatch, True, [None, None, other_watermark, None])
    assert full_rows[1] == 0  # nothing changed: the window's versions were all known
    assert full_rows[2] >= 60 + ITEMS  # memory ignored: the window read in full again
    assert full_rows[3] == 0  # ... and stored again for the watermark it belongs to
    assert all(s[n]["written"] == 0 for s in summaries[1:] for n in s)
