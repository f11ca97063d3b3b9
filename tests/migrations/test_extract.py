"""The extract stage end to end: a project with CSV, Excel and SQL sources extracted into a run."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from crmbridge.cli import cli
from crmbridge.config import load_project
from crmbridge.errors import UsageError
from crmbridge.migrations.extract import ExtractResult, run_extract
from crmbridge.migrations.extracted import iter_entity_batches, list_entities, load_manifest, read_entity
from crmbridge.migrations.runs import stage_status
from crmbridge.state import get_watermark, open_state

CASES = Path(__file__).parent.parent / "data" / "extract"

CONFIG = """
name: t
chunk_rows: 100
sources:
  - name: sales_customers
    entity: customers
    department: sales
    type: csv
    path: data/sales.csv
    key: customer_no
    columns: {客户编号: customer_no, 客户名称: name, 城市: city, 电话: phone}
  - name: service_customers
    entity: customers
    department: service
    type: csv
    path: data/service.csv
    key: customer_no
    columns: {客户编号: customer_no, 客户名称: name}
  - name: finance_customers
    entity: customers
    department: finance
    type: excel
    path: data/finance.xlsx
    sheet: 客户
    date_columns: [created_on]
    key: customer_no
  - name: crm_contacts
    entity: contacts
    department: sales
    type: sql
    url: {db_url}
    table: contacts
    key: [contact_no]
    incremental: {{column: updated_at}}
"""


def make_project(root: Path, db_url: str) -> None:
    import openpyxl

    (root / "data").mkdir(parents=True)
    (root / "crmbridge.yml").write_text(CONFIG.replace("{db_url}", db_url).replace("{{", "{").replace("}}", "}"),
                                        "utf-8")
    shutil.copy(CASES / "csv__utf8_bom_crlf.csv", root / "data" / "sales.csv")
    shutil.copy(CASES / "csv__trailing_delimiters.csv", root / "data" / "service.csv")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "客户"
    ws.append(["customer_no", "name", "created_on", "invoice_count"])
    ws.append(["C000001", "上海明远贸易有限公司", 44931, 3])
    ws.append(["C000009", "  Acme Industrial Ltd. ", 45000, 0])
    wb.save(root / "data" / "finance.xlsx")
    eng = create_engine(db_url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE contacts (contact_no VARCHAR(20), customer_no VARCHAR(20), "
                       "full_name VARCHAR(50), updated_at TIMESTAMP)"))
        c.execute(text("INSERT INTO contacts VALUES ('P1', 'C000001', '诸葛亮', :t1), ('P2', 'C000009', 'Jane Doe', :t2)"),
                  {"t1": datetime(2024, 1, 1), "t2": datetime(2024, 1, 2)})
    eng.dispose()


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    make_project(root, f"sqlite:///{root / 'legacy.db'}")
    return load_project(root)


def test_run_extract_writes_the_contract_layout(project):
    result = run_extract(project)
    assert isinstance(result, ExtractResult)
    run_dir = Path(result.run_dir)
    ext = run_dir / "extract"
    assert sorted(p.relative_to(ext).as_posix() for p in ext.rglob("*") if p.is_file()) == [
        "contacts/crm_contacts.parquet", "customers/finance_customers.parquet",
        "customers/sales_customers.parquet", "customers/service_customers.parquet",
        "manifest.json", "profile.json"]
    m = load_manifest(run_dir)
    by = {s["source"]: s for s in m["sources"]}
    assert by["sales_customers"]["encoding"] == "utf-8" and by["service_customers"]["encoding"] == "gb18030"
    assert by["service_customers"]["delimiter"] == ";"
    assert by["sales_customers"]["sha256"] == __import__("hashlib").sha256(
        (project.root / "data/sales.csv").read_bytes()).hexdigest()
    assert {k: (s["rows_read"], s["rows_kept"], s["rows_rejected"]) for k, s in by.items()} == {
        "sales_customers": (3, 3, 0), "service_customers": (3, 3, 0), "finance_customers": (2, 2, 0),
        "crm_contacts": (2, 2, 0)}
    assert by["crm_contacts"]["watermark"] == {"column": "updated_at", "from": None, "to": "2024-01-02T00:00:00"}
    assert by["crm_contacts"]["table"] == "contacts" and "path" not in by["crm_contacts"]
    assert m["entities"]["customers"]["rows_read"] == 8
    assert list_entities(run_dir) == ["customers", "contacts"]
    engine = open_state(project.state_url)
    assert stage_status(engine, result.run_id, "extract") == "succeeded"
    assert get_watermark(engine, "extract:crm_contacts") is not None

    schema = pq.read_schema(ext / "customers/sales_customers.parquet")
    assert [str(t) for t in schema.types] == ["string"] * 7 + ["int64", "string"]
    assert schema.names[-5:] == ["_row_id", "_source", "_department", "_line", "_source_key"]


def test_read_entity_concatenates_sources_with_lineage(project):
    run_dir = Path(run_extract(project).run_dir)
    df = read_entity(run_dir, "customers")
    assert len(df) == 8
    assert df["_row_id"].is_unique
    fin = df[df["_source"] == "finance_customers"].iloc[0]
    assert fin["created_on"] == "2023-01-05" and fin["_department"] == "finance" and fin["_line"] == 2
    assert fin["_source_key"] == "C000001" and fin["_row_id"] == "finance_customers:2"
    assert df[df["_source"] == "service_customers"]["city"].isna().all()  # column missing there -> null
    assert df.loc[df["_row_id"] == "finance_customers:3", "name"].item() == "  Acme Industrial Ltd. "
    sub = read_entity(run_dir, "customers", columns=["customer_no", "invoice_count"])
    assert list(sub.columns) == ["customer_no", "invoice_count"] and len(sub) == 8
    batches = list(iter_entity_batches(run_dir, "customers", batch_rows=2))
    assert sum(len(b) for b in batches) == 8 and max(len(b) for b in batches) == 2
    assert len({tuple(b.columns) for b in batches}) == 1
    with pytest.raises(UsageError, match="entity 'orders' was not extracted"):
        read_entity(run_dir, "orders")


def test_watermark_advances_only_with_a_committed_stage(tmp_path, any_db_url):
    make_project(tmp_path / "proj", any_db_url)
    project = load_project(tmp_path / "proj")
    engine = open_state(project.state_url)
    run_extract(project, sources=["crm_contacts"])
    first = get_watermark(engine, "extract:crm_contacts")
    eng = create_engine(project.config.sources[3].url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO contacts VALUES ('P3', 'C000001', '欧阳修', :t)"), {"t": datetime(2024, 3, 1)})
    eng.dispose()
    (project.root / "data" / "sales.csv").write_bytes(b"\xef\xbb\xbfno such columns\n1\n")
    with pytest.raises(UsageError):  # the CSV source fails after the SQL source was read
        run_extract(project, sources=["crm_contacts", "sales_customers"])
    assert get_watermark(engine, "extract:crm_contacts") == first
    second = run_extract(project, sources=["crm_contacts"])
    df = read_entity(Path(second.run_dir), "contacts")
    assert df["contact_no"].tolist() == ["P3"] and df["full_name"].tolist() == ["欧阳修"]
    assert load_manifest(Path(second.run_dir))["sources"][0]["watermark"] == {
        "column": "updated_at", "from": "2024-01-02T00:00:00", "to": "2024-03-01T00:00:00"}
    assert get_watermark(engine, "extract:crm_contacts") != first
    full = run_extract(project, sources=["crm_contacts"], full=True)
    assert sorted(read_entity(Path(full.run_dir), "contacts")["contact_no"]) == ["P1", "P2", "P3"]


def test_failed_extract_leaves_nothing_half_written(project):
    (project.root / "data" / "service.csv").write_bytes("客户编号;客户名称\nC1;甲\n".encode("gb18030") + b"C2;\xff\n")
    with pytest.raises(UsageError, match=r"data/service.csv: line 3, byte offset \d+"):
        run_extract(project, sources=["service_customers"], encoding="gb18030")
    runs_dir = project.runs_dir
    assert not runs_dir.exists() or not any(runs_dir.rglob("*.parquet"))


def test_rejects_are_counted_and_written(project):
    shutil.copy(CASES / "csv__ragged_rows.csv", project.root / "data" / "sales.csv")
    result = run_extract(project, sources=["sales_customers"])
    s = result.sources[0]
    assert (s.rows_read, s.rows_kept, s.rows_rejected) == (4, 2, 2)
    assert s.reject_reasons == {"too_few_fields": 1, "too_many_fields": 1}
    lines = (Path(result.extract_dir) / s.reject_file).read_text("utf-8-sig").splitlines()
    assert lines[0] == '"_line","_reason","_raw"' and lines[1].startswith('"3","too_few_fields (2 instead of 4)",')


def test_profile_flags_suspicious_values(project):
    result = run_extract(project)
    prof = json.loads(Path(result.profile).read_text("utf-8"))
    cust = prof["entities"]["customers"]
    assert cust["rows"] == 8
    no = cust["columns"]["customer_no"]
    assert no["suspicious"]["full_width"] == 1 and no["nulls"] == 0
    assert no["top"][0] == ["C000001", 3] and no["distinct"] == 5
    assert cust["columns"]["name"]["suspicious"]["leading_trailing_space"] == 1
    assert cust["columns"]["invoice_count"]["nulls"] == 6


def test_cli_extract_and_profile(project):
    runner = CliRunner()
    res = runner.invoke(cli, ["--project", str(project.root), "extract", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows_read"] == 10 and out["rows_rejected"] == 0
    res = runner.invoke(cli, ["--project", str(project.root), "extract", "--source", "sales_customers"])
    assert res.exit_code == 0 and "sales_customers" in res.output and "run id:" in res.output
    res = runner.invoke(cli, ["--project", str(project.root), "profile", "--entity", "customers", "--json"])
    assert res.exit_code == 0, res.output
    prof = json.loads(res.output)
    assert list(prof["entities"]) == ["customers"] and prof["entities"]["customers"]["rows"] == 3
    res = runner.invoke(cli, ["--project", str(project.root), "profile"])
    assert res.exit_code == 0 and "customer_no" in res.output
    for cmd in ("extract", "profile"):
        assert "Example:" in runner.invoke(cli, [cmd, "-h"]).output


def test_cli_usage_errors_exit_2(project, capsys):
    from crmbridge.cli import main

    for argv, msg in [(["extract", "--source", "nope"], "unknown source(s): nope"),
                      (["extract", "--encoding", "gb18030"], "--encoding applies to one CSV/TXT source"),
                      (["profile", "--run", "nope"], "no run 'nope'")]:
        with pytest.raises(SystemExit) as ei:
            main(["--project", str(project.root), *argv])
        assert ei.value.code == 2
        assert msg in capsys.readouterr().err


def test_messy_legacy_export_every_record_accounted_for(project):
    shutil.copy(CASES / "csv__messy_legacy_export.csv", project.root / "data" / "service.csv")
    result = run_extract(project, sources=["service_customers"])
    s = load_manifest(Path(result.run_dir))["sources"][0]
    assert (s["encoding"], s["delimiter"]) == ("gb18030", ";")
    assert (s["rows_read"], s["rows_kept"], s["rows_rejected"], s["skipped_blank"]) == (8, 5, 3, 3)
    assert s["reject_reasons"] == {"too_many_fields": 1, "malformed_quotes": 1, "unterminated_quote": 1}
    assert s["columns"] == ["customer_no", "name", "电话", "电话__2", "_col5", "城市"]
    assert len(s["notes"]) == 3
    df = read_entity(Path(result.run_dir), "customers")
    import csv as _csv

    with open(Path(result.extract_dir) / s["reject_file"], encoding="utf-8-sig", newline="") as f:
        rejected = [int(r["_line"]) for r in _csv.DictReader(f)]
    assert sorted(df["_line"].tolist() + rejected) == [2, 4, 8, 9, 10, 11, 12, 13]
    row = df[df["_line"] == 4].iloc[0]
    assert row["name"] == "北京\r\n华信" and pd_isna(row["电话__2"])
    assert df.loc[df["_line"] == 8, "name"].item() == "深圳\x00腾达"
    assert len(df.loc[df["_line"] == 11, "name"].item()) == 100_000


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_cli_encoding_override_and_decode_error(project, capsys):
    from crmbridge.cli import main

    with pytest.raises(SystemExit) as ei:
        main(["--project", str(project.root), "extract", "--source", "service_customers", "--encoding", "gbk",
              "--json"])
    assert ei.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"][0]["encoding"] == "gb18030" and out["sources"][0]["rows_kept"] == 3
    with pytest.raises(SystemExit) as ei:
        main(["--project", str(project.root), "extract", "--source", "service_customers", "--encoding", "utf-8"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "data/service.csv: line 1, byte offset 0:" in err and "--encoding" in err
