"""Bulk ledger and load-map writes (COPY on PostgreSQL, one executemany on SQLite, SQLAlchemy on MariaDB)
read back exactly as written, in one transaction per batch."""

from __future__ import annotations

import pytest


def test_finish_batch_writes_every_row_once(any_db_url):
    from crmbridge.migrations import ledger as L
    from crmbridge.state import open_state

    engine = open_state(any_db_url)
    L.journal_intent(engine, run_id="r1", step="Account", batch_no=0, sobject="Account", operation="upsert",
                     external_id_field="Legacy_Id__c", keys=["C1", "C2", "C3"])
    ledger_rows = [dict(row_id=f"sales:{i}", object="Account", source_key=f"C{i}", external_id=f"C{i}",
                        sf_id=f"001000000000{i:03d}AAA" if i != 3 else None, action="created" if i != 3 else "failed",
                        error_code=None if i != 3 else "REQUIRED_FIELD_MISSING",
                        message=None if i != 3 else "必填字段缺失: [Name]", content_hash="h" * 64, batch_no=0)
                   for i in (1, 2, 3)]
    map_rows = [dict(object="Account", external_id=f"C{i}", external_id_field="Legacy_Id__c",
                     sf_id=f"001000000000{i:03d}AAA", content_hash="h" * 64, source_key=f"C{i}", last_run_id="r1",
                     created_run_id="r1") for i in (1, 2)]
    L.finish_batch(engine, run_id="r1", step="Account", batch_no=0, ledger_rows=ledger_rows, map_rows=map_rows,
                   known=set())
    led = L.ledger_frame(engine, "r1", "Account").sort_values("row_id")
    assert list(led["action"]) == ["created", "created", "failed"]
    assert led.iloc[2]["message"] == "必填字段缺失: [Name]" and led.iloc[2]["sf_id"] is None
    assert led["recorded_at"].notna().all() and set(led["run_id"]) == {"r1"}
    assert L.map_for(engine, "Account") == {"C1": ("001000000000001AAA", "h" * 64),
                                            "C2": ("001000000000002AAA", "h" * 64)}
    assert [e.status for e in L.journal_entries(engine, "r1")] == ["done"]
    # a second write of the same source row is a bug the primary key surfaces; nothing is half-written
    L.journal_intent(engine, run_id="r1", step="Account", batch_no=1, sobject="Account", operation="upsert",
                     external_id_field="Legacy_Id__c", keys=["C1"])
    with pytest.raises(Exception):
        L.finish_batch(engine, run_id="r1", step="Account", batch_no=1, ledger_rows=ledger_rows[:1],
                       map_rows=map_rows[:1], known={"C1"})
    assert len(L.ledger_frame(engine, "r1", "Account")) == 3
    assert [e.status for e in L.journal_entries(engine, "r1")] == ["done", "intent"]


def test_quarantine_ledger_rows_written_in_bulk_read_back_as_listed(any_db_url, tmp_path):
    """``record_quarantine`` writes in one bulk insert exactly the rows ``quarantined_rows`` lists, and
    replaces them when the load starts again."""
    import pandas as pd

    from crmbridge.csvout import write_frame
    from crmbridge.migrations import ledger as L
    from crmbridge.migrations.quarantine import quarantined_rows, record_quarantine
    from crmbridge.state import open_state

    run_dir = tmp_path / "run"
    write_frame(pd.DataFrame({"_row_id": ["sales:3", "sales:9"], "_source_key": ["C3", ""],
                              "_reasons": ["phone: 号码无效", "=1+1 looks like a formula"]}),
                run_dir / "validate" / "quarantine" / "customers.csv")
    write_frame(pd.DataFrame({"_row_id": ["sales:5"], "_source_key": ["C5"], "_reasons": ["filtered: inactive"]}),
                run_dir / "map" / "quarantine" / "Account.csv")
    plan = [{"entity": "customers", "step": "Account", "object": "Account"}]
    engine = open_state(any_db_url)
    assert record_quarantine(engine, "r1", run_dir, plan) == 3
    assert record_quarantine(engine, "r1", run_dir, plan) == 3  # an interrupted load rewrites them
    cols = ["step", "row_id", "object", "source_key", "external_id", "sf_id", "action", "error_code", "message",
            "content_hash", "batch_no"]
    led = L.ledger_frame(engine, "r1", None, cols).sort_values("row_id").reset_index(drop=True)
    want = pd.DataFrame(quarantined_rows(run_dir, plan), columns=cols).sort_values("row_id").reset_index(drop=True)
    assert led.astype(object).where(led.notna(), None).to_dict("records") == \
        want.astype(object).where(want.notna(), None).to_dict("records")
    assert list(led["error_code"]) == ["validate", "filtered", "validate"]
