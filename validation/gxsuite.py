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
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            _state["ctx"] = ctx
            _state["ds"] = ctx.data_sources.add_pandas("crmbridge")
        return ctx, _state["ds"]


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


def derive_columns(frame: pd.DataFrame, rules: list[Rule], ctx: RuleContext) -> pd.DataFrame:
    """The frame GX sees: the columns the rules read, their derived columns and ``_row_id``."""
    cols: dict[str, pd.Series] = {"_row_id": frame["_row_id"]}
    for r in rules:
        for c in _columns_of(r):
            if c in frame.columns and c not in cols:
                cols[c] = frame[c]
        if r.derive is not None:
            cols.update(r.derive(frame, ctx))
    return pd.DataFrame(cols, index=frame.index)


def _columns_of(r: Rule) -> list[str]:
    k = r.kwargs
    return [c for c in [k.get("column"), k.get("column_A"), k.get("column_B"), *k.get("column_list", [])] if c]


def run_rules(entity: str, frame: pd.DataFrame, rules: list[Rule], ctx: RuleContext) -> EntityRun:
    """Run ``rules`` on ``frame`` through GX; a rule GX could not evaluate fails the stage."""
    import great_expectations as gx

    gctx, ds = _context()
    data = derive_columns(frame, rules, ctx).reset_index(drop=True)
    n = next(_counter)
    suite = gctx.suites.add(build_suite(f"{entity}-{n}", rules))
    asset = ds.add_dataframe_asset(f"{entity}-{n}")
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    vd = gctx.validation_definitions.add(gx.ValidationDefinition(name=f"{entity}-{n}", data=batch_def, suite=suite))
    try:
        result = vd.run(batch_parameters={"dataframe": data},
                        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row_id"],
                                       "return_unexpected_index_query": False})
    finally:
        gctx.validation_definitions.delete(vd.name)
        gctx.suites.delete(suite.name)
        ds.delete_asset(asset.name)
    by_id = {r.rule_id: r for r in rules}
    outcomes = []
    for res in result.results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        info = res.exception_info or {}
        if info.get("raised_exception"):
            raise RunFailed(f"validate: rule '{rule.rule_id}' on '{entity}' could not run in great-expectations: "
                            f"{info.get('exception_message')}")
        outcomes.append(_outcome(rule, res))
    order = {r.rule_id: i for i, r in enumerate(rules)}
    outcomes.sort(key=lambda o: order[o.rule.rule_id])
    return EntityRun(outcomes=outcomes, gx_result=result)


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
