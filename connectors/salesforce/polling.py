"""Waiting for Bulk API 2.0 jobs with as few status calls and as little idle time as possible.

Every status poll is one call against the org's daily API allowance, and every needless sleep is wall
time. simple-salesforce's own ``wait_for_job`` sleeps ``wait`` seconds before its first look and then
``wait + e**n / 1000`` (so 5 s+ per poll with its default ``wait=5``) whatever the job's size; the
connector therefore never calls it and paces its polls here instead:

- the first look comes when the job should be done at the rate this connector saw on earlier jobs of
  the same kind (``Pace``, kept in the state database between runs); when no ingest job was seen yet
  (a fresh project), ``fresh_next`` spends at most ``FRESH_LOOKS`` status looks, the first an early
  one, and fetches the results when the figures say the job must be done;
- while a job runs, ``numberRecordsProcessed`` at two looks gives the org's current rate, and the
  next look is timed for the projected end (plus a margin, so that it usually is the last one);
- without progress figures (query jobs, a job still queued) the next look waits as long again as
  the job has been waited for (at most ``MAX_DELAY``): quick for small jobs, seconds for big ones.

A look timed for the job's end (by a learned rate or by the job's progress figures) can fetch the
job's results instead of its status (``finish``): when the job is done by then, as it usually is, the
results were due anyway and the status call is saved; when it is not, a status look follows at once.

Whatever the schedule, a job spends at most ``look_cap`` looks that are not its results (status looks,
and results looks that found it not done): the calls issue 14's budget leaves once the calls that are
not looks are counted. After them the next look comes when the job must be done at the worst plausible
rate it showed (``must_end_delay``), so that it is the results, not one more look; only a job slower
than that (or one that never showed a rate) gets further looks, as long again as it was waited for.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from crmbridge.errors import RunFailed

TERMINAL = ("JobComplete", "Failed", "Aborted")
MIN_DELAY = 0.05
MAX_DELAY = 30.0  # between looks at a job that shows no progress figure
MAX_PROJECTED = 300.0  # a look timed by a projected end (progress figures or a learned rate)
# No job, however small, is done the moment it is closed: the first look never comes sooner.
FIRST_LOOK = 0.3
# Reading is several times faster than writing (no validation, triggers or index upkeep): before
# any query job was seen, a query is assumed to run this many times faster than the ingest jobs, at
# the ingest rate this connector learned (its end by the job's figures: the org's start delay is in
# it, the client's idle after the end is not). A factor at or above the real one puts the first look
# before the end (a second call, one more API call per reconcile: over issue 14's budget at 94k
# records); one below it idles. On the embedded sandbox (94k Accounts, 14 fields) it was 3.8x (4
# December, 4.0x at load average 9), then the sandbox's query got twice as fast (task sandboxq), and
# 3 left reconcile's query done 3-23 s before its first look (task rqlook: 13 runs of
# benchmarks/migrate_100k.py, load average 0-10; the org's query took 0.8-4.2 s, and would have been
# done by its first look at factors up to 7.5-19, median 10): 5 keeps a third of the least of those
# in hand.
QUERY_VS_INGEST = 5.0
# A query job before any job was seen: its first look comes when it would be done at this rate.
FIRST_GUESS_ROWS_PER_S = 10_000.0
# An ingest job before any was seen (a fresh project; ``fresh_next``). Until 4 December the first look
# came at 10,000 rows/s and a figure of under 3 batches timed the next for the earliest end it allowed:
# 2.5 s idle on the quiet sandbox (done in 7.5 s, looked at 10.2 s), 45 s idle on the sandbox at load
# average 3 (the job started late: 10,000 done at the first look, all done 13 s later), and on a slow
# org (1,000 rows/s) 4 status looks and a results look too early. Now: the first look at this rate,
# early enough to find a fast org's job running and read its figure ...
FRESH_ROWS_PER_S = 15_000.0
# ... at most this many status looks in all (the budget of issue 14: 10 API calls per 100k records
# loaded and reconciled, of which 7 are not status looks), then the results ...
FRESH_LOOKS = 2
# ... plus one more for each further 100,000 rows of the job (each brings 10 calls of that budget and
# needs about one more result page): a big job on a slow org is then seen close to its end, where two
# looks alone would leave it idle for 40% of its time ...
FRESH_LOOKS_PER_ROWS = 100_000
# ... the second look at this share of the way to the end its figure projects (a look before the end
# still gives a second figure, which bounds the end closely; one after it is idle time) ...
FRESH_AIM = 0.7
# ... but no later than this many times the time waited (the job may have started late) ...
FRESH_GROWTH = 3.0
# ... or this many times after a figure of 0 (a queued job or a slow org: it cannot end before a batch
# a look took, unless it started late). Chosen on a model of orgs of 500-30,000 rows/s starting
# 0.3-3 s late (tests/connectors/salesforce/test_polling.py): never more than 2 status looks nor a
# results look before the end; idle after the end at most about 30% of the job from 2,500 to 20,000
# rows/s (a faster job is seen at the first look), but 40-45% at 500-1,000 rows/s, where the old
# scheme, with up to 4 status looks and a results look too early, had 9-25%: the price of the budget.
# (Since the look cap, ``SLOWDOWN``, the results look after the 2 looks of a job under 100,000 rows
# comes later: at most 38% idle from 2,500 rows/s, 60% at 500-1,000.)
FRESH_ZERO_GROWTH = 4.0
# Aim this much past the projected end: a look that comes a little late costs idle time, one that
# comes early costs another API call and another wait.
MARGIN = 1.08
# ... and past an end projected from a running job's progress figures, which move in steps of a
# 10,000-record batch and with the org's (or the machine's) load: a wider margin.
PROGRESS_MARGIN = 1.12
BATCH_ROWS = 10_000  # Bulk API 2.0 processes ingest data in internal batches of 10,000 records
# The fresh schedule (``fresh_next``) for jobs of at least this many rows; a smaller one is looked at as
# before it (a first look at ``FRESH_ROWS_PER_S``, then by its progress figures).
FRESH_MIN_ROWS = 2 * BATCH_ROWS
# A first progress figure of fewer batches than this says little of the rate: the job may be almost a
# batch further, and may have started late (a busy org). Projecting from it put the next look at twice
# the job's time on the sandbox at load average 5 (10,000 done at the first look, 17,000 in truth).
# Then the next look is a status look at the earliest end the figure allows, and, if the job is not
# done by then, two figures far apart time the look after it closely.
COARSE_BATCHES = 3
# Issue 14's budget: at most this many API calls per 100,000 records loaded and reconciled ...
CALLS_PER_100K = 10
# ... of which these are not looks at a job, for a load of one ingest job and its reconcile: the load's
# count query, the job's create, upload, close and successful results, reconcile's query create and its
# first results page (one more per further ``QUERY_PAGE_ROWS``).
OTHER_CALLS = 7
QUERY_PAGE_ROWS = 200_000  # the connector's Bulk query page (client.BULK_PAGE_ROWS)
# A job looked at ``look_cap`` times is next looked at when it must be done at the slowest rate its
# figures showed, that rate divided by this (the org, or the machine under it, may get busier before
# the end). On the sandbox at load average 2-5 (task apibudget, two busy loops beside it) a 94,318-row
# upsert showed 70,000 done after 21.3 s (3,286 rows/s over the wait, 3,497 since the look before), and
# the results look at 30.0 s, timed at 1.08 times the end the best figure projected, found it not done:
# its last 24,318 rows ran at most at 2,795 rows/s, 1.18-1.25 times slower; the miss and the status look
# after it made 11 calls in load + reconcile where the budget allows 9. On the model of orgs of
# 500-30,000 rows/s this factor holds a slowdown of 1.2 after three quarters of the rows within the cap,
# for an idle time after the end of 30% of the job in the median (25% at 1.08 times the best figure).
SLOWDOWN = 1.2


class Pace:
    """Rows per second seen on this connector's recent jobs, per kind ("ingest", "query"); thread-safe."""

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}
        self._lock = threading.Lock()

    def rate(self, kind: str) -> float | None:
        with self._lock:
            return self._rates.get(kind)

    def learn(self, kind: str, rows: int, seconds: float, *, at_least: bool = False) -> None:
        """Record a job of ``rows`` rows that took ``seconds``. ``at_least``: the job was found done at
        the first look, so it may have been faster: only raise the rate (a lowered one would drift
        down by the margin on every job)."""
        if rows <= 0 or seconds <= 0:
            return
        seen = rows / seconds
        with self._lock:
            old = self._rates.get(kind)
            if old is None:
                self._rates[kind] = seen
            elif at_least:
                self._rates[kind] = max(old, seen)
            else:
                self._rates[kind] = 0.5 * old + 0.5 * seen

    def knows(self, kind: str) -> bool:
        """Whether a first look at a job of ``kind`` is timed by a rate seen on this org."""
        return self.rate(kind) is not None or (kind == "query" and self.rate("ingest") is not None)

    def first_delay(self, kind: str, rows: int | None) -> float:
        """How long to wait before the first look at a job of ``rows`` rows that was just submitted."""
        if not rows:
            return FIRST_LOOK
        rate = self.rate(kind)
        if rate is None and kind == "query" and self.rate("ingest"):
            rate = self.rate("ingest") * QUERY_VS_INGEST
        rate = rate or (FRESH_ROWS_PER_S if kind == "ingest" else FIRST_GUESS_ROWS_PER_S)
        return min(MAX_PROJECTED, max(FIRST_LOOK, rows / rate * MARGIN))

    def slowest(self, kind: str) -> float | None:
        """The slowest rate a job of ``kind`` plausibly runs at, from the rates seen: a query's is the
        ingest rate (reading is several times faster than writing, ``QUERY_VS_INGEST``), or its own rate
        over that factor when no ingest job was seen."""
        if kind == "query":
            ingest, query = self.rate("ingest"), self.rate("query")
            return ingest or (query / QUERY_VS_INGEST if query else None)
        return self.rate(kind)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self._rates)

    def seed(self, rates: dict) -> None:
        """Start from rates seen earlier on the same org (kept in the state database between runs)."""
        with self._lock:
            for kind, rate in (rates or {}).items():
                if isinstance(rate, (int, float)) and rate > 0:
                    self._rates.setdefault(str(kind), float(rate))


def _processed(job: dict) -> int:
    try:
        return int(job.get("numberRecordsProcessed") or 0)
    except (TypeError, ValueError):
        return 0


def coarse(job: dict, prev: tuple[float, int] | None) -> bool:
    """Whether the job's only progress figure is a few whole batches (see ``COARSE_BATCHES``)."""
    done = _processed(job)
    return (prev is None or done <= prev[1]) and done % BATCH_ROWS == 0 and done < COARSE_BATCHES * BATCH_ROWS


def next_delay(job: dict, rows: int | None, prev: tuple[float, int] | None, now: float, waited: float,
               last_delay: float) -> float:
    """The wait before the next look, from the job's progress (pure: tested without an org)."""
    done = _processed(job)
    if rows and 0 < done < rows and job.get("state") == "InProgress":
        if prev is not None and done > prev[1] and now > prev[0]:
            rate = (done - prev[1]) / (now - prev[0])
        elif coarse(job, prev):
            # the end at the fastest rate the figure allows (a whole batch further), without margin
            return min(MAX_PROJECTED, max(MIN_DELAY, (rows - done) / ((done + BATCH_ROWS) / max(waited, 1e-3))))
        else:
            # Salesforce counts processed rows per internal batch of 10,000: at a random moment the
            # job is on average half a batch further than the figure says. Counting a quarter errs
            # on the slow side, so the next look is rarely early (an early look costs another call).
            rate = (done + (BATCH_ROWS / 4 if done % BATCH_ROWS == 0 else 0)) / max(waited, 1e-3)
        return min(MAX_PROJECTED, max(MIN_DELAY, (rows - done) / rate * PROGRESS_MARGIN))
    # no progress figure: wait as long again as so far (the overshoot stays below the time the job
    # took, and a long job costs a logarithmic number of looks)
    return min(MAX_DELAY, max(MIN_DELAY, last_delay, waited))


def end_bound(rows: int, done: int, now: float, waited: float, prev: tuple[float, int] | None) -> float | None:
    """The latest the job can end (seconds from now) if it keeps at least the rate it has shown: its
    figure over the whole wait (a late start only makes it faster than that), or the least the figures
    of two looks allow (each may be up to a batch behind). None without a figure to go by."""
    rates = [done / waited] if done > 0 and waited > 0 else []
    if prev is not None and now > prev[0] and done - prev[1] > BATCH_ROWS:
        rates.append((done - prev[1] - BATCH_ROWS) / (now - prev[0]))
    return _left(rows, done) / max(rates) if rates else None


def _left(rows: int, done: int) -> float:
    # A job whose figure is its size may still be InProgress (the sandbox on a busy machine: for 0.8 s,
    # where the old schedule looked 4 times): count a quarter of a batch (or of a smaller job) left, not none.
    return rows - done if done < rows else min(rows, BATCH_ROWS) / 4


def look_cap(rows: int | None, kind: str = "ingest") -> int:
    """The looks at a job of ``rows`` rows that are not its results (status looks, results looks that found
    it not done) which the budget allows: ``CALLS_PER_100K`` per 100,000 rows minus ``OTHER_CALLS`` and the
    query's further pages, but never fewer than ``FRESH_LOOKS`` (under about 90,000 rows the other calls
    alone are the budget: such a job keeps the looks it had). A query job gets none: the ingest job's
    cap takes what the budget leaves, and the query's first results look, timed for its end, is the
    results page it needs."""
    if kind == "query":
        return 0
    budget = CALLS_PER_100K * int(rows or 0) // 100_000
    return max(FRESH_LOOKS, budget - OTHER_CALLS - max(0, int(rows or 0) - 1) // QUERY_PAGE_ROWS)


def slowest_rate(done: int, waited: float, prev: tuple[float, int] | None, now: float,
                 slowest: float | None) -> float | None:
    """The slowest rate a job's figures showed: its figure over the whole wait (which counts a late start
    in) or its progress since the previous look, whichever is less. Before any figure, ``slowest``: the
    slowest rate known for such jobs (``Pace.slowest``). (The least rate two figures allow, each up to a
    batch behind, is no plausible rate: 10,000 rows off 30,000 put a 2,500 rows/s job's results look
    26 s after its end.)"""
    if done <= 0:
        return slowest
    rates = [done / max(waited, 1e-3)]
    if prev is not None and now > prev[0] and done > prev[1]:
        rates.append((done - prev[1]) / (now - prev[0]))
    return min(rates)


def must_end_delay(rows: int, done: int, waited: float, rate: float | None) -> float:
    """The wait until a job of ``rows`` rows, ``done`` of them processed after ``waited`` s, must be done at
    ``rate`` slowed by ``SLOWDOWN`` (``rate``: ``slowest_rate``; without a figure, the job's whole time at
    that rate counts from its start). When that moment has passed or no rate is known, as long again as
    the job was waited for: a job slower than anything seen gets a logarithmic number of looks, and is
    waited for until the caller's timeout as before."""
    if rate:
        left = _left(rows, done) * SLOWDOWN / rate - (0.0 if done > 0 else waited)
        if left >= MIN_DELAY:
            return min(MAX_PROJECTED, left)
    return min(MAX_PROJECTED, max(MIN_DELAY, waited))


def fresh_looks(rows: int) -> int:
    """The status looks a fresh project spends on an ingest job of ``rows`` rows before it fetches the
    results: ``FRESH_LOOKS``, and one more for each further ``FRESH_LOOKS_PER_ROWS`` rows."""
    return FRESH_LOOKS + max(0, int(rows) - 1) // FRESH_LOOKS_PER_ROWS


def fresh_next(job: dict, rows: int, prev: tuple[float, int] | None, now: float, waited: float,
               looks: int) -> tuple[float, bool]:
    """The wait before the next look at a job on an org whose rate is not known yet, and whether that
    look is timed for the job's end (then its results are fetched instead of its status). At most
    ``fresh_looks(rows)`` status looks: then the look that fetches the results comes when the job must be
    done at the rate its figures show (``end_bound``), so that it is not a call wasted.

    After the first look (an early one, ``FRESH_ROWS_PER_S``), a second status look comes where a job
    that started at once would end at the rate of its figure (plus half a batch): on a fast org the job
    is usually done by then; otherwise the two figures bound its end closely."""
    done = _processed(job)
    bound = end_bound(rows, done, now, waited, prev)
    allowed = fresh_looks(rows)
    if looks >= allowed and bound is not None:
        return min(MAX_PROJECTED, max(MIN_DELAY, bound * MARGIN)), True
    if looks >= allowed or done <= 0:
        # no figure yet (a queued job, or a slow org): the job cannot end before it could at a batch in
        # the time waited; look again well before that, after a few times the time waited
        return min(MAX_PROJECTED, max(MIN_DELAY, (FRESH_ZERO_GROWTH - 1) * waited)), False
    central = (rows - done) / ((done + BATCH_ROWS / 2) / waited) * FRESH_AIM
    return min(MAX_PROJECTED, max(MIN_DELAY, min(central, (FRESH_GROWTH - 1) * waited))), False


def wait_for_job(call, get_job: Callable[[], dict], what: str, timeout: float, *, rows: int | None = None,
                 pace: Pace | None = None, kind: str = "ingest", look_first: bool = False,
                 finish: Callable[[], dict | None] | None = None, since: float | None = None, finish_tries: int = 1,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict:
    """Poll a Bulk job until it reaches a terminal state; RunFailed if it outlasts ``timeout``.

    ``rows``: how many rows the job holds (or is expected to return), for pacing. ``look_first``:
    look before waiting (a job picked up after a crash may long be done). ``finish``: fetches the
    job's results and returns the job info they imply (JobComplete, or a job still in progress), or
    None when only a status look can tell (one follows at once); tried once, in place of the first
    status look timed for the job's end, or ``finish_tries`` times in a row (a query job shows no
    progress: a results look answers as a status look would, and a hit saves the results call; the
    look after the tries is a status look, which sees a job that failed). ``since``: when (on
    ``clock``) the job was submitted, if earlier than now (a job started ahead of its reader): the
    first look's wait counts from then.
    """
    pace = pace or Pace()
    start = clock() if since is None else min(since, clock())
    deadline = start + timeout
    due = pace.first_delay(kind, rows) - (clock() - start)
    delay = 0.0 if look_first else max(0.0, due)
    # a job started ahead of a reader that comes after its first look was due is looked at at once: found
    # done then, it says only that the job took less than the reader's lateness (the client's work, not
    # the org's), no rate to learn (for reconcile's query: the load's tail, up to a minute for 94k rows)
    late = since is not None and due < 0
    timed = not look_first and bool(rows) and pace.knows(kind)  # this look is timed for the job's end
    prev: tuple[float, int] | None = None
    projected: float | None = None  # when the progress figures put the job's end
    # a job of fewer than 2 internal batches shows a figure of 0 until it is almost done: the fresh
    # schedule would read that as a slow org and wait 3 times as long (the demo's first job: +3 s)
    fresh = not look_first and (rows or 0) >= FRESH_MIN_ROWS and kind == "ingest" and not pace.knows(kind)
    looks = 0  # status looks so far
    cap = look_cap(rows, kind)
    spent = 0  # looks that were not the results: status looks and results looks that found the job not done
    spare = finish  # one results look for the first look past the cap, if the tries are spent by then
    while True:
        if delay > 0:
            sleep(delay)
        job = finish() if finish is not None and timed else None
        if timed and finish is not None:
            finish_tries -= 1
            if finish_tries <= 0:
                finish = None  # a job not done by its expected end (and tries) is followed by status looks
            spent += job is None or job.get("state") not in TERMINAL
        if job is None:
            job = call(get_job, what)
            looks += 1
            spent += 1
        now = clock()
        if job.get("state") in TERMINAL:
            if job.get("state") == "JobComplete" and not look_first:
                # It ended between the previous look and this one: where the progress figures put the
                # end, or else the middle of that interval.
                if prev is None and late:
                    return job
                if prev is None:
                    took = now - start
                elif projected is not None:
                    took = min(max(projected, prev[0]), now) - start
                elif fresh:
                    took = now - start  # the slow end: a rate learned too high makes the next first looks early
                else:
                    took = (prev[0] + now) / 2 - start
                pace.learn(kind, rows or _processed(job), took, at_least=prev is None)
            return job
        if now > deadline:
            raise RunFailed(f"Bulk job {job.get('id')} still {job.get('state')} after {timeout:.0f}s",
                            hint="resume it later with the job id from the run journal")
        if rows and spent >= cap and job.get("state") != "Open":
            # the budget's looks are spent: the next comes when the job must be done, and fetches the results
            rate = slowest_rate(_processed(job), now - start, prev, now, pace.slowest(kind))
            delay = must_end_delay(rows, _processed(job), now - start, rate)
            timed = rate is not None
            if timed and spare is not None:
                if finish is None:
                    finish, finish_tries = spare, 1  # once: a failed job is then seen by the status looks after it
                spare = None
            projected = now + delay / SLOWDOWN if timed else None
            prev = (now, _processed(job))
            continue
        if fresh and job.get("state") != "Open":
            delay, timed = fresh_next(job, rows, prev, now, now - start, looks)
            projected = now + delay / MARGIN if timed else None
            prev = (now, _processed(job))
            continue
        delay = next_delay(job, rows, prev, now, now - start, max(delay, MIN_DELAY))
        progressed = bool(rows) and 0 < _processed(job) < rows
        rough = progressed and coarse(job, prev)  # the next look is timed for the earliest end: a status look
        projected = (now + (delay if rough else delay / PROGRESS_MARGIN)) if progressed else None
        timed = (progressed and not rough) or (timed and finish is not None)  # another results try
        prev = (now, _processed(job))
