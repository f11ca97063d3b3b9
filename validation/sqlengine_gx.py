"""The rules ``--engine sql`` runs inside the database: great-expectations' SQL execution engine on the
entity's query asset; only failing row keys and aggregates come back, as ``Failures`` and ``RuleTally``.

GX gives the counts (result format BASIC: element, unexpected and missing counts, no row list); the failing
rows' keys are read by a streamed query of the condition GX counts (``unexpected_condition``), in batches
written to the on-disk ``Failures`` as they come. Their number must equal GX's unexpected count, or the run
fails: GX stays the judge, and the query cannot drift from it unnoticed.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact
from crmbridge.validation.sqlengine_dialect import Dialect
from crmbridge.validation.sqlengine_failures import Failures
from crmbridge.validation.sqlengine_plan import RAW_PREFIX, EntityPlan, _counter, _ident, _python_keys, asset_query


def _gx_sql_run(gctx, ds, plan: EntityPlan, rules: list, query: str):
    """GX's verdict on ``rules`` over the query asset: counts only (BASIC, no failing-row list), so
    nothing here grows with the failing rows; their keys come from ``_failing_rows``."""
    import great_expectations as gx

    from crmbridge.validation.gxsuite import build_suite

    n = next(_counter)
    name = f"sql-{plan.entity}-{n}"
    suite = gctx.suites.add(build_suite(name, rules))
    asset = ds.add_query_asset(name, query=query)
    batch_def = asset.add_batch_definition_whole_table("all")
    vd = gctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
    try:
        with _asset_columns_without_rows(query):
            return vd.run(result_format={"result_format": "BASIC", "partial_unexpected_count": 0})
    finally:
        gctx.validation_definitions.delete(vd.name)
        gctx.suites.delete(suite.name)
        ds.delete_asset(asset.name)


@contextlib.contextmanager
def _asset_columns_without_rows(query: str):
    """great-expectations learns a query asset's column names by executing the asset's query itself
    (``column_reflection_fallback``: a ``TextClause`` has no columns to reflect) and reading only the
    result's keys. With a client-side cursor (psycopg, pymysql) that buffers every row of the asset in
    crmbridge's memory first (close to 2 GB at 10M rows). While GX runs, that one statement (the asset's
    exact text at the top level; the metrics only use it as a subquery) is sent as ``SELECT * ... LIMIT 0``:
    the same columns, no rows."""
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    def columns_only(conn, clause, multiparams, params, execution_options):
        if isinstance(clause, sa.TextClause) and clause.text == query:
            clause = sa.text(f"SELECT * FROM ({query}) gx_columns LIMIT 0")
        return clause, multiparams, params

    sa.event.listen(Engine, "before_execute", columns_only, retval=True)
    try:
        yield
    finally:
        sa.event.remove(Engine, "before_execute", columns_only)


def unexpected_condition(rule, column):
    """The condition GX counts a row of ``column`` unexpected by (great_expectations'
    ``column_condition_partial`` for SQL: NULLs are filtered out first unless the metric is the null
    check itself; ``column_values_in_set._sqlalchemy_impl`` drops None from the set)."""
    import sqlalchemy as sa

    if rule.expectation == "ExpectColumnValuesToNotBeNull":
        return sa.not_(column.is_not(None))
    if rule.expectation == "ExpectColumnValuesToBeInSet":
        values = [v for v in rule.kwargs["value_set"] if v is not None]
        return sa.and_(sa.not_(column.is_(None)), sa.not_(column.in_(values)))
    raise RunFailed(f"validate --engine sql: rule '{rule.rule_id}' ({rule.expectation}) has no failing-row query")


def _failing_rows(engine, plan: EntityPlan, rule, query: str, batch_rows: int):
    """Batches (DataFrames) of the department, key columns and rule fields of the rows GX counted
    unexpected, read from the same query asset with a server-side cursor."""
    import sqlalchemy as sa

    cols = list(dict.fromkeys(["_department", *plan.key_columns_sql(), *rule.fields]))
    asset = sa.text(query).columns(*[sa.column(c) for c in dict.fromkeys([*cols, rule.kwargs["column"]])])
    u = asset.subquery("a")
    stmt = sa.select(*[u.c[c] for c in cols]).where(unexpected_condition(rule, u.c[rule.kwargs["column"]]))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        try:
            for part in result.partitions(batch_rows):
                yield pd.DataFrame([tuple(r) for r in part], columns=cols, dtype=object)
        finally:
            result.close()


def _run_sql_rules(gctx, ds, engine, d: Dialect, plan: EntityPlan, plans, tallies, fails: Failures, ctx,
                   batch_rows: int) -> None:
    # Rules on a derived column (window count, EXISTS) each get a query asset of their own: every metric
    # query GX makes scans its asset, and the plain rules must not pay for a window sort each time.
    plain = [r for r in plan.sql_rules if r.kwargs.get("column") not in plan.derived]
    groups = ([(plain, [])] if plain else []) + [([r], [r.kwargs["column"]]) for r in plan.sql_rules
                                                 if r.kwargs.get("column") in plan.derived]
    by_id = {r.rule_id: r for r in plan.sql_rules}
    for rules, only in groups:
        query = asset_query(d, plan, plans, only)
        for res in _gx_sql_run(gctx, ds, plan, rules, query).results:
            rule = by_id[res.expectation_config.meta["rule_id"]]
            info = res.exception_info or {}
            if info.get("raised_exception"):
                raise UsageError(f"validate --engine sql: rule '{rule.rule_id}' on '{plan.entity}' could not run "
                                 f"in the database: {redact(info.get('exception_message'))}")
            r = res.result or {}
            t = tallies[rule.rule_id]
            t.element_count = int(r.get("element_count") or 0)
            t.unexpected_count += int(r.get("unexpected_count") or 0)
            t.basis = t.element_count - int(r.get("missing_count") or 0)
            if r.get("unexpected_count"):
                _keep_failing(engine, plan, rule, query, int(r["unexpected_count"]), fails, ctx, batch_rows)


def _keep_failing(engine, plan: EntityPlan, rule, query: str, expected: int, fails: Failures, ctx,
                  batch_rows: int) -> None:
    """Stream the rule's failing rows into ``fails``; their number must be GX's unexpected count."""
    from crmbridge.validation.outcome import messages

    orig = next(x for x in plan.rules if x.rule_id == rule.rule_id)
    got = 0
    for frame in _failing_rows(engine, plan, rule, query, batch_rows):
        got += len(frame)
        if plan.raw_keys:  # rows named by their raw key: the key as the Python pass will see it
            normal = _python_keys(plan.rules_def, frame.rename(
                columns={RAW_PREFIX + k: k for k in plan.raw_keys})[plan.raw_keys], plan.raw_keys)
            for k in plan.raw_keys:
                frame[k] = normal[k].to_numpy(dtype=object)
        texts = messages(orig, frame, np.arange(len(frame)), ctx)
        idents = (_ident(row[0], row[1:]) for row in frame[["_department", *plan.key]].itertuples(index=False))
        fails.add_many(idents, orig, texts)
    if got != expected:
        raise RunFailed(f"validate --engine sql: rule '{rule.rule_id}' on '{plan.entity}': great-expectations "
                        f"counted {expected} failing rows, the failing-row query returned {got}")
