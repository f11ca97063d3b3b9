"""Pacing of Bulk job status polls (pure functions, a fake clock) and the upload size limit."""

from __future__ import annotations

import pytest

from crmbridge.connectors.salesforce import bulk, polling


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


def _job_at(clock: Clock, rows: int, rate: float, start_after: float = 0.0):
    """A job of ``rows`` rows that starts ``start_after`` s after submission and then runs at ``rate``
    rows/s, reporting progress per 10,000 rows as Salesforce's internal batches do."""
    looks = []

    def get_job():
        looks.append(clock.now)
        done = max(0.0, clock.now - start_after) * rate
        if done >= rows:
            return {"id": "750x", "state": "JobComplete", "numberRecordsProcessed": rows}
        return {"id": "750x", "state": "InProgress", "numberRecordsProcessed": int(done // 10_000) * 10_000}

    return get_job, looks


def _wait(clock, get_job, pace, rows, kind="ingest"):
    return polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=rows, pace=pace, kind=kind,
                                sleep=clock.sleep, clock=clock)


def test_progress_times_the_next_look_for_the_end_of_the_job():
    clock, pace = Clock(), polling.Pace()
    get_job, looks = _job_at(clock, 100_000, rate=4_000)  # 25 s
    assert _wait(clock, get_job, pace, 100_000)["state"] == "JobComplete"
    assert len(looks) <= 3, looks
    assert 25 <= clock.now <= 25 * 1.2  # idle after the end: under the margin


def test_a_learned_rate_times_the_first_look():
    clock, pace = Clock(), polling.Pace()
    get_job, looks = _job_at(clock, 100_000, rate=5_000)
    _wait(clock, get_job, pace, 100_000)
    clock2 = Clock()
    get_job2, looks2 = _job_at(clock2, 200_000, rate=5_000)  # the same org, a job twice the size
    _wait(clock2, get_job2, pace, 200_000)
    assert len(looks2) <= 2 and looks2[0] >= 30  # no look in the first three quarters of the job
    assert 40 <= clock2.now <= 40 * 1.3


def test_without_progress_figures_looks_grow_geometrically():
    clock, pace = Clock(), polling.Pace()
    looks = []

    def get_job():  # a query job: no progress until it is done, after 60 s
        looks.append(clock.now)
        return {"state": "JobComplete" if clock.now >= 60 else "InProgress"}

    _wait(clock, get_job, pace, None, kind="query")
    assert len(looks) <= 10 and clock.now < 60 + polling.MAX_DELAY
    assert all(b >= a for a, b in zip(clock.sleeps, clock.sleeps[1:]))


def test_found_done_at_first_look_never_lowers_the_rate():
    pace = polling.Pace()
    pace.learn("ingest", 10_000, 1.0)
    pace.learn("ingest", 10_000, 5.0, at_least=True)   # done by then, maybe long before
    assert pace.rate("ingest") == 10_000
    pace.learn("ingest", 10_000, 0.5, at_least=True)
    assert pace.rate("ingest") == 20_000


def test_query_first_look_borrows_the_ingest_rate_and_rates_survive_a_round_trip():
    pace = polling.Pace()
    pace.learn("ingest", 10_000, 1.0)
    assert pace.first_delay("query", 40_000) == pytest.approx(40_000 / (10_000 * polling.QUERY_VS_INGEST)
                                                              * polling.MARGIN)
    other = polling.Pace()
    other.seed({**pace.as_dict(), "bogus": "x", "query": -1})
    assert other.as_dict() == {"ingest": 10_000.0}


def test_a_timeout_is_a_run_failure():
    from crmbridge.errors import RunFailed

    clock = Clock()
    with pytest.raises(RunFailed, match="still InProgress"):
        polling.wait_for_job(lambda fn, what: fn(), lambda: {"id": "750y", "state": "InProgress"}, "status", 30,
                             rows=10, sleep=clock.sleep, clock=clock)


def test_upload_limit_is_150_mb_of_base64():
    assert bulk.encoded_size(3) == 4 and bulk.encoded_size(4) == 8
    assert bulk.encoded_size(bulk.MAX_UPLOAD_BYTES) <= bulk.MAX_ENCODED_BYTES
    assert bulk.MAX_UPLOAD_BYTES > 100 * 1024 * 1024  # more than simple-salesforce's 100 MB of CSV


def test_row_bytes_bounds_the_real_csv_line():
    from crmbridge.connectors.salesforce.values import to_csv

    rec = {"Name": '上海 "明远", 贸易', "Legacy_Id__c": "C1", "AnnualRevenue": 12.5, "Phone": None}
    line = to_csv(list(rec), [tuple(bulk.csv_value(v) for v in rec.values())]).split("\n")[1] + "\n"
    assert len(line.encode("utf-8")) <= bulk.row_bytes(rec) <= len(line.encode("utf-8")) + 3 * len(rec) + 1


def _fresh_job(rows: int, rate: float, lag: float):
    """A job waited for on a fresh project, its results fetched in place of a status look when timed for
    its end: (clock, pace, status looks, results tries)."""
    clock, pace = Clock(), polling.Pace()
    get_job, looks = _job_at(clock, rows, rate=rate, start_after=lag)
    tries = []

    def finish():
        tries.append(clock.now)
        done = max(0.0, clock.now - lag) * rate >= rows
        return {"id": "750x", "state": "JobComplete", "numberRecordsProcessed": rows} if done else None

    polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 36_000, rows=rows, pace=pace, finish=finish,
                         sleep=clock.sleep, clock=clock)
    return clock, pace, looks, tries


@pytest.mark.parametrize("lag", [0.3, 1.2, 3.0])
@pytest.mark.parametrize("rate", [30_000, 20_000, 14_000, 10_000, 7_000, 5_000, 3_500, 2_500, 1_700, 1_000, 500])
def test_a_fresh_project_pays_at_most_two_status_looks_and_never_an_early_results_look(rate, lag):
    """Nothing learned yet (the previous scheme, one look at 10,000 rows/s and then the earliest end
    its figure allowed, took up to 4 status looks and a wasted results look on a slow org, and waited
    45 s past the end of a job that started late): an early status look, a second one where the job
    should end, then the results when the figures say the job must be done. Orgs from 500 to 30,000
    rows/s that start 0.3 to 3 s late: <= 2 status looks (the budget: 10 API calls per 100k loaded and
    reconciled, 7 of them fixed), no results look before the end, idle after the end within bounds."""
    rows = 94_318
    clock, pace, looks, tries = _fresh_job(rows, rate, lag)
    end = lag + rows / rate
    assert len(looks) <= polling.FRESH_LOOKS, looks
    assert all(t >= end for t in tries), (tries, end)
    first = rows / polling.FRESH_ROWS_PER_S * polling.MARGIN  # a job done sooner is seen at the first look
    assert end <= clock.now <= max(first, end * (1.35 if rate >= 2_500 else 1.7) + 1.0), (looks, tries, end)
    assert pace.rate("ingest") <= rows / end  # learned at the slow end: the next first looks are not early


@pytest.mark.parametrize("lag", [0.3, 3.0])
@pytest.mark.parametrize("rate", [10_000, 5_000, 2_500, 1_000, 500])
@pytest.mark.parametrize("rows", [250_000, 1_000_000])
def test_a_big_job_on_a_fresh_project_gets_a_look_per_100k_rows_and_little_idle(rows, rate, lag):
    """Two status looks are the budget of a job under 100k rows; a bigger job brings 10 more calls of the
    budget for each further 100k rows, so it may spend one more status look each: a slow org's job is
    then seen within 10% of its end (two looks alone left it idle for about 40% of its time)."""
    clock, pace, looks, tries = _fresh_job(rows, rate, lag)
    end = lag + rows / rate
    assert polling.fresh_looks(94_318) == polling.FRESH_LOOKS == 2
    assert len(looks) <= polling.fresh_looks(rows) <= 2 + rows // 100_000, looks
    assert all(t >= end for t in tries), (tries, end)
    assert end <= clock.now <= end * 1.1, (looks, tries, end)


def test_an_org_slower_than_the_earliest_end_gets_a_closely_timed_third_look():
    clock, pace = Clock(), polling.Pace()
    rows, rate = 94_318, 1_500
    get_job, looks = _job_at(clock, rows, rate=rate)
    _wait(clock, get_job, pace, rows)
    took = rows / rate
    assert len(looks) == 3, looks
    assert took <= clock.now <= took * polling.PROGRESS_MARGIN * 1.1


def test_a_job_started_earlier_is_first_looked_at_when_it_should_be_done():
    clock, pace = Clock(), polling.Pace()
    pace.learn("query", 100_000, 10.0)  # 10,000 rows/s: a 100k-row job takes 10 s
    get_job, looks = _job_at(clock, 100_000, rate=10_000)
    clock.now = 6.0  # the job was created at 0, its reader comes 6 s later
    polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=100_000, pace=pace, kind="query",
                         since=0.0, sleep=clock.sleep, clock=clock)
    assert clock.sleeps[0] == pytest.approx(10.0 * polling.MARGIN - 6.0)
    assert len(looks) == 1
    clock2 = Clock()
    get_job2, looks2 = _job_at(clock2, 100_000, rate=10_000)
    clock2.now = 60.0  # long done: looked at at once
    polling.wait_for_job(lambda fn, what: fn(), get_job2, "status", 3600, rows=100_000, pace=pace, kind="query",
                         since=0.0, sleep=clock2.sleep, clock=clock2)
    assert clock2.sleeps == [] and looks2 == [60.0]
