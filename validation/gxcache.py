"""great-expectations' verdicts on an entity's distinct values, kept from one batch to the next.

Every expectation ``gxdistinct`` hands GX is row-local: its verdict on a row depends only on the values of
the row's group of columns (and the expectation). That holds across the batches of one entity as much as
within one, so ``VerdictCache`` (one per ``SuiteRunner``: one entity, one suite) keeps, per group, what GX
said on each distinct value (tuple) it judged: for each rule of the group failed or not, the value GX
listed and the entry of GX's index list. A batch hands GX only the values not known yet (``send``, for
``gxdistinct.distinct_frame``); a frame left with none is not run at all; the results are built from the
known and the new verdicts the way ``gxdistinct.expand`` builds them from GX's alone.

Value identity: a key as strict as ``gxdistinct.column_codes`` or stricter, never looser (a key shared by
two values GX tells apart would be a wrong verdict): per column its dtype; floats and datetimes by their
bits; Python objects by type and value (``True``, ``1`` and ``1.0`` differ; ``None``, NaN, NaT and
``pd.NA`` differ), floats among them by their bits, objects other than text, integers and flags by their
``repr`` (a ``Decimal("1.0")`` is not a ``Decimal("1.00")``, nor a time in one zone the same instant in
another). A column only not-null rules read has two kinds of value, present or (each kind of) missing,
as in ``gxdistinct``. A failing value whose value GX did not list (past its first 200) is not kept.

Memory: a group stays cached while its cache holds at most ``CACHE_VALUES`` values; past that (or with
more distinct values in one batch) it is dropped and goes to GX whole in every batch, as without the
cache. Per runner at most ``CACHE_VALUES`` values per group, each with one small record per rule.
"""

from __future__ import annotations

import copy
import struct
from typing import Any, Callable

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed
from crmbridge.validation.gxdistinct import DistinctFrame, Verdicts, group_of_rule

CACHE_VALUES = 4096
_PRESENT = ("present",)  # every present value of a column only not-null rules read


class VerdictCache:
    """GX's verdicts per group of columns and distinct value, for one suite (see the module's docstring)."""

    def __init__(self) -> None:
        # group identity (columns, their dtypes, presence) -> value key -> rule id -> (bad, has_value, value, entry)
        self._known: dict[tuple, dict[tuple, dict[str, tuple]]] = {}
        self._dropped: set[tuple] = set()
        self._batch: dict[int, tuple[tuple, list]] = {}  # this batch's group -> (its identity, its values' keys)
        self._results: dict[str, Any] = {}  # rule id -> GX's last result, without its result dict
        self._suite = None  # GX's last suite result, without its results

    def sender(self, data: pd.DataFrame) -> Callable:
        """``send`` for ``gxdistinct.distinct_frame`` on ``data`` (one batch): per group the codes of the
        distinct values GX has not judged yet, or None (every value) for a group not cached."""
        self._batch = {}

        def send(g: int, cols: list[str], first: np.ndarray, presence: bool) -> np.ndarray | None:
            ident = (tuple(cols), tuple(str(data[c].dtype) for c in cols), presence)
            if ident in self._dropped or len(first) > CACHE_VALUES:
                self._drop(ident)
                return None
            keys = _keys(data, cols, first, presence)
            if len(set(keys)) != len(keys):  # two values column_codes tells apart, one key: judge them all
                return None
            self._batch[g] = (ident, keys)
            known = self._known.get(ident, {})
            return np.array([i for i, key in enumerate(keys) if key not in known], dtype=np.intp)
        return send

    def known(self, rule, dframe: DistinctFrame) -> Verdicts | None:
        """The verdicts on the values of ``rule``'s group known from earlier batches (None: none known)."""
        g = group_of_rule(rule, dframe)
        ident, keys = self._batch.get(g, (None, None))
        known = self._known.get(ident)
        if not known:
            return None
        v = Verdicts.empty(dframe.sizes[g])
        rid = rule.rule_id
        for code, key in enumerate(keys):
            rec = known.get(key)
            if rec is not None:
                v.bad[code], v.has_value[code], v.value_of[code], v.index_of[code] = rec[rid]
        return v

    def keep(self, dframe: DistinctFrame, rules, verdicts: dict[str, Verdicts]) -> None:
        """Remember the verdicts on the values GX judged in this batch (``verdicts``: per rule id)."""
        for g, (ident, keys) in self._batch.items():
            sent = dframe.sent[g]
            if not len(sent):
                continue
            mine = [(r.rule_id, verdicts[r.rule_id]) for r in rules if group_of_rule(r, dframe) == g]
            known = self._known.setdefault(ident, {})
            for code in sent.tolist():
                if any(v.bad[code] and not v.has_value[code] for _, v in mine):
                    continue  # GX listed no value for it: asked again next time
                known[keys[code]] = {rid: (bool(v.bad[code]), bool(v.has_value[code]), v.value_of[code],
                                           v.index_of[code]) for rid, v in mine}
            if len(known) > CACHE_VALUES:
                self._drop(ident)

    def _drop(self, ident: tuple) -> None:
        self._known.pop(ident, None)
        self._dropped.add(ident)

    def remember(self, result) -> None:
        """Keep what GX's ``result`` (a suite result) says apart from the verdicts: the suite's meta and
        statistics, and per rule its configuration, meta and exception info, for batches GX does not run."""
        from great_expectations.core import ExpectationValidationResult

        suite = copy.copy(result)
        suite.results, suite.meta, suite.statistics = [], dict(result.meta), dict(result.statistics)
        self._suite = suite
        for res in result.results:
            self._results[res.expectation_config.meta["rule_id"]] = ExpectationValidationResult(
                success=res.success, expectation_config=res.expectation_config, meta=res.meta,
                exception_info=res.exception_info)

    def result_for(self, rule_id: str):
        """A new ExpectationValidationResult of the rule as GX last gave it, apart from the verdict."""
        from great_expectations.core import ExpectationValidationResult

        t = self._results.get(rule_id)
        if t is None:
            raise RunFailed(f"validate: rule '{rule_id}': no verdict from great-expectations to build on",
                            hint="this is a bug; run with gxsuite.VERDICT_CACHE = False")
        return ExpectationValidationResult(success=t.success, expectation_config=copy.deepcopy(t.expectation_config),
                                           meta=copy.deepcopy(t.meta), exception_info=copy.deepcopy(t.exception_info))

    def suite_result(self):
        """A new suite result as GX last gave it, without results (for a batch GX judged nothing of)."""
        if self._suite is None:
            raise RunFailed("validate: no suite result from great-expectations to build on",
                            hint="this is a bug; run with gxsuite.VERDICT_CACHE = False")
        suite = copy.copy(self._suite)
        suite.results, suite.meta, suite.statistics = [], dict(self._suite.meta), dict(self._suite.statistics)
        return suite


def _keys(data: pd.DataFrame, cols: list[str], first: np.ndarray, presence: bool) -> list[tuple]:
    """The key of each distinct value (tuple of the group's columns at its first row)."""
    keys = list(zip(*(_column_keys(data[c].iloc[first]) for c in cols)))
    if presence:
        missing = data[cols[0]].iloc[first].isna().to_numpy()
        keys = [k if m else _PRESENT for k, m in zip(keys, missing.tolist())]
    return keys


def _column_keys(s: pd.Series) -> list:
    arr = s.to_numpy()
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype("float64").view("int64").tolist()
    if kind in "mM":
        return arr.view("int64").tolist()
    if kind in "iub":
        return arr.tolist()
    return [value_key(v) for v in arr]


def value_key(v) -> tuple:
    """A Python object's key: type and value, a float by its bits, other than text, integers and flags by
    its ``repr``."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return t, v
    if isinstance(v, float):
        return t, struct.unpack("<q", struct.pack("<d", v))[0]
    return t, repr(v)
