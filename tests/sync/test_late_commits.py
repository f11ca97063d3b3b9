"""ERP changes committed long after their updated_at are not missed (issue 13 point 10).

A transaction stamps a row with PostgreSQL's ``now()`` (its start) and commits after a sync has moved
the watermark past that time, by more than the overlap window. The sync keeps its watermark at the
start of the oldest open ERP transaction, reads with the overlap window, and deduplicates re-read rows
by content hash, so the late row is synced and the re-read ones are not written again.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, func, update

from crmbridge.config import load_project
from crmbridge.sync.reference_erp import create_reference_erp, inventory



@pytest.fixture(params=["postgresql", "mariadb"])
def erp_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


def _on_hand(sf, key):
    return list(sf.query(f"SELECT On_Hand__c FROM Inventory__c WHERE ERP_Key__c = '{key}'"))[0]["On_Hand__c"]


def test_a_row_committed_after_the_watermark_moved_is_synced(tmp_path, erp_url, fresh_sandbox, kit):
    create_reference_erp(erp_url, items=2)
    root = kit.make_project(tmp_path / "p", erp_url, fresh_sandbox, sync_yml=kit.stock_yml(overlap_seconds=1))
    project = load_project(root)
    sf = kit.connector(project)
    r1 = kit.run(project, sf)
    assert r1.objects["inventory"]["written"] == 6, (r1.failed_objects, r1.objects["inventory"]["error_samples"])
    eng = create_engine(erp_url)
    slow = eng.connect()
    slow_tx = slow.begin()  # a long ERP transaction: its row is stamped now, visible only at commit
    slow.execute(update(inventory).where(inventory.c.item_code == "ITEM0000000", inventory.c.warehouse == "WH-SH")
                 .values(on_hand=4321, updated_at=func.now()))
    time.sleep(3.2)
    with eng.begin() as c:  # a quick one, committed meanwhile, 3 s newer
        c.execute(update(inventory).where(inventory.c.item_code == "ITEM0000001", inventory.c.warehouse == "WH-BJ")
                  .values(on_hand=555, updated_at=func.now()))
    r2 = kit.run(project, sf)
    assert r2.objects["inventory"]["written"] == 1 and _on_hand(sf, "ITEM0000001|WH-BJ") == 555, r2.as_dict()
    slow_tx.commit()  # more than the 1 s overlap after the synced row's timestamp
    slow.close()
    r3 = kit.run(project, sf)
    assert _on_hand(sf, "ITEM0000000|WH-SH") == 4321, r3.as_dict()
    inv = r3.objects["inventory"]
    assert inv["written"] == 1, inv  # the re-read quick row is recognised by its content hash
    assert inv["records"]["unchanged"] >= 1 and sum(inv["records"].values()) == inv["read_erp"] + inv["deleted"]
    assert kit.run(project, sf).totals["written"] == 0
    eng.dispose()


def test_a_change_postponed_by_the_direction_is_not_deduplicated_away(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=2)
    root = kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=kit.stock_yml(overlap_seconds=1))
    project = load_project(root)
    sf = kit.connector(project)
    assert kit.run(project, sf).status == "succeeded"
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(update(inventory).where(inventory.c.item_code == "ITEM0000001", inventory.c.warehouse == "WH-SZ")
                  .values(on_hand=77, updated_at=func.current_timestamp()))
    r = kit.run(project, sf, direction="to-erp")  # reads the row, may not write it to Salesforce
    assert r.objects["inventory"]["written"] == 0 and _on_hand(sf, "ITEM0000001|WH-SZ") != 77
    r = kit.run(project, sf)  # re-read: same content as last time, but never synced, so not skipped
    assert r.objects["inventory"]["written"] == 1 and _on_hand(sf, "ITEM0000001|WH-SZ") == 77, r.as_dict()
    assert kit.run(project, sf).totals["written"] == 0
    eng.dispose()
