"""``validate --engine sql`` gives the pandas path's figures on the same SQL source (SQLite, PostgreSQL,
MariaDB): unexpected counts per rule and the quarantined keys with their rule ids; and its errors.

The legacy data below plants a defect of every rule kind: missing and duplicate keys (also duplicates
that only normalisation reveals), bad formats, values outside the allowed set, a cross-field violation,
references to a missing and to a quarantined parent, control characters, markup and values that need
the declared normalisation (whitespace incl. full-width, placeholders, case, value maps).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEFINITION = """version: "2.1"
owners:
  - {department: sales, person: S, signed_on: 2026-01-10}
  - {department: service, person: V, signed_on: 2026-01-11}
entities:
  customers:
    identity: {key: customer_no, alternate_keys: [credit_code], scope: department, match_on: [crm_ref]}
    required: [name]
    normalise:
      "*": [trim, {null_if: {values: [N/A, "-", 无]}}]
      customer_no: [{case: {to: upper}}]
      name: [{trim: {collapse: true}}]
      credit_code: [{case: {to: upper}}, {replace: {pattern: "[\\\\s-]", replacement: ""}}]
      phone: [{phone: {region: CN}}]
      email: [email]
      created_on: [{date: {formats: ["%Y-%m-%d", "%Y/%m/%d"]}}]
      annual_revenue: [{number: {}}]
    formats:
      - {field: credit_code, format: uscc}
      - {field: name, format: no_markup}
      - {field: phone, format: phone, region: CN}
      - {field: email, format: email, severity: warning}
      - {field: country, format: iso_country}
      - {field: created_on, format: date}
      - {field: annual_revenue, format: number}
      - {field: postal_code, format: regex, pattern: "^[0-9]{6}$", mostly: 0.5}
    allowed_values:
      - field: status
        values: [Prospect, Active, Inactive]
        map: {活跃: Active, active: Active, 潜在: Prospect}
    cross_field:
      - {left: annual_revenue, op: ge, value: 0}
  contacts:
    identity: {key: contact_no, scope: global}
    required: [customer_no, full_name]
    normalise:
      "*": [trim]
      contact_no: [{case: {to: upper}}]
      customer_no: [{case: {to: upper}}]
    references:
      - {field: customer_no, entity: customers, key: customer_no}
"""

CUST_COLS = ["customer_no", "name", "credit_code", "phone", "email", "country", "status", "annual_revenue",
             "created_on", "postal_code", "notes", "crm_ref"]
# Columns no rule but control_chars reads (only values holding a control character leave the database):
# free text may hold line breaks, a match_on key not even a tab; U+0085 at the end is trimmed away; Chinese
# text has UTF-8 bytes in 0x80-0x9f (which MariaDB's byte-wise REGEXP flags; Python then clears it).
EXTRA = {0: ("line1\nline2", "R\t1"), 1: ("bad\x01note", "R2"), 2: ("中文\x85", None), 3: ("\x1b[0m esc", None),
         4: ("上海浦东新区", "R5"), 6: (None, "R\x7f6")}
GOOD_USCC = "91310000MA1FL4TK3Q"  # check character computed below when the test data is built
SALES = [
    ("C0001", "Acme 有限公司", None, "+8613800138000", "info@acme.cn", "CN", "Active", "1000", "2024-01-05", "200120"),
    ("  c0002\u3000", "  Beta \u3000 Two\t ", None, "13800138001", "INFO@BETA.CN", "US", "活跃", "2,000", "2024/02/01",
     "100000"),
    ("C0003", "Gamma", None, "+8613800138002", "bad@", "CN", "Prospect", "5", "2024-03-01", "abc"),
    ("c0003 ", "Gamma twin", None, "+8613800138003", "g@x.cn", "CN", "active", "7", "2024-03-02", "200000"),
    (None, "No key", None, "+8613800138004", "n@x.cn", "CN", "Active", "1", "2024-01-01", "200000"),
    ("N/A", "Placeholder key", None, "+8613800138005", None, "CN", "Active", "1", "2024-01-01", "200000"),
    ("C0006", "<b>Evil</b> Corp", None, "12345", "e@x.cn", "XX", "weird", "-5", "2024-13-45", "1234567"),
    ("C0007", "Ctl\x01Name", None, "+8613800138006", "c@x.cn", "CN", "Inactive", "abc", "2024-01-01", "200000"),
    ("C0008", "无", None, "+8613800138007", "d@x.cn", "cn", "Prospect", "3", "2024-01-01", "x"),
    ("C0009", "Dup credit A", "CREDIT", "+8613800138008", "a@x.cn", "CN", "Active", "1", "2024-01-01", "200000"),
    ("C0010", "Dup credit B", "credit", "+8613800138009", "b@x.cn", "CN", "Active", "1", "2024-01-01", "200000"),
    ("C0011", "Esc\x1b[31m", "c-redit ", "+8613800138010", "f@x.cn", "CN", "潜在", "2", "2024-01-01", "200000"),
    ("C0012", "Fine", "", "+8613800138011", "", "CN", "Active", "", "", ""),
] + [  # more failing rows than GX lists by default (20) for one rule on SQL
    (f"C1{i:03d}", f"Bulk {i}", None, "+8613800138014", None, "CN", "obsolete", "1", "2024-01-01", "200000")
    for i in range(25)
]
SERVICE = [
    ("C0001", "Acme (service)", None, "+8613800138000", "info@acme.cn", "CN", "Active", "1000", "2024-01-05", "200120"),
    ("C0006", "Evil fixed", None, "+8613800138012", "e@x.cn", "CN", "Active", "1", "2024-01-05", "200120"),
    ("C0020", "Only service", None, "bad phone", "s@x.cn", "CN", "Active", "1", "2024-01-05", "200120"),
    ("C0021", "Service twin", None, "+8613800138013", "t@x.cn", "CN", "Active", "1", "2024-01-05", "200120"),
    ("C0021", "Service twin", None, "+8613800138013", "t@x.cn", "CN", "Active", "1", "2024-01-05", "200120"),
]
CONTACT_COLS = ["contact_no", "customer_no", "full_name"]
CONTACTS = [
    ("P001", "C0001", "Zhang San"),
    ("p002", " c0002 ", "Li Si"),         # normalised reference
    ("P003", "C9999", "Wang Wu"),         # parent missing
    ("P004", "C0003", "Zhao Liu"),        # parent duplicated -> quarantined
    ("P005", "C0006", "Qian Qi"),         # quarantined in sales, valid in service -> valid
    ("P006", "C0020", "Sun Ba"),          # parent quarantined (bad phone) everywhere
    ("P006", "C0001", "Dup contact"),     # duplicate contact_no
    ("P008", None, "No customer"),        # required
    ("P009", "C0007", "Ctl parent"),      # parent quarantined by control characters
    ("P010", "C0012", "Tab\tin name"),    # tab in free text: allowed
    ("P\t11", "C0012", "Tab in key"),     # tab in a key: control character
]


def _uscc(prefix17: str) -> str:
    from stdnum.cn import uscc

    return prefix17 + uscc.calc_check_digit(prefix17)


def _rows():
    good = _uscc("91310000MA1FL4TK3")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    sales = [list(r) for r in SALES]
    sales[0][2], sales[1][2], sales[2][2] = good, bad, _uscc("91110000100000000")
    sales = [r + list(EXTRA.get(i, (None, None))) for i, r in enumerate(sales)]
    service = [list(r) + ["服务\n记录", None] for r in SERVICE]
    return sales, service, [list(r) for r in CONTACTS]


def _load(url: str, rows=None) -> None:
    from sqlalchemy import Column, MetaData, Table, Text, create_engine

    sales, service, contacts = rows or _rows()
    eng = create_engine(url)
    md = MetaData()
    kw = {"mysql_charset": "utf8mb4"} if eng.dialect.name in ("mysql", "mariadb") else {}
    tables = {
        "sqlval_sales": (CUST_COLS, sales), "sqlval_service": (CUST_COLS, service),
        "sqlval_contacts": (CONTACT_COLS, contacts),
    }
    made = {n: Table(n, md, *[Column(c, Text) for c in cols], **kw) for n, (cols, _) in tables.items()}
    md.create_all(eng)
    with eng.begin() as c:
        for n, (cols, rows) in tables.items():
            c.execute(made[n].insert(), [dict(zip(cols, r)) for r in rows])
    eng.dispose()


def _project(root: Path, url: str, definition: str = DEFINITION):
    from crmbridge.config import load_project

    root.mkdir(parents=True, exist_ok=True)
    (root / "definitions").mkdir()
    (root / "definitions" / "customer.yml").write_text(definition, "utf-8")
    yml = f"""name: sqlval
sources:
  - {{name: sales_customers, entity: customers, department: sales, type: sql, url: "{url}", table: sqlval_sales}}
  - {{name: service_customers, entity: customers, department: service, type: sql, url: "{url}",
      query: "SELECT * FROM sqlval_service"}}
  - {{name: crm_contacts, entity: contacts, department: sales, type: sql, url: "{url}", table: sqlval_contacts}}
"""
    (root / "crmbridge.yml").write_text(yml, "utf-8")
    return load_project(root)


def _quarantined(path: str, key: str) -> set[tuple]:
    from crmbridge.stewardcsv import split_reasons

    out = set()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            for reason in split_reasons(row["_blocking"]):
                out.add((row["_department"], row[key] or None, reason.split(":", 1)[0]))
    return out


def _figures(entities: dict) -> dict:
    keys = ("unexpected_count", "unexpected_percent", "passed", "element_count")
    return {e: {r["rule_id"]: tuple(r[k] for k in keys) for r in v["rules"]} for e, v in entities.items()
            if v["rules"]}


@pytest.fixture
def sql_project(any_db_url, tmp_path):
    _load(any_db_url)
    return _project(tmp_path / "proj", any_db_url)


def test_sql_engine_equals_pandas_path(sql_project):
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.sqlengine import run_validate_sql
    from crmbridge.validation.stage import run_validate

    project = sql_project
    ex = run_extract(project)
    run = open_run(open_state(project.state_url), project.runs_dir, ex.run_id)
    pandas_rep = run_validate(project, run)
    sql_rep = run_validate_sql(project, batch_rows=4)  # several batches per source

    assert _figures(sql_rep.entities) == _figures(pandas_rep.entities)
    for entity, key in (("customers", "customer_no"), ("contacts", "contact_no")):
        theirs = _quarantined(pandas_rep.entities[entity]["quarantine_file"], key)
        ours = _quarantined(sql_rep.entities[entity]["quarantine_file"], key)
        assert ours == theirs, (entity, ours ^ theirs)
        assert sql_rep.entities[entity]["rows_quarantined"] == pandas_rep.entities[entity]["rows_quarantined"]
        assert sql_rep.entities[entity]["rows_in"] == pandas_rep.entities[entity]["rows_in"]
    # every kind of defect is really there (the comparison above is not between two empty sets)
    failing = {rid for e in sql_rep.entities.values() for rid, f in
               ((r["rule_id"], r) for r in e["rules"]) if f["unexpected_count"]}
    assert {"required.customer_no", "unique.customer_no", "unique.credit_code", "required.name",
            "format.credit_code", "format.name", "format.phone", "format.email", "format.country",
            "format.created_on", "format.annual_revenue", "format.postal_code", "allowed.status",
            "cross.annual_revenue_ge_0", "control_chars", "unique.contact_no", "required.customer_no",
            "ref.customer_no"} <= failing
    where = {r["rule_id"]: r["where"] for r in sql_rep.entities["customers"]["rules"]}
    assert where["unique.customer_no"] == where["format.country"] == "database"
    # replace: regexp_replace on PostgreSQL, REGEXP_REPLACE on MariaDB, none on SQLite (its uniqueness: Python)
    assert where["unique.credit_code"] == ("python" if project.config.sources[0].url.startswith("sqlite")
                                           else "database")
    # whitespace collapse has no SQL form on SQLite (no regexp_replace)
    assert where["required.name"] == ("python" if project.config.sources[0].url.startswith("sqlite") else "database")
    # value maps compare NFKC keys: only PostgreSQL has normalize(..., NFKC)
    assert where["allowed.status"] == ("database" if "postgresql" in project.config.sources[0].url else "python")
    assert where["format.phone"] == where["control_chars"] == "python"
    refs = Path(sql_rep.entities["contacts"]["quarantine_file"]).read_text("utf-8-sig")
    assert "parent_missing" in refs and "parent_quarantined" in refs
    out = Path(sql_rep.out_dir)
    assert out.parent == project.root / "reports" / "validate-sql"
    assert json.loads((out / "summary.json").read_text("utf-8"))["engine"] == "sql"


# The project template's normalisation (templates/project/definitions/customer.yml): nfkc on every key, and
# credit_code through nfkc, upper case and a regex replace. nfkc has no SQL form on MariaDB and SQLite, so
# there uniqueness and references of these keys run in Python on hashed key indexes.
TEMPLATE_STYLE = DEFINITION
for _old, _new in (
        ("      customer_no: [{case: {to: upper}}]\n      name:", "      customer_no: [nfkc, {case: {to: upper}}]\n      name:"),
        ('credit_code: [{case: {to: upper}}, {replace:', 'credit_code: [nfkc, {case: {to: upper}}, {replace:'),
        ("      contact_no: [{case: {to: upper}}]\n      customer_no: [{case: {to: upper}}]",
         "      contact_no: [nfkc, {case: {to: upper}}]\n      customer_no: [nfkc, {case: {to: upper}}]")):
    assert TEMPLATE_STYLE.count(_old) == 1, _old
    TEMPLATE_STYLE = TEMPLATE_STYLE.replace(_old, _new)


def _template_rows():
    """The base rows plus keys that only collide after NFKC (full-width letters and digits), credit codes
    written with spaces and dashes, and references written full-width. The colliding rows sit at both ends
    of the table, in different batches."""
    sales, service, contacts = _rows()
    code = _uscc("91440300MA5DC0000")
    spaced = f"{code[:4]} {code[4:8]}-{code[8:12]} {code[12:]}"

    def row(key, name, credit):
        return [key, name, credit, "+8613800138020", "w@x.cn", "CN", "Active", "1", "2024-01-01", "200000",
                None, None]

    first = [row("Ｃ００３０", "Wide twin A", spaced),          # = C0030 after nfkc; its code = C0033's
             row("ｃ００３２", "Wide ok", None)]                # = C0032, valid
    last = [row("C0030", "Wide twin B", None),
            row("C0033", "Dashed code twin", code),
            row("Ｃ００３１", None, None),                     # required.name fails: named C0031
            row("C0034", "Full-width code", "９１-" + _uscc("91310000MA1FL4TK9")[2:] + " ")]
    contacts = contacts + [
        ["Ｐ０２０", "Ｃ００３２", "Wide ref"],   # contact_no = P020 (twin below); parent C0032 exists
        ["P021", "c0030", "Ref to twin"],       # parent C0030 quarantined (duplicate after nfkc)
        ["p020", "C0001", "Contact twin"],      # = P020 after nfkc + upper
        ["Ｐ０２２", "ｃ００３２", "Wide ref ok"],  # valid only if both sides are normalised alike
        ["P023", "C0031", "Ref to nameless"],   # parent quarantined by a rule the database ran
    ]
    return first + sales + last, service, contacts


def test_template_normalisation_equals_pandas_path(any_db_url, tmp_path):
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.sqlengine import run_validate_sql
    from crmbridge.validation.stage import run_validate

    _load(any_db_url, _template_rows())
    project = _project(tmp_path / "proj", any_db_url, TEMPLATE_STYLE)
    ex = run_extract(project)
    run = open_run(open_state(project.state_url), project.runs_dir, ex.run_id)
    pandas_rep = run_validate(project, run)
    sql_rep = run_validate_sql(project, batch_rows=4)

    assert _figures(sql_rep.entities) == _figures(pandas_rep.entities)
    q = {}
    for entity, key in (("customers", "customer_no"), ("contacts", "contact_no")):
        theirs = _quarantined(pandas_rep.entities[entity]["quarantine_file"], key)
        q[entity] = _quarantined(sql_rep.entities[entity]["quarantine_file"], key)
        assert q[entity] == theirs, (entity, q[entity] ^ theirs)
        assert sql_rep.entities[entity]["rows_quarantined"] == pandas_rep.entities[entity]["rows_quarantined"]
    # the planted cases are really judged after normalisation (not a comparison of two wrong answers)
    assert {("sales", "C0030", "unique.customer_no"), ("sales", "C0033", "unique.credit_code"),
            ("sales", "C0031", "required.name")} <= q["customers"]
    assert not {k for k in q["customers"] if k[1] in ("C0032", "C0034")}
    assert {("sales", "P020", "unique.contact_no"), ("sales", "P021", "ref.customer_no"),
            ("sales", "P023", "ref.customer_no")} <= q["contacts"]
    assert not {k for k in q["contacts"] if k[1] == "P022"}
    url = project.config.sources[0].url
    where = {e: {r["rule_id"]: r["where"] for r in sql_rep.entities[e]["rules"]} for e in sql_rep.entities}
    on_pg = "postgresql" in url
    keys_where = "database" if on_pg else "python"  # normalize(..., NFKC) exists on PostgreSQL only
    assert where["customers"]["unique.customer_no"] == where["customers"]["unique.credit_code"] == keys_where
    assert where["contacts"]["unique.contact_no"] == keys_where
    assert where["contacts"]["ref.customer_no"] == ("database+python" if on_pg else "python")
    if not url.startswith("sqlite"):  # the trim collapse of name runs in the database; rows named by raw keys
        assert where["customers"]["required.name"] == "database"


def test_alternate_key_normalised_with_another_column_equals_pandas_path(tmp_path):
    """An alternate key whose normalisation reads another column (a landline's area code from the city):
    the key index reads that column too, so the same number in two cities is two phones, as in pandas."""
    from sqlalchemy import create_engine, text

    from crmbridge.config import load_project
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.sqlengine import run_validate_sql
    from crmbridge.validation.stage import run_validate

    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE t (customer_no TEXT, phone TEXT, city TEXT)"))
        c.execute(text("INSERT INTO t VALUES ('C1', '88881234', '上海'), ('C2', '88881234', '北京'), "
                       "('C3', '021-88881234', NULL), ('C4', '66661234', '上海'), ('C5', '66661234', '上海')"))
    eng.dispose()
    root = tmp_path / "proj"
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "customer.yml").write_text("""version: "1.0"
owners: [{department: sales, person: S, signed_on: 2026-01-10}]
entities:
  customers:
    identity: {key: customer_no, alternate_keys: [phone], scope: global}
    normalise:
      phone: [{phone: {region: CN, city_column: city}}]
""", "utf-8")
    (root / "crmbridge.yml").write_text(f"""name: x
sources:
  - {{name: s, entity: customers, department: sales, type: sql, url: "{url}", table: t}}
""", "utf-8")
    project = load_project(root)
    ex = run_extract(project)
    pandas_rep = run_validate(project, open_run(open_state(project.state_url), project.runs_dir, ex.run_id))
    sql_rep = run_validate_sql(project, batch_rows=2)
    assert _figures(sql_rep.entities) == _figures(pandas_rep.entities)
    ours = _quarantined(sql_rep.entities["customers"]["quarantine_file"], "customer_no")
    assert ours == _quarantined(pandas_rep.entities["customers"]["quarantine_file"], "customer_no")
    # C1 and C3 are the same Shanghai number; C2 is Beijing's; C4/C5 the same number twice
    assert {k[1] for k in ours if k[2] == "unique.phone"} == {"C1", "C3", "C4", "C5"}


TEMPLATE_TABLES = {
    "customers": ["customer_no", "name", "credit_code", "phone", "city", "email", "postal_code", "country",
                  "created_on", "annual_revenue", "open_balance", "credit_limit", "open_opportunities",
                  "invoice_count", "service_contracts", "status"],
    "contacts": ["contact_no", "customer_no", "full_name", "phone", "mobile", "email"],
    "contracts": ["contract_no", "customer_no", "start_date", "end_date", "signed_on", "amount", "status",
                  "payment_terms"],
}


def test_project_template_definition_equals_pandas_path(any_db_url, tmp_path, template_definition):
    """The project template's definition file itself, unchanged, on each database."""
    from sqlalchemy import Column, MetaData, Table, Text, create_engine

    from crmbridge.config import load_project
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.sqlengine import run_validate_sql
    from crmbridge.validation.stage import run_validate

    good = _uscc("91310000MA1FL4TK3")
    cust = [
        ["Ｃ０００１", "上海明远贸易有限公司", good[:6] + " " + good[6:], "88881234", "上海", "INFO@MY.CN", "２００１２０",
         "中国", "2024年1月5日", "¥1,234,500.00", "0", "1000", "2", "1", "0", "活跃"],
        ["c0001", "Twin", None, "13800138000", None, "a@b.cn", "200120", "CN", "2024-01-05", "1", "0", "0", "0",
         "0", "0", "Active"],
        ["C0002", "<b>Evil</b>", good.replace("91", "9-1", 1), "12345", "北京", "bad@", "abc", "XX", "2024-13-45",
         "-5", "x", "-1", "1.5", "0", "0", "weird"],
        ["Ｃ０００３", "Fine", None, "+8613800138001", None, None, "100000", "CN", "2024/02/01", "5", "0", "0", "0",
         "0", "0", "潜在"],
    ]
    contacts = [["Ｐ１", "ｃ０００３", "Zhang", "13800138002", None, "z@x.cn"],
                ["P2", "C0001", "Li", None, "13800138003", None],
                ["p1", "C9999", "Wang", None, None, None]]
    contracts = [["Ｋ１", "Ｃ０００３", "2024-01-01", "2023-01-01", None, "10", "生效", "30天"],
                 ["K2", "C0002", "2024-01-01", None, None, "-1", "bogus", "7天"]]
    eng = create_engine(any_db_url)
    md = MetaData()
    kw = {"mysql_charset": "utf8mb4"} if eng.dialect.name in ("mysql", "mariadb") else {}
    made = {n: Table(f"tpl_{n}", md, *[Column(c, Text) for c in cols], **kw) for n, cols in TEMPLATE_TABLES.items()}
    md.create_all(eng)
    with eng.begin() as c:
        for n, rows in (("customers", cust), ("contacts", contacts), ("contracts", contracts)):
            c.execute(made[n].insert(), [dict(zip(TEMPLATE_TABLES[n], r)) for r in rows])
    eng.dispose()
    root = tmp_path / "proj"
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "customer.yml").write_text(template_definition.read_text("utf-8"), "utf-8")
    (root / "crmbridge.yml").write_text("name: tpl\nsources:\n" + "".join(
        f"  - {{name: {n}, entity: {n}, department: sales, type: sql, url: \"{any_db_url}\", table: tpl_{n}}}\n"
        for n in TEMPLATE_TABLES), "utf-8")
    project = load_project(root)
    ex = run_extract(project)
    pandas_rep = run_validate(project, open_run(open_state(project.state_url), project.runs_dir, ex.run_id))
    sql_rep = run_validate_sql(project, batch_rows=2)
    assert _figures(sql_rep.entities) == _figures(pandas_rep.entities)
    for entity, key in (("customers", "customer_no"), ("contacts", "contact_no"), ("contracts", "contract_no")):
        ours = _quarantined(sql_rep.entities[entity]["quarantine_file"], key)
        assert ours == _quarantined(pandas_rep.entities[entity]["quarantine_file"], key), entity
    q = _quarantined(sql_rep.entities["customers"]["quarantine_file"], "customer_no")
    assert ("sales", "C0001", "unique.customer_no") in q and not {k for k in q if k[1] == "C0003"}
    q = _quarantined(sql_rep.entities["contacts"]["quarantine_file"], "contact_no")
    assert ("sales", "P1", "unique.contact_no") in q and ("sales", "P2", "ref.customer_no") in q


def _cli(project_root: Path, *args: str, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "crmbridge", "--project", str(project_root), "validate",
                           "--engine", "sql", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def _sqlite_project(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    _load(url)
    return _project(tmp_path / "proj", url), url


def test_cli_exit_1_on_blocking_failures_with_json(tmp_path):
    project, _ = _sqlite_project(tmp_path)
    res = _cli(project.root, "--json")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["engine"] == "sql" and out["blocking_failed"] is True
    assert not (project.root / "runs").exists() or not any((project.root / "runs").iterdir())


def test_missing_table_and_column_are_usage_errors(tmp_path):
    project, url = _sqlite_project(tmp_path)
    yml = project.config_path.read_text("utf-8")
    project.config_path.write_text(yml.replace("table: sqlval_contacts", "table: no_such_table"), "utf-8")
    res = _cli(project.root)
    assert res.returncode == 2 and "no_such_table" in res.stderr and "Traceback" not in res.stderr
    project.config_path.write_text(yml, "utf-8")
    d = project.root / "definitions" / "customer.yml"
    d.write_text(d.read_text("utf-8").replace("required: [customer_no, full_name]",
                                              "required: [customer_no, full_name, birthday]"), "utf-8")
    res = _cli(project.root)
    assert res.returncode == 2 and "birthday" in res.stderr and "Traceback" not in res.stderr


def test_file_source_is_refused(tmp_path):
    project, _ = _sqlite_project(tmp_path)
    (project.root / "c.csv").write_text("contact_no,customer_no,full_name\nP1,C0001,x\n", "utf-8")
    yml = project.config_path.read_text("utf-8")
    yml = yml.replace("  - {name: crm_contacts, entity: contacts, department: sales, type: sql,",
                      "  - {name: crm_contacts, entity: contacts, type: csv, path: c.csv}\n"
                      "  - {name: old_contacts, entity: contacts, department: sales, type: sql,")
    project.config_path.write_text(yml, "utf-8")
    res = _cli(project.root)
    assert res.returncode == 2 and "crm_contacts" in res.stderr and "csv source" in res.stderr


def test_unreachable_database_keeps_the_password_out(tmp_path):
    secret = "Sup3r-secret-pw"
    root = tmp_path / "proj"
    root.mkdir()
    (root / "definitions").mkdir()
    (root / "definitions" / "customer.yml").write_text(DEFINITION, "utf-8")
    (root / "crmbridge.yml").write_text(
        "name: x\nsources:\n  - {name: c, entity: customers, type: sql, url: {env: SQLVAL_URL}, table: t}\n", "utf-8")
    res = _cli(root, env={"SQLVAL_URL": f"postgresql+psycopg://crm:{secret}@127.0.0.1:1/legacy"})
    assert res.returncode == 2, res.stderr
    assert "cannot connect" in res.stderr and "Traceback" not in res.stderr
    assert secret not in res.stderr + res.stdout


def test_key_normalised_with_another_column_without_sql_form_is_refused(tmp_path):
    """A key without SQL form is named by its raw text in the database and normalised by Python from that
    text alone: a step reading another column (phone's city_column) cannot be, so it is a usage error."""
    project, _ = _sqlite_project(tmp_path)
    d = project.root / "definitions" / "customer.yml"
    text = d.read_text("utf-8")
    old = "customer_no: [{case: {to: upper}}]\n      name:"
    assert old in text
    d.write_text(text.replace(old, "customer_no: [{phone: {region: CN, city_column: country}}]\n      name:"), "utf-8")
    res = _cli(project.root)
    assert res.returncode == 2 and "customer_no" in res.stderr and "country" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_database_normalising_differently_stops_the_command(tmp_path):
    """SQLite's upper() only knows ASCII: a key Python upper-cases differently must not pass silently."""
    from sqlalchemy import create_engine, text

    project, url = _sqlite_project(tmp_path)
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("UPDATE sqlval_sales SET customer_no = 'c0001é' WHERE customer_no = 'C0001'"))
    eng.dispose()
    res = _cli(project.root)
    assert res.returncode == 2 and "differently" in res.stderr and "customer_no" in res.stderr


def test_help_names_the_engine_option():
    from click.testing import CliRunner

    from crmbridge.cli import cli

    res = CliRunner().invoke(cli, ["validate", "-h"])
    assert res.exit_code == 0 and "--engine [pandas|sql]" in res.output and "validate --engine sql" in res.output


def test_run_option_is_refused_with_the_sql_engine(tmp_path):
    project, _ = _sqlite_project(tmp_path)
    res = _cli(project.root, "--run", "20260101-000000-abcd")
    assert res.returncode == 2 and "--run" in res.stderr


# --------------------------------------------------------------------------- failing keys streamed from the database
# The rules run in the database return only counts from great-expectations; the failing rows' keys come from a
# query of the same condition (validation/sqlengine_gx.py), which must return exactly GX's unexpected count.
# Conditions one could get wrong in SQL: NULLs and empty strings in an in-set column and in a required one.
NULLS_DEFINITION = """version: "1.0"
owners:
  - {department: sales, person: S, signed_on: 2026-01-10}
  - {department: service, person: V, signed_on: 2026-01-11}
entities:
  customers:
    identity: {key: customer_no, scope: department}
    required: [name]
    formats:
      - {field: country, format: iso_country}
    allowed_values:
      - {field: status, values: [Active, Inactive]}
"""


def _nulls_rows():
    def row(key, name, country, status):
        return [key, name, None, "+8613800138000", "a@x.cn", country, status, "1", "2024-01-01", "200000", None, None]

    sales = [row(f"C{i:04d}", *v) for i, v in enumerate([
        ("A", "CN", "Active"), (None, "CN", None), ("", "", ""), (" ", " ", " "), ("B", None, "active"),
        ("C", "cn", "x"), ("D", "XX", "Inactive"), ("E", "US", None), ("", "CN", "Active"), ("F", "", "")])]
    sales += [row(None, "No key", "CN", "Active"), row("", "Empty key", "CN", "Active"),
              row("C0001", "Twin", "CN", "Active")]
    sales += [row(f"C1{i:03d}", f"Bulk {i}", "CN", "obsolete") for i in range(7)]  # several batches of failures
    service = [row("C0001", "Other department", None, "")]
    return sales, service, []


def _nulls_project(url: str, root: Path):
    _load(url, _nulls_rows())
    return _project(root, url, NULLS_DEFINITION)


def _pandas_report(project):
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    ex = run_extract(project)
    return run_validate(project, open_run(open_state(project.state_url), project.runs_dir, ex.run_id))


def test_failing_keys_with_nulls_and_empty_strings_equal_pandas_path(any_db_url, tmp_path, monkeypatch):
    """NULLs, '' (missing, as in extract) and ' ' in in-set and required columns: the streamed keys match GX's
    counts (or the run fails) and the pandas path's quarantine; with a fetch batch of 2 rows the failing
    rows of one rule arrive in several batches, and the output is the same as with one batch."""
    from crmbridge.validation import sqlengine_gx
    from crmbridge.validation.sqlengine import run_validate_sql

    project = _nulls_project(any_db_url, tmp_path / "proj")
    pandas_rep = _pandas_report(project)
    batches: dict[str, int] = {}
    real = sqlengine_gx._failing_rows

    def counted(engine, plan, rule, query, batch_rows):
        for frame in real(engine, plan, rule, query, batch_rows):
            batches[rule.rule_id] = batches.get(rule.rule_id, 0) + 1
            yield frame

    monkeypatch.setattr(sqlengine_gx, "_failing_rows", counted)
    tiny = run_validate_sql(project, batch_rows=2)
    whole = run_validate_sql(project, batch_rows=10_000)
    assert _figures(tiny.entities) == _figures(pandas_rep.entities) == _figures(whole.entities)
    theirs = _quarantined(pandas_rep.entities["customers"]["quarantine_file"], "customer_no")
    assert _quarantined(tiny.entities["customers"]["quarantine_file"], "customer_no") == theirs
    assert Path(tiny.entities["customers"]["quarantine_file"]).read_bytes() == \
        Path(whole.entities["customers"]["quarantine_file"]).read_bytes()
    rules = {r["rule_id"]: r for r in tiny.entities["customers"]["rules"]}
    assert {rid: r["where"] for rid, r in rules.items()} == {
        "required.customer_no": "database", "unique.customer_no": "database", "required.name": "database",
        "format.country": "database", "allowed.status": "database", "control_chars": "python"}
    # ' ' is present (no trim declared) and not allowed; NULL and '' are missing, not failing
    assert rules["allowed.status"]["unexpected_count"] == 1 + 1 + 1 + 7  # ' ', active, x, obsolete
    assert rules["required.name"]["unexpected_count"] == 1 + 1 + 1  # NULL, '', ''
    assert batches["allowed.status"] >= 5  # 10 failing rows, 2 a batch


def test_failing_key_query_disagreeing_with_gx_fails_the_run(tmp_path, monkeypatch):
    """A failing-row condition that counts NULLs of an in-set column (GX does not) is caught at run time."""
    import sqlalchemy as sa

    from crmbridge.errors import RunFailed
    from crmbridge.validation import sqlengine_gx
    from crmbridge.validation.sqlengine import run_validate_sql

    project = _nulls_project(f"sqlite:///{tmp_path / 'legacy.db'}", tmp_path / "proj")
    real = sqlengine_gx.unexpected_condition

    def with_nulls(rule, column):
        cond = real(rule, column)
        return sa.or_(cond, column.is_(None)) if rule.expectation == "ExpectColumnValuesToBeInSet" else cond

    monkeypatch.setattr(sqlengine_gx, "unexpected_condition", with_nulls)
    with pytest.raises(RunFailed, match="great-expectations counted .* the failing-row query returned"):
        run_validate_sql(project)
    assert not any((project.root / "reports" / "validate-sql").iterdir())


def test_gx_never_reads_a_whole_query_asset(any_db_url, tmp_path):
    """great-expectations reads a query asset's column names by executing the asset's query on its own; with
    psycopg and pymysql (client-side cursors) that would buffer every row of the asset in crmbridge's memory.
    crmbridge sends that statement with LIMIT 0. (On SQLite GX wraps the asset in a selectable of its own,
    read through SQLite's lazy cursor: nothing to rewrite there.)"""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from crmbridge.validation.sqlengine import run_validate_sql

    if any_db_url.startswith("sqlite"):
        pytest.skip("SQLite: GX's column look-up reads one row through a lazy cursor")
    project = _nulls_project(any_db_url, tmp_path / "proj")
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        rep = run_validate_sql(project)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert rep.entities["customers"]["rows_quarantined"] > 0
    assert not [s for s in sent if s.startswith("SELECT u.*")]  # the asset's own text, at the top level
    limited = [s for s in sent if s.startswith("SELECT * FROM (SELECT u.*") and s.endswith("gx_columns LIMIT 0")]
    assert len(limited) == 2  # one per query asset: the plain rules', the key uniqueness window count's
