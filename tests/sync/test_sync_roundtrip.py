"""Syncs against real PostgreSQL / MariaDB ERPs and the sandbox org, edited from outside between runs."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine, delete, func, select, update


from crmbridge.config import load_project
from crmbridge.state import open_state
from crmbridge.sync.conflicts import list_conflicts, resolve
from crmbridge.sync.reference_erp import contracts, create_reference_erp, customers, inventory

LEGACY = pd.DataFrame({"customer_no": ["C000001", "C000002"], "name": ["上海明远贸易有限公司", "Acme Industrial Ltd."],
                       "credit_code": ["91310000MA1FL2XQ3A", None], "city": ["上海", "北京"]})


@pytest.fixture(params=["postgresql", "mariadb"])
def erp_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


def _one(sf, soql):
    rows = list(sf.query(soql))
    assert len(rows) == 1, rows
    return rows[0]


def _setup(tmp_path, erp_url, handle, kit):
    create_reference_erp(erp_url, customers=LEGACY, items=4, seed=3)
    project = load_project(kit.make_project(tmp_path / "p", erp_url, handle))
    sf = kit.connector(project)
    res = sf.dml("insert", "Account", [
        {"Name": "上海明远贸易有限公司", "Legacy_Id__c": "C000001", "Customer_Status__c": "Active", "BillingCity": "上海"},
        {"Name": "Acme Industrial Ltd.", "Credit_Code__c": None, "Legacy_Id__c": "C000002",
         "Customer_Status__c": "Active", "BillingCity": "北京"},
        {"Name": "新客户科技有限公司", "Customer_Status__c": "Active", "Phone": "021-5555 0000"},
        {"Name": "Prospect Co", "Customer_Status__c": "Prospect"},
    ])
    assert all(r.success for r in res)
    return project, sf, create_engine(erp_url), [r.id for r in res]


def test_changes_flow_both_ways_and_a_second_run_writes_nothing(tmp_path, erp_url, fresh_sandbox, kit):
    project, sf, erp, ids = _setup(tmp_path, erp_url, fresh_sandbox, kit)
    r1 = kit.run(project, sf)
    assert r1.status == "succeeded", r1.as_dict()
    with erp.connect() as c:
        cust = {r.customer_no or r.name: r for r in c.execute(select(customers))}
    # the new active Account became an ERP customer; its code came back as the external ID
    new = cust["新客户科技有限公司"]
    assert new.customer_code == "K0000003" and new.phone == "021-5555 0000"
    assert _one(sf, f"SELECT ERP_Customer_Code__c FROM Account WHERE Id = '{ids[2]}'")["ERP_Customer_Code__c"] == "K0000003"
    assert "Prospect Co" not in cust  # not a customer under the agreed definition
    # migrated Accounts were linked to the existing ERP customers, not duplicated
    a1 = _one(sf, f"SELECT ERP_Customer_Code__c, Credit_Limit__c, Open_Balance__c FROM Account WHERE Id = '{ids[0]}'")
    assert a1["ERP_Customer_Code__c"] == "K0000001" and a1["Credit_Limit__c"] == float(cust["C000001"].credit_limit)
    with erp.connect() as c:
        n_inv = c.execute(select(func.count()).select_from(inventory)).scalar_one()
    assert sf.count("SELECT COUNT() FROM Inventory__c") == n_inv == 12
    assert sf.count("SELECT COUNT() FROM Product2 WHERE IsActive = true") == 4
    r2 = kit.run(project, sf)
    assert r2.status == "succeeded" and r2.totals["written"] == 0, r2.as_dict()

    # --- edits from outside, on both sides
    with erp.begin() as c:
        c.execute(update(inventory).where(inventory.c.item_code == "ITEM0000001", inventory.c.warehouse == "WH-BJ")
                  .values(on_hand=999, available=999, reserved=0, updated_at=func.current_timestamp()))
        c.execute(delete(inventory).where(inventory.c.item_code == "ITEM0000002", inventory.c.warehouse == "WH-SZ"))
        c.execute(update(customers).where(customers.c.customer_code == "K0000001")
                  .values(credit_limit=777000, updated_at=func.current_timestamp()))
    sf.dml("update", "Account", [{"Id": ids[1], "Phone": "010-8888 6666"}])
    sf.dml("update", "Account", [{"Id": ids[3], "Customer_Status__c": "Active"}])
    r3 = kit.run(project, sf)
    assert r3.status == "succeeded", r3.as_dict()
    inv = _one(sf, "SELECT On_Hand__c, Is_Active__c FROM Inventory__c WHERE ERP_Key__c = 'ITEM0000001|WH-BJ'")
    assert inv["On_Hand__c"] == 999
    gone = _one(sf, "SELECT Is_Active__c FROM Inventory__c WHERE ERP_Key__c = 'ITEM0000002|WH-SZ'")
    assert gone["Is_Active__c"] is False  # soft delete by default
    assert _one(sf, f"SELECT Credit_Limit__c FROM Account WHERE Id = '{ids[0]}'")["Credit_Limit__c"] == 777000
    with erp.connect() as c:
        assert c.execute(select(customers.c.phone).where(customers.c.customer_no == "C000002")).scalar_one() \
            == "010-8888 6666"
        assert c.execute(select(func.count()).select_from(customers).where(customers.c.name == "Prospect Co")) \
            .scalar_one() == 1  # became a customer: now it reaches the ERP
    assert r3.objects["inventory"]["written"] == 2 and r3.objects["inventory"]["deleted"] == 1
    with erp.connect() as c:  # the product carries the stock total over all warehouses
        total = c.execute(select(func.sum(inventory.c.on_hand)).where(inventory.c.item_code == "ITEM0000001")).scalar_one()
    prod = _one(sf, "SELECT Quantity_On_Hand__c FROM Product2 WHERE ERP_Item_Code__c = 'ITEM0000001'")
    assert prod["Quantity_On_Hand__c"] == float(total) and float(total) >= 999
    r4 = kit.run(project, sf)
    assert r4.totals["written"] == 0, r4.as_dict()
    for r in (r1, r2, r3, r4):  # rows in = rows out: every ERP row read ends in exactly one outcome
        for name in ("products", "inventory", "receivables", "account_balances"):
            o = r.objects[name]
            assert sum(o["records"].values()) == o["read_erp"] + o["deleted"], (name, o)
    assert r3.objects["inventory"]["records"]["deleted"] == 1 and r3.objects["inventory"]["records"]["synced"] == 1
    assert r1.objects["customers"]["records"] == {"unchanged": 0, "synced": 3, "conflict": 0, "pending": 0,
                                                  "skipped": 1, "error": 0, "deleted": 0}
    erp.dispose()


def test_conflicting_edits_land_in_the_queue_and_resolve(tmp_path, erp_url, fresh_sandbox, kit):
    project, sf, erp, ids = _setup(tmp_path, erp_url, fresh_sandbox, kit)
    assert kit.run(project, sf).status == "succeeded"
    with erp.begin() as c:
        c.execute(update(customers).where(customers.c.customer_code == "K0000002")
                  .values(billing_street="朝阳区建国路1号", updated_at=func.current_timestamp()))
    sf.dml("update", "Account", [{"Id": ids[1], "BillingStreet": "海淀区中关村大街27号"}])
    r = kit.run(project, sf)
    assert r.objects["customers"]["conflicts"] == 1 and r.objects["customers"]["written"] == 0, r.as_dict()
    state = open_state(project.state_url)
    (c1,) = list_conflicts(state)
    assert (c1.field, c1.erp_value, c1.sf_value) == ("BillingStreet", "朝阳区建国路1号", "海淀区中关村大街27号")
    r = kit.run(project, sf)  # nothing overwrites either side while the conflict is open
    assert r.totals["written"] == 0 and len(list_conflicts(state)) == 1
    assert resolve(state, take="salesforce", ids=[c1.id]) == 1
    r = kit.run(project, sf)
    assert r.objects["customers"]["written_erp"] == 1, r.as_dict()
    with erp.connect() as c:
        assert c.execute(select(customers.c.billing_street).where(customers.c.customer_code == "K0000002")) \
            .scalar_one() == "海淀区中关村大街27号"
    assert list_conflicts(state) == [] and list_conflicts(state, status="applied")[0].id == c1.id
    assert kit.run(project, sf).totals["written"] == 0
    erp.dispose()


def test_activated_contracts_reach_the_erp(tmp_path, erp_url, fresh_sandbox, kit):
    project, sf, erp, ids = _setup(tmp_path, erp_url, fresh_sandbox, kit)
    res = sf.dml("insert", "Contract", [
        {"AccountId": ids[0], "Legacy_Id__c": "HT-1", "StartDate": "2026-02-01", "ContractTerm": 12,
         "Contract_Amount__c": 120000.5, "Payment_Terms__c": "Net 30", "Status": "Draft"},
        {"AccountId": ids[2], "Legacy_Id__c": "HT-2", "StartDate": "2026-03-01", "ContractTerm": 24, "Status": "Draft"},
    ])
    sf.dml("update", "Contract", [{"Id": res[0].id, "Status": "Activated"}])
    assert kit.run(project, sf).status == "succeeded"
    with erp.connect() as c:
        rows = list(c.execute(select(contracts)))
    assert len(rows) == 1 and rows[0].crm_contract_no == "HT-1" and rows[0].customer_code == "K0000001"
    assert float(rows[0].amount) == 120000.5 and rows[0].status == "Activated"
    got = _one(sf, f"SELECT ERP_Contract_Code__c FROM Contract WHERE Id = '{res[0].id}'")
    assert got["ERP_Contract_Code__c"] == rows[0].contract_code == "HT0000001"
    assert kit.run(project, sf).totals["written"] == 0
    erp.dispose()


def test_one_direction_at_a_time_loses_nothing(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    project, sf, erp, ids = _setup(tmp_path, url, fresh_sandbox, kit)
    assert kit.run(project, sf).status == "succeeded"
    sf.dml("update", "Account", [{"Id": ids[0], "Phone": "021-1111 2222"}])
    with erp.begin() as c:
        c.execute(update(inventory).where(inventory.c.item_code == "ITEM0000000", inventory.c.warehouse == "WH-SH")
                  .values(on_hand=4321, updated_at=func.current_timestamp()))
    r = kit.run(project, sf, direction="to-salesforce")
    assert r.objects["inventory"]["written"] == 1 and r.objects["customers"]["written_erp"] == 0, r.as_dict()
    phone = select(customers.c.phone).where(customers.c.customer_code == "K0000001")
    with erp.connect() as c:
        assert c.execute(phone).scalar_one() != "021-1111 2222"
    r = kit.run(project, sf, direction="to-erp")
    assert r.objects["customers"]["written_erp"] == 1 and r.objects["inventory"]["written"] == 0, r.as_dict()
    with erp.connect() as c:
        assert c.execute(phone).scalar_one() == "021-1111 2222"
    assert kit.run(project, sf).totals["written"] == 0
    erp.dispose()


def test_account_deleted_in_salesforce_is_flagged_not_deleted_in_the_erp(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    project, sf, erp, ids = _setup(tmp_path, url, fresh_sandbox, kit)
    assert kit.run(project, sf).status == "succeeded"
    assert all(r.success for r in sf.dml("delete", "Account", [{"Id": ids[1]}]))
    r = kit.run(project, sf)
    assert r.objects["customers"]["deleted"] == 1 and r.objects["customers"]["written_erp"] == 1, r.as_dict()
    with erp.connect() as c:
        row = c.execute(select(customers).where(customers.c.customer_code == "K0000002")).one()
    assert row.status == "Deleted" and row.name == "Acme Industrial Ltd."
    assert kit.run(project, sf).totals["written"] == 0
    erp.dispose()


def test_an_erp_customer_waiting_for_its_account_is_linked_when_it_appears(tmp_path, fresh_sandbox, kit):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_reference_erp(url, customers=LEGACY, items=1)
    project = load_project(kit.make_project(tmp_path / "p", url, fresh_sandbox))
    sf = kit.connector(project)
    r = kit.run(project, sf)
    assert r.objects["customers"]["records"]["pending"] == 2, r.as_dict()
    r = kit.run(project, sf)  # nothing new in Salesforce: the waiting rows cost nothing
    assert r.totals["written"] == 0 and r.api_calls <= 8, r.as_dict()
    (acct,) = sf.dml("insert", "Account", [{"Name": "Acme Industrial Ltd.", "Legacy_Id__c": "C000002",
                                            "Customer_Status__c": "Active"}])
    r = kit.run(project, sf)
    assert r.status == "succeeded", r.as_dict()
    got = list(sf.query(f"SELECT ERP_Customer_Code__c, Credit_Limit__c FROM Account WHERE Id = '{acct.id}'"))[0]
    assert got["ERP_Customer_Code__c"] == "K0000002" and got["Credit_Limit__c"]  # linked, not a new ERP row
    erp = create_engine(url)
    with erp.connect() as c:
        assert c.execute(select(func.count()).select_from(customers)).scalar_one() == 2
    assert kit.run(project, sf).totals["written"] == 0
    erp.dispose()
