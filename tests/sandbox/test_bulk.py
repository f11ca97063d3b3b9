"""Bulk API 2.0 through simple-salesforce's bulk2 handler and the raw wire: ingest insert/upsert/update/
delete/hardDelete with failing rows, results CSVs, abort, resume from another process, query jobs."""

from __future__ import annotations

import csv
import io
import time

import pytest


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_insert_with_failing_row(sf, uid):
    res = sf.bulk2.Account.insert(records=[{"Name": "BI " + uid, "Legacy_Id__c": "BI1" + uid},
                                           {"Name": "", "Legacy_Id__c": "BI2" + uid}], wait=0.1)
    assert (res[0]["numberRecordsProcessed"], res[0]["numberRecordsFailed"]) == (2, 1)
    job = res[0]["job_id"]
    failed = sf.bulk2.Account.get_failed_records(job)
    assert failed.splitlines()[0] == '"sf__Id","sf__Error",Legacy_Id__c,Name' or \
        failed.splitlines()[0] == '"sf__Id","sf__Error",Name,Legacy_Id__c'
    row = _rows(failed)[0]
    assert row["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert row["Legacy_Id__c"] == "BI2" + uid and row["sf__Id"] == ""
    ok = _rows(sf.bulk2.Account.get_successful_records(job))
    assert ok[0]["sf__Created"] == "true" and ok[0]["sf__Id"].startswith("001")


def test_upsert_parent_reference_and_duplicates(sf, uid):
    sf.bulk2.Account.insert(records=[{"Name": "BP " + uid, "Legacy_Id__c": "BP" + uid}], wait=0.1)
    csv_text = (f"LastName,Legacy_Id__c,Account.Legacy_Id__c\nOne,BC1{uid},BP{uid}\nTwo,BC2{uid},BP{uid}\n"
                f"Dup,BC3{uid},BP{uid}\nDup2,BC3{uid},BP{uid}\nOrphan,BC4{uid},NOPE{uid}\n")
    res = sf.bulk2.Contact.upsert(records=_rows(csv_text), external_id_field="Legacy_Id__c", wait=0.1)
    assert res[0]["numberRecordsFailed"] == 3
    failed = _rows(sf.bulk2.Contact.get_failed_records(res[0]["job_id"]))
    codes = sorted(r["sf__Error"].split(":")[0] for r in failed)
    assert codes == ["DUPLICATE_EXTERNAL_ID", "DUPLICATE_EXTERNAL_ID", "INVALID_FIELD"]
    again = sf.bulk2.Contact.upsert(records=[{"LastName": "One!", "Legacy_Id__c": f"BC1{uid}"}],
                                    external_id_field="Legacy_Id__c", wait=0.1)
    ok = _rows(sf.bulk2.Contact.get_successful_records(again[0]["job_id"]))
    assert ok[0]["sf__Created"] == "false"
    rec = sf.query(f"SELECT LastName, Account.Name FROM Contact WHERE Legacy_Id__c = 'BC1{uid}'")["records"][0]
    assert (rec["LastName"], rec["Account"]["Name"]) == ("One!", "BP " + uid)


def test_update_empty_cell_keeps_and_na_clears(sf, uid):
    rid = sf.Account.create({"Name": "Keep " + uid, "Rating": "Hot", "Phone": "123"})["id"]
    sf.bulk2.Account.update(records=[{"Id": rid, "Rating": "", "Phone": "#N/A"}], wait=0.1)
    rec = sf.Account.get(rid)
    assert (rec["Rating"], rec["Phone"]) == ("Hot", None)


def test_delete_and_hard_delete(sf, uid):
    a = sf.Account.create({"Name": "Del " + uid})["id"]
    b = sf.Account.create({"Name": "Hard " + uid})["id"]
    res = sf.bulk2.Account.delete(records=[{"Id": a}, {"Id": "001Sb0000000zzzAAA"}], wait=0.1)
    assert res[0]["numberRecordsFailed"] == 1
    sf.bulk2.Account.hard_delete(records=[{"Id": b}], wait=0.1)
    everything = sf.query_all(f"SELECT Id, IsDeleted FROM Account WHERE Name LIKE '% {uid}'",
                              include_deleted=True)["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [(a, True)]


def test_unknown_column_fails_the_job(sf):
    with pytest.raises(Exception) as e:
        sf.bulk2.Account.insert(records=[{"Name": "x", "Bogus__c": "1"}], wait=0.1)
    assert "Field name not found : Bogus__c" in str(e.value)


def _job(sandbox, raw, token, body):
    return raw(sandbox, "POST", "/services/data/v62.0/jobs/ingest", token, json=body).json()


def test_wire_lifecycle_abort_and_unprocessed(sandbox, raw, uid):
    token = sandbox.new_session()
    job = _job(sandbox, raw, token, {"object": "Account", "operation": "insert", "contentType": "CSV",
                                     "lineEnding": "LF", "columnDelimiter": "PIPE"})
    assert job["state"] == "Open" and job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    put = raw(sandbox, "PUT", "/" + job["contentUrl"], token, data=f"Name|Legacy_Id__c\nAb|AB{uid}\n".encode(),
              headers={"Content-Type": "text/csv"})
    assert put.status_code == 201
    aborted = raw(sandbox, "PATCH", f"/services/data/v62.0/jobs/ingest/{job['id']}", token, json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    un = raw(sandbox, "GET", f"/services/data/v62.0/jobs/ingest/{job['id']}/unprocessedrecords/", token)
    assert un.text.splitlines() == ["Name|Legacy_Id__c", f"Ab|AB{uid}"]
    listed = raw(sandbox, "GET", "/services/data/v62.0/jobs/ingest", token).json()
    assert job["id"] in [j["id"] for j in listed["records"]]
    bad = raw(sandbox, "PATCH", f"/services/data/v62.0/jobs/ingest/{job['id']}", token, json={"state": "UploadComplete"})
    assert bad.status_code == 400
    assert raw(sandbox, "DELETE", f"/services/data/v62.0/jobs/ingest/{job['id']}", token).status_code == 204
    assert raw(sandbox, "GET", f"/services/data/v62.0/jobs/ingest/{job['id']}", token).status_code == 404


def test_job_survives_a_restart(tmp_path, raw):
    """A client that crashed polls its job from a new sandbox process on the same db."""
    from crmbridge.sandbox.server import start_sandbox

    h = start_sandbox(tmp_path / "org.db")
    token = h.new_session()
    job = _job(h, raw, token, {"object": "Account", "operation": "insert"})
    raw(h, "PUT", "/" + job["contentUrl"], token, data=b"Name\nResumed\n", headers={"Content-Type": "text/csv"})
    h.stop()
    h2 = start_sandbox(tmp_path / "org.db")
    try:
        # the session of the first process is still valid; closing the job lets the new worker run it
        raw(h2, "PATCH", f"/services/data/v62.0/jobs/ingest/{job['id']}", token, json={"state": "UploadComplete"})
        for _ in range(100):
            info = raw(h2, "GET", f"/services/data/v62.0/jobs/ingest/{job['id']}", token).json()
            if info["state"] == "JobComplete":
                break
            time.sleep(0.05)
        assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 1, 0)
    finally:
        h2.stop()


def test_query_job_paging_and_flattened_parents(fresh_sf):
    fresh_sf.bulk2.Account.insert(records=[{"Name": f"QJ{i:03d}", "Legacy_Id__c": f"QJ{i}"} for i in range(250)],
                                  wait=0.1)
    fresh_sf.Contact.create({"LastName": "Child", "Account": {"Legacy_Id__c": "QJ7"}})
    pages = list(fresh_sf.bulk2.Account.query("SELECT Name FROM Account ORDER BY Name", max_records=100, wait=0.1))
    assert len(pages) == 3
    names = [r["Name"] for p in pages for r in _rows(p)]
    assert names == [f"QJ{i:03d}" for i in range(250)]
    child = list(fresh_sf.bulk2.Contact.query("SELECT LastName, Account.Name FROM Contact", wait=0.1))
    assert _rows(child[0]) == [{"LastName": "Child", "Account.Name": "QJ007"}]


def test_query_all_job_sees_deleted(fresh_sf):
    rid = fresh_sf.Account.create({"Name": "Gone"})["id"]
    fresh_sf.Account.delete(rid)
    assert _rows("".join(fresh_sf.bulk2.Account.query("SELECT Id FROM Account", wait=0.1))) == []
    rows = _rows("".join(fresh_sf.bulk2.Account.query_all("SELECT Id, IsDeleted FROM Account", wait=0.1)))
    assert rows == [{"Id": rid, "IsDeleted": "true"}]


def test_bad_query_fails_the_job(fresh_sf):
    with pytest.raises(Exception) as e:
        list(fresh_sf.bulk2.Account.query("SELECT Nope FROM Account", wait=0.1))
    assert "INVALID_FIELD" in str(e.value)
