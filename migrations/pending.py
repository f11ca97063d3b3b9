"""Rows a transient Salesforce fault kept from loading: they stay pending, and the load stops saying so.

Only record-level errors make a row rejected (``connectors.salesforce.results.is_transient``); a row
that met a limit, a lock, a 5xx, a timeout or a lost session gets no ledger row, so the next attempt
(``crmbridge migrate`` or ``crmbridge load --run``) sends it again.
"""

from __future__ import annotations

from crmbridge.errors import RunFailed


class RowsPending(RunFailed):
    """A step ended with rows a transient Salesforce fault kept from loading (exit 1, resumable)."""


def stop_if_pending(ctx, not_sent: int) -> None:
    """After a batch that met transient faults: stop the load (the org is busy; the next steps' rows
    would only be refused for their missing parents) and say how to load the pending rows."""
    if not ctx.pending:
        return
    n = sum(ctx.pending.values())
    codes = ", ".join(f"{c} ({k})" for c, k in sorted(ctx.pending.items()))
    raise RowsPending(
        f"run {ctx.run.run_id} step {ctx.name} ({ctx.sobject}): {n} source rows not loaded because of a temporary "
        f"Salesforce fault: {codes}" + (f" - {ctx.pending_message}" if ctx.pending_message else "")
        + ". They are pending, not rejected" + (f"; {not_sent} more records of this step were not sent yet"
                                                  if not_sent > 0 else "") + ", and later steps were not started.",
        hint=f"when the org accepts calls again, `crmbridge migrate` (or `crmbridge load --run {ctx.run.run_id}`) "
             "loads the pending rows of this run")
