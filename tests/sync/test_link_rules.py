"""The linking rule itself (sync/linking.py), without databases: every rule with values on both sides
must agree, and a link is unique both ways."""

from __future__ import annotations

from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.linking import norm, plan_links

SPEC = ObjectSpec.model_validate({
    "name": "customers", "salesforce": {"object": "Account", "external_id": "ERP_Customer_Code__c"},
    "erp": {"table": "customers", "key": "customer_code"}, "owner": "salesforce",
    "create": {"salesforce": False, "erp": True}, "deletes": {"mode": "ignore"},
    "link_on": [{"salesforce": "Legacy_Id__c", "erp": "customer_no"},
                {"salesforce": "Credit_Code__c", "erp": "credit_code"}],
    "fields": {"Name": "name"}})


def erp(no=None, cc=None, name="x"):
    return {"customer_no": no, "credit_code": cc, "name": name}


def sf(no=None, cc=None, name="x"):
    return {"Legacy_Id__c": no, "Credit_Code__c": cc, "Name": name}


def test_one_agreeing_rule_is_enough_only_when_no_other_rule_disagrees():
    plan = plan_links(SPEC, {"K1": erp("C1", "X"), "K2": erp("C9", "X")}, {"a": sf("C1", "X")})
    assert plan.links == {"K1": "a"}
    (issue,) = plan.issues["K2"]
    assert issue.kind == "contradicting" and "customer_no C9 != Legacy_Id__c C1" in issue.why
    assert plan.blocked_sf == set()  # "a" has its own, consistent link


def test_ambiguous_both_ways_links_nothing_and_blocks_the_record():
    plan = plan_links(SPEC, {"K1": erp(cc="X"), "K2": erp(cc="X")}, {"a": sf(cc="X")})
    assert plan.links == {} and set(plan.issues) == {"K1", "K2"} and plan.blocked_sf == {"a"}
    plan = plan_links(SPEC, {"K1": erp(cc="X")}, {"a": sf(cc="X"), "b": sf(cc="X")})
    assert plan.links == {} and {i.sf_id for i in plan.issues["K1"]} == {"a", "b"}


def test_taken_records_and_steward_decisions():
    plan = plan_links(SPEC, {"K2": erp("C1")}, {"a": sf("C1")}, taken_sf={"a": "K1"})
    assert plan.links == {} and plan.issues["K2"][0].kind == "taken" and plan.blocked_sf == set()
    rows, recs = {"K1": erp(cc="X"), "K2": erp(cc="X")}, {"a": sf(cc="X")}
    plan = plan_links(SPEC, rows, recs, decisions={("K1", "a"): "link", ("K2", "a"): "apart"})
    assert plan.links == {"K1": "a"} and plan.issues == {}
    plan = plan_links(SPEC, rows, recs, decisions={("K2", "a"): "apart"})
    assert plan.links == {"K1": "a"}  # the other candidate was ruled out: the link is unique again


def test_values_compare_after_width_case_and_blanks():
    assert norm(" ｃ000123 ") == norm("C000123") == "C000123" and norm("") is None and norm(None) is None
    assert plan_links(SPEC, {"K1": erp("ｃ000123")}, {"a": sf("C000123 ")}).links == {"K1": "a"}
