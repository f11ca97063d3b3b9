"""Issue 15: where the sandbox fell short of real orgs. recordCount, /composite, Organization, Bulk 2.0
multipart create-job and strictness, Bulk 1.0 refusal, defaultedOnCreate on insert."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"
V = "/services/data/v62.0"


# ----------------------------------------------------------------------------- point 2: limits/recordCount
def test_record_count_per_object(fresh_sandbox, raw):
    token = fresh_sandbox.new_session()
    for n in range(3):
        raw(fresh_sandbox, "POST", f"{V}/sobjects/Account", token, json={"Name": f"RC{n}"})
    gone = raw(fresh_sandbox, "POST", f"{V}/sobjects/Account", token, json={"Name": "RC gone"}).json()["id"]
    raw(fresh_sandbox, "DELETE", f"{V}/sobjects/Account/{gone}", token)
    r = raw(fresh_sandbox, "GET", f"{V}/limits/recordCount?sObjects=Account,Contact,NoSuch__c", token)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"sObjects": [{"count": 3, "name": "Account"}, {"count": 0, "name": "Contact"}]}
    every = raw(fresh_sandbox, "GET", f"{V}/limits/recordCount", token).json()["sObjects"]
    assert {"count": 6, "name": "User"} in every
    assert "DailyApiRequests" in raw(fresh_sandbox, "GET", f"{V}/limits", token).json()


# ----------------------------------------------------------------------------- point 3: /composite
def test_composite_references_and_errors(sandbox, raw, uid):
    token = sandbox.new_session()
    body = {"compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "acct",
         "body": {"Name": "Comp " + uid, "Legacy_Id__c": "CMP" + uid}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "ct",
         "body": {"LastName": "Comp", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": f"{V}/sobjects/Account/@{{acct.id}}?fields=Name", "referenceId": "get"},
        {"method": "GET", "url": f"{V}/query?q=SELECT Id FROM Contact WHERE AccountId = '@{{acct.id}}'",
         "referenceId": "q"},
        {"method": "GET", "url": f"{V}/sobjects/Foo", "referenceId": "missing"},
    ]}
    r = raw(sandbox, "POST", f"{V}/composite", token, json=body)
    assert r.status_code == 200
    out = {x["referenceId"]: x for x in r.json()["compositeResponse"]}
    assert out["acct"]["httpStatusCode"] == 201 and out["acct"]["body"]["success"] is True
    assert out["acct"]["httpHeaders"]["Location"] == f"{V}/sobjects/Account/{out['acct']['body']['id']}"
    assert out["ct"]["httpStatusCode"] == 201
    assert out["get"]["body"]["Name"] == "Comp " + uid
    assert out["q"]["body"]["records"][0]["Id"] == out["ct"]["body"]["id"]
    assert (out["missing"]["httpStatusCode"], out["missing"]["body"][0]["errorCode"]) == (404, "NOT_FOUND")


def test_composite_all_or_none_rolls_back(sandbox, raw, uid):
    token = sandbox.new_session()
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "ok", "body": {"Name": "AON " + uid}},
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "bad", "body": {"Name": ""}},
    ]}
    out = raw(sandbox, "POST", f"{V}/composite", token, json=body).json()["compositeResponse"]
    assert [x["httpStatusCode"] for x in out] == [400, 400]
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert out[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    q = raw(sandbox, "GET", f"{V}/query", token, params={"q": f"SELECT Id FROM Account WHERE Name = 'AON {uid}'"})
    assert q.json()["totalSize"] == 0
    # an unknown reference is the subrequest's error, not the whole call's
    bad_ref = {"compositeRequest": [{"method": "GET", "url": f"{V}/sobjects/Account/@{{nope.id}}",
                                     "referenceId": "x"}]}
    out = raw(sandbox, "POST", f"{V}/composite", token, json=bad_ref).json()["compositeResponse"]
    assert out[0]["httpStatusCode"] == 400 and out[0]["body"][0]["errorCode"] == "INVALID_REFERENCE"
    too_many = {"compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{n}"}
                                     for n in range(26)]}
    assert raw(sandbox, "POST", f"{V}/composite", token, json=too_many).status_code == 400


# ----------------------------------------------------------------------------- point 3: Organization
def test_organization_sobject(sf, sandbox):
    org = sf.query("SELECT Id, Name, IsSandbox, OrganizationType, InstanceName FROM Organization")["records"]
    assert len(org) == 1 and org[0]["Id"] == sandbox.store.org_id and org[0]["IsSandbox"] is True
    rec = sf.Organization.get(sandbox.store.org_id)
    assert rec["Id"].startswith("00D") and rec["OrganizationType"] == "Enterprise Edition"
    assert sf.Organization.describe()["createable"] is False
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Organization.create({"Name": "x"})
    assert e.value.content[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"


# ----------------------------------------------------------------------------- point 3: Bulk 2.0 multipart, Bulk 1.0
def _wait(sandbox, raw, token, kind, job_id):
    for _ in range(300):
        info = raw(sandbox, "GET", f"{V}/jobs/{kind}/{job_id}", token).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.05)
    raise AssertionError(info)


def _multipart(job: dict, csv_text: str) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n"
            f"{json.dumps(job)}\r\n--{b}\r\nContent-Type: text/csv\r\nContent-Disposition: form-data; "
            f"name=\"content\"; filename=\"content\"\r\n\r\n{csv_text}\r\n--{b}--\r\n").encode()
    return body, f"multipart/form-data; boundary={b}"


def test_bulk_multipart_create_job(sandbox, raw, uid):
    token = sandbox.new_session()
    body, ctype = _multipart({"object": "Account", "operation": "insert", "lineEnding": "LF"},
                             f"Name,Legacy_Id__c\nMP1 {uid},MP1{uid}\nMP2 {uid},MP2{uid}\n")
    r = raw(sandbox, "POST", f"{V}/jobs/ingest", token, data=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "UploadComplete" and r.json()["contentUrl"].endswith("/batches")
    info = _wait(sandbox, raw, token, "ingest", r.json()["id"])
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 2, 0)
    bad, ctype = _multipart({"object": "Account", "operation": "insert"}, "Name\nx\n")
    bad = bad.replace(b'name="content"', b'name="other"')
    r = raw(sandbox, "POST", f"{V}/jobs/ingest", token, data=bad, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "'content' part" in r.json()[0]["message"]


def test_bulk_v1_is_refused_clearly(sandbox, raw):
    r = raw(sandbox, "POST", "/services/async/62.0/job", data="<jobInfo/>",
            headers={"X-SFDC-Session": sandbox.new_session(), "Content-Type": "application/xml"})
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/xml")
    assert "<exceptionCode>FeatureNotEnabled</exceptionCode>" in r.text and "Bulk API 2.0" in r.text
    r = raw(sandbox, "POST", "/services/async/62.0/job", json={"operation": "insert"},
            headers={"X-SFDC-Session": sandbox.new_session()})
    assert r.json()["exceptionCode"] == "FeatureNotEnabled"


# ----------------------------------------------------------------------------- point 6: Bulk 2.0 strictness
def _open_job(sandbox, raw, token, **extra):
    r = raw(sandbox, "POST", f"{V}/jobs/ingest", token, json={"object": "Account", "operation": "insert", **extra})
    return r.json()


def test_bulk_crlf_data_in_lf_job_fails(sandbox, raw, uid):
    token = sandbox.new_session()
    for ending, data in (("LF", f"Name\r\nCRLF {uid}\r\n"), ("CRLF", f"Name\nLF {uid}\n")):
        job = _open_job(sandbox, raw, token, lineEnding=ending)
        assert raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=data.encode(),
                   headers={"Content-Type": "text/csv"}).status_code == 201
        raw(sandbox, "PATCH", f"{V}/jobs/ingest/{job['id']}", token, json={"state": "UploadComplete"})
        info = _wait(sandbox, raw, token, "ingest", job["id"])
        assert info["state"] == "Failed"
        assert info["errorMessage"] == ("ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                                        f"setting is {ending}")
    job = _open_job(sandbox, raw, token, lineEnding="CRLF")
    raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=f"Name\r\nOK {uid}\r\n".encode(),
        headers={"Content-Type": "text/csv"})
    raw(sandbox, "PATCH", f"{V}/jobs/ingest/{job['id']}", token, json={"state": "UploadComplete"})
    assert _wait(sandbox, raw, token, "ingest", job["id"])["state"] == "JobComplete"


def test_bulk_query_job_refuses_offset_and_aggregates(sandbox, raw):
    token = sandbox.new_session()
    for q in ("SELECT Id FROM Account LIMIT 10 OFFSET 5", "SELECT COUNT() FROM Account"):
        r = raw(sandbox, "POST", f"{V}/jobs/query", token, json={"operation": "query", "query": q})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "API_ERROR", q


def test_bulk_upload_over_150mb_base64_is_refused(sandbox, raw):
    token = sandbox.new_session()
    job = _open_job(sandbox, raw, token)
    big = b"Name\n" + b"x" * (113 * 1024 * 1024)  # 113 MiB of CSV is 150.7 MiB once base64-encoded
    r = raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=big, headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "150 MB" in r.json()[0]["message"]
    del big
    info = raw(sandbox, "GET", f"{V}/jobs/ingest/{job['id']}", token).json()
    assert info["state"] == "Open" and info["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    # the refused upload left the job empty: a right-sized one is taken
    assert raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=b"Name\nsmall\n",
               headers={"Content-Type": "text/csv"}).status_code == 201


def test_bulk_delete_upload_complete_job(fresh_sandbox, raw, uid):
    sandbox = fresh_sandbox
    sandbox.app.bulk.stop()  # no worker: the job stays UploadComplete as long as the test needs
    token = sandbox.new_session()
    job = _open_job(sandbox, raw, token)
    r = raw(sandbox, "DELETE", f"{V}/jobs/ingest/{job['id']}", token)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOBSTATE"  # Open: not allowed
    raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=f"Name\nDel {uid}\n".encode(),
        headers={"Content-Type": "text/csv"})
    r = raw(sandbox, "PATCH", f"{V}/jobs/ingest/{job['id']}", token, json={"state": "UploadComplete"})
    assert r.json()["state"] == "UploadComplete"
    assert raw(sandbox, "DELETE", f"{V}/jobs/ingest/{job['id']}", token).status_code == 204
    assert raw(sandbox, "GET", f"{V}/jobs/ingest/{job['id']}", token).status_code == 404


# ----------------------------------------------------------------------------- point 5: defaultedOnCreate
def test_defaulted_on_create_is_not_required_on_insert(tmp_path):
    from simple_salesforce import Salesforce
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    from crmbridge.sandbox.schema import load_schema
    from crmbridge.sandbox.server import start_sandbox

    status = load_schema([CASES / "schema__lead_defaulted_status.yml"]).get("Lead").field("Status")
    assert not status.nillable and status.defaulted_on_create and not status.required_on_create
    h = start_sandbox(tmp_path / "org.db", schema_files=[CASES / "schema__lead_defaulted_status.yml"])
    try:
        sf = Salesforce(instance_url=h.instance_url, session_id=h.new_session(), session=h.session())
        lid = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
        assert sf.Lead.get(lid)["Status"] == "Open - Not Contacted"
        with pytest.raises(SalesforceMalformedRequest) as e:  # nulling it on update is still refused
            sf.Lead.update(lid, {"Status": None})
        assert e.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
        res = sf.bulk2.Lead.insert(records=[{"LastName": "B", "Company": "C"}], wait=0.1)
        assert res[0]["numberRecordsFailed"] == 0
    finally:
        h.stop()


# ----------------------------------------------------------------------------- point 4: idLookup
def test_id_lookup_describe_and_upsert_by_email(sf, sandbox, raw, uid):
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    account = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert contact["Email"]["idLookup"] is True and contact["Email"]["externalId"] is False
    assert account["Name"]["idLookup"] is False and account["Id"]["idLookup"] is True
    assert account["Legacy_Id__c"]["idLookup"] is True
    email = f"lookup.{uid.lower()}@example.com"
    assert sf.Contact.upsert(f"Email/{email}", {"LastName": "Lookup"}) == 201
    assert sf.Contact.upsert(f"Email/{email.upper()}", {"LastName": "Lookup2"}) == 200  # matched, case-insensitive
    rows = sf.query(f"SELECT LastName FROM Contact WHERE Email = '{email}'")["records"]
    assert [r["LastName"] for r in rows] == ["Lookup2"]
    sf.Contact.create({"LastName": "Twin", "Email": email})
    from simple_salesforce.exceptions import SalesforceMoreThanOneRecord

    with pytest.raises(SalesforceMoreThanOneRecord):  # an idLookup field need not be unique: 300
        sf.Contact.upsert(f"Email/{email}", {"LastName": "x"})
    token = sandbox.new_session()
    r = raw(sandbox, "PATCH", f"{V}/sobjects/Account/Name/Acme", token, json={"Phone": "1"})
    assert r.status_code == 404 and "external ID field" in r.json()[0]["message"]  # Account.Name is not one
    job = raw(sandbox, "POST", f"{V}/jobs/ingest", token,
              json={"object": "Contact", "operation": "upsert", "externalIdFieldName": "Email"})
    assert job.status_code == 200, job.text


# ----------------------------------------------------------------------------- point 5: silent wrong answers
def test_order_by_picklist_follows_value_order(fresh_sf):
    for name, rating in (("P1", "Cold"), ("P2", "Hot"), ("P3", None), ("P4", "Warm"), ("P5", "Hot")):
        fresh_sf.Account.create({"Name": name, "Rating": rating})
    recs = fresh_sf.query("SELECT Name, Rating FROM Account ORDER BY Rating")["records"]
    assert [r["Rating"] for r in recs] == [None, "Hot", "Hot", "Warm", "Cold"]  # Hot, Warm, Cold as defined
    recs = fresh_sf.query("SELECT Name, Rating FROM Account ORDER BY Rating DESC NULLS LAST, Name")["records"]
    assert [r["Name"] for r in recs] == ["P1", "P4", "P2", "P5", "P3"]


def test_all_rows_through_rest_query_is_refused(sf, sandbox, raw, uid):
    rid = sf.Account.create({"Name": "AllRows " + uid})["id"]
    sf.Account.delete(rid)
    token = sandbox.new_session()
    r = raw(sandbox, "GET", f"{V}/query", token, params={"q": f"SELECT Id FROM Account WHERE Name = 'AllRows {uid}' "
                                                               "ALL ROWS"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert "ALL ROWS not allowed in this context" in r.json()[0]["message"]
    every = sf.query_all(f"SELECT Id FROM Account WHERE Name = 'AllRows {uid}'", include_deleted=True)
    assert [x["Id"] for x in every["records"]] == [rid]


def test_like_matches_strings_holding_nul(sf, uid):
    sf.Account.create({"Name": f"C00\x00\x00{uid}9"})
    for pattern in (f"C00%{uid}9", f"%{uid}9", f"C00__{uid}_"):
        recs = sf.query(f"SELECT Name FROM Account WHERE Name LIKE '{pattern}'")["records"]
        assert [r["Name"] for r in recs] == [f"C00\x00\x00{uid}9"], pattern
    assert sf.query(f"SELECT Id FROM Account WHERE Name LIKE 'C00_{uid}%'")["totalSize"] == 0


# ----------------------------------------------------------------------------- point 7 over the wire
def test_subquery_semi_join_group_by_through_simple_salesforce(sf, sandbox, raw, uid):
    acct = sf.Account.create({"Name": "Sub " + uid, "Legacy_Id__c": "SUB" + uid})["id"]
    for n in range(3):
        sf.Contact.create({"LastName": f"Kid{n} {uid}", "AccountId": acct, "Title": "T" if n else None})
    rec = sf.query(f"SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account WHERE Id = '{acct}'")
    kids = rec["records"][0]["Contacts"]
    assert kids["totalSize"] == 3 and [k["LastName"] for k in kids["records"]] == [f"Kid{n} {uid}" for n in range(3)]
    semi = sf.query(f"SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE LastName = "
                    f"'Kid2 {uid}')")
    assert [r["Id"] for r in semi["records"]] == [acct]
    agg = sf.query(f"SELECT AccountId, COUNT(Id) n, COUNT(Title) titled FROM Contact WHERE AccountId = '{acct}' "
                   "GROUP BY AccountId HAVING COUNT(Id) >= 3")
    assert agg["records"] == [{"attributes": {"type": "AggregateResult"}, "AccountId": acct, "n": 3, "titled": 2}]
    token = sandbox.new_session()
    for soql in ("SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId",
                 "SELECT Id, (SELECT Id FROM Contacts) FROM Account"):
        r = raw(sandbox, "POST", f"{V}/jobs/query", token, json={"operation": "query", "query": soql})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "API_ERROR", soql


def test_describe_is_cacheable_with_if_modified_since(sandbox, raw):
    token = sandbox.new_session()
    first = raw(sandbox, "GET", f"{V}/sobjects/Account/describe", token)
    assert first.status_code == 200 and first.headers["ETag"] and first.headers["Last-Modified"]
    again = raw(sandbox, "GET", f"{V}/sobjects/Account/describe", token,
                headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304 and again.content == b""
    tagged = raw(sandbox, "GET", f"{V}/sobjects", token, headers={"If-None-Match": first.headers["ETag"]})
    assert tagged.status_code == 304
    old = raw(sandbox, "GET", f"{V}/sobjects", token, headers={"If-Modified-Since": "Sat, 1 Jan 2000 00:00:01 GMT"})
    assert old.status_code == 200 and old.json()["sobjects"]
    body = {"compositeRequest": [
        {"method": "GET", "url": f"{V}/sobjects/Account/describe", "referenceId": "fresh",
         "httpHeaders": {"If-Modified-Since": first.headers["Last-Modified"]}},
        {"method": "GET", "url": "/services/data/v49.0/sobjects/Contact/describe", "referenceId": "stale",
         "httpHeaders": {"If-Modified-Since": "Sat, 1 Jan 2000 00:00:01 GMT"}}]}
    out = raw(sandbox, "POST", f"{V}/composite", token, json=body).json()["compositeResponse"]
    assert [(x["httpStatusCode"], x["body"] is None) for x in out] == [(304, True), (200, False)]
    assert out[0]["httpHeaders"]["ETag"] == first.headers["ETag"]
