"""Delete detection reads only the key buckets whose counts differ (issue 14), on SQLite, PostgreSQL, MariaDB.

Also: a row the change column never showed (inserted with an old timestamp) is found by the same check
and synced, instead of being missed forever.
"""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, delete, insert, select

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


def _recount(state, obj: str) -> dict[str, int]:
    from crmbridge.sync import store

    return {str(b): n for b, n in store.bucket_counts(state, obj, 3, obj == "inventory").items() if n}


def test_the_state_keeps_its_bucket_counts_as_rows_come_and_go(tmp_path, fresh_sandbox, kit):
    """The known-key counts are kept by save_records (no GROUP BY over the state per run) and always equal
    a recount; counts that no longer match the table (rows deleted by hand to start over) are rebuilt,
    and a bucket whose count drifted is read once and healed."""
    from crmbridge.state import open_state
    from crmbridge.sync.deletes import WIDTH
    from crmbridge.sync.store import Bucketing, known_bucket_counts, sync_key_buckets, sync_records

    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=40)
    project = load_project(kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=kit.stock_yml()))
    sf = kit.connector(project)
    state = open_state(project.state_url)
    inv_b = Bucketing(str, True, WIDTH)
    assert kit.run(project, sf).status == "succeeded"
    assert known_bucket_counts(state, "inventory", inv_b) == _recount(state, "inventory")
    eng = create_engine(url)
    now = datetime.now()
    with eng.begin() as c:  # one row gone, one new row (seen by the change column), one row gone and back
        c.execute(delete(inventory).where(inventory.c.item_code == "ITEM0000003", inventory.c.warehouse == "WH-SH"))
        c.execute(delete(inventory).where(inventory.c.item_code == "ITEM0000005", inventory.c.warehouse == "WH-BJ"))
        c.execute(insert(inventory).values(item_code="ITEM0000011", warehouse="WH-XA", on_hand=Decimal(3),
                                           reserved=Decimal(0), available=Decimal(3), updated_at=now))
    r = kit.run(project, sf)
    assert r.objects["inventory"]["deleted"] == 2 and r.status == "succeeded", r.as_dict()
    assert known_bucket_counts(state, "inventory", inv_b) == _recount(state, "inventory")
    with eng.begin() as c:
        c.execute(insert(inventory).values(item_code="ITEM0000005", warehouse="WH-BJ", on_hand=Decimal(8),
                                           reserved=Decimal(0), available=Decimal(8), updated_at=datetime.now()))
    r = kit.run(project, sf)
    assert r.objects["inventory"]["written"] == 1 and r.objects["inventory"]["delete_check"]["buckets_read"] == 0
    assert known_bucket_counts(state, "inventory", inv_b) == _recount(state, "inventory")
    back = list(sf.query("SELECT Is_Active__c FROM Inventory__c WHERE ERP_Key__c = 'ITEM0000005|WH-BJ'"))[0]
    assert back["Is_Active__c"] is True

    # a bucket count that drifted: the bucket is read key by key once, nothing is deleted, the count heals
    with state.begin() as c:
        c.execute(sync_key_buckets.update().where(sync_key_buckets.c.object == "inventory",
                                                  sync_key_buckets.c.bucket == "007").values(n=sync_key_buckets.c.n + 1))
        c.execute(sync_key_buckets.update().where(sync_key_buckets.c.object == "inventory",
                                                  sync_key_buckets.c.bucket == "008").values(n=sync_key_buckets.c.n - 1))
    r = kit.run(project, sf)
    check = r.objects["inventory"]["delete_check"]
    assert check["buckets_read"] == 2 and r.totals["written"] == 0 and r.totals["deleted"] == 0, r.as_dict()
    assert known_bucket_counts(state, "inventory", inv_b) == _recount(state, "inventory")
    assert kit.run(project, sf).objects["inventory"]["delete_check"]["buckets_read"] == 0

    # starting an object over by hand (docs/sync.md): the counts no longer add up and are rebuilt
    with state.begin() as c:
        c.execute(delete(sync_records).where(sync_records.c.object == "inventory"))
    assert known_bucket_counts(state, "inventory", inv_b) is None
    from crmbridge.state import watermarks

    with state.begin() as c:
        c.execute(delete(watermarks).where(watermarks.c.scope.like("sync:inventory:%")))
    with eng.begin() as c:
        c.execute(delete(inventory).where(inventory.c.item_code == "ITEM0000009", inventory.c.warehouse == "WH-SH"))
    r = kit.run(project, sf)
    assert r.status == "succeeded" and r.objects["inventory"]["read_erp"] == 119, r.as_dict()
    assert known_bucket_counts(state, "inventory", inv_b) == _recount(state, "inventory")
    assert sum(_recount(state, "inventory").values()) == 119
    assert kit.run(project, sf).totals["written"] == 0
    eng.dispose()


def test_save_records_copes_with_a_wrong_picture_of_the_table(tmp_path):
    """``old`` says what the caller loaded; if a row it calls known is missing, it is inserted instead."""
    from sqlalchemy import select

    from crmbridge.state import open_state
    from crmbridge.sync import store
    from crmbridge.sync.store import Bucketing, Record, sync_records

    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    store.ensure_indexes(state)
    b = Bucketing(str, False, 3)
    with state.begin() as c:
        store.save_records(c, "things", [Record("K001", "a0" * 9, {"Name": "x"}, "h1", "ok")], b)
    store.set_bucket_counts(state, "things", b, {"001": 1}, replace_all=True)
    ghost = Record("K002", None, {}, None, "pending")
    with state.begin() as c:
        store.save_records(c, "things", [Record("K001", "a0" * 9, {"Name": "y"}, "h2", "ok"),
                                         Record("K002", None, {"Name": "z"}, "h3", "pending")], b,
                           old={"K001": Record("K001", "a0" * 9, {}, "h1", "ok"), "K002": ghost})
    with state.connect() as c:
        rows = {r.erp_key: (r.base, r.erp_hash, r.status) for r in c.execute(select(sync_records))}
    assert rows == {"K001": ({"Name": "y"}, "h2", "ok"), "K002": ({"Name": "z"}, "h3", "pending")}
    assert store.known_bucket_counts(state, "things", b) == {"001": 1, "002": 1}


@pytest.mark.parametrize("collation", [None, "NOCASE"])
def test_composite_key_buckets_counted_per_value_first_are_the_same_counts(tmp_path, collation):
    """SQLite counts the rows of a composite key per first-column value, then sums per bucket
    (``repeats=True``, no sort of every row): the counts must be those of the one-step GROUP BY and of
    Python's ``bucket_of``, value by value, also for keys that a collation would take for one value
    (case, trailing blanks), empty, whitespace-only, full-width, CJK, emoji, and negative integers."""
    from collections import Counter

    from sqlalchemy import Column, Integer, MetaData, String, Table

    from crmbridge.connectors.erp import ErpConnector
    from crmbridge.sync.deletes import WIDTH, bucket_of

    rng = random.Random(14)
    alphabet = ["a", "A", "b", "B", " ", "\t", "0", "9", "Ｃ", "０", "上", "海", "😀", "👍🏽", "-", "|"]
    fixed = ["", " ", "   ", "ab", "Ab", "ab ", "xab", "xab ", "XAB", "上海明远", "Ｃ000124", "C000124", "😀😀😀😀"]
    texts = fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7))) for _ in range(400)]
    ints = [0, 1, -1, 999, -999, 1000, -1000, 10 ** 12 + 7, -(10 ** 12) - 7] + \
        [rng.randint(-10 ** 6, 10 ** 6) for _ in range(400)]
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    md = MetaData()
    text_t = Table("t_text", md, Column("a", String(40, collation=collation), primary_key=True),
                   Column("b", Integer, primary_key=True))
    int_t = Table("t_int", md, Column("a", Integer, primary_key=True), Column("b", Integer, primary_key=True))
    eng = create_engine(url)
    md.create_all(eng)
    text_rows = {}
    for a in texts:  # several rows per value, each first-column value under its own b (NOCASE-unique)
        for _ in range(rng.randint(1, 4)):
            text_rows.setdefault((a.casefold() if collation else a, len(text_rows)), a)
    with eng.begin() as c:
        c.execute(insert(text_t), [{"a": a, "b": b} for (_, b), a in text_rows.items()])
        c.execute(insert(int_t), [{"a": a, "b": b} for a in ints for b in range(rng.randint(1, 3))])
        int_values = [a for (a,) in c.execute(select(int_t.c.a))]
    erp = ErpConnector(url)
    for name, kind, values in (("t_text", str, list(text_rows.values())),
                               ("t_int", int, int_values)):
        src = erp.source(table=name)
        two_step = erp.bucket_counts(src, "a", WIDTH, repeats=True)
        one_step = erp.bucket_counts(src, "a", WIDTH)
        python = Counter(bucket_of(str(v), kind, False) for v in values)
        assert two_step == one_step == dict(python), name
        assert sum(two_step.values()) == len(values) > 400
    erp.close()
    eng.dispose()
