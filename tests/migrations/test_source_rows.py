"""Department from a column and row filters per source (issue 12 point 4): CSV and SQL sources
(real PostgreSQL and MariaDB), every refused row in the rejects file with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crmbridge.config import load_project
from crmbridge.csvout import read_frame
from crmbridge.errors import ConfigError
from crmbridge.migrations.extract import run_extract
from crmbridge.migrations.extracted import read_entity

EXPORT = """客户编号,客户名称,所属部门,状态
C1,甲公司,销售部,正常
C2,乙公司,财务部,正常
C1,甲公司(财务),财务部,正常
C3,丙公司,,正常
C4,丁公司,市场部,正常
C5,戊公司,销售部,已删除
C6,己公司, 服务部 ,正常
"""

CSV_YML = """name: t
sources:
  - name: legacy_crm
    entity: customers
    type: csv
    path: export.csv
    key: customer_no
    columns: {{客户编号: customer_no, 客户名称: name, 状态: status}}
    department_column: 所属部门
    department_map: {{销售部: sales, 财务部: finance, 服务部: service}}
{extra}    filters:
      - {{column: status, not_in: [已删除], name: deleted in the old CRM}}
"""


def _project(root: Path, extra: str = "", yml: str = CSV_YML):
    (root / "export.csv").write_text(EXPORT, encoding="utf-8")
    (root / "crmbridge.yml").write_text(yml.format(extra=extra), encoding="utf-8")
    return load_project(root)


def _rejects(res) -> dict[int, str]:
    s = res.sources[0]
    df = read_frame(Path(res.extract_dir) / s.reject_file)
    return dict(zip(df["_line"].astype(int), df["_reason"]))


def test_csv_department_column_map_and_filter(tmp_path):
    res = run_extract(_project(tmp_path))
    s = res.sources[0]
    assert (s.rows_read, s.rows_kept, s.rows_rejected) == (7, 4, 3)
    df = read_entity(Path(res.run_dir), "customers")
    assert list(zip(df["customer_no"], df["_department"])) == \
        [("C1", "sales"), ("C2", "finance"), ("C1", "finance"), ("C6", "service")]
    assert _rejects(res) == {5: "department_missing (column 所属部门 is empty)",
                             6: "unknown_department ('市场部' is not in department_map)",
                             7: "filtered: deleted in the old CRM"}
    m = json.loads((Path(res.extract_dir) / "manifest.json").read_text("utf-8"))["sources"][0]
    assert m["departments"] == {"sales": 1, "finance": 2, "service": 1}
    assert m["rows_filtered"] == 1 and m["department_column"] == "所属部门"
    assert m["reject_reasons"] == {"department_missing": 1, "unknown_department": 1,
                                   "filtered: deleted in the old CRM": 1}


def test_explicit_department_is_the_fallback_for_empty_cells(tmp_path):
    res = run_extract(_project(tmp_path, extra="    department: sales\n"))
    df = read_entity(Path(res.run_dir), "customers")
    assert df.loc[df["customer_no"] == "C3", "_department"].tolist() == ["sales"]
    assert list(_rejects(res)) == [6, 7]


def test_quarantined_rows_of_filters_reach_the_ledger_reasons(tmp_path):
    from crmbridge.migrations.quarantine import quarantined_rows

    res = run_extract(_project(tmp_path))
    rows = quarantined_rows(Path(res.run_dir), [{"entity": "customers", "step": "Account", "object": "Account"}])
    assert sorted(r["message"] for r in rows) == sorted(_rejects(res).values())
    assert all(r["error_code"] == "extract" for r in rows)


def test_per_row_department_scopes_uniqueness_in_validate(tmp_path):
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    proj = _project(tmp_path)
    (tmp_path / "definitions").mkdir()
    (tmp_path / "definitions" / "customer.yml").write_text(
        "version: '1'\nname: t\nowners:\n  - {department: sales, person: 销售总监, signed_on: null}\nentities:\n  customers:\n    identity: {key: customer_no, scope: department}\n"
        "    required: [name]\n", encoding="utf-8")
    res = run_extract(proj)
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, res.run_id)
    rep = run_validate(proj, run)
    # C1 appears once in sales and once in finance: not a duplicate within a department
    assert rep.counts()["customers"]["rows_quarantined"] == 0 and rep.counts()["customers"]["rows_valid"] == 4


def test_unknown_filter_column_names_the_config_line(tmp_path):
    yml = CSV_YML.replace("column: status, not_in", "column: statuz, not_in")
    proj = _project(tmp_path, yml=yml)
    with pytest.raises(ConfigError) as ei:
        run_extract(proj)
    msg = str(ei.value)
    assert msg.startswith("crmbridge.yml:12: source legacy_crm: column 'statuz' is not in the source's columns")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.parquet"))


def test_unknown_department_column_names_the_config_line(tmp_path):
    proj = _project(tmp_path, yml=CSV_YML.replace("department_column: 所属部门", "department_column: 部门"))
    with pytest.raises(ConfigError, match=r"crmbridge.yml:9: source legacy_crm: column '部门'"):
        run_extract(proj)


@pytest.mark.parametrize("block, words", [
    ("    filters:\n      - {column: status, equals: a, in: [b]}\n", "exactly one of"),
    ("    filters:\n      - {column: status, matches: '([a-'}\n", "not a valid regular expression"),
    ("    filters:\n      - {column: status, equal: a}\n", "equal"),
    ("    department_map: {销售部: sales}\n", "department_map needs department_column"),
])
def test_bad_source_rules_are_config_errors_with_line(tmp_path, block, words):
    yml = ("name: t\nsources:\n  - name: s\n    entity: customers\n    type: csv\n    path: export.csv\n"
           + block)
    (tmp_path / "crmbridge.yml").write_text(yml, encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_project(tmp_path)
    assert "crmbridge.yml:" in str(ei.value) and words in str(ei.value)


SQL_YML = """name: t
sources:
  - name: erp_customers
    entity: customers
    type: sql
    url: {{env: LEGACY_DB}}
    table: customers
    key: code
    department_column: dept
    filters:
      - {{column: status, equals: active}}
      - {{column: code, matches: '^K'}}
"""


def test_sql_source_department_column_and_filters(tmp_path, monkeypatch, any_db_url):
    eng = create_engine(any_db_url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE customers (code VARCHAR(10), name VARCHAR(50), dept VARCHAR(20), "
                       "status VARCHAR(10))"))
        c.execute(text("INSERT INTO customers VALUES ('K1','甲','sales','active'), ('K2','乙','finance','active'),"
                       "('K3','丙','finance','closed'), ('X4','丁','sales','active'), ('K5','戊',NULL,'active')"))
    eng.dispose()
    monkeypatch.setenv("LEGACY_DB", any_db_url)
    (tmp_path / "crmbridge.yml").write_text(SQL_YML.format(), encoding="utf-8")
    res = run_extract(load_project(tmp_path))
    s = res.sources[0]
    assert (s.rows_read, s.rows_kept, s.rows_rejected) == (5, 2, 3)
    df = read_entity(Path(res.run_dir), "customers").sort_values("code")
    assert list(zip(df["code"], df["_department"])) == [("K1", "sales"), ("K2", "finance")]
    assert sorted(_rejects(res).values()) == ["department_missing (column dept is empty)",
                                              "filtered: code matches '^K'", "filtered: status == 'active'"]
    from crmbridge.state import dispose_all

    dispose_all()
