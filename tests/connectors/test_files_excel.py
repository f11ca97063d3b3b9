"""Excel (.xlsx) sources: a real workbook written with openpyxl, read back through the connector."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from crmbridge.config import ExcelSource
from crmbridge.connectors.files import read_excel
from crmbridge.errors import UsageError


def xl(**kw) -> ExcelSource:
    base = dict(type="excel", name="fin", entity="customers", path="fin.xlsx")
    base.update(kw)
    return ExcelSource(**base)


@pytest.fixture
def workbook(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "说明"
    wb.active["A1"] = "finance export, do not edit"
    ws = wb.create_sheet("客户")
    ws.append(["\ufeff客户编号 ", "客户名称", "创建日期", "邮编", "年营业额", "发票数", "更新时间", "活跃"])
    ws.append(["C000001", "上海明远贸易有限公司", 44931, 200120, 1234500.0, 3, datetime(2023, 1, 5, 9, 30), True])
    ws.append([None, None, None, None, None, None, None, None])  # an empty row in the middle
    ws.append(["C000002", "<b>Evil</b> Corp", date(2023, 2, 1), 12345, 0.1 + 0.2, None, None, False])
    ws.append(["C000003", "", "2023年1月5日", "２００１２０", -12.5, 0, None, None, "stray"])
    ws["D4"].number_format = "000000"  # a postal code stored as a number shows its leading zero
    p = tmp_path / "fin.xlsx"
    wb.save(p)
    return p


def consume(read):
    kept, rejected = [], []
    for line, cells, bad in read.events:
        (kept if bad is None else rejected).append((line, cells if bad is None else bad))
    return kept, rejected


def test_sheet_by_name_with_serial_dates(workbook):
    read = read_excel(xl(sheet="客户", date_columns=["created_on"], key=["customer_no"],
                         columns={"客户编号": "customer_no", "创建日期": "created_on"}), workbook, "fin.xlsx")
    assert read.columns == ["customer_no", "客户名称", "created_on", "邮编", "年营业额", "发票数", "更新时间", "活跃"]
    kept, rejected = consume(read)
    assert kept == [
        (2, ["C000001", "上海明远贸易有限公司", "2023-01-05", "200120", "1234500", "3", "2023-01-05T09:30:00", "TRUE"]),
        (4, ["C000002", "<b>Evil</b> Corp", "2023-02-01", "012345", "0.3", None, None, "FALSE"]),
    ]
    assert rejected == [(5, ("too_many_fields (a value right of the last header column)",
                              '["C000003", null, "2023年1月5日", "２００１２０", "-12.5", "0", null, null, "stray"]'))]
    assert read.skipped_blank == 1
    assert len(read.sha256) == 64


def test_date_columns_by_legacy_header(workbook):
    read = read_excel(xl(sheet="客户", date_columns=["创建日期"], columns={"创建日期": "created_on"}),
                      workbook, "fin.xlsx")
    assert consume(read)[0][0][1][2] == "2023-01-05"


def test_sheet_by_index_and_header_row(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["report title"])
    ws.append(["id", "amount"])
    ws.append(["A1", 10])
    p = tmp_path / "x.xlsx"
    wb.save(p)
    kept, _ = consume(read_excel(xl(sheet=0, header_row=2), p, "x.xlsx"))
    assert kept == [(3, ["A1", "10"])]


def test_missing_sheet_names_the_sheets(workbook):
    with pytest.raises(UsageError, match=r"sheet 'Customers' not found in fin.xlsx; its sheets are '说明', '客户'"):
        read_excel(xl(sheet="Customers"), workbook, "fin.xlsx")
    with pytest.raises(UsageError, match="sheet 5 not found"):
        read_excel(xl(sheet=5), workbook, "fin.xlsx")


def test_unknown_date_column_and_missing_file(workbook, tmp_path):
    with pytest.raises(UsageError, match="date_columns signed_on not in the columns"):
        read_excel(xl(sheet="客户", date_columns=["signed_on"]), workbook, "fin.xlsx")
    with pytest.raises(UsageError, match="file nope.xlsx not found"):
        read_excel(xl(), tmp_path / "nope.xlsx", "nope.xlsx")


def test_old_xls_and_broken_files_are_usage_errors(tmp_path):
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0 not really")
    with pytest.raises(UsageError, match="save it as .xlsx"):
        read_excel(xl(), tmp_path / "old.xls", "old.xls")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UsageError, match="cannot open broken.xlsx as a workbook"):
        read_excel(xl(), tmp_path / "broken.xlsx", "broken.xlsx")
