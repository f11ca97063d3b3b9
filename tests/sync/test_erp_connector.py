"""The ERP side through SQLAlchemy, on SQLite, PostgreSQL and MariaDB, with the reference ERP."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, select

from crmbridge.connectors.erp import ErpConnector, watermark_param, watermark_value
from crmbridge.errors import UsageError
from crmbridge.sync.reference_erp import create_reference_erp, customers, inventory


def test_reference_erp_lines_up_with_legacy_customers(any_db_url):
    import pandas as pd

    legacy = pd.DataFrame({"customer_no": ["C000123", "Ｃ000124", " C000123 "],
                           "name": ["上海明远贸易有限公司", "Acme Industrial Ltd.", "dup"],
                           "credit_code": ["91310000MA1FL2XQ3A", None, None]})
    out = create_reference_erp(any_db_url, customers=legacy, items=5)
    assert out["tables"]["customers"] == 2  # full-width and padded numbers are the same customer
    assert out["tables"]["inventory"] == 15 and out["tables"]["items"] == 5
    eng = create_engine(any_db_url)
    with eng.connect() as c:
        rows = {r.customer_no: r for r in c.execute(select(customers))}
    assert set(rows) == {"C000123", "C000124"}
    assert rows["C000123"].credit_code == "91310000MA1FL2XQ3A" and rows["C000123"].customer_code == "K0000001"
    with pytest.raises(UsageError, match="already has"):
        create_reference_erp(any_db_url, items=1)
    eng.dispose()


def test_reads_by_watermark_and_writes_in_one_transaction(any_db_url):
    create_reference_erp(any_db_url, items=10)
    erp = ErpConnector(any_db_url)
    src = erp.source(table="inventory")
    cols = ["item_code", "warehouse", "on_hand", "updated_at"]
    everything = [r for b in erp.read(src, cols, batch=7) for r in b]
    assert len(everything) == 30
    top = max(r["updated_at"] for r in everything)
    stored = watermark_value(top)
    since = [r for b in erp.read(src, cols, since_column="updated_at", since=watermark_param(stored)) for r in b]
    assert [r["updated_at"] for r in since] == [top]
    table = erp.table("inventory")
    with erp.begin() as conn:
        n = erp.update_rows(conn, table, ["item_code", "warehouse"],
                            [(("ITEM0000000", "WH-SH"), {"on_hand": 42})], touch="updated_at")
    assert n == 1
    row = erp.read_by_keys(src, cols, ["item_code", "warehouse"], [("ITEM0000000", "WH-SH")])[0]
    assert row["on_hand"] == 42 and row["updated_at"] > top  # the change column moved: other readers see it
    with pytest.raises(Exception):
        with erp.begin() as conn:
            erp.update_rows(conn, table, ["item_code", "warehouse"], [(("ITEM0000001", "WH-BJ"), {"on_hand": 7})])
            erp.insert_rows(conn, table, [{"item_code": "ITEM0000000", "warehouse": "WH-SH", "on_hand": 1,
                                           "reserved": 0, "available": 1, "updated_at": datetime(2026, 1, 1)}])
    row = erp.read_by_keys(src, cols, ["item_code", "warehouse"], [("ITEM0000001", "WH-BJ")])[0]
    assert row["on_hand"] != 7  # the failed batch left nothing behind
    erp.close()


def test_next_keys_follow_the_highest_existing(any_db_url):
    create_reference_erp(any_db_url, items=1)
    erp = ErpConnector(any_db_url)
    with erp.begin() as conn:
        keys = erp.next_keys(conn, erp.table("customers"), "customer_code", "K{n:07d}", 2)
    assert keys == ["K0000041", "K0000042"]
    erp.close()


def test_query_source_and_unknown_names(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, items=2)
    erp = ErpConnector(url)
    q = erp.source(query="SELECT customer_code, credit_limit * 2 AS doubled FROM customers")
    rows = [r for b in erp.read(q, ["customer_code", "doubled"]) for r in b]
    assert len(rows) == 40
    with pytest.raises(UsageError, match="no table 'custmers'"):
        erp.table("custmers")
    with pytest.raises(UsageError, match="no column 'nme'"):
        erp.check_columns(erp.table("customers"), ["nme"], "sync.yml object customers")
    with pytest.raises(UsageError, match="does not run"):
        erp.source(query="SELECT nope FROM customers")
    erp.close()
