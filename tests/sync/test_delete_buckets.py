"""Delete detection reads only the key buckets whose counts differ (issue 14), on SQLite, PostgreSQL, MariaDB.

Also: a row the change column never showed (inserted with an old timestamp) is found by the same check
and synced, instead of being missed forever.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import create_engine, delete, insert

from crmbridge.config import load_project
from crmbridge.sync.reference_erp import create_reference_erp, inventory, items



def test_only_differing_buckets_are_read(tmp_path, any_db_url, fresh_sandbox, kit):
    create_reference_erp(any_db_url, items=40)  # 120 inventory rows, 40 buckets (last 3 characters of item_code)
    project = load_project(kit.make_project(tmp_path / "p", any_db_url, fresh_sandbox, sync_yml=kit.stock_yml()))
    sf = kit.connector(project)
    r1 = kit.run(project, sf)
    assert r1.objects["inventory"]["written"] == 120, r1.as_dict()
    r2 = kit.run(project, sf)
    check = r2.objects["inventory"]["delete_check"]
    assert check == {"mode": "buckets", "buckets": 40, "buckets_read": 0, "keys_read": 0}, check
    eng = create_engine(any_db_url)
    old = datetime(2020, 1, 1)  # behind every watermark: the change column never shows these rows
    with eng.begin() as c:
        c.execute(delete(inventory).where(inventory.c.item_code == "ITEM0000007", inventory.c.warehouse == "WH-BJ"))
        c.execute(insert(items).values(item_code="ITEM0000099", item_name="Late item", family="Hardware",
                                       unit="Each", active=True, updated_at=old))
        c.execute(insert(inventory).values(item_code="ITEM0000099", warehouse="WH-SH", on_hand=Decimal(5),
                                           reserved=Decimal(0), available=Decimal(5), updated_at=old))
    r3 = kit.run(project, sf)
    inv, prod = r3.objects["inventory"], r3.objects["products"]
    assert r3.status == "succeeded", r3.as_dict()
    assert inv["delete_check"] == {"mode": "buckets", "buckets": 41, "buckets_read": 2, "keys_read": 3,
                                   "unseen_rows": 1}, inv["delete_check"]
    assert inv["deleted"] == 1 and prod["delete_check"]["unseen_rows"] == 1
    gone = list(sf.query("SELECT Is_Active__c FROM Inventory__c WHERE ERP_Key__c = 'ITEM0000007|WH-BJ'"))[0]
    assert gone["Is_Active__c"] is False
    late = list(sf.query("SELECT On_Hand__c FROM Inventory__c WHERE ERP_Key__c = 'ITEM0000099|WH-SH'"))
    assert late and late[0]["On_Hand__c"] == 5
    assert sum(inv["records"].values()) == inv["read_erp"] + inv["deleted"]
    r4 = kit.run(project, sf)
    assert r4.totals["written"] == 0 and r4.objects["inventory"]["delete_check"]["buckets_read"] == 0, r4.as_dict()
    eng.dispose()
