"""sObject Collections through simple-salesforce's ``restful``: create, update, upsert, delete, retrieve,
allOrNone rollback and the 200-record limit."""

from __future__ import annotations

import json

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _post(sf, path, body, method="POST"):
    return sf.restful(path, method=method, data=json.dumps(body))


def test_create_partial_success(sf, uid):
    res = _post(sf, "composite/sobjects", {"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "Col " + uid},
        {"attributes": {"type": "Account"}, "Legacy_Id__c": "NONAME" + uid},
        {"attributes": {"type": "Contact"}, "LastName": "Mixed " + uid}]})
    assert res[0]["success"] is True and res[0]["id"].startswith("001")
    assert res[1] == {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                                                    "message": "Required fields are missing: [Name]",
                                                    "fields": ["Name"]}]}
    assert res[2]["success"] is True and res[2]["id"].startswith("003")


def test_all_or_none_rolls_back_everything(sf, uid):
    res = _post(sf, "composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Rolled " + uid, "Legacy_Id__c": "R1" + uid},
        {"attributes": {"type": "Account"}, "Name": "Bad", "Customer_Status__c": "Gold"}]})
    assert [r["success"] for r in res] == [False, False]
    assert res[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert res[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.query(f"SELECT COUNT() FROM Account WHERE Legacy_Id__c = 'R1{uid}'")["totalSize"] == 0


def test_update_upsert_retrieve_delete(sf, uid):
    created = _post(sf, "composite/sobjects", {"records": [
        {"attributes": {"type": "Account"}, "Name": f"C{i} {uid}", "Legacy_Id__c": f"CU{i}{uid}"} for i in range(3)]})
    ids = [r["id"] for r in created]
    upd = _post(sf, "composite/sobjects", {"records": [
        {"attributes": {"type": "Account"}, "Id": ids[0], "Rating": "Warm"},
        {"attributes": {"type": "Account"}, "Id": "001Sb0000000zzzAAA", "Rating": "Warm"}]}, "PATCH")
    assert upd[0] == {"id": ids[0], "success": True, "errors": []}
    assert upd[1]["success"] is False and upd[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    ups = _post(sf, "composite/sobjects/Account/Legacy_Id__c", {"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Legacy_Id__c": f"CU1{uid}", "Name": "Renamed"},
        {"attributes": {"type": "Account"}, "Legacy_Id__c": f"CUNEW{uid}", "Name": "New"}]}, "PATCH")
    assert [(r["success"], r["created"]) for r in ups] == [(True, False), (True, True)]
    assert ups[0]["id"] == ids[1]
    got = sf.restful("composite/sobjects/Account", params={"ids": ",".join(ids[:2]), "fields": "Name,Rating"})
    assert [(g["Name"], g["Rating"]) for g in got] == [(f"C0 {uid}", "Warm"), ("Renamed", None)]
    sf.Account.delete(ids[1])
    deleted = sf.restful("composite/sobjects", method="DELETE",
                         params={"ids": f"{ids[2]},{ids[2]},{ids[1]},bogus", "allOrNone": "false"})
    assert deleted[0] == {"id": ids[2], "success": True, "errors": []}
    assert deleted[1]["errors"][0] == {"statusCode": "DUPLICATE_VALUE", "message": f"Duplicate id in list: {ids[2]}",
                                       "fields": []}
    assert deleted[2]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert deleted[3]["errors"][0]["statusCode"] == "MALFORMED_ID"


def test_delete_all_or_none_keeps_records(sf, uid):
    rid = sf.Account.create({"Name": "Keep " + uid})["id"]
    res = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{rid},001Sb0000000zzzAAA",
                                                                     "allOrNone": "true"})
    assert [r["success"] for r in res] == [False, False]
    assert sf.Account.get(rid)["IsDeleted"] is False


def test_more_than_200_records_is_refused(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        _post(sf, "composite/sobjects", {"records": [{"attributes": {"type": "Account"}, "Name": str(i)}
                                                     for i in range(201)]})
    assert e.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_duplicate_external_id_in_one_upsert_call(sf, uid):
    res = _post(sf, "composite/sobjects/Account/Legacy_Id__c", {"records": [
        {"attributes": {"type": "Account"}, "Legacy_Id__c": "DUP" + uid, "Name": "a"},
        {"attributes": {"type": "Account"}, "Legacy_Id__c": "dup" + uid.lower(), "Name": "b"}]}, "PATCH")
    assert [r["errors"][0]["statusCode"] for r in res] == ["DUPLICATE_EXTERNAL_ID"] * 2
