"""Validate's per-batch work spread over worker processes, its results taken back in batch order.

``ordered_map(fn, items, workers)`` yields ``fn(x)`` for every ``x`` of ``items()``, in order. With
``workers=0`` it runs here, item by item. With ``workers=N`` it forks N processes: each walks its own
``items()`` (so a batch is read by the process that works on it, not shipped to it) and runs ``fn`` on
the positions it is given. The parent keeps ``N`` batches in flight beside the one it uses (memory is
bounded, and no worker waits while the parent writes), takes every ``N + 1``-th item itself where asked
(``share``: normalising, where it would otherwise wait) and does everything that writes, in the same
order as the serial path.

Why fork, chosen on purpose: ``fn`` holds what the workers need without pickling it (the compiled rules
are closures, the cross-row key indexes are hundreds of MB at 5M rows and are shared copy-on-write).
What makes fork unsafe is a lock held by another thread at the fork: the parent's other threads are
rich's progress refresher (workers never touch progress), and pyarrow's CPU pool (Arrow re-creates it
in a forked child; the workers read Parquet through it, which the tests exercise). A pool is forked
between batches, when the parent's own threads are idle, with the collector frozen (copy-on-write).
Where fork is missing (Windows; macOS, where system libraries abort after fork) validate stays serial.

A worker that raises fails the run with its own error; a worker that dies (killed, out of memory) fails
it with one ``RunFailed``; either way every worker is stopped before the error leaves ``ordered_map``.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import traceback
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from crmbridge.errors import CrmbridgeError, RunFailed

# An entity of fewer rows stays serial by default: forking and the pipeline's fill cost more than
# they save below a few batches (the tests and the demo have a few hundred rows).
MIN_PARALLEL_ROWS = 200_000
# Workers by default at most: the parent normalises a share of the batches itself and writes everything,
# so one worker fills the second core; each worker adds a batch in flight and the pages it copies
# (~190 MB PSS at 50k rows), which a 5M-row validate's 1 GB budget has room for once (docs/performance.md).
MAX_AUTO_WORKERS = 1

_JOB: dict[str, Any] = {}  # what forked workers inherit: fn, items, pack; their own cursor over items
_END = "__crmbridge_end_of_items__"


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and sys.platform.startswith("linux")


def worker_count(setting: int | None, rows: int, batch_rows: int, min_rows: int = MIN_PARALLEL_ROWS) -> int:
    """Worker processes for an entity of ``rows`` rows: ``setting`` when given (0 = serial), else one per
    core beside the parent's (at most ``MAX_AUTO_WORKERS``) for entities of ``min_rows`` rows or more;
    0 (serial) where fork is missing, on one core, or for a single batch (nothing to overlap)."""
    if not fork_available() or rows <= batch_rows:
        return 0
    if setting is not None:
        return max(0, int(setting))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores - 1, MAX_AUTO_WORKERS) if rows >= min_rows else 0


def ordered_map(fn: Callable[[Any], Any], items: Callable[[], Iterable], workers: int, *, what: str,
                pack: Callable[[Any], Any] | None = None, unpack: Callable[[Any], Any] | None = None,
                after: Callable[[], None] | None = None, share: bool = False) -> Iterator[tuple[Any, Any]]:
    """``(x, fn(x))`` for every ``x`` of ``items()``, in order; from worker processes ``(None, result)``:
    the item stays in the worker, a caller that needs it too reads it itself. ``pack`` turns a worker's
    result into something picklable, ``unpack`` back in the parent; ``after`` runs in a worker after each
    item (handing memory back); ``what`` names the work in errors. ``share``: the parent takes every
    ``workers + 1``-th item itself while the workers run theirs (for a parent that would otherwise wait)."""
    if workers <= 0:
        for x in items():
            yield x, fn(x)
        return
    if _JOB:
        raise RunFailed("validate: worker pools cannot nest", hint="this is a bug")
    _JOB.update(fn=fn, items=items, pack=pack or (lambda r: r), after=after or (lambda: None))
    executor = None
    # The parent's objects out of the collector's reach while workers live: a collection in a worker would
    # write to every tracked object's header and copy the page it is on (copy-on-write), the whole heap.
    gc.freeze()
    try:
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_worker_start)
        pending: deque = deque()  # (position, its future; None for the parent's own)
        state = {"position": 0, "ended": False}

        def fill() -> None:  # every worker busy, also while the parent waits for or uses a result
            while not state["ended"] and sum(f is not None for _, f in pending) < workers:
                at = state["position"]
                own = share and at % (workers + 1) == workers
                pending.append((at, None if own else executor.submit(_work, at)))
                state["position"] += 1

        while True:
            fill()
            if not pending:
                return
            at, future = pending.popleft()
            fill()
            if future is None:  # the parent's own item, read by its own walk over items()
                x = _item(at, "own_cursor")
                if x is _NO_ITEM:
                    state["ended"] = True
                else:
                    yield x, fn(x)
                continue
            result = _result(future, what, at)
            if isinstance(result, str) and result == _END:
                state["ended"] = True
                continue
            yield None, (unpack(result) if unpack else result)
    finally:
        _JOB.clear()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _worker_start() -> None:
    """A worker leaves Ctrl-C to the parent (which stops the pool after the batches in hand) and ends
    with it if the parent is killed outright (Linux's parent-death signal): no orphan is left either way."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _result(future, what: str, at: int):
    try:
        status, value = future.result()
    except BrokenProcessPool:
        raise RunFailed(f"validate: a worker process died while {what} (batch {at + 1}); nothing was written",
                        hint="out of memory or killed? re-run `crmbridge validate`, with `validate: {workers: 0}` "
                             "in crmbridge.yml to run in one process") from None
    if status == "ok":
        return value
    kind, message, hint, trace = value
    if kind is not None:  # the worker's own crmbridge error, as the serial path would have raised it
        raise kind(message, hint=hint)
    raise RunFailed(f"validate: {what} failed in a worker process (batch {at + 1}): {message}",
                    hint=f"this is a bug; the worker's traceback:\n{trace}")


def _work(position: int):
    """In a worker: ``fn`` on the item at ``position`` of this process's own walk over ``items()``."""
    try:
        x = _item(position)
        if x is _NO_ITEM:
            return "ok", _END
        result = _JOB["pack"](_JOB["fn"](x))
        del x
        _JOB["after"]()
        return "ok", result
    except CrmbridgeError as exc:
        kind = type(exc) if type(exc).__init__ is CrmbridgeError.__init__ else None
        return "error", (kind, exc.message if kind else str(exc), exc.hint if kind else None, "")
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which fails the run with it
        return "error", (None, f"{type(exc).__name__}: {exc}", None, traceback.format_exc())


_NO_ITEM = object()


def _item(position: int, cursor: str = "cursor"):
    """The item at ``position``: a process is given rising positions, so it walks forward (skipping the
    other processes' items, which ``items`` yields lazily) and restarts only if ever asked for an earlier one."""
    cur = _JOB.get(cursor)
    if cur is None or cur[1] > position:
        cur = _JOB[cursor] = [iter(_JOB["items"]()), 0]
    it = cur[0]
    while cur[1] < position:
        if next(it, _NO_ITEM) is _NO_ITEM:
            return _NO_ITEM
        cur[1] += 1
    x = next(it, _NO_ITEM)
    cur[1] += 1
    return x


def pack_run(erun):
    """A ``gxsuite.EntityRun`` as a worker hands it back: rules by id (a compiled rule holds closures)."""
    import dataclasses

    if erun is None:
        return None
    return dataclasses.replace(erun, outcomes=[dataclasses.replace(o, rule=o.rule.rule_id) for o in erun.outcomes])


def unpack_run(rules):
    """``pack_run`` undone with the parent's own compiled ``rules``."""
    import dataclasses

    by_id = {r.rule_id: r for r in rules}

    def unpack(erun):
        if erun is None:
            return None
        return dataclasses.replace(erun, outcomes=[dataclasses.replace(o, rule=by_id[o.rule]) for o in erun.outcomes])
    return unpack
