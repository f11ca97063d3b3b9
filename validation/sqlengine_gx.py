"""The rules ``--engine sql`` runs inside the database: great-expectations' SQL execution engine on the
entity's query asset; only failing row keys and aggregates come back, as ``Failures`` and ``RuleTally``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact
from crmbridge.validation.sqlengine_dialect import Dialect
from crmbridge.validation.sqlengine_plan import (RAW_PREFIX, EntityPlan, Failures, _counter, _ident, _python_keys,
                                                 asset_query)


def _gx_sql_run(gctx, ds, plan: EntityPlan, rules: list, query: str):
    import great_expectations as gx

    from crmbridge.validation.gxsuite import build_suite

    n = next(_counter)
    name = f"sql-{plan.entity}-{n}"
    suite = gctx.suites.add(build_suite(name, rules))
    asset = ds.add_query_asset(name, query=query)
    batch_def = asset.add_batch_definition_whole_table("all")
    vd = gctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
    index_cols = list(dict.fromkeys(["_department", *plan.key_columns_sql(), *(f for r in rules for f in r.fields)]))
    try:
        return vd.run(result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_cols,
                                     "return_unexpected_index_query": False,
                                     # GX cuts SQL failure lists at this many rows (default 20): all keys are wanted
                                     "partial_unexpected_count": 2**31 - 1})
    finally:
        gctx.validation_definitions.delete(vd.name)
        gctx.suites.delete(suite.name)
        ds.delete_asset(asset.name)


def _run_sql_rules(gctx, ds, d: Dialect, plan: EntityPlan, plans, tallies, fails: Failures, ctx) -> None:
    from crmbridge.validation.outcome import messages

    # Rules on a derived column (window count, EXISTS) each get a query asset of their own: every metric
    # query GX makes scans its asset, and the plain rules must not pay for a window sort each time.
    plain = [r for r in plan.sql_rules if r.kwargs.get("column") not in plan.derived]
    groups = ([(plain, [])] if plain else []) + [([r], [r.kwargs["column"]]) for r in plan.sql_rules
                                                 if r.kwargs.get("column") in plan.derived]
    results = [res for rules, only in groups
               for res in _gx_sql_run(gctx, ds, plan, rules, asset_query(d, plan, plans, only)).results]
    by_id = {r.rule_id: r for r in plan.sql_rules}
    for res in results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        info = res.exception_info or {}
        if info.get("raised_exception"):
            raise UsageError(f"validate --engine sql: rule '{rule.rule_id}' on '{plan.entity}' could not run in the "
                             f"database: {redact(info.get('exception_message'))}")
        r = res.result or {}
        t = tallies[rule.rule_id]
        t.element_count = int(r.get("element_count") or 0)
        t.unexpected_count += int(r.get("unexpected_count") or 0)
        t.basis = t.element_count - int(r.get("missing_count") or 0)
        index_list = r.get("unexpected_index_list") or []
        if len(index_list) != int(r.get("unexpected_count") or 0):
            raise RunFailed(f"validate --engine sql: rule '{rule.rule_id}': great-expectations reported "
                            f"{r.get('unexpected_count')} failing rows but listed {len(index_list)}")
        if not index_list:
            continue
        frame = pd.DataFrame(index_list)
        for c in (*plan.key_columns_sql(), *rule.fields):
            if c not in frame.columns:
                frame[c] = None
        if plan.raw_keys:  # rows named by their raw key: the key as the Python pass will see it
            normal = _python_keys(plan.rules_def, frame.rename(
                columns={RAW_PREFIX + k: k for k in plan.raw_keys})[plan.raw_keys], plan.raw_keys)
            for k in plan.raw_keys:
                frame[k] = normal[k].to_numpy(dtype=object)
        orig = next(x for x in plan.rules if x.rule_id == rule.rule_id)
        texts = messages(orig, frame, np.arange(len(frame)), ctx)
        for row, text_ in zip(frame[["_department", *plan.key]].itertuples(index=False), texts):
            fails.add(_ident(row[0], row[1:]), orig, text_)
