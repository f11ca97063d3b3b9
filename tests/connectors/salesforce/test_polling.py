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


def _processed_at(t: float, rows: int, rate: float, start_after: float = 0.0, slow_from: float = 1.0,
                  slowdown: float = 1.0) -> float:
    """Rows a job has processed ``t`` s after submission: it starts ``start_after`` s late, runs at ``rate``
    until ``slow_from`` of its rows are done, then ``slowdown`` times slower (the org, or the machine under
    it, got busier before the end: on the sandbox at load average 2-5, the last quarter of a 94,318-row
    upsert ran 1.2-1.3 times slower than its figures had shown)."""
    t = max(0.0, t - start_after)
    turn = slow_from * rows / rate
    return t * rate if t <= turn else slow_from * rows + (t - turn) * rate / slowdown


def _job_at(clock: Clock, rows: int, rate: float, start_after: float = 0.0, slow_from: float = 1.0,
            slowdown: float = 1.0):
    """A job of ``rows`` rows (see ``_processed_at``), reporting progress per 10,000 rows as Salesforce's
    internal batches do."""
    looks = []

    def get_job():
        looks.append(clock.now)
        done = _processed_at(clock.now, rows, rate, start_after, slow_from, slowdown)
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


def _fresh_job(rows: int, rate: float, lag: float, slow_from: float = 1.0, slowdown: float = 1.0):
    """A job waited for on a fresh project, its results fetched in place of a status look when timed for
    its end: (clock, pace, status looks, results tries)."""
    clock, pace = Clock(), polling.Pace()
    get_job, looks = _job_at(clock, rows, rate=rate, start_after=lag, slow_from=slow_from, slowdown=slowdown)
    tries = []

    def finish():
        tries.append(clock.now)
        done = _processed_at(clock.now, rows, rate, lag, slow_from, slowdown) >= rows
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
    reconciled, 7 of them fixed), no results look before the end, idle after the end within bounds (the
    results look comes when the job must be done at its slowest figure slowed by ``SLOWDOWN``: up to 38%
    of the job idle from 2,500 rows/s up, 60% at 500-1,000 rows/s; it was 29% and 45% at 1.08 times its
    best figure, a look that came early on an org that slowed down)."""
    rows = 94_318
    clock, pace, looks, tries = _fresh_job(rows, rate, lag)
    end = lag + rows / rate
    assert len(looks) <= polling.FRESH_LOOKS, looks
    assert all(t >= end for t in tries), (tries, end)
    first = rows / polling.FRESH_ROWS_PER_S * polling.MARGIN  # a job done sooner is seen at the first look
    assert end <= clock.now <= max(first, end * (1.4 if rate >= 2_500 else 1.7) + 1.0), (looks, tries, end)


@pytest.mark.parametrize("lag", [0.3, 1.2, 3.0])
@pytest.mark.parametrize("rate", [20_000, 14_000, 10_000, 7_000, 5_000, 3_500, 2_500, 1_700, 1_000, 500])
def test_an_org_that_slows_down_near_the_end_costs_no_look_over_the_budget(rate, lag):
    """The sandbox at load average 2-5 (tasks apibudget, 6 December): the job ran its last quarter about
    1.2-1.3 times slower than its figures had shown, and the results look, timed at 1.08 times the end its
    best figure projected, found it not done: that miss and the status look after it were 11 calls in
    load + reconcile, 11.7 per 100k records (budget 10). On the old schedule 3 of these 30 orgs (slowing
    1.2 times after 75% of the rows) spend 3 looks that are not the results where the budget leaves 2;
    now the look after the budget's looks waits for the end at the slowest figure slowed by
    ``SLOWDOWN``: none over, and no results look before the end but that one's misses."""
    rows = 94_318
    clock, pace, looks, tries = _fresh_job(rows, rate, lag, slow_from=0.75, slowdown=1.2)
    end = lag + 0.75 * rows / rate + 0.25 * rows * 1.2 / rate
    misses = [t for t in tries if t < end]
    cap = 10 * rows // 100_000 - 7  # the budget's 9 calls, less the 7 that are not looks
    assert len(looks) + len(misses) <= cap, (looks, tries, end)
    assert end <= clock.now <= max(rows / polling.FRESH_ROWS_PER_S * polling.MARGIN, end * 1.7 + 1.0)
    assert polling.look_cap(rows) == cap


def test_a_learned_rate_too_high_costs_no_look_over_the_budget():
    """A project's second run: the rate learned on a quiet org is twice the org's now. The results look timed
    by it finds the job half done and a status look follows (the budget's 2 looks at 94,318 rows); the
    old schedule then looked at the status once more by the job's progress before fetching the results (3
    looks), now the results are fetched when the job must be done at its slowest figure."""
    clock, pace = Clock(), polling.Pace()
    pace.learn("ingest", 100_000, 10.0)  # 10,000 rows/s
    rows = 94_318
    get_job, looks = _job_at(clock, rows, rate=5_000)
    tries = []

    def finish():
        tries.append(clock.now)
        return {"id": "750x", "state": "JobComplete", "numberRecordsProcessed": rows} if clock.now * 5_000 >= rows else None

    polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=rows, pace=pace, finish=finish,
                         sleep=clock.sleep, clock=clock)
    end = rows / 5_000
    assert len(looks) + len([t for t in tries if t < end]) <= 2, (looks, tries)
    assert tries[-1] >= end and clock.now <= end * polling.SLOWDOWN + 1.0


def test_the_looks_cap_is_the_budget_less_the_other_calls():
    """10 calls per 100k records loaded and reconciled, less the 7 that are not looks (count query, create,
    upload, close, successful results, query create, first query page) and the query's further pages."""
    assert polling.look_cap(94_318) == 2   # 9 calls in all: the budget of 94,318 records
    assert polling.look_cap(100_000) == 3
    assert polling.look_cap(250_000) == 25 - 7 - 1
    assert polling.look_cap(20_000) == polling.FRESH_LOOKS  # a small job cannot hold the budget: as before
    assert polling.look_cap(94_318, "query") == 0  # its first results look is its results page
    assert all(polling.fresh_looks(n) <= polling.look_cap(n) for n in (20_000, 94_318, 100_001, 250_000, 10**6))


def test_a_job_slower_than_any_figure_is_still_waited_for_with_few_looks():
    """Past the cap, a job that keeps missing its must-be-done look (the org stalls after 40,000 rows for
    ten minutes) is not given up before the timeout, and its further looks grow geometrically."""
    clock, pace = Clock(), polling.Pace()
    rows = 94_318
    stall = (40_000 / 5_000, 40_000 / 5_000 + 600)
    looks = []

    def get_job():
        looks.append(clock.now)
        t = clock.now
        done = t * 5_000 if t < stall[0] else 40_000 if t < stall[1] else 40_000 + (t - stall[1]) * 5_000
        if done >= rows:
            return {"id": "750x", "state": "JobComplete", "numberRecordsProcessed": rows}
        return {"id": "750x", "state": "InProgress", "numberRecordsProcessed": int(done // 10_000) * 10_000}

    job = polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=rows, pace=pace,
                               sleep=clock.sleep, clock=clock)
    end = stall[1] + (rows - 40_000) / 5_000
    assert job["state"] == "JobComplete" and end <= clock.now <= end + polling.MAX_PROJECTED
    assert len(looks) <= 12, looks
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


# Reconcile's query on the sandbox, started during the load's tail (task rqlook, 13 runs of migrate_100k.py
# at load average 0-10): the factor over the load's learned ingest rate at which its first look would still
# have come after the org's end of it (the least three, the median, the most).
SEEN_QUERY_FACTORS = (7.5, 7.8, 8.0, 10.4, 19.3)


@pytest.mark.parametrize("factor", SEEN_QUERY_FACTORS)
@pytest.mark.parametrize("reader_after", [0.2, 0.9, 3.0])
def test_a_query_started_ahead_is_read_at_one_look_soon_after_its_end(factor, reader_after):
    """The query job is created at 0 (during the load's tail) and its reader starts waiting ``reader_after``
    times the query's own time later: one look, never before the query's end (a second call would put load
    + reconcile over issue 14's budget), at most 0.6 of its time after it (with 3, 1.5 times its time at the
    least factor seen); a look already due when the reader comes is made at once."""
    rows, ingest = 94_318, 2_000.0
    pace = polling.Pace()
    pace.learn("ingest", rows, rows / ingest)
    query_rate = ingest * factor / polling.MARGIN  # its end falls where a look at ``factor`` would come
    took = rows / query_rate
    clock = Clock()
    get_job, looks = _job_at(clock, rows, rate=query_rate)
    clock.now = reader_after * took
    due = pace.first_delay("query", rows)
    polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=rows, pace=pace, kind="query",
                         since=0.0, sleep=clock.sleep, clock=clock)
    assert len(looks) == 1, looks
    assert looks[0] >= took
    if reader_after * took >= due:
        assert clock.sleeps == [] and looks[0] == reader_after * took
    elif factor == min(SEEN_QUERY_FACTORS):
        assert looks[0] <= 1.6 * took


def test_a_query_found_done_by_a_late_reader_teaches_no_rate():
    """Reconcile came 60 s after its query was created, long after its first look was due: the query,
    found done at once, ran at an unknown rate (its 60 s are the load's tail, the client's work), so the
    next run's query is still timed by the ingest rate, not looked at 60 s after its creation. A reader on
    time still learns the query's rate."""
    rows = 94_318
    pace = polling.Pace()
    pace.learn("ingest", rows, rows / 2_000.0)
    expected = pace.first_delay("query", rows)
    clock = Clock()
    get_job, looks = _job_at(clock, rows, rate=20_000.0)
    clock.now = 60.0
    polling.wait_for_job(lambda fn, what: fn(), get_job, "status", 3600, rows=rows, pace=pace, kind="query",
                         since=0.0, sleep=clock.sleep, clock=clock)
    assert looks == [60.0]
    assert pace.rate("query") is None and pace.first_delay("query", rows) == expected
    clock2 = Clock()
    get_job2, looks2 = _job_at(clock2, rows, rate=20_000.0)
    clock2.now = 1.0
    polling.wait_for_job(lambda fn, what: fn(), get_job2, "status", 3600, rows=rows, pace=pace, kind="query",
                         since=0.0, sleep=clock2.sleep, clock=clock2)
    assert looks2 == [pytest.approx(expected)] and pace.rate("query") == pytest.approx(rows / expected)
