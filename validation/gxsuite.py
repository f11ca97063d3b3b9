"""Compile rules into great-expectations ExpectationSuites and run them on an entity's rows.

The only module (with ``datadocs``) that imports great_expectations. Failing rows are identified by
``_row_id`` through GX's ``result_format: COMPLETE`` with ``unexpected_index_column_names``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed
from crmbridge.validation.rules import Rule, RuleContext

log = logging.getLogger("crmbridge.validation")
_lock = threading.Lock()
_state: dict[str, Any] = {}
_counter = itertools.count(1)
# GX judges each batch's distinct values (``gxdistinct``) rather than every row; False: every row, the
# reference path the equality tests compare against.
DISTINCT_VALUES = True
# On the distinct path GX judges only the values it has not judged in an earlier batch of the entity
# (``gxcache``); False: every batch's distinct values, as the reference the equality tests compare against.
VERDICT_CACHE = True
# Imported by GX's start-up for one expectation no rule compiles to: loaded on first use (``deferred``).
DEFERRED = ("scipy.stats", "altair")
_RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row_id"],
                  "return_unexpected_index_query": False}


@dataclass
class RuleOutcome:
    """What GX found for one rule on one entity."""

    rule: Rule
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float
    failing_row_ids: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {"rule_id": r.rule_id, "kind": r.kind, "severity": r.severity, "level": r.level, "mostly": r.mostly,
                "description": r.description, "expectation": r.expectation, "passed": self.success,
                "element_count": self.element_count, "unexpected_count": self.unexpected_count,
                "unexpected_percent": round(self.unexpected_percent, 4)}


@dataclass
class EntityRun:
    outcomes: list[RuleOutcome]
    gx_result: Any  # ExpectationSuiteValidationResult, for Data Docs


def _context():
    """One ephemeral GX context per process: creating one costs seconds, and nothing must persist."""
    with _lock:
        ctx = _state.get("ctx")
        if ctx is None:
            # No analytics: this machine has no internet, and customer data must not leave it anyway.
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            from crmbridge.validation.deferred import defer

            defer(*DEFERRED)
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            _state["ctx"] = ctx
            _state["ds"] = ctx.data_sources.add_pandas("crmbridge")
        return ctx, _state["ds"]


def warm_up() -> None:
    """The context's one-off start-up (seconds), done ahead where something else runs meanwhile."""
    _context()


def build_suite(name: str, rules: list[Rule]):
    """An ``ExpectationSuite`` with one expectation per rule; ``meta.rule_id`` ties results back."""
    _context()  # GX builds expectations only inside an active data context
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for r in rules:
        kwargs = dict(r.kwargs)
        if r.mostly is not None:
            kwargs["mostly"] = r.mostly
        cls = getattr(gxe, r.expectation)
        suite.add_expectation(cls(**kwargs, meta={"rule_id": r.rule_id, "severity": r.severity,
                                                  "description": r.description}))
    return suite


def derive_columns(frame: pd.DataFrame, rules: list[Rule], ctx: RuleContext, table=None) -> pd.DataFrame:
    """The frame GX sees: the columns the rules read, their derived columns and ``_row_id``. ``table``: the
    Arrow table ``frame`` was read from, for the rules that read Arrow (``Rule.derive_arrow``)."""
    from crmbridge.validation.gxdistinct import rule_columns

    cols: dict[str, pd.Series] = {"_row_id": frame["_row_id"]}
    for r in rules:
        for c in rule_columns(r):
            if c in frame.columns and c not in cols:
                cols[c] = frame[c]
        if table is not None and r.derive_arrow is not None:
            cols.update(r.derive_arrow(frame, table, ctx))
        elif r.derive is not None:
            cols.update(r.derive(frame, ctx))
    # the columns as they are, not copied into consolidated blocks (6 ms a batch of 50,000 rows): pandas
    # copies a column on write, and nothing here writes
    return pd.DataFrame(cols, index=frame.index, copy=False)


class SuiteRunner:
    """One entity's suite and dataframe asset, built once and run on batch after batch (GX's start-up
    is paid once per process, the suite once per entity). ``close`` removes the asset from the
    process-wide context; use it as a context manager."""

    def __init__(self, entity: str, rules: list[Rule], distinct: bool | None = None):
        from crmbridge.validation import gxdistinct

        self.entity, self.rules = entity, rules
        self.distinct = (DISTINCT_VALUES if distinct is None else distinct) and gxdistinct.supported(rules)
        _, ds = _context()
        n = next(_counter)
        self._ds = ds
        self.suite = build_suite(f"{entity}-{n}", rules)
        self._suites = {tuple(r.rule_id for r in rules): self.suite}  # per set of rules run on one frame
        self.asset = ds.add_dataframe_asset(f"{entity}-{n}")
        self.batch_def = self.asset.add_batch_definition_whole_dataframe("all")
        self._by_id = {r.rule_id: r for r in rules}
        self._order = {r.rule_id: i for i, r in enumerate(rules)}
        self._gx_order = _gx_order(rules)
        self._cache = None
        if self.distinct and VERDICT_CACHE:
            from crmbridge.validation.gxcache import VerdictCache

            self._cache = VerdictCache()  # per process: a forked worker's own copy, filled by its batches

    def __enter__(self) -> "SuiteRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.asset is not None:
            self._ds.delete_asset(self.asset.name)
            self.asset = None

    def run(self, frame: pd.DataFrame, ctx: RuleContext, table=None) -> EntityRun:
        """The rules on ``frame`` (one batch; ``table``: the Arrow table it was read from, if any); a rule
        GX could not evaluate fails the stage.

        Runs GX's validator the way ``ValidationDefinition.run`` does, minus its last step: storing
        every result (with every failing row id) in the context's results store, which would keep
        each batch's lists in memory for the rest of the process."""
        data = derive_columns(frame, self.rules, ctx, table).reset_index(drop=True)
        result = self._distinct(data, table) if self.distinct and len(data) else self._validate(data)
        outcomes = []
        for res in result.results:
            rule = self._rule(res)
            info = res.exception_info or {}
            if info.get("raised_exception"):
                raise RunFailed(f"validate: rule '{rule.rule_id}' on '{self.entity}' could not run in "
                                f"great-expectations: {info.get('exception_message')}")
            outcomes.append(_outcome(rule, res))
        outcomes.sort(key=lambda o: self._order[o.rule.rule_id])
        return EntityRun(outcomes=outcomes, gx_result=result)

    def _rule(self, res) -> Rule:
        return self._by_id[res.expectation_config.meta["rule_id"]]

    def _suite_of(self, rules: list[Rule]):
        """The suite of ``rules`` (some of this runner's), under the entity suite's name; built once."""
        key = tuple(r.rule_id for r in rules)
        if key not in self._suites:
            self._suites[key] = build_suite(self.suite.name, rules)
        return self._suites[key]

    def _distinct(self, data: pd.DataFrame, table):
        """GX's result on ``data`` from its verdicts on the distinct values (``gxdistinct``), only on those
        not judged in an earlier batch where the verdicts are cached (``gxcache``)."""
        from crmbridge.validation import gxdistinct

        cache = self._cache
        dframe = gxdistinct.distinct_frame(data, self.rules, table, cache.sender(data) if cache else None)
        parts = [self._validate(f, self._suite_of(rules))
                 for f, rules in gxdistinct.frames_and_rules(dframe, self.rules)]
        result = self._merged(parts) if parts else _stamped(cache.suite_result())
        if any((res.exception_info or {}).get("raised_exception") for res in result.results):
            return result  # the stage fails on the first of them
        if cache and parts:
            cache.remember(result)
        by_id = {self._rule(res).rule_id: res for res in result.results}
        verdicts = {}
        for rule in self.rules:
            res, known = by_id.get(rule.rule_id), cache.known(rule, dframe) if cache else None
            if res is None:
                res = by_id[rule.rule_id] = cache.result_for(rule.rule_id)
                v = known
            else:
                v = gxdistinct.gx_verdicts(res, rule, dframe, into=known)
            gxdistinct.expand(res, rule, data, dframe, v, _RESULT_FORMAT)
            verdicts[rule.rule_id] = v
        if cache:
            cache.keep(dframe, self.rules, verdicts)
        result.results = sorted(by_id.values(), key=self._place)
        _restate(result)
        return result

    def _place(self, res) -> tuple[bool, int]:
        """A result's place in GX's suite result: the expectations it could not plan first, then by column
        in order of first appearance."""
        return not (res.exception_info or {}).get("raised_exception"), self._gx_order[self._rule(res).rule_id]

    def _merged(self, parts: list):
        """The suite results of frames run apart as one: the first's, with every expectation's result in the
        order GX gives them on the whole suite (statistics are restated after ``expand``)."""
        result = parts[0]
        result.results = sorted((res for p in parts for res in p.results), key=self._place)
        return result

    def _validate(self, data: pd.DataFrame, suite=None):
        """GX's validator on ``data`` (``suite``: the runner's unless given), the way ``ValidationDefinition.run``
        runs it minus its last step."""
        from great_expectations.validator.v1_validator import Validator

        validator = Validator(batch_definition=self.batch_def, batch_parameters={"dataframe": data},
                              result_format=dict(_RESULT_FORMAT))
        result = validator.validate_expectation_suite(suite or self.suite)
        return _stamped(result, batch_parameters={"dataframe": "<DATAFRAME>"})


def _stamped(result, **more):
    """``result`` with this run's id and time (and ``more``) in its meta, as ``ValidationDefinition.run`` sets them."""
    import datetime as dt

    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_time=dt.datetime.now(dt.timezone.utc))
    result.meta.update({"run_id": run_id, "validation_time": run_id.run_time, **more})
    return result


def _gx_order(rules: list[Rule]) -> dict[str, int]:
    """Rule id -> place among the results of GX's validator, which runs a suite's expectations grouped by
    ``column`` in order of first appearance (``Validator.process_expectations_for_validation``)."""
    by_column: dict[Any, list[str]] = {}
    for r in rules:
        column = r.kwargs.get("column")
        by_column.setdefault(column if isinstance(column, str) else None, []).append(r.rule_id)
    return {rid: i for i, rid in enumerate(rid for ids in by_column.values() for rid in ids)}


def _restate(result) -> None:
    """The suite's success and statistics again from its (rewritten) expectation results, as GX states them."""
    ok = sum(1 for r in result.results if r.success)
    n = len(result.results)
    result.success = ok == n
    result.statistics.update({"evaluated_expectations": n, "successful_expectations": ok,
                              "unsuccessful_expectations": n - ok, "success_percent": ok / n * 100 if n else None})


def run_rules(entity: str, frame: pd.DataFrame, rules: list[Rule], ctx: RuleContext) -> EntityRun:
    """Run ``rules`` on ``frame`` through GX; a rule GX could not evaluate fails the stage."""
    with SuiteRunner(entity, rules) as runner:
        return runner.run(frame, ctx)


PARTIAL = 20  # GX's own partial_unexpected_count: values per rule kept for Data Docs
_SUMMED = ("element_count", "unexpected_count", "missing_count")
_PARTIAL_LISTS = ("partial_unexpected_list", "partial_unexpected_index_list")
_DROPPED = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


class ResultTotals:
    """The results of one entity's batches folded into one: per rule the summed counts, the percent and
    success GX would give on all rows at once (``mostly`` judged on the totals), and for Data Docs one
    suite result with the first ``PARTIAL`` unexpected values. Batches are added in row order."""

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self._sums: dict[str, dict[str, int]] = {}
        self._partial: dict[str, dict[str, list]] = {}
        self._counts: dict[str, dict[Any, int]] = {}
        self._first: dict[str, Any] = {}  # rule_id -> the first batch's ExpectationValidationResult
        self._suite = None
        self.batches = 0

    def add(self, erun: EntityRun) -> None:
        self.batches += 1
        if self._suite is None:
            self._suite = erun.gx_result
        for res in erun.gx_result.results:
            rid = res.expectation_config.meta["rule_id"]
            r = res.result or {}
            sums = self._sums.setdefault(rid, dict.fromkeys(_SUMMED, 0))
            for k in _SUMMED:
                sums[k] += int(r.get(k) or 0)
            part = self._partial.setdefault(rid, {k: [] for k in _PARTIAL_LISTS})
            for k in _PARTIAL_LISTS:
                room = PARTIAL - len(part[k])
                if room > 0:
                    part[k].extend(list(r.get(k) or [])[:room])
            counts = self._counts.setdefault(rid, {})
            for item in r.get("partial_unexpected_counts") or []:
                try:
                    counts[item["value"]] = counts.get(item["value"], 0) + int(item["count"])
                except TypeError:  # an unhashable value: shown as text
                    counts[str(item["value"])] = counts.get(str(item["value"]), 0) + int(item["count"])
            if rid not in self._first:
                self._first[rid] = res
        # the batch's full failing-row lists are not kept: the stage has already used them

    def _rule_result(self, rule: Rule) -> tuple[bool, dict[str, Any]]:
        s = self._sums[rule.rule_id]
        total, unexpected, missing = s["element_count"], s["unexpected_count"], s["missing_count"]
        nonnull = total - missing
        if total == 0 or nonnull == 0:
            success = True  # vacuously true, as GX says
        else:
            success = (float(nonnull) - float(unexpected)) / float(nonnull) >= (rule.mostly or 1.0)
        first = dict(self._first[rule.rule_id].result or {})
        for k in _DROPPED:
            first.pop(k, None)
        pct_total = unexpected / total * 100 if total > 0 else None
        pct = unexpected / nonnull * 100 if total > 0 and nonnull > 0 else None
        counts = sorted(self._counts[rule.rule_id].items(), key=lambda kv: -kv[1])[:PARTIAL]
        first.update({"element_count": total, "unexpected_count": unexpected, "unexpected_percent": pct,
                      "missing_count": missing, "missing_percent": missing / total * 100 if total > 0 else None,
                      "unexpected_percent_total": pct_total, "unexpected_percent_nonmissing": pct,
                      **self._partial[rule.rule_id],
                      "partial_unexpected_counts": [{"value": v, "count": c} for v, c in counts]})
        return success, first

    def outcomes(self) -> list[RuleOutcome]:
        """Per rule (in rule order) the totals over every batch; ``failing_row_ids`` stays empty (the
        rows were split batch by batch)."""
        out = []
        for rule in self.rules:
            success, r = self._rule_result(rule)
            out.append(RuleOutcome(rule=rule, success=success, element_count=r["element_count"],
                                   unexpected_count=r["unexpected_count"],
                                   unexpected_percent=float(r["unexpected_percent"] or 0.0),
                                   failing_row_ids=np.zeros(0, dtype=object)))
        return out

    def gx_result(self):
        """One ExpectationSuiteValidationResult for the entity (what Data Docs renders)."""
        import copy

        from great_expectations.core import ExpectationSuiteValidationResult

        items = []
        for rule in self.rules:
            success, r = self._rule_result(rule)
            item = copy.copy(self._first[rule.rule_id])
            item.result, item.success = r, success
            items.append(item)
        ok = sum(1 for i in items if i.success)
        stats = {"evaluated_expectations": len(items), "successful_expectations": ok,
                 "unsuccessful_expectations": len(items) - ok,
                 "success_percent": ok / len(items) * 100 if items else None}
        return ExpectationSuiteValidationResult(success=ok == len(items), results=items,
                                                suite_name=self._suite.suite_name, statistics=stats,
                                                meta=self._suite.meta)


def _outcome(rule: Rule, res) -> RuleOutcome:
    r = res.result or {}
    index_list = r.get("unexpected_index_list") or []
    ids = np.array([d["_row_id"] for d in index_list], dtype=object)
    count = int(r.get("unexpected_count") or 0)
    if len(ids) != count:
        # GX lists every failing row under COMPLETE; anything else would lose rows silently.
        raise RunFailed(f"validate: rule '{rule.rule_id}': great-expectations reported {count} failing rows "
                        f"but listed {len(ids)}")
    return RuleOutcome(rule=rule, success=bool(res.success), element_count=int(r.get("element_count") or 0),
                       unexpected_count=count, unexpected_percent=float(r.get("unexpected_percent") or 0.0),
                       failing_row_ids=ids)
