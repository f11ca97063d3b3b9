"""Declared normalisation's results per distinct value, kept from one batch to the next.

Every transform of the library is a function of the value (and of the columns its ``*_column``
parameters name): ``mappings.distinct`` already runs each step once per distinct value of a batch.
Columns of few values (cities, statuses, industries, dates, counts) bring the same values in every
batch, so each of their steps costs a batch its fixed price again for the same few hundred values.
``StepCache`` keeps, per column and chain of steps, what the chain gave each raw value: the final value
and each step's changed and failed flags. A batch whose values are all known runs no step at all; the
others run the chain on their new values only.

Only whole chains that nothing else reads are kept: a column whose every step is a one-column transform
(no ``*_column`` parameter), read by no other step's ``*_column`` parameter, in a plan without frame
transforms (a chain done at its first step must not show its final values to a step that would have
read them halfway). Value identity: the values ``distinct.encode`` gives, ``str`` or None (missing), and
the key is the value itself.

Memory: a chain stays cached while it holds at most ``CACHE_VALUES`` values; past that (or with more
distinct values in one batch) it is dropped and runs step by step in every batch, as without the cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.mappings.distinct import Encoded
from crmbridge.mappings.transforms import TRANSFORMS, apply_encoded, column_params, parse_params

CACHE_VALUES = 8192
DISTINCT_SHARE = 0.9  # distinct values per row past which a column's later batches are not factorised

Plan = list[tuple[str, str, dict]]


def cached_chains(plan: Plan) -> dict[str, list[tuple[str, dict]]]:
    """The columns of ``plan`` whose chains ``StepCache`` may run whole (see the module's docstring),
    each with its steps in order."""
    if any(name not in TRANSFORMS or TRANSFORMS[name].kind == "frame" for _, name, _ in plan):
        return {}
    chains: dict[str, list[tuple[str, dict]]] = {}
    read, reading = set(), set()
    for col, name, params in plan:
        others = column_params(name, parse_params(name, params))
        read.update(others)
        if others:
            reading.add(col)
        chains.setdefault(col, []).append((name, params))
    return {c: steps for c, steps in chains.items() if c not in read and c not in reading}


class _Chain:
    """One chain's known values (value -> row) with their final values and flags (changed and failed
    per step), row by row."""

    def __init__(self, steps: int) -> None:
        self.rows: dict[str | None, int] = {}
        self.finals = np.empty(0, dtype=object)
        self.flags = np.zeros((0, 2 * steps), dtype=bool)


class StepCache:
    """Per column and chain of steps, the results of the chain per raw value (see the module's docstring)."""

    def __init__(self) -> None:
        self._known: dict[tuple, _Chain] = {}
        self._dropped: set[tuple] = set()
        self._distinct: set[str] = set()

    def mostly_distinct(self, col: str) -> bool:
        """Whether an earlier batch of ``col`` held more distinct values than the cache and nearly one per
        row: its chain runs step by step, and factorising the column would find almost no repeat
        (``distinct.encode_rows``)."""
        return col in self._distinct

    def run(self, col: str, steps: list[tuple[str, dict]], column: Encoded
            ) -> tuple[Encoded, list[tuple[int, int]]] | None:
        """The column after its whole chain, and (changed, failed) rows per step; None when the chain is
        not cached (too many values): the caller then runs it step by step."""
        ident = (col, repr(steps))
        uniques = column.uniques.to_numpy(dtype=object)
        if ident in self._dropped or len(uniques) > CACHE_VALUES or not _plain(uniques):
            if len(uniques) > CACHE_VALUES and len(uniques) >= DISTINCT_SHARE * len(column.codes):
                self._distinct.add(col)
            self._drop(ident)
            return None
        chain = self._known.get(ident) or self._known.setdefault(ident, _Chain(len(steps)))
        known = chain.rows.get
        rows = np.fromiter((known(v, -1) for v in uniques), dtype=np.intp, count=len(uniques))
        new = np.flatnonzero(rows < 0)
        if len(chain.rows) + len(new) > CACHE_VALUES:
            self._drop(ident)
            return None
        if len(new):
            rows[new] = len(chain.rows) + np.arange(len(new))
            _learn(chain, steps, column, uniques, new)
        finals = chain.finals[rows]
        flags = chain.flags[rows]
        counts = column.counts
        per_step = [(int(counts[flags[:, 2 * s]].sum()), int(counts[flags[:, 2 * s + 1]].sum()))
                    for s in range(len(steps))]
        out = Encoded(column.codes, pd.Series(finals, dtype=object, copy=False), column.index, counts,
                      arrow=_arrow(finals))
        return out, per_step

    def _drop(self, ident: tuple) -> None:
        self._known.pop(ident, None)
        self._dropped.add(ident)


def _plain(values: np.ndarray) -> bool:
    """Only ``str`` and None: the values a key may be (``encode`` gives these for a text column; a str
    subclass equal to a str would share its key)."""
    kind = np.fromiter(map(type, values), dtype=object, count=len(values))
    return bool(((kind == str) | (kind == type(None))).all())


def _learn(chain: _Chain, steps: list[tuple[str, dict]], column: Encoded, uniques: np.ndarray,
           new: np.ndarray) -> None:
    """Run the chain on the ``new`` distinct values alone and keep what it gave each."""
    import pyarrow as pa

    part = Encoded(np.arange(len(new), dtype=np.intp), pd.Series(uniques[new], dtype=object),
                   pd.RangeIndex(len(new)), arrow=None if column.arrow is None else column.arrow.take(pa.array(new)))
    flags = np.zeros((len(new), 2 * len(steps)), dtype=bool)
    for s, (name, params) in enumerate(steps):
        step = apply_encoded(name, params, part, lambda other: None)
        part = step.column
        flags[:, 2 * s], flags[:, 2 * s + 1] = step.changed, step.failed
    chain.rows.update(zip(uniques[new], range(len(chain.rows), len(chain.rows) + len(new))))
    chain.finals = np.concatenate([chain.finals, part.uniques.to_numpy(dtype=object)])
    chain.flags = np.concatenate([chain.flags, flags])


def _arrow(finals: np.ndarray):
    """The final values in Arrow when they are text and missing only (what the spill takes instead of
    converting them, ``Normalised.arrow``), else None."""
    from crmbridge.mappings.textfast import arrow_text

    return arrow_text(finals) if _plain(finals) else None
