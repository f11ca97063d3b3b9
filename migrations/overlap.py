"""What the load does while the org works instead of waiting for it.

A Bulk job of 100k records keeps the org busy for seconds during which the load itself only waits.
Work that needs no batch's outcome is done then (``while_waiting``): the rows' content hashes (on a
first load, where no record can be unchanged), recording the quarantined rows in the ledger, and
reconcile's side of the comparison from the load file already read (``reconcile_ahead``). Once the last write of the run is done, reconcile's read of the org is started
(``readback_ahead``), so that the org runs that query while the load records its results.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from crmbridge.connectors.salesforce.results import is_transient

log = logging.getLogger("crmbridge.load")


def add_hashes(df, rows: list[dict], fields: list[str]) -> None:
    """Each row's ``_hash`` (``hashing.frame_hashes``, as ``read_step_frame`` computes it)."""
    from crmbridge.migrations.hashing import frame_hashes

    for r, h in zip(rows, frame_hashes(df, fields)):
        r["_hash"] = h


def run_idle(tasks: list) -> None:
    """Do the stage's work that waits for no batch (``_Ctx.idle``), each task once; a task that fails
    does not keep the others from running (the first error is raised at the end)."""
    error = None
    while tasks:
        try:
            tasks.pop(0)()
        except Exception as exc:  # noqa: BLE001 - raised below, once the rest is done
            error = error or exc
    if error is not None:
        raise error


def while_waiting(ctx, send: Callable[[], None]) -> None:
    """``send`` a batch; if the stage has idle work, send it from a thread and do that work here once
    the batch's Bulk job is closed (its data up): the org processes the job meanwhile, this process would
    only wait."""
    if not ctx.idle:
        send()
        return
    from concurrent.futures import ThreadPoolExecutor, wait

    ctx.submitted, ctx.ready = threading.Event(), threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmbridge-load") as pool:
            fut = pool.submit(send)
            while not ctx.submitted.wait(0.05) and not fut.done():
                pass
            try:
                run_idle(ctx.idle)
            finally:
                ctx.ready.set()  # the batch records its outcome (it waits for this) whatever happened here
                wait([fut])
            fut.result()
    finally:
        ctx.submitted = ctx.ready = None


def readback_ahead(ctx, written: list[str], unchanged: list[str]) -> Callable[[list], None] | None:
    """For the run's last step, what follows its last write: start reconcile's read of the org
    (``reconcile.prefetch``), so that the org runs that query while the load records its results.
    ``ReadAhead``: started at the first of the batch's outcomes known all succeeded, before they are
    matched, or the batch's results."""
    if not ctx.plan or ctx.plan[-1].get("step") != ctx.name:
        return None
    return ReadAhead(ctx, written, unchanged)


class ReadAhead:
    """Starts reconcile's read of the org once: from ``all_succeeded`` (the connector's ``on_done``: the
    last job is done and every row of it succeeded, its results not matched yet) or from the results of
    the last write (called with them), unless rows were left pending (the stage then stops before
    reconcile)."""

    def __init__(self, ctx, written: list[str], unchanged: list[str]):
        self.ctx, self.written, self.unchanged = ctx, written, unchanged
        self.started = False

    def all_succeeded(self) -> None:
        try:
            self._start()
        except Exception as exc:  # noqa: BLE001 - a head start lost is no failure of the load
            log.info("step %s: reconcile's read not started ahead (%s)", self.ctx.name, type(exc).__name__)

    def __call__(self, results: list) -> None:
        if any(not r.success and is_transient(r.error_code) for r in results):
            return
        self._start()

    def _start(self) -> None:
        if self.started or self.ctx.pending:
            return
        self.started = True
        from crmbridge.migrations.reconcile import prefetch

        ctx = self.ctx
        prefetch(ctx.conn, ctx.engine, ctx.run, ctx.step, ctx.fields, self.written, self.unchanged)


def reconcile_ahead(ctx, df) -> None:
    """Reconcile's ``SourceSide`` of the step from the load's frame ``df`` (best effort: reconcile
    computes it itself when this could not)."""
    from crmbridge.migrations.reconcile import prepare

    try:
        prepare(ctx.conn, ctx.run, ctx.step, df, ctx.fields)
    except Exception as exc:  # noqa: BLE001 - a head start lost is no failure of the load
        log.info("step %s: reconcile's source side not prepared ahead (%s)", ctx.name, type(exc).__name__)
