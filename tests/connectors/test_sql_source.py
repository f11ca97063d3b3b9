"""SQL sources against real SQLite, PostgreSQL and MariaDB databases (shared fixtures)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import MetaData, Table, create_engine, text

from crmbridge.config import SqlSource
from crmbridge.connectors.sql import decode_watermark, encode_watermark, read_sql, to_text
from crmbridge.errors import UsageError


def sq(**kw) -> SqlSource:
    base = dict(type="sql", name="crm", entity="contacts", url="sqlite://", key=["contact_no"])
    base.update(kw)
    return SqlSource(**base)


def seed(url: str, rows: list[tuple]) -> None:
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS contacts (contact_no VARCHAR(20) PRIMARY KEY, "
                       "full_name VARCHAR(100), balance NUMERIC(12,2), updated_at TIMESTAMP NULL)"))
        table = Table("contacts", MetaData(), autoload_with=c)  # typed binds: SQLite has no Decimal
        for r in rows:
            c.execute(table.insert().values(dict(zip(["contact_no", "full_name", "balance", "updated_at"], r))))
    eng.dispose()


def consume(read):
    return [(line, cells) for line, cells, bad in read.events if bad is None]


def test_table_incremental_by_watermark(any_db_url):
    seed(any_db_url, [("P1", "欧阳娜娜", Decimal("1234.50"), datetime(2024, 1, 1, 8, 0)),
                      ("P2", "John Smith", None, datetime(2024, 1, 2, 8, 0)),
                      ("P3", "", Decimal("0.00"), None)])
    src = sq(url=any_db_url, table="contacts", incremental={"column": "updated_at"},
             columns={"full_name": "name"})
    read = read_sql(src, any_db_url, chunk_rows=2)
    rows = sorted(consume(read), key=lambda r: r[1][0])
    assert read.columns == ["contact_no", "name", "balance", "updated_at"]
    assert [r[1] for r in rows] == [["P1", "欧阳娜娜", "1234.50", "2024-01-01T08:00:00"],
                                    ["P2", "John Smith", None, "2024-01-02T08:00:00"],
                                    ["P3", None, "0.00", None]]
    assert sorted(r[0] for r in rows) == [1, 2, 3]
    assert read.watermark["from"] is None and read.watermark["to"] == "2024-01-02T08:00:00"
    stored = read.watermark["stored"]

    seed(any_db_url, [("P4", "司马光", Decimal("5"), datetime(2024, 1, 3, 8, 0))])
    again = read_sql(src, any_db_url, chunk_rows=2, watermark=stored)
    assert [r[1][0] for r in consume(again)] == ["P4"]
    assert again.watermark == {"column": "updated_at", "from": "2024-01-02T08:00:00",
                               "to": "2024-01-03T08:00:00", "stored": again.watermark["stored"]}

    nothing = read_sql(src, any_db_url, chunk_rows=2, watermark=again.watermark["stored"])
    assert consume(nothing) == [] and nothing.watermark["stored"] is None


def test_query_incremental(any_db_url):
    seed(any_db_url, [("P1", "甲", None, datetime(2024, 1, 1)), ("P2", "乙", None, datetime(2024, 2, 1))])
    src = sq(url=any_db_url, query="SELECT contact_no, full_name, updated_at FROM contacts WHERE contact_no <> 'X'",
             incremental={"column": "updated_at"})
    wm = encode_watermark(datetime(2024, 1, 15))
    read = read_sql(src, any_db_url, chunk_rows=100, watermark=wm)
    assert [c[:2] for _, c in consume(read)] == [["P2", "乙"]]


def test_missing_table_and_column_are_named(any_db_url):
    seed(any_db_url, [])
    with pytest.raises(UsageError, match=r"table 'kontakte' not found .*tables there: contacts"):
        read_sql(sq(url=any_db_url, table="kontakte"), any_db_url, chunk_rows=10)
    with pytest.raises(UsageError, match="incremental column 'changed' not in table 'contacts'"):
        read_sql(sq(url=any_db_url, table="contacts", incremental={"column": "changed"}), any_db_url, chunk_rows=10)
    with pytest.raises(UsageError, match="the query failed"):
        read_sql(sq(url=any_db_url, query="SELECT nope FROM contacts"), any_db_url, chunk_rows=10)
    with pytest.raises(UsageError, match="key column.*contact_id"):
        read_sql(sq(url=any_db_url, table="contacts", key=["contact_id"]), any_db_url, chunk_rows=10)


def test_value_text_and_watermark_round_trip():
    assert to_text(Decimal("1E+3")) == "1000" and to_text(b"\x00\xff") == "00ff" and to_text("") is None
    for v in [datetime(2024, 1, 2, 3, 4, 5), 42, Decimal("1.50"), "abc"]:
        assert decode_watermark(encode_watermark(v)) == v
