"""A look timed for a Bulk job's end fetches its results instead of its status: the rows come out
exactly as through status looks, and the calls are counted (a fake org, driven look by look)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crmbridge.connectors.salesforce import bulk, polling, query

KEYS = [f"C{i}" for i in range(6)]
RECORDS = [{"Legacy_Id__c": k, "Name": f"公司 {k}, \"x\""} for k in KEYS]
FAILED = {"C2": "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"}


def _csv(rows: list[list[str]], first: str) -> str:
    from crmbridge.connectors.salesforce.values import to_csv

    return to_csv(["sf__Id", first, "Legacy_Id__c", "Name"], rows)


class FakeOrg:
    """One upsert job that is done after ``done_after`` looks (status or results), with ``FAILED`` rows
    failing. Before its end it serves the successes so far (as the sandbox does), or a 400 when
    ``refuse_early`` (as an org that serves results only for a finished job)."""

    def __init__(self, done_after: int, refuse_early: bool = False, failed: dict | None = None):
        self.done_after, self.refuse_early = done_after, refuse_early
        self.failed = FAILED if failed is None else failed
        self.looks = 0
        self.calls: list[str] = []

    # the connector's side: ``api.call`` and ``api.bulk_client``
    pace = None

    def call(self, fn, what):
        return fn()

    def bulk_client(self, sobject):
        return self

    def _done(self) -> bool:
        return self.looks >= self.done_after

    def _processed(self) -> int:
        return len(KEYS) if self._done() else len(KEYS) // 2

    def get_job(self, job_id, is_query):
        self.looks += 1
        self.calls.append("status")
        done = self._done()
        n = self._processed()
        bad = sum(1 for k in KEYS[:n] if k in self.failed)
        return {"id": job_id, "state": "JobComplete" if done else "InProgress", "numberRecordsProcessed": n,
                "numberRecordsFailed": bad}

    def get_ingest_results(self, job_id, which):
        self.calls.append(which)
        if which == "successfulResults":
            self.looks += 1
            if self.refuse_early and not self._done():
                raise SalesforceMalformedRequest("url", 400, "job", [{"errorCode": "INVALIDJOBSTATE"}])
        n = self._processed()
        if which == "successfulResults":
            rows = [[f"001{i:015d}", "true", k, RECORDS[i]["Name"]] for i, k in enumerate(KEYS[:n])
                    if k not in self.failed]
            return _csv(rows[::-1], "sf__Created")  # not in input order, as Salesforce
        rows = [["", self.failed[k], k, RECORDS[i]["Name"]] for i, k in enumerate(KEYS[:n]) if k in self.failed]
        return _csv(rows, "sf__Error")


def _run(org: FakeOrg, pace: polling.Pace, monkeypatch):
    monkeypatch.setattr(polling.time, "sleep", lambda s: None)
    org.pace = pace
    payload = bulk.Payload("upsert", RECORDS, "Legacy_Id__c")
    return bulk.run_job(org, "750x", "upsert", "Account", payload, KEYS, timeout=3600, upload_if_open=False,
                        submitted=True)


def _learned() -> polling.Pace:
    pace = polling.Pace()
    pace.seed({"ingest": 1_000.0})
    return pace


def _reference(monkeypatch, failed=None):
    """The rows as status looks give them: a fresh pace (no timed look), a job done at the first look."""
    org = FakeOrg(done_after=1, failed=failed)
    rows = _run(org, polling.Pace(), monkeypatch)
    assert org.calls[0] == "status"
    return rows


@pytest.mark.parametrize("failed", [{}, FAILED])
def test_a_job_done_by_its_timed_look_costs_no_status_call(monkeypatch, failed):
    org = FakeOrg(done_after=1, failed=failed)
    rows = _run(org, _learned(), monkeypatch)
    assert rows == _reference(monkeypatch, failed)
    if failed:  # the successes are not fetched twice; the status tells there are failures to fetch
        assert org.calls == ["successfulResults", "status", "failedResults"]
        assert [r.success for r in rows] == [k not in failed for k in KEYS]
    else:
        assert org.calls == ["successfulResults"]
        assert all(r.success and r.created and r.id for r in rows)


@pytest.mark.parametrize("refuse_early", [False, True])
def test_a_job_not_done_by_its_timed_look_is_followed_by_status_looks(monkeypatch, refuse_early):
    org = FakeOrg(done_after=3, refuse_early=refuse_early)
    rows = _run(org, _learned(), monkeypatch)
    assert rows == _reference(monkeypatch)
    # one results try and a status look (the job's look cap, ``polling.look_cap``), then the results again
    # when the job must be done by its figure (fetched in full); they lack the failed row, so the status
    # tells the failures to fetch
    assert polling.look_cap(len(KEYS)) == 2
    assert org.calls == ["successfulResults", "status", "successfulResults", "status", "failedResults"]


def test_without_a_learned_rate_the_first_look_is_a_status_look(monkeypatch):
    org = FakeOrg(done_after=2)  # a fresh project: the first look, at a guessed pace, sees progress
    rows = _run(org, polling.Pace(), monkeypatch)
    assert rows == _reference(monkeypatch)
    # a job under polling.FRESH_MIN_ROWS: a first status look sees progress, the look timed by it for the
    # end fetches the results (still in progress here), then a status look and the failed results
    assert len(RECORDS) < polling.FRESH_MIN_ROWS
    assert org.calls == ["status", "successfulResults", "status", "failedResults"]


@pytest.mark.parametrize("done_after, learned, failed, called_after", [
    (1, True, {}, (["successfulResults"], 0)),  # the timed results look holds every row: before matching them
    # the results look past the look cap that holds every row (the early try's part of the rows was matched)
    (3, True, {}, (["successfulResults", "status", "successfulResults"], 1)),
    (1, False, {}, (["status"], 0)),  # a fresh pace: status first
    (1, True, FAILED, None), (3, True, FAILED, None), (1, False, FAILED, None),  # a row failed: never
])
def test_on_done_comes_once_before_the_results_are_matched_and_only_when_every_row_succeeded(
        monkeypatch, done_after, learned, failed, called_after):
    # ``on_done`` starts reconcile's query early in the load (``overlap.ReadAhead``): it must mean the job is
    # done and no row failed, come once, and change neither the rows nor the calls
    org = FakeOrg(done_after=done_after, failed=failed)
    seen = []
    monkeypatch.setattr(polling.time, "sleep", lambda s: None)
    org.pace = _learned() if learned else polling.Pace()
    matched = []
    real_add = bulk.Matcher.add_successes
    monkeypatch.setattr(bulk.Matcher, "add_successes", lambda self, rows: matched.append(1) or real_add(self, rows))
    rows = bulk.run_job(org, "750x", "upsert", "Account", bulk.Payload("upsert", RECORDS, "Legacy_Id__c"), KEYS,
                        timeout=3600, upload_if_open=False, submitted=True,
                        on_done=lambda: seen.append((list(org.calls), len(matched))))
    plain = FakeOrg(done_after=done_after, failed=failed)
    plain.pace = _learned() if learned else polling.Pace()
    assert rows == bulk.run_job(plain, "750x", "upsert", "Account", bulk.Payload("upsert", RECORDS, "Legacy_Id__c"),
                                KEYS, timeout=3600, upload_if_open=False, submitted=True)
    assert org.calls == plain.calls
    if called_after is None:
        assert seen == []
    else:  # called once (calls made then, successes matched then)
        assert seen == [called_after] and all(r.success for r in rows)


class FakeQuery:
    """A Bulk query job done after ``done_after`` looks; results refused with a 400 before."""

    def __init__(self, done_after: int):
        self.done_after, self.looks, self.calls = done_after, 0, []

    def create_job(self, operation, soql):
        self.calls.append("create")
        return {"id": "750q", "state": "UploadComplete"}

    def get_job(self, job_id, is_query):
        self.looks += 1
        self.calls.append("status")
        return {"id": job_id, "state": "JobComplete" if self.looks >= self.done_after else "InProgress"}

    def get_query_results(self, job_id, locator, max_records):
        self.calls.append("results")
        if not locator:
            self.looks += 1
        if self.looks < self.done_after:
            raise SalesforceMalformedRequest("url", 400, "job", [{"errorCode": "INVALIDJOBSTATE"}])
        if not locator:
            return {"records": "Id,Name\n001A,a\n001B,b\n", "locator": "Mg=="}
        return {"records": "Id,Name\n001C,c\n", "locator": "null"}


@pytest.mark.parametrize("done_after, calls", [
    (1, ["create", "results", "results"]),                                 # done by the timed look
    # not yet: a second results look (a status look's answer, and the page if done: one call fewer than
    # a status look and then the page), then status looks (which see a failed job)
    (2, ["create", "results", "results", "results"]),
    (3, ["create", "results", "results", "status", "results", "results"]),
])
def test_a_query_timed_by_a_learned_rate_starts_with_its_results(monkeypatch, done_after, calls):
    monkeypatch.setattr(polling.time, "sleep", lambda s: None)
    fake = FakeQuery(done_after)
    pages = list(query.bulk_query_pages(lambda fn, what: fn(), lambda: fake, "SELECT Id, Name FROM Account",
                                        page_size=2, timeout=3600, expect_rows=3, pace=_learned()))
    assert pages == [(["Id", "Name"], [["001A", "a"], ["001B", "b"]]), (["Id", "Name"], [["001C", "c"]])]
    assert fake.calls == calls


def test_a_query_without_a_learned_rate_looks_at_its_status_first(monkeypatch):
    monkeypatch.setattr(polling.time, "sleep", lambda s: None)
    fake = FakeQuery(1)
    list(query.bulk_query_pages(lambda fn, what: fn(), lambda: fake, "SELECT Id, Name FROM Account",
                                page_size=2, timeout=3600, expect_rows=3, pace=polling.Pace()))
    assert fake.calls == ["create", "status", "results", "results"]
