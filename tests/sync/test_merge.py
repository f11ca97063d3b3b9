"""Field decisions against the baseline: echoes, one-sided changes, conflicts, blocked directions."""

from __future__ import annotations

from decimal import Decimal

from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.merge import creates_in_erp, merge
from crmbridge.sync.values import canon, days_overdue

SPEC = ObjectSpec.model_validate({
    "name": "customers", "salesforce": {"object": "Account", "external_id": "ERP_Customer_Code__c"},
    "erp": {"table": "customers", "key": "customer_code"}, "owner": "salesforce",
    "create": {"salesforce": False}, "deletes": {"mode": "ignore"},
    "create_when": {"Customer_Status__c": ["Active"]},
    "fields": {"Name": "name", "Credit_Limit__c": {"erp": "credit_limit", "owner": "erp"},
               "BillingCity": {"erp": "billing_city", "owner": "both", "conflict": "queue"},
               "BillingStreet": {"erp": "billing_street", "owner": "both", "conflict": "erp_wins"}}})
BASE = {"Name": "Acme", "Credit_Limit__c": "50000", "BillingCity": "上海", "BillingStreet": "世纪大道100号"}


def test_values_equal_across_types_are_unchanged():
    erp = {"Name": "Acme", "Credit_Limit__c": Decimal("50000.00"), "BillingCity": "上海", "BillingStreet": "世纪大道100号"}
    sf = {"Name": "Acme", "Credit_Limit__c": 50000.0, "BillingCity": "上海", "BillingStreet": "世纪大道100号"}
    d = merge(SPEC, BASE, erp, sf)
    assert not d.to_sf and not d.to_erp and not d.conflicts and d.base == BASE


def test_each_field_follows_its_system_of_record():
    erp = {"Name": "Acme (ERP typo)", "Credit_Limit__c": Decimal("80000"), "BillingCity": "上海", "BillingStreet": "世纪大道100号"}
    sf = {"Name": "Acme", "Credit_Limit__c": 1.0, "BillingCity": "北京", "BillingStreet": "世纪大道100号"}
    d = merge(SPEC, BASE, erp, sf)
    assert d.to_sf == {"Credit_Limit__c": Decimal("80000")}  # ERP owns it: the Salesforce edit is reverted
    assert d.to_erp == {"Name": "Acme", "BillingCity": "北京"}  # Salesforce owns Name; city changed only there
    assert d.base["BillingCity"] == "北京" and d.base["Credit_Limit__c"] == "80000"


def test_both_sides_changed_is_a_conflict_or_the_policy():
    erp = dict(BASE, BillingCity="杭州", BillingStreet="建国路1号")
    sf = dict(BASE, BillingCity="南京", BillingStreet="中关村大街27号")
    d = merge(SPEC, BASE, erp, sf)
    assert d.conflicts == [("BillingCity", "杭州", "南京", "上海")] and d.base["BillingCity"] == "上海"
    assert d.to_sf == {"BillingStreet": "建国路1号"}  # erp_wins resolves it without the queue
    frozen = merge(SPEC, BASE, erp, sf, frozen={"BillingCity"})
    assert "BillingCity" not in frozen.to_sf and not frozen.conflicts
    forced = merge(SPEC, BASE, erp, sf, forced={"BillingCity": "南京"})
    assert forced.to_erp["BillingCity"] == "南京" and forced.base["BillingCity"] == "南京"


def test_a_blocked_direction_keeps_the_old_baseline():
    sf = dict(BASE, Name="Acme Ltd")
    d = merge(SPEC, BASE, dict(BASE), sf, to_erp_ok=False)
    assert not d.to_erp and d.blocked_erp == {"Name"} and d.base["Name"] == "Acme"  # picked up by a later run


def test_helpers():
    assert canon(Decimal("12.50")) == canon(12.5) == "12.5" and canon(True) == canon(1) == "1" and canon("") is None
    assert creates_in_erp(SPEC, {"Customer_Status__c": "Active"}) and not creates_in_erp(SPEC, {"Customer_Status__c": "Prospect"})
    from datetime import date

    assert days_overdue(date(2026, 1, 1), Decimal("10"), today=date(2026, 1, 31)) == 30
    assert days_overdue(date(2026, 1, 1), Decimal("0"), today=date(2026, 1, 31)) == 0
