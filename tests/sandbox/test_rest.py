"""REST API through the real simple-salesforce client: describe, CRUD, upsert, validation errors,
query (relationships, paging, COUNT, datetime filters, queryAll), updated/deleted, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from simple_salesforce.exceptions import (SalesforceMalformedRequest, SalesforceMoreThanOneRecord,
                                          SalesforceResourceNotFound)

CASES = Path(__file__).parent / "cases"


def _error(exc) -> dict:
    return exc.value.content[0]


def test_describe_global_and_object(sf):
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Contract", "Order", "Product2", "User", "RecordType", "Inventory__c"} <= names
    d = sf.Account.describe()
    fields = {f["name"]: f for f in d["fields"]}
    assert d["keyPrefix"] == "001" and d["createable"] is True
    assert fields["Legacy_Id__c"]["externalId"] is True and fields["Name"]["nillable"] is False
    assert fields["Customer_Status__c"]["restrictedPicklist"] is True
    assert {"childSObject": "Contact", "field": "AccountId", "relationshipName": "Contacts"}.items() <= \
        next(c for c in d["childRelationships"] if c["childSObject"] == "Contact").items()
    assert {r["developerName"] for r in d["recordTypeInfos"]} == {"Customer", "Partner", "Master"}
    assert sf.Contact.metadata()["objectDescribe"]["keyPrefix"] == "003"


def test_unknown_object_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.Nope__c.describe()
    assert _error(e)["errorCode"] == "NOT_FOUND"


def test_crud_round_trip(sf, uid):
    created = sf.Account.create({"Name": "Acme " + uid, "Legacy_Id__c": "CRUD" + uid, "NumberOfEmployees": 12,
                                 "AnnualRevenue": "1500.5", "Website": "acme.example"})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("001")
    got = sf.Account.get(created["id"])
    assert got["Name"] == "Acme " + uid and got["NumberOfEmployees"] == 12 and got["AnnualRevenue"] == 1501.0  # currency scale 0 rounds half up
    assert got["OwnerId"].startswith("005") and got["CreatedDate"].endswith("+0000")
    assert sf.Account.get(created["id"][:15])["Id"] == created["id"]
    assert sf.Account.update(created["id"], {"Rating": "Hot"}) == 204
    again = sf.Account.get(created["id"])
    assert again["Rating"] == "Hot" and again["SystemModstamp"] > got["SystemModstamp"]
    assert sf.Account.get_by_custom_id("Legacy_Id__c", "crud" + uid.lower())["Id"] == created["id"]
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.Account.delete(created["id"])
    assert _error(e)["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.Account.get(created["id"])
    assert _error(e)["errorCode"] == "ENTITY_IS_DELETED"


def test_get_with_fields_param(sandbox, sf, uid, raw):
    rid = sf.Account.create({"Name": "F " + uid})["id"]
    body = raw(sandbox, "GET", f"/services/data/v62.0/sobjects/Account/{rid}?fields=Name,Rating",
               sandbox.new_session()).json()
    assert set(body) == {"attributes", "Name", "Rating"}


def test_upsert_created_then_updated(sf, uid):
    assert sf.Account.upsert(f"Legacy_Id__c/U{uid}", {"Name": "Up " + uid}) == 201
    assert sf.Account.upsert(f"Legacy_Id__c/U{uid}", {"Name": "Up2 " + uid}) == 200
    rec = sf.Account.get_by_custom_id("Legacy_Id__c", f"U{uid}")
    assert rec["Name"] == "Up2 " + uid


def test_upsert_response_bodies(sandbox, uid, raw):
    token = sandbox.new_session()
    path = f"/services/data/v62.0/sobjects/Account/Legacy_Id__c/B{uid}"
    first = raw(sandbox, "PATCH", path, token, json={"Name": "Body"})
    assert first.status_code == 201
    assert first.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": True}
    second = raw(sandbox, "PATCH", path, token, json={"Name": "Body2"})
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["id"] == first.json()["id"]
    old = raw(sandbox, "PATCH", path.replace("v62.0", "v45.0"), token, json={"Name": "Body3"})
    assert old.status_code == 204 and old.content == b""
    unknown = raw(sandbox, "PATCH", "/services/data/v62.0/sobjects/Account/Nope__c/x", token, json={"Name": "n"})
    assert unknown.status_code == 404 and unknown.json()[0]["errorCode"] == "NOT_FOUND"


def test_upsert_by_id_acts_like_update(sf, uid):
    rid = sf.Account.create({"Name": "ById " + uid})["id"]
    assert sf.Account.upsert(f"Id/{rid}", {"Name": "ById2 " + uid}) == 200
    assert sf.Account.get(rid)["Name"] == "ById2 " + uid


def test_upsert_multiple_matches_is_300(tmp_path):
    from crmbridge.sandbox.server import start_sandbox
    from simple_salesforce import Salesforce

    h = start_sandbox(tmp_path / "org.db", schema_files=[CASES / "schema__non_unique_external_id.yml"])
    try:
        sf = Salesforce(instance_url=h.instance_url, session_id=h.new_session(), session=h.session())
        a = sf.Account.create({"Name": "A", "Region_Code__c": "EAST"})["id"]
        b = sf.Account.create({"Name": "B", "Region_Code__c": "east"})["id"]
        with pytest.raises(SalesforceMoreThanOneRecord) as e:
            sf.Account.upsert("Region_Code__c/EAST", {"Name": "C"})
        assert sorted(u.rsplit("/", 1)[1] for u in e.value.content) == sorted([a, b])
        # the custom object from the schema file works, and survives a reopen without the file
        sf.Shipment__c.create({"Name": "S1", "Account__c": a, "Weight__c": 2.5})
    finally:
        h.stop()
    h2 = start_sandbox(tmp_path / "org.db")
    try:
        sf = Salesforce(instance_url=h2.instance_url, session_id=h2.new_session(), session=h2.session())
        rows = sf.query("SELECT Name, Account__r.Name FROM Shipment__c")["records"]
        assert [(r["Name"], r["Account__r"]["Name"]) for r in rows] == [("S1", "A")]
    finally:
        h2.stop()


def test_parent_reference_by_external_id(sf, uid):
    sf.Account.create({"Name": "Parent " + uid, "Legacy_Id__c": "P" + uid})
    cid = sf.Contact.create({"LastName": "Li", "FirstName": "Wei", "Account": {"Legacy_Id__c": "P" + uid}})["id"]
    rec = sf.query(f"SELECT Name, Account.Name, Account.Legacy_Id__c FROM Contact WHERE Id = '{cid}'")["records"][0]
    assert rec["Name"] == "Wei Li" and rec["Account"]["Name"] == "Parent " + uid
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Contact.create({"LastName": "X", "Account": {"Legacy_Id__c": "MISSING" + uid}})
    assert _error(e)["errorCode"] == "INVALID_FIELD" and "not found" in _error(e)["message"]


@pytest.mark.parametrize("body, code, field", [
    ({"Legacy_Id__c": "x"}, "REQUIRED_FIELD_MISSING", "Name"),
    ({"Name": "n" * 256}, "STRING_TOO_LONG", "Name"),
    ({"Name": "n", "Customer_Status__c": "Gold"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Customer_Status__c"),
    ({"Name": "n", "ParentId": "not-an-id"}, "MALFORMED_ID", "ParentId"),
    ({"Name": "n", "ParentId": "001Sb0000000zzzAAA"}, "INVALID_CROSS_REFERENCE_KEY", "ParentId"),
    ({"Name": "n", "ParentId": "003Sb0000000001IAA"}, "FIELD_INTEGRITY_EXCEPTION", "ParentId"),
    ({"Name": "n", "CreatedDate": "2020-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE", "CreatedDate"),
])
def test_validation_errors(sf, body, code, field):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Account.create(body)
    assert _error(e)["errorCode"] == code
    assert _error(e)["fields"] == [field]


def test_request_level_errors(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Account.create({"Name": "n", "Bogus__c": 1})
    assert _error(e) == {"message": "No such column 'Bogus__c' on sobject of type Account", "errorCode": "INVALID_FIELD"}
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Account.create({"Name": "n", "NumberOfEmployees": "many"})
    assert _error(e)["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Contact.create({"LastName": "n", "Birthdate": "2023-02-30"})
    assert _error(e)["errorCode"] == "JSON_PARSER_ERROR"


def test_duplicate_value_names_the_other_record(sf, uid):
    first = sf.Account.create({"Name": "D1", "Credit_Code__c": "CC" + uid})["id"]
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Account.create({"Name": "D2", "Credit_Code__c": "cc" + uid.lower()})
    assert _error(e)["errorCode"] == "DUPLICATE_VALUE"
    assert _error(e)["message"] == f"duplicate value found: Credit_Code__c duplicates value on record with id: {first}"


def test_computed_fields(sf, uid):
    acc = sf.Account.create({"Name": "Comp " + uid})["id"]
    cid = sf.Contract.create({"AccountId": acc, "StartDate": "2024-01-31", "ContractTerm": 1})["id"]
    rec = sf.Contract.get(cid)
    assert rec["EndDate"] == "2024-02-28" and rec["Status"] == "Draft"
    assert len(rec["ContractNumber"]) == 8 and rec["ContractNumber"].isdigit()
    sf.Contract.update(cid, {"ContractTerm": 12})
    assert sf.Contract.get(cid)["EndDate"] == "2025-01-30"


def test_query_paging_past_2000(fresh_sf):
    records = [{"Name": f"Page {i:05d}"} for i in range(4500)]
    fresh_sf.bulk2.Account.insert(records=records, wait=0.2)
    first = fresh_sf.query("SELECT Id, Name FROM Account ORDER BY Name")
    assert first["totalSize"] == 4500 and first["done"] is False and len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/") and first["nextRecordsUrl"].endswith("-2000")
    everything = fresh_sf.query_all("SELECT Id, Name FROM Account ORDER BY Name")["records"]
    assert [r["Name"] for r in everything] == [f"Page {i:05d}" for i in range(4500)]


def test_count_datetime_filter_and_query_all(fresh_sf):
    ids = [fresh_sf.Account.create({"Name": f"Q{i}"})["id"] for i in range(3)]
    stamp = fresh_sf.Account.get(ids[1])["SystemModstamp"]
    assert fresh_sf.query("SELECT COUNT() FROM Account") == {"totalSize": 3, "done": True, "records": []}
    later = fresh_sf.query(f"SELECT Name FROM Account WHERE SystemModstamp >= {stamp.replace('+0000', 'Z')} "
                           "ORDER BY Name")["records"]
    assert [r["Name"] for r in later] == ["Q1", "Q2"]
    fresh_sf.Account.delete(ids[0])
    assert fresh_sf.query("SELECT COUNT() FROM Account")["totalSize"] == 2
    deleted = fresh_sf.query_all("SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true",
                                 include_deleted=True)["records"]
    assert [(r["Name"], r["IsDeleted"]) for r in deleted] == [("Q0", True)]


def test_malformed_query(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELEC Id FROM Account")
    assert _error(e)["errorCode"] == "MALFORMED_QUERY"


def test_updated_and_deleted_endpoints(fresh_sf):
    import datetime as dt

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    a = fresh_sf.Account.create({"Name": "Upd"})["id"]
    b = fresh_sf.Account.create({"Name": "Del"})["id"]
    fresh_sf.Account.delete(b)
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    assert fresh_sf.Account.updated(start, end)["ids"] == [a]
    assert [d["id"] for d in fresh_sf.Account.deleted(start, end)["deletedRecords"]] == [b]


def test_limits_and_usage_header(sandbox, sf, raw):
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    assert 0 < limits["DailyApiRequests"]["Remaining"] < 100000
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches", "DataStorageMB"} <= set(limits)
    r = raw(sandbox, "GET", "/services/data/v62.0/limits", sandbox.new_session())
    used, mx = r.headers["Sforce-Limit-Info"].split("=")[1].split("/")
    assert mx == "100000" and int(used) > 0
    assert sf.api_usage["api-usage"].total == 100000


def test_unsupported_version_is_not_found(sandbox, raw):
    r = raw(sandbox, "GET", "/services/data/v39.0/sobjects", sandbox.new_session())
    assert r.status_code == 404
