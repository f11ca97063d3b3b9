"""Linking migrated Accounts to existing ERP customers never crosses companies (issue 12 point 6).

Real PostgreSQL and MariaDB ERPs and the sandbox org: ERP customers that share a credit code, a name or
a phone with another company's Account are not overwritten; a conflict is queued with both candidates,
`sync --dry-run` reports them beforehand, and a repeat sync writes nothing.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, insert, select

from crmbridge.config import load_project
from crmbridge.state import open_state
from crmbridge.sync.conflicts import list_conflicts, resolve
from crmbridge.sync.linking import LINK_FIELD
from crmbridge.sync.reference_erp import create_reference_erp, customers

X, Y, Z, W = "91310000MA1FL2XQ3A", "91440300MA5DC6QX9X", "91110108MA01Q2RX8B", "91330100MA2H3P1N4K"
SYNC_YML = """
objects:
  - name: customers
    salesforce: {object: Account, external_id: ERP_Customer_Code__c}
    erp: {table: customers, key: customer_code, changes: {column: updated_at}, new_key: "K{n:07d}"}
    owner: salesforce
    create: {salesforce: false, erp: true}
    scope: {definition: definitions/customer.yml}
    link_on:
      - {salesforce: Legacy_Id__c, erp: customer_no}
      - {salesforce: Credit_Code__c, erp: credit_code}
      - {salesforce: Phone, erp: phone}
      - {salesforce: Name, erp: name}
    deletes: {mode: ignore}
    fields:
      Name: name
      Legacy_Id__c: customer_no
      Credit_Code__c: credit_code
      Phone: phone
      BillingCity: {erp: billing_city, owner: both, conflict: queue}
      Credit_Limit__c: {erp: credit_limit, owner: erp}
      Id: crm_account_id
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def erp_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


def _erp(url):
    """K1 and K3 are the Accounts' own customers; K2 shares a credit code and a name with A1's company,
    K4 a name with A2's, K5 a phone with A3's; K6 and K7 both carry A4's name and nothing else."""
    create_reference_erp(url, items=1, customers=pd.DataFrame({
        "customer_no": ["C000001", "C000009", "C000002", "C000010"],
        "name": ["明远贸易有限公司", "明远贸易有限公司", "Acme Ltd", "Acme Ltd"],
        "credit_code": [X, X, None, Z], "phone": ["+862150001111", "+862150009999", "+861060002222",
                                               "+861060001010"], "city": ["上海", "上海", "北京", "北京"]}))
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(insert(customers), [
            {"customer_code": "K0000005", "customer_no": None, "credit_code": W, "name": "其他公司",
             "phone": "+8675530003333", "status": "Active", "updated_at": datetime(2026, 1, 2)},
            {"customer_code": "K0000006", "customer_no": None, "credit_code": None, "name": "重名公司",
             "phone": "+862150006666", "status": "Active", "updated_at": datetime(2026, 1, 2)},
            {"customer_code": "K0000007", "customer_no": None, "credit_code": None, "name": "重名公司",
             "phone": "+862150007777", "status": "Active", "updated_at": datetime(2026, 1, 2)}])
    return eng


def _snapshot(eng):
    with eng.connect() as c:
        return {r.customer_code: tuple(r) for r in c.execute(select(customers).order_by(customers.c.customer_code))}


def test_links_never_cross_companies(tmp_path, erp_url, fresh_sandbox, kit):
    eng = _erp(erp_url)
    project = load_project(kit.make_project(tmp_path / "p", erp_url, fresh_sandbox, sync_yml=SYNC_YML))
    sf = kit.connector(project)
    accts = sf.dml("insert", "Account", [
        {"Name": "明远贸易有限公司", "Legacy_Id__c": "C000001", "Credit_Code__c": X, "Phone": "+862150001111",
         "Customer_Status__c": "Active", "BillingCity": "上海"},
        {"Name": "Acme Ltd", "Legacy_Id__c": "C000002", "Phone": "+861060002222", "Customer_Status__c": "Active"},
        {"Name": "新客户科技有限公司", "Credit_Code__c": Y, "Phone": "+8675530003333", "Customer_Status__c": "Active"},
        {"Name": "重名公司", "Customer_Status__c": "Active"},
        {"Name": "全新客户有限公司", "Customer_Status__c": "Active"},
        {"Name": "Prospect Co", "Customer_Status__c": "Prospect"}])
    assert all(r.success for r in accts)
    a1, a2, a3, a4, a5, a6 = (r.id for r in accts)
    before = _snapshot(eng)
    state = open_state(project.state_url)

    dry = kit.run(project, sf, dry_run=True)  # reports the conflicts before anything is written
    o = dry.objects["customers"]
    assert o["conflicts"] == 5, o
    assert {(s["key"], s["kind"]) for s in o["conflict_samples"]} == {
        ("K0000002", "contradicting"), ("K0000004", "contradicting"), ("K0000005", "contradicting"),
        ("K0000006", "ambiguous"), ("K0000007", "ambiguous")}
    assert _snapshot(eng) == before and list_conflicts(state) == []

    r1 = kit.run(project, sf)
    assert r1.status == "succeeded", r1.as_dict()
    after = _snapshot(eng)
    for k in ("K0000002", "K0000004", "K0000005", "K0000006", "K0000007"):
        assert after[k] == before[k], k  # another company's ERP customer: untouched
    with eng.connect() as c:
        linked = dict(c.execute(select(customers.c.customer_code, customers.c.crm_account_id)).tuples().all())
        names = dict(c.execute(select(customers.c.customer_code, customers.c.name)).tuples().all())
    assert linked["K0000001"] == a1 and linked["K0000003"] == a2
    assert list(linked.values()).count(a1) == 1 and list(linked.values()).count(a2) == 1
    # A3 and A4 are in a link conflict: not created in the ERP; A5 (no candidate) is; A6 is not a customer
    new = {k for k in after if k not in before}
    assert len(new) == 1 and names[new.pop()] == "全新客户有限公司"
    codes = {r["Id"]: r["ERP_Customer_Code__c"] for r in sf.query("SELECT Id, ERP_Customer_Code__c FROM Account")}
    assert codes[a1] == "K0000001" and codes[a2] == "K0000003"
    assert codes[a3] is None and codes[a4] is None and codes[a6] is None and codes[a5] == "K0000008"

    queued = list_conflicts(state)
    assert {(c.erp_key, c.sf_id) for c in queued} == {("K0000002", a1), ("K0000004", a2), ("K0000005", a3),
                                                      ("K0000006", a4), ("K0000007", a4)}
    k2 = next(c for c in queued if c.erp_key == "K0000002")
    assert k2.field == LINK_FIELD and "customer_no=C000009" in k2.erp_value and f"credit_code={X}" in k2.erp_value
    assert f"Id={a1}" in k2.sf_value and "Legacy_Id__c=C000001" in k2.sf_value
    assert k2.base_value.startswith("contradicting") and "customer_no C000009 != Legacy_Id__c C000001" in k2.base_value

    from crmbridge.cli import cli

    shown = CliRunner().invoke(cli, ["--project", str(project.root), "sync", "conflicts", "list"])
    assert shown.exit_code == 0, shown.output
    for c in queued:  # both candidates in full: nothing cut off (issue 16)
        assert c.erp_value in shown.output and c.sf_value in shown.output and c.base_value in shown.output

    r2 = kit.run(project, sf)  # nothing changed anywhere: nothing written, nothing flips
    assert r2.totals["written"] == 0, r2.as_dict()
    assert _snapshot(eng) == after and len(list_conflicts(state)) == 5

    # the steward decides: K0000006 is A4's company, K0000007 is not
    ids = {c.erp_key: c.id for c in queued}
    assert resolve(state, take="salesforce", ids=[ids["K0000006"]]) == 1
    assert resolve(state, take="erp", ids=[ids["K0000007"]]) == 1
    r3 = kit.run(project, sf)
    assert r3.status == "succeeded", r3.as_dict()
    with eng.connect() as c:
        assert c.execute(select(customers.c.crm_account_id).where(customers.c.customer_code == "K0000006")) \
            .scalar_one() == a4
        assert c.execute(select(customers.c.crm_account_id).where(customers.c.customer_code == "K0000007")) \
            .scalar_one() is None
        assert c.execute(select(func.count()).select_from(customers)).scalar_one() == len(after)
    assert list(sf.query(f"SELECT ERP_Customer_Code__c FROM Account WHERE Id = '{a4}'"))[0]["ERP_Customer_Code__c"] \
        == "K0000006"
    assert {c.erp_key for c in list_conflicts(state)} == {"K0000002", "K0000004", "K0000005"}
    assert kit.run(project, sf).totals["written"] == 0
    eng.dispose()


def test_dry_run_shows_link_conflicts_on_the_command_line(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    eng = _erp(url)
    root = kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=SYNC_YML)
    sf = kit.connector(load_project(root))
    sf.dml("insert", "Account", [{"Name": "明远贸易有限公司", "Legacy_Id__c": "C000001", "Credit_Code__c": X,
                                  "Customer_Status__c": "Active"}])
    from crmbridge.cli import cli

    res = CliRunner().invoke(cli, ["--project", str(root), "sync", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "K0000002" in res.output and "contradicting" in res.output and "C000009" in res.output
    assert "dry run" in res.output
    eng.dispose()


def test_the_scope_is_the_definitions_agreed_criterion(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    eng = _erp(url)
    root = kit.make_project(tmp_path / "p", url, fresh_sandbox, sync_yml=SYNC_YML)
    project = load_project(root)
    sf = kit.connector(project)
    (p,) = sf.dml("insert", "Account", [{"Name": "Prospect Co", "Customer_Status__c": "Prospect"}])
    r = kit.run(project, sf)
    scope = r.objects["customers"]["scope"]
    assert scope["source"].startswith("definitions/customer.yml criteria.agreed")
    assert scope["any"] == ["status eq Active -> Customer_Status__c"]
    assert any(u.startswith("invoice_count") for u in scope["unresolved"])  # not on Account: reported
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(customers).where(customers.c.name == "Prospect Co")) \
            .scalar_one() == 0
    # the steering meeting widens the agreed definition: the sync follows it, no sync.yml change
    d = root / "definitions" / "customer.yml"
    d.write_text(d.read_text(encoding="utf-8").replace(
        "      - {field: status, op: eq, value: Active}\n",
        "      - {field: status, op: in, value: [Active, Prospect]}\n"), encoding="utf-8")
    sf.dml("update", "Account", [{"Id": p.id, "Phone": "+862150004444"}])
    r = kit.run(project, sf)
    assert r.status == "succeeded", r.as_dict()
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(customers).where(customers.c.name == "Prospect Co")) \
            .scalar_one() == 1
    # a test under `all` that no Account field carries makes the scope unprovable: a config error
    d.write_text(d.read_text(encoding="utf-8").replace(
        "  agreed:\n", "  agreed:\n    all: [{field: invoice_count, op: gt, value: 0}]\n"), encoding="utf-8")
    from crmbridge.cli import cli

    from crmbridge.errors import UsageError
    from crmbridge.state import runs

    with open_state(project.state_url).connect() as c:
        n_runs = c.execute(select(func.count()).select_from(runs)).scalar_one()
    res = CliRunner().invoke(cli, ["--project", str(root), "sync"])
    # main() turns a UsageError into exit code 2 (tests/test_cli.py covers that mapping)
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
    assert "invoice_count" in str(res.exception) and "scope.fields" in str(res.exception)
    with open_state(project.state_url).connect() as c:  # a config error creates no run
        assert c.execute(select(func.count()).select_from(runs)).scalar_one() == n_runs
    eng.dispose()
