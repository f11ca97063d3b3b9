"""Scopes for CPython's cyclic garbage collector around bulk work, shared by the load, reconcile, sync
and the sandbox org.

Building hundreds of thousands of small dicts and tuples (records, ledger rows, query results) sets
the collector off again and again, and each full pass scans every object alive, however old: measured
to double or triple such work. Neither scope changes a value:

- ``paused()``: no collection while the block runs (for blocks that build objects that form no cycle);
  what the block leaves in a cycle is collected after it.
- ``frozen()``: the objects alive when the block starts (modules, configuration, the caller's data) are
  left out of the collector's passes until it ends (``gc.freeze``), for a long run that allocates as it
  goes.

Both leave the collector as the caller set it: a scope inside another, or under a caller who turned
the collector off or froze objects, does nothing.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def paused():
    """The cyclic collector off for the block, back on after it (unless it was off already)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def frozen():
    """Objects alive before the block are out of the collector's passes while it runs (``gc.freeze``),
    and back in after it; left alone when the collector is off or the caller froze objects itself
    (unfreezing then would undo theirs)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
