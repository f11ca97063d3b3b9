"""Mapping rows: golden records, duplicates, lookups, owners, filters and quarantine (every row accounted for)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crmbridge.mappings.engine import OrgRefs, ParentKeys, map_step
from crmbridge.mappings.models import load_mappings

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings"
MAPS = load_mappings(TEMPLATES)
USERS = {f"rep{i}@sandbox.crmbridge": f"005000000000{i:03d}AAA" for i in range(1, 6)} | {
    "admin@sandbox.crmbridge": "005000000000000AAA"}
OWNERS = {f"R00{i}": f"rep{i}@sandbox.crmbridge" for i in range(1, 6)}


def customers(rows):
    cols = ["customer_no", "name", "credit_code", "phone", "city", "country", "industry", "status", "sales_rep",
            "annual_revenue", "_department"]
    df = pd.DataFrame([dict(zip(cols, r)) for r in rows], dtype=object)
    df["_row_id"] = [f"{d}:{i}" for i, d in enumerate(df["_department"], start=1)]
    for c in ("address", "province", "postal_code"):
        df[c] = None
    return df


def balanced(out):
    return out.rows_in == out.rows_out + len(out.quarantine)


def test_golden_record_maps_to_one_account_with_every_source_row():
    # what the resolve stage hands over: one row per company, its source rows in _merged_row_ids
    df = customers([
        ("C000123", "上海明远贸易有限公司", "91310000MA1FL2XQ3A", "6234 5678", "上海", "CN", "制造业", "活跃", "R001",
         "¥1,234,500.00", "sales"),
    ])
    df["_merged_row_ids"] = "sales:1;finance:1;service:3"
    df["_departments"] = "sales;finance;service"
    df["_legacy_keys"] = "C000123;F-77"
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert balanced(out) and out.quarantine.empty and len(out.records) == 1 and out.rows_in == 3
    r = out.records.iloc[0]
    assert r["Legacy_Id__c"] == "C000123" and r["Name"] == "上海明远贸易有限公司"
    assert r["Phone"] == "+862162345678"  # completed with 上海's area code
    assert r["Industry"] == "Manufacturing" and r["Customer_Status__c"] == "Active"
    assert r["AnnualRevenue"] == 1234500.0 and r["OwnerId"] == USERS["rep1@sandbox.crmbridge"]
    assert r["Source_Departments__c"] == "sales;finance;service" and r["Legacy_Keys__c"] == "C000123;F-77"
    assert r["_row_id"] == "sales:1" and r["_merged_row_ids"] == "sales:1;finance:1;service:3"


def test_rows_without_resolve_keep_their_own_department_and_key():
    df = customers([("C1", "甲公司", None, None, None, "CN", None, "活跃", "R001", None, "finance")])
    df["_source_key"] = "C1"
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    r = out.records.iloc[0]
    assert r["Source_Departments__c"] == "finance" and r["Legacy_Keys__c"] == "C1" and r["_merged_row_ids"] == "finance:1"


def test_value_map_miss_is_quarantined_with_reason_not_dropped():
    df = customers([("C1", "甲公司", None, None, None, "CN", None, "神秘状态", "R001", None, "sales"),
                    ("C2", "乙公司", None, None, None, "CN", None, "活跃", "R001", None, "sales")])
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert balanced(out) and list(out.records["Legacy_Id__c"]) == ["C2"]
    assert out.quarantine["_reason"].tolist() == ["transform_failed: Customer_Status__c (value_map) on '神秘状态'"]
    assert out.quarantine["customer_no"].tolist() == ["C1"]  # the source row, as it was
    assert out.reasons == {"transform_failed: Customer_Status__c": 1}


def test_quarantined_golden_record_quarantines_every_merged_source_row():
    df = customers([("C1", None, None, None, None, None, None, "活跃", "R001", None, "sales"),
                    ("C2", "有名字", None, None, None, None, None, "正常", "R001", None, "finance")])
    df["_merged_row_ids"] = ["sales:1;finance:7", "finance:2"]
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert balanced(out) and out.rows_in == 3 and out.records["Name"].tolist() == ["有名字"]
    assert out.quarantine["_row_id"].tolist() == ["sales:1", "finance:7"]  # one line per source row
    assert out.quarantine["_reason"].tolist() == ["required_missing: Name"] * 2
    assert out.reasons == {"required_missing: Name": 2}


def test_duplicate_external_ids_without_resolve_are_quarantined():
    df = customers([("C1", "甲公司", None, None, None, None, None, "活跃", "R001", None, "sales"),
                    ("C1", "甲公司", None, None, None, None, None, "正常", "R001", None, "finance")])
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert balanced(out) and out.records.empty
    assert out.quarantine["_reason"].tolist() == ["duplicate_external_id: Legacy_Id__c=C1"] * 2


def test_invalid_phone_blanked_not_quarantined_and_counted():
    df = customers([("C1", "甲", None, "6234 5678", None, None, None, "活跃", "R001", None, "sales")])
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert out.records["Phone"].tolist() == [None] and out.quarantine.empty
    assert out.stats["Phone"]["phone"]["failed"] == 1


def test_owner_default_and_unknown_user():
    df = customers([("C1", "甲", None, None, None, None, None, "活跃", "R999", None, "sales"),
                    ("C2", "乙", None, None, None, None, None, "活跃", "R001", None, "sales")])
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users=USERS))
    assert out.records["OwnerId"].tolist() == [USERS["admin@sandbox.crmbridge"], USERS["rep1@sandbox.crmbridge"]]
    out = map_step(MAPS.by_name("Account"), df, refs=OrgRefs(owners=OWNERS, users={}))
    assert balanced(out) and out.records.empty
    assert out.reasons == {"owner_user_not_found: Username": 2}


def test_duplicates_without_merge_are_quarantined():
    df = pd.DataFrame({"contact_no": ["P1", "P1", "P2"], "customer_no": ["C1"] * 3,
                       "full_name": ["欧阳娜娜", "司马懿", "John Smith"], "title": [None] * 3, "phone": [None] * 3,
                       "mobile": [None] * 3, "email": [None] * 3, "department": [None] * 3,
                       "_row_id": ["c:1", "c:2", "c:3"]}, dtype=object)
    out = map_step(MAPS.by_name("Contact"), df)
    assert balanced(out) and out.records["Legacy_Id__c"].tolist() == ["P2"]
    assert out.quarantine["_reason"].tolist() == ["duplicate_external_id: Legacy_Id__c=P1"] * 2
    assert out.records[["LastName", "FirstName"]].values.tolist() == [["Smith", "John"]]


def test_lookup_written_as_relationship_reference_and_parents_checked():
    df = pd.DataFrame({"contact_no": ["P1", "P2", "P3", "P4"], "customer_no": ["ｃ000001", "C9", "C2", None],
                       "full_name": ["欧阳娜娜", "张三", "李四", "王五"], "title": [None] * 4, "phone": [None] * 4,
                       "mobile": ["+86 138 0013 8000", None, None, None], "email": ["INFO@X.CN", None, None, "bad@"],
                       "department": [None] * 4, "_row_id": [f"c:{i}" for i in range(1, 5)]}, dtype=object)
    parents = {("account", "Legacy_Id__c"): ParentKeys(frozenset({"C000001"}), frozenset({"C2"}))}
    out = map_step(MAPS.by_name("Contact"), df, parents=parents)
    assert balanced(out)
    r = out.records.set_index("Legacy_Id__c")
    assert r.loc["P1", "Account.Legacy_Id__c"] == "C000001" and r.loc["P1", "LastName"] == "欧阳"
    assert r.loc["P1", "MobilePhone"] == "+8613800138000" and r.loc["P1", "Email"] == "info@x.cn"
    assert r.loc["P4", "Account.Legacy_Id__c"] is None and r.loc["P4", "Email"] is None  # optional lookup
    assert sorted(out.quarantine["_reason"]) == ["parent_not_found: Account.Legacy_Id__c=C9",
                                                 "parent_quarantined: Account.Legacy_Id__c=C2"]


def test_contract_filter_term_and_required_lookup():
    df = pd.DataFrame({"contract_no": ["HT1", "HT2", "HT3", "HT4", "HT5"],
                       "customer_no": ["C1", "C1", "C1", None, "C1"],
                       "start_date": ["2023-01-05", "2023-01-05", "2023/1/5", "2023-01-05", "2023-01-05"],
                       "end_date": ["2024-01-04", "2024-01-04", "2022-12-01", "2024-01-04", "2026-01-04"],
                       "amount": ["¥1,234.50"] * 5, "status": ["已生效", "已终止", "草稿", "草稿", "作废"],
                       "payment_terms": ["30天", "预付", "60天", "90天", "预付"],
                       "_row_id": [f"k:{i}" for i in range(1, 6)]}, dtype=object)
    out = map_step(MAPS.by_name("Contract"), df)
    assert balanced(out)
    rec = out.records.iloc[0]
    assert (rec["Legacy_Id__c"], rec["Status"], rec["StartDate"], rec["ContractTerm"], rec["Contract_Amount__c"],
            rec["Payment_Terms__c"], rec["Account.Legacy_Id__c"]) == ("HT1", "Activated", "2023-01-05", 12, 1234.5,
                                                                     "Net 30", "C1")
    assert out.filtered == {"terminated contracts are not migrated": 1}
    reasons = dict(zip(out.quarantine["contract_no"], out.quarantine["_reason"]))
    assert reasons["HT2"] == "filtered: terminated contracts are not migrated"
    assert reasons["HT3"] == "transform_failed: ContractTerm (months_between) on '2022-12-01'"
    assert reasons["HT4"] == "missing_parent: AccountId"
    assert reasons["HT5"] == "transform_failed: Status (value_map) on '作废'"


def test_describe_fields_quarantine_too_long_and_bad_picklist():
    from crmbridge.mappings.models import FieldSpec, LoadedStep, Step

    step = Step(entity="customers", object="Account", external_id="Legacy_Id__c",
                fields={"Legacy_Id__c": FieldSpec(column="customer_no"), "Name": FieldSpec(column="name"),
                        "Customer_Status__c": FieldSpec(column="status")})
    fields = {"Account": {"Name": {"name": "Name", "type": "string", "length": 5},
                          "Customer_Status__c": {"name": "Customer_Status__c", "type": "picklist",
                                                 "restrictedPicklist": True,
                                                 "picklistValues": [{"value": "Active", "active": True}]}}}
    df = pd.DataFrame({"customer_no": ["C1", "C2", "C3"], "name": ["短", "很长很长的名字", "短"],
                       "status": ["Active", "Active", "活跃"]}, dtype=object)
    out = map_step(LoadedStep("A", "x.yml", step), df, refs=OrgRefs(fields=fields))
    assert balanced(out) and out.records["Legacy_Id__c"].tolist() == ["C1"]
    assert out.quarantine["_reason"].tolist() == ["too_long: Name (7 > 5)", "bad_picklist_value: Customer_Status__c='活跃'"]


def test_missing_column_is_a_usage_error():
    import pytest

    from crmbridge.errors import UsageError

    with pytest.raises(UsageError, match="step Account field Name: column 'name' is not in entity 'customers'"):
        map_step(MAPS.by_name("Account"), pd.DataFrame({"customer_no": ["C1"]}))
