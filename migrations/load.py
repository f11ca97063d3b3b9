"""The load stage: upsert a mapped run into Salesforce on external IDs, journaled and resumable.

For each step of ``map/plan.json`` (parents first) the mapped records are hashed; a record whose hash
matches its last successful load is ``unchanged`` and not sent (the delta cutover run). The rest go in
batches: journal intent (+ before-images) -> DML (Bulk job id journaled the moment it exists) ->
ledger rows + load map + journal ``done`` in one transaction. Running the stage again on the same run
continues where it stopped: done batches are skipped, a batch with a Bulk job id is picked up from
Salesforce with ``resume_job``, a batch journaled without a job is resubmitted (upsert is idempotent).
Success and error files per object follow Salesforce Data Loader's shape.
"""

from __future__ import annotations

import logging
import threading
from itertools import chain
from dataclasses import dataclass, field
from typing import Any, Callable

from crmbridge import progress
from crmbridge.connectors.salesforce.results import is_transient
from crmbridge.errors import RunFailed, UsageError
from crmbridge.locks import heartbeat_held, locked
from crmbridge.migrations import ledger as L
from crmbridge.migrations.hashing import canonical_fast
from crmbridge.migrations.images import IN_CHUNK, existing_images, need_images  # noqa: F401 (IN_CHUNK re-exported)
from crmbridge.migrations.mapped import read_plan, read_step_frame  # noqa: F401 (read_plan re-exported)
from crmbridge.migrations.overlap import add_hashes, readback_ahead, reconcile_ahead, run_idle, while_waiting
from crmbridge.migrations.pending import RowsPending, stop_if_pending  # noqa: F401 (RowsPending re-exported)
from crmbridge.gcscope import paused as gc_paused
from crmbridge.migrations.records import crash_point, frame_columns, frame_records, frame_to_records, to_records
from crmbridge.migrations.records import to_record  # noqa: F401 (re-exported)
from crmbridge.migrations.runs import Run, finish_stage, start_stage

log = logging.getLogger("crmbridge.load")

# Records per journaled DML batch (one Bulk API 2.0 job each). None: as many as fit under the job
# upload limit (150 MB of base64-encoded CSV, ``bulk.MAX_ENCODED_BYTES``). Every job costs the same
# handful of API calls (create, upload, close, status polls, results) whatever its size, and
# Salesforce splits a job into parallel 10,000-record batches itself, so one big job is both the
# cheapest and about the fastest; a crash redoes nothing, as resume picks the journaled job up.
BATCH_ROWS: int | None = None


@dataclass(frozen=True)
class StepLoad:
    """What one step's load did, counted in records and in source rows."""

    step: str
    object: str
    records: int
    created: int
    updated: int
    unchanged: int
    failed: int
    source_rows: dict[str, int]
    success_file: str | None
    error_file: str | None
    error_codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadResult:
    run_id: str
    dry_run: bool
    steps: tuple[StepLoad, ...]
    api_calls: int

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "api_calls": self.api_calls,
                "steps": [s.as_dict() for s in self.steps]}


# ----------------------------------------------------------------------------- context


@dataclass
class _Ctx:
    engine: Any
    conn: Any
    run: Run
    step: dict
    fields: list[str]
    advance: Callable[[int], None]
    known: set | None = None  # external ids the load map held when the step started (+ this run's batches)
    # state writes from the batches in flight (each in its own thread) go one at a time
    lock: Any = field(default_factory=threading.Lock)
    retried: set = field(default_factory=set)  # keys sent before whose rows a transient fault left pending
    pending: dict = field(default_factory=dict)  # transient error code -> source rows left pending
    pending_message: str | None = None
    plan: list = field(default_factory=list)  # every step of the run, for the parents' outcomes
    after_dml: Callable[[list], None] | None = None  # called with the results of the stage's last write
    # work of the stage that needs no batch's outcome, done while a job runs in the org (overlap.while_waiting)
    idle: list = field(default_factory=list)
    submitted: Any = None  # set (threading.Event) once the batch being sent has its Bulk job
    ready: Any = None  # set (threading.Event) once the idle work is done (or failed)
    reconcile_next: bool = False  # reconcile follows in this process (migrate): prepare its work ahead

    @property
    def name(self) -> str:
        return self.step["step"]

    @property
    def sobject(self) -> str:
        return self.step["object"]

    @property
    def ext(self) -> str:
        return self.step["external_id_field"]


def _ledger_rows(ctx: _Ctx, row: dict, action: str, sf_id=None, code=None, message=None, batch_no=None):
    ext_val = canonical_fast(row.get(ctx.ext)) or None
    return [dict(row_id=str(rid), object=ctx.sobject, source_key=_trim(row.get("_source_key")), external_id=ext_val,
                 sf_id=sf_id, action=action, error_code=code, message=message, content_hash=row["_hash"],
                 batch_no=batch_no) for rid in row["_rows"]]


def _trim(v, n: int = 190):
    v = canonical_fast(v)
    return v[:n] if v else None


# ----------------------------------------------------------------------------- batches


def _apply_results(ctx: _Ctx, entry_keys: list[str], by_key: dict, results, batch_no: int, preexisting: set,
                   resubmitted: bool) -> dict[str, int]:
    """Ledger and load map for a batch's outcomes. Rows that met a transient fault get no ledger row:
    they stay pending (counted under ``pending``, their codes in ``ctx.pending``) for the next attempt."""
    ledger_rows, map_rows, counts = [], [], {}
    obj, ext, run_id = ctx.sobject, ctx.ext, ctx.run.run_id
    for key, res in zip(entry_keys, results):
        row = by_key[key]  # keyed by the canonical external id
        source_key, content_hash = _trim(row.get("_source_key")), row["_hash"]
        if res.success:
            again = resubmitted or key in ctx.retried  # an earlier attempt may have written it already
            created = bool(res.created) or (again and key not in preexisting)
            action, sf_id, code, message = ("created" if created else "updated"), res.id, None, None
            map_rows.append(dict(object=obj, external_id=key, external_id_field=ext, sf_id=sf_id,
                                 content_hash=content_hash, source_key=source_key, last_run_id=run_id,
                                 created_run_id=run_id if created else None))
        elif is_transient(res.error_code):
            counts["pending"] = counts.get("pending", 0) + 1
            ctx.pending[res.error_code] = ctx.pending.get(res.error_code, 0) + len(row["_rows"])
            ctx.pending_message = ctx.pending_message or res.message
            continue
        else:
            action, sf_id, code, message = "failed", None, res.error_code or "UNKNOWN_ERROR", res.message
        for rid in row["_rows"]:
            ledger_rows.append(dict(row_id=str(rid), object=obj, source_key=source_key, external_id=key or None,
                                    sf_id=sf_id, action=action, error_code=code, message=message,
                                    content_hash=content_hash, batch_no=batch_no))
        counts[action] = counts.get(action, 0) + 1
    L.finish_batch(ctx.engine, run_id=run_id, step=ctx.name, batch_no=batch_no, ledger_rows=ledger_rows,
                   map_rows=map_rows, known=ctx.known)
    return counts


_RESUBMIT = {"UNPROCESSED", "JOB_FAILED", "JOB_NOT_FOUND"}


def run_batch(ctx: _Ctx, entry: L.JournalEntry, by_key: dict, *, fresh: bool,
              records: list[dict] | None = None) -> None:
    """Send one journaled batch (or pick up its Bulk job) and record the outcome (thread-safe)."""
    run_id, name, batch_no = ctx.run.run_id, ctx.name, entry.batch_no
    keys = entry.keys
    if records is None:
        records = to_records([by_key[k] for k in keys], ctx.fields)

    def on_job(job_id: str) -> None:
        with ctx.lock:
            L.journal_job(ctx.engine, run_id, name, batch_no, job_id)
        crash_point("load:after_job_created")

    def on_sent() -> None:
        # the idle work starts once the job's data is up: begun at the job's creation, it held the GIL
        # against the upload's thread, which waits for it between writes to the socket
        if ctx.submitted is not None:
            ctx.submitted.set()

    if entry.job_id:
        results = list(ctx.conn.resume_job(entry.job_id, "upsert", ctx.sobject, records, keys=keys,
                                           external_id_field=ctx.ext))
        redo = [i for i, r in enumerate(results) if not r.success and r.error_code in _RESUBMIT]
        if redo:  # rows the killed job never processed: send just those again
            again = ctx.conn.dml("upsert", ctx.sobject, [records[i] for i in redo], keys=[keys[i] for i in redo],
                                 external_id_field=ctx.ext, on_job=on_job)
            for i, r in zip(redo, again):
                results[i] = r
    else:
        results = ctx.conn.dml("upsert", ctx.sobject, records, keys=keys, external_id_field=ctx.ext, on_job=on_job,
                               on_sent=on_sent, on_done=getattr(ctx.after_dml, "all_succeeded", None))
    if len(results) != len(keys):
        raise RunFailed(f"step {name} batch {batch_no}: {len(results)} results for {len(keys)} records",
                        hint=f"`crmbridge migrate` resumes run {run_id}")
    crash_point("load:after_dml")
    if ctx.after_dml is not None:
        ctx.after_dml(results)
    if ctx.ready is not None:  # the work done meanwhile (the rows' hashes among it) must be finished
        ctx.submitted.set()  # (a batch sent without a Bulk job has not said so yet)
        ctx.ready.wait()
    with ctx.lock:
        again = not fresh or any(k in ctx.retried for k in keys)
        preexisting = L.imaged_external_ids(ctx.engine, run_id, ctx.sobject) if again else set()
        with gc_paused():
            counts = _apply_results(ctx, keys, by_key, results, batch_no, preexisting, resubmitted=not fresh)
    ctx.advance(len(keys) - counts.get("pending", 0))
    heartbeat_held()
    crash_point("load:after_batch")


def plan_batches(records: list[dict], max_rows: int | None, max_bytes: int | None = None, *,
                 chars: int | None = None) -> list[tuple[int, int]]:
    """Cut ``records`` into (start, end) ranges, each one Bulk job: at most ``max_rows`` records and
    at most ``max_bytes`` bytes of CSV (default: the Bulk API 2.0 upload limit). ``chars``: at least the
    characters of the records' values as ``str`` writes them, when the caller has counted them."""
    from crmbridge.connectors.salesforce import bulk

    n = len(records)
    if not n:
        return []
    max_bytes = bulk.MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    step = max_rows or n
    # a cheap bound first (4 bytes per character at most in UTF-8, every cell quoted): most loads fit
    # in one job and need no exact sizes
    # (summed over all the cells in one pass: the same figure as record by record)
    if chars is None:
        chars = len("".join(map(str, chain.from_iterable(map(dict.values, records)))))
    rough = 4 * chars + 3 * sum(map(len, records)) + n + 65_536
    if rough <= max_bytes:
        return [(i, min(i + step, n)) for i in range(0, n, step)]
    out, start, size = [], 0, 65_536  # room for the header line
    for i, r in enumerate(records):
        b = bulk.row_bytes(r)
        if i > start and (size + b > max_bytes or i - start >= step):
            out.append((start, i))
            start, size = i, 65_536
        size += b
    out.append((start, n))
    return out


def load_step(ctx: _Ctx, *, dry_run: bool, batch_rows: int | None) -> StepLoad:
    with gc_paused():
        df, ctx.fields = read_step_frame(ctx.run, ctx.step, hashes=False)
        columns = frame_columns(df)  # read once: the row dicts and the upload's records are built from them
        rows = frame_records(df, columns)
        by_key: dict[str, dict] = {}
        for r in rows:
            by_key[canonical_fast(r.get(ctx.ext))] = r
    if len(by_key) != len(rows) or "" in by_key:
        raise UsageError(f"step {ctx.name}: external IDs ({ctx.ext}) must be present and unique per step",
                         hint="the map stage quarantines duplicates; re-run `crmbridge map`")
    mapping = L.map_for(ctx.engine, ctx.sobject)
    if dry_run:
        add_hashes(df, rows, ctx.fields)
        return _dry_run(ctx, by_key, mapping)
    done_rows = L.ledger_row_ids(ctx.engine, ctx.run.run_id, ctx.name)
    entries = L.journal_entries(ctx.engine, ctx.run.run_id, ctx.name)
    journaled = {k for e in entries for k in e.keys}
    # a journaled batch may have reached the load map in an earlier attempt; fresh keys cannot have
    ctx.known = set(mapping) | journaled
    # rows of a finished batch without a ledger row met a transient fault last time: send them again
    ctx.retried = {k for e in entries if e.status == "done" for k in e.keys
                   if k in by_key and not set(by_key[k]["_rows"]) <= done_rows}
    held = _held_back(ctx, by_key, df.columns)  # children of parents this run could not load: not sent
    # Content hashes are needed before the first write only to tell unchanged records (keys in the load
    # map), to record held-back rows or a resumed batch; else they are computed while the job runs.
    if entries or held or mapping.keys() & by_key.keys():
        add_hashes(df, rows, ctx.fields)
    else:
        ctx.idle.insert(0, lambda: add_hashes(df, rows, ctx.fields))  # first: the results wait for it
    pending, unchanged, hold = [], [], []
    for key, r in by_key.items():
        if key in ctx.retried:
            pending.append(key)
            continue
        if key in journaled or set(r["_rows"]) <= done_rows:
            continue
        if key in held:
            hold.append(key)
            continue
        prev = mapping.get(key)
        (unchanged if prev and prev[1] == r["_hash"] else pending).append(key)
    L.record_ledger(ctx.engine, ctx.run.run_id, ctx.name,
                    [x for k in unchanged for x in _ledger_rows(ctx, by_key[k], "unchanged", sf_id=mapping[k][0])]
                    + [x for k in hold for x in _ledger_rows(ctx, by_key[k], "failed", code=held[k][0],
                                                             message=held[k][1])])
    ctx.advance(len(unchanged) + len(hold) + sum(len(e.keys) for e in entries if e.status == "done")
                - len(ctx.retried))
    for e in entries:
        if e.status != "done":
            run_batch(ctx, e, by_key, fresh=False)
            stop_if_pending(ctx, len(pending))
    next_no = max((e.batch_no for e in entries), default=-1) + 1
    images_needed = bool(pending) and need_images(ctx)
    with gc_paused():
        records, chars = frame_to_records(df, _positions(by_key, pending), ctx.fields, columns, rows)
        batches = [(pending[a:b], records[a:b]) for a, b in plan_batches(records, batch_rows, chars=chars)]
    del records
    last = None
    if ctx.reconcile_next:
        ctx.idle.append(lambda: reconcile_ahead(ctx, df))
        last = readback_ahead(ctx, [k for e in entries for k in e.keys] + pending, unchanged)
    _send_batches(ctx, batches, by_key, mapping, images_needed, next_no, last)
    with gc_paused():
        return summarize_step(ctx, df)


def _positions(by_key: dict, keys: list[str]) -> list[int] | None:
    """The frame rows of ``keys`` (``by_key`` holds the frame's rows in order); None: all of them."""
    if len(keys) == len(by_key):  # keys are taken in by_key's order, each once: every row
        return None
    pos = {k: i for i, k in enumerate(by_key)}
    return [pos[k] for k in keys]


def _held_back(ctx: _Ctx, by_key: dict, columns) -> dict[str, tuple[str, str]]:
    from crmbridge.migrations import holdback

    lookups = holdback.lookup_columns(ctx.step, columns)
    if not lookups:
        return {}
    return holdback.held_back(by_key, lookups, holdback.rejected_parents(ctx.engine, ctx.run.run_id, ctx.plan,
                                                                          ctx.name))


def _journal_batch(ctx: _Ctx, keys: list[str], batch_no: int, mapping: dict, images_needed: bool) -> L.JournalEntry:
    """Before-images (when the org may hold records this run did not create) and intent, before any write.

    A retried key keeps the before-image (or its absence) of its first attempt: that attempt's outcome
    may be unknown, so the org may already hold this run's values."""
    fresh = [k for k in keys if k not in ctx.retried]
    images = existing_images(ctx, fresh) if images_needed and fresh else []
    for im in images:
        im["prev_hash"] = (mapping.get(im["external_id"]) or (None, None))[1]
    with ctx.lock:
        L.journal_intent(ctx.engine, run_id=ctx.run.run_id, step=ctx.name, batch_no=batch_no, sobject=ctx.sobject,
                         operation="upsert", external_id_field=ctx.ext, keys=keys, images=images)
    crash_point("load:after_intent")
    return L.JournalEntry(ctx.run.run_id, ctx.name, batch_no, ctx.sobject, "upsert", ctx.ext, keys, "intent", None)


def _send_batches(ctx: _Ctx, batches: list[tuple[list[str], list[dict]]], by_key: dict, mapping: dict,
                  images_needed: bool, next_no: int, last: Callable[[list], None] | None = None) -> None:
    """Journal and send the batches, up to ``bulk_jobs_in_flight`` (crmbridge.yml) at a time.

    Each batch is journaled (intent, then its job id) before its data goes up, so a crash anywhere
    leaves every batch either done, pick-up-able by job id, or safe to resubmit. ``last``: called with
    the last batch's results before they are recorded (one batch at a time only).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    limit = max(1, int(getattr(ctx.conn, "bulk_jobs_in_flight", 1) or 1))
    unsent = sum(len(k) for k, _ in batches)
    if limit == 1 or len(batches) <= 1:
        for i, (keys, records) in enumerate(batches):
            entry = _journal_batch(ctx, keys, next_no, mapping, images_needed)
            ctx.after_dml = last if i == len(batches) - 1 else None
            try:
                while_waiting(ctx, lambda: run_batch(ctx, entry, by_key, fresh=True, records=records))
            finally:
                ctx.after_dml = None
            next_no += 1
            unsent -= len(keys)
            stop_if_pending(ctx, unsent)
        return
    run_idle(ctx.idle)  # the batches need the rows' hashes
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="crmbridge-load") as pool:
        running: set = set()
        for keys, records in batches:
            if len(running) >= limit:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                errors += [f.exception() for f in finished if f.exception() is not None]
            if errors or ctx.pending:
                break  # let the batches in flight finish and record their outcome, send no more
            entry = _journal_batch(ctx, keys, next_no, mapping, images_needed)
            running.add(pool.submit(run_batch, ctx, entry, by_key, fresh=True, records=records))
            next_no += 1
            unsent -= len(keys)
        finished, _ = wait(running)
        errors += [f.exception() for f in finished if f.exception() is not None]
    if errors:
        raise errors[0]
    stop_if_pending(ctx, unsent)


def _dry_run(ctx: _Ctx, by_key: dict, mapping: dict) -> StepLoad:
    import pandas as pd

    actions = {}
    for k, r in by_key.items():
        prev = mapping.get(k)
        actions[k] = "unchanged" if prev and prev[1] == r["_hash"] else "update" if prev else "create"
    out = ctx.run.stage_dir("load") / f"{ctx.name}_dry_run.csv"
    from crmbridge.csvout import write_frame  # read by people, not by Data Loader: neutralised

    write_frame(pd.DataFrame([{"ACTION": a, ctx.ext: k, "ID": (mapping.get(k) or (None,))[0]}
                              for k, a in actions.items()], columns=["ACTION", ctx.ext, "ID"]), out)
    n = lambda a: sum(1 for v in actions.values() if v == a)  # noqa: E731
    rows = lambda a: sum(len(by_key[k]["_rows"]) for k, v in actions.items() if v == a)  # noqa: E731
    ctx.advance(len(by_key))
    return StepLoad(ctx.name, ctx.sobject, len(by_key), n("create"), n("update"), n("unchanged"), 0,
                    {"created": rows("create"), "updated": rows("update"), "unchanged": rows("unchanged"),
                     "failed": 0}, str(out), None)


def summarize_step(ctx: _Ctx, df) -> StepLoad:
    """Counts from the ledger, and the Data Loader style success and error files."""
    from crmbridge.migrations.loadfiles import write_result_files

    led = L.ledger_frame(ctx.engine, ctx.run.run_id, ctx.name,
                         ["row_id", "external_id", "sf_id", "action", "error_code", "message"])
    led = led[led["action"] != "quarantined"]
    expected = sum(len(r) for r in df["_rows"])
    if len(led) != expected:
        raise RunFailed(f"step {ctx.name}: ledger holds {len(led)} source rows, the load file {expected}",
                        hint=f"`crmbridge migrate` resumes run {ctx.run.run_id}")
    per_record = led.drop_duplicates("external_id")
    counts = per_record["action"].value_counts().to_dict()
    src = led["action"].value_counts().to_dict()
    codes = led[led["action"] == "failed"]["error_code"].value_counts().to_dict()
    ok, err = write_result_files(ctx.run.stage_dir("load"), ctx.name, df, ctx.fields, per_record, ctx.ext)
    return StepLoad(ctx.name, ctx.sobject, len(df), int(counts.get("created", 0)), int(counts.get("updated", 0)),
                    int(counts.get("unchanged", 0)), int(counts.get("failed", 0)),
                    {a: int(src.get(a, 0)) for a in L.ACTIONS}, str(ok), str(err),
                    {str(k): int(v) for k, v in codes.items()})


# ----------------------------------------------------------------------------- stage


def _both(a: Callable[[int], None], b: Callable[[int], None] | None) -> Callable[[int], None]:
    def advance(n: int = 1) -> None:
        a(n)
        if b is not None:
            b(n)

    return advance


@locked("load")
def run_load(project, run: Run, *, connector=None, dry_run: bool = False, batch_rows: int | None = BATCH_ROWS,
             advance: Callable[[int], None] | None = None, reconcile_next: bool = False) -> LoadResult:
    """Load every step of a mapped run (parents first); resumable by calling it again on the same run.

    ``reconcile_next``: reconcile follows with the same ``connector`` (``migrate``): its work on the
    source side and its read of the org are started while the load runs (``overlap``)."""
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    steps = read_plan(run)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    stage = "load_dry_run" if dry_run else "load"
    start_stage(engine, run.run_id, stage)
    L.seed_pace(engine, connector)
    try:
        idle: list[Callable[[], Any]] = []  # done while the first job runs in the org (or after the steps)
        if not dry_run:
            from crmbridge.migrations.quarantine import record_quarantine

            idle.append(lambda: record_quarantine(engine, run.run_id, run.dir, steps))
        done = []
        progress.current().expect(len(steps))
        for step in steps:
            with progress.tracked(f"{step['object']} (records)", int(step.get("rows") or 0) or None) as task:
                ctx = _Ctx(engine, connector, run, step, [], _both(task.advance, advance), plan=steps, idle=idle,
                           reconcile_next=reconcile_next and not dry_run)
                done.append(load_step(ctx, dry_run=dry_run, batch_rows=batch_rows))
        run_idle(idle)
        result = LoadResult(run.run_id, dry_run, tuple(done), int(getattr(connector, "api_calls", 0)))
        L.save_pace(engine, connector)
    except BaseException as exc:
        finish_stage(engine, run.run_id, stage, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own:
            connector.close()
    finish_stage(engine, run.run_id, stage, result.as_dict())
    return result
