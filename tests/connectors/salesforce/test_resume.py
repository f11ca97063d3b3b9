"""Picking up a Bulk job after the process that created it died."""

from __future__ import annotations

import pytest

from crmbridge.connectors.salesforce import bulk


class Killed(Exception):
    """Stands for the process dying right after it journaled the job id."""


def _rows(tag, n=4):
    return [{"Name": f"{tag} {i}", "Legacy_Id__c": f"{tag}-{i}"} for i in range(n)]


def test_resume_a_job_killed_before_upload(conn, make_conn, target, tag):
    rows, keys = _rows(tag), [f"k{i}" for i in range(4)]
    journal = []

    def on_job(job_id):
        journal.append(job_id)
        raise Killed

    with pytest.raises(Killed):
        conn.dml("upsert", "Account", rows, keys=keys, external_id_field="Legacy_Id__c", api="bulk", on_job=on_job)
    assert conn.bulk_client("Account").get_job(journal[0], False)["state"] == "Open"

    fresh = make_conn(target)                                  # "the next process"
    res = fresh.resume_job(journal[0], "upsert", "Account", rows, keys=keys, external_id_field="Legacy_Id__c")
    assert [r.key for r in res] == keys and all(r.success and r.created for r in res), res
    assert fresh.count(f"SELECT COUNT() FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'") == 4


def test_resume_a_job_killed_after_upload(conn, make_conn, target, tag):
    rows, keys = _rows(tag, 6), [f"k{i}" for i in range(6)]
    payload = bulk.Payload("insert", rows, None)
    job_id = bulk.create_job(conn, "insert", "Account", None)
    bulk.upload_and_close(conn, "Account", job_id, payload.csv())    # then the process dies

    fresh = make_conn(target)
    res = fresh.resume_job(job_id, "insert", "Account", rows, keys=keys)
    assert [r.key for r in res] == keys and all(r.success for r in res), res
    ids = {r["Legacy_Id__c"]: r["Id"] for r in fresh.query(
        f"SELECT Id, Legacy_Id__c FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'")}
    assert {f"{tag}-{i}": res[i].id for i in range(6)} == ids      # each row matched to its own record
    assert len(ids) == 6                                             # nothing loaded twice


def test_resume_a_job_killed_between_upload_and_close(conn, make_conn, target, tag):
    rows, keys = _rows(tag, 3), ["a", "b", "c"]
    job_id = bulk.create_job(conn, "upsert", "Account", "Legacy_Id__c")
    conn.bulk_client("Account").upload_job_data(job_id, bulk.Payload("upsert", rows, "Legacy_Id__c").csv())
    fresh = make_conn(target)
    res = fresh.resume_job(job_id, "upsert", "Account", rows, keys=keys, external_id_field="Legacy_Id__c")
    assert all(r.success for r in res), res
    assert fresh.count(f"SELECT COUNT() FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'") == 3


def test_rows_missing_from_the_job_come_back_unprocessed(conn, tag):
    rows, keys = _rows(tag, 3), ["a", "b", "c"]
    job_id = bulk.create_job(conn, "insert", "Account", None)
    bulk.upload_and_close(conn, "Account", job_id, bulk.Payload("insert", rows[:2], None).csv())
    res = conn.resume_job(job_id, "insert", "Account", rows, keys=keys)
    assert [r.success for r in res] == [True, True, False]
    assert res[2].error_code == "UNPROCESSED"


def test_aborted_and_unknown_jobs(conn, tag):
    rows, keys = _rows(tag, 2), ["a", "b"]
    job_id = bulk.create_job(conn, "insert", "Account", None)
    conn.bulk_client("Account").abort_job(job_id, False)
    res = conn.resume_job(job_id, "insert", "Account", rows, keys=keys)
    assert [r.error_code for r in res] == ["JOB_FAILED", "JOB_FAILED"]

    bogus = "750" + "0" * 12 + "AAA"
    res = conn.resume_job(bogus, "insert", "Account", rows, keys=keys)
    assert [r.error_code for r in res] == ["JOB_NOT_FOUND", "JOB_NOT_FOUND"]
