"""A sync run keeps the objects alive before it out of the collector's full passes, and only for the run."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import create_engine, func, update

from crmbridge.config import load_project
from crmbridge.gcscope import frozen as gc_frozen
from crmbridge.sync.reference_erp import create_reference_erp, inventory


def test_objects_alive_before_are_frozen_for_the_run_only():
    before = [object() for _ in range(3)]  # noqa: F841 - alive while the block runs
    assert gc.get_freeze_count() == 0
    with gc_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with gc_frozen():
            raise RuntimeError("a failed run")
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_caller_that_froze_or_disabled_the_collector_is_left_alone():
    gc.freeze()
    try:
        with gc_frozen():
            inside = gc.get_freeze_count()
        # theirs stays frozen: gc_frozen neither froze more nor unfroze (which would empty the permanent
        # generation). The count is not compared for equality: frozen objects freed by reference counting
        # while the block runs leave it, in a large process (the whole suite) even in an empty block.
        assert 0 < gc.get_freeze_count() <= inside
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with gc_frozen():
            assert gc.get_freeze_count() == 0
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_real_run_frees_what_it_froze_and_syncs_as_before(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=5)
    project = load_project(kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=kit.stock_yml()))
    sf = kit.connector(project)
    first = kit.run(project, sf)
    assert first.status == "succeeded" and first.objects["inventory"]["written"] == 15, first.as_dict()
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(update(inventory).where(inventory.c.item_code == "ITEM0000001")
                  .values(on_hand=inventory.c.on_hand + 1, available=inventory.c.available + 1,
                          updated_at=func.current_timestamp()))
    eng.dispose()
    again = kit.run(project, sf)
    assert again.status == "succeeded" and again.objects["inventory"]["written"] == 3, again.as_dict()
    assert gc.get_freeze_count() == 0
    on_hand = {r["ERP_Key__c"]: r["On_Hand__c"] for r in sf.query(
        "SELECT ERP_Key__c, On_Hand__c FROM Inventory__c WHERE ERP_Key__c LIKE 'ITEM0000001|%'")}
    eng = create_engine(url)
    with eng.connect() as c:
        erp = {f"{r.item_code}|{r.warehouse}": float(r.on_hand) for r in c.execute(
            inventory.select().where(inventory.c.item_code == "ITEM0000001"))}
    eng.dispose()
    assert on_hand == erp and len(erp) == 3
