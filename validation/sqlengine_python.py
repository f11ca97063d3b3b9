"""The streamed Python pass of ``--engine sql``: every source row read in batches and normalised by
``normalise`` as the pandas path does, the rules only Python has, the value-by-value check of the
database's normalisation, and the key indexes (duplicates, parents' valid keys) of keys without SQL form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.errors import UsageError
from crmbridge.validation.sqlengine_dialect import Dialect
from crmbridge.validation.sqlengine_failures import Failures
from crmbridge.validation.sqlengine_plan import (RAW_PREFIX, EntityPlan, SourceSql, _ident, _python_keys,
                                                 _with_step_columns)


def _stream_columns(engine, d: Dialect, s: SourceSql, columns: list[str], batch_rows: int):
    """Batches of one source holding only ``columns`` as extract's text (None where the source lacks
    one) and ``_department``: what the key indexes need, without the rest of a wide table."""
    from sqlalchemy import text

    from crmbridge.connectors.sql import to_text

    present = [c for c in columns if c in s.columns]
    if not present:
        stmt = text(f"SELECT COUNT(*) FROM {s.from_sql}")
        with engine.connect() as conn:
            n = int(conn.execute(stmt).scalar() or 0)
        for start in range(0, n, batch_rows):
            m = min(batch_rows, n - start)
            df = pd.DataFrame({c: pd.Series([None] * m, dtype=object) for c in columns})
            df["_department"] = s.source.department
            yield df
        return
    stmt = text(f"SELECT {', '.join(d.q(s.columns[c]) for c in present)} FROM {s.from_sql}")
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        try:
            for part in result.partitions(batch_rows):
                df = pd.DataFrame([tuple(r) for r in part], columns=present, dtype=object)
                for c in present:
                    col = df[c]
                    df[c] = col.where(col != "", None) if s.textual.get(c, False) else col.map(to_text)
                for c in columns:
                    if c not in df.columns:
                        df[c] = None
                df["_department"] = s.source.department
                yield df
        finally:
            result.close()


def _python_duplicates(engine, d: Dialect, plan: EntityPlan, ctx, batch_rows: int) -> None:
    """For unique rules whose key has no SQL form here: the key values occurring more than once in the
    whole entity (``checks.DuplicateFinder``: 8-byte hashes of every row's normalised key, then the
    values of the few rows whose hash repeats), read from the database in batches of the key columns
    only. The rule then runs in the Python pass like the pandas path's, against this index."""
    from crmbridge.validation.checks import DuplicateFinder

    rules = plan.py_unique
    if not rules:
        return
    finders = {r.rule_id: DuplicateFinder(list(r.unique_on)) for r in rules}
    cols = _with_step_columns(plan.rules_def, sorted({c for r in rules for c in r.unique_on if c != "_department"}))

    def batches():
        for s in plan.sources:
            for df in _stream_columns(engine, d, s, cols, batch_rows):
                frame = _python_keys(plan.rules_def, df, cols)
                frame["_department"] = df["_department"].to_numpy(dtype=object)
                yield frame

    for frame in batches():
        for f in finders.values():
            f.add(frame)
    if any(f.needs_confirm for f in finders.values()):  # a hash repeats: read the keys again for those values
        for frame in batches():
            for f in finders.values():
                f.confirm(frame)
    for rid, f in finders.items():
        ctx.duplicates[(plan.entity, rid)] = f.index()


def _parent_valid_keys(engine, d: Dialect, parent: EntityPlan, fails: Failures, key: str, batch_rows: int):
    """The parent's keys held by at least one row validation did not quarantine (the pandas path's
    valid keys), as a ``mappings.keyindex.KeyIndex``, from batches of the parent's department and key only."""
    from crmbridge.mappings.keyindex import KeyCollector

    index = KeyCollector()
    for s in parent.sources:
        bad = fails.blocked_keys(s.source.department)
        cols = _with_step_columns(parent.rules_def, [key])
        for df in _stream_columns(engine, d, s, cols, batch_rows):
            keys = _python_keys(parent.rules_def, df, cols)[key]
            index.add(keys[~_in_index(keys, bad)].to_numpy(dtype=object))
    return index.freeze()


def _in_index(values: pd.Series, index) -> np.ndarray:
    """Bool per value: present and in ``index`` (a ``mappings.keyindex.KeyIndex``)."""
    present = values.notna().to_numpy(dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    if len(index) and present.any():
        out[present] = index.contains(values.to_numpy(dtype=object)[present])
    return out


def _stream_source(engine, d: Dialect, plan: EntityPlan, s: SourceSql, batch_rows: int):
    """Batches of one source: every column as extract's text plus the database's normalised columns."""
    from sqlalchemy import text

    from crmbridge.connectors.sql import to_text

    data_cols = list(s.columns)
    sql_cols = [c for c in plan.sql_columns() if c in s.columns]
    parts = []
    for c in data_cols:
        col = d.q(s.columns[c])
        if c in plan.python_columns or plan.steps_without_sql(d, c):
            parts.append(col)
        else:  # read by no rule but control_chars: only a value holding a control character travels
            as_text = col if s.textual.get(c, False) else f"CAST({col} AS {d.text_type()})"
            if d.mysql:
                as_text = f"CONVERT({as_text} USING utf8mb4) COLLATE utf8mb4_nopad_bin"
            check = d.has_control(as_text, c in plan.control_keys)
            parts.append(f"CASE WHEN {check} THEN {col} END AS {col}")
    parts += [f"{plan._expr(d, s, c)} AS {d.q('__sql__' + c)}" for c in sql_cols]
    # a non-text key the database names its failing rows by: its text there must be extract's text
    raw_keys = [k for k in plan.raw_keys if k in s.columns and not s.textual.get(k, False)]
    parts += [f"{d.raw(s.columns[k], False)} AS {d.q('__sql__' + RAW_PREFIX + k)}" for k in raw_keys]
    sql_cols = sql_cols + [RAW_PREFIX + k for k in raw_keys]
    stmt = text(f"SELECT {', '.join(parts)} FROM {s.from_sql}")
    names = data_cols + ["__sql__" + c for c in sql_cols]
    text_col = {**{c: s.textual.get(c, False) for c in data_cols}, **{"__sql__" + c: True for c in sql_cols}}
    ordinal = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        try:
            for part in result.partitions(batch_rows):  # text(): yield_per alone does not size them
                n = len(part)
                df = pd.DataFrame([tuple(r) for r in part], columns=names, dtype=object)
                for c in names:  # extract's text: text columns only lose '' (vectorised), others via to_text
                    col = df[c]
                    df[c] = col.where(col != "", None) if text_col[c] else col.map(to_text)
                lines = np.arange(ordinal + 1, ordinal + n + 1)
                ordinal += n
                df["_row_id"] = [f"{s.source.name}:{i}" for i in lines]
                df["_source"] = s.source.name
                df["_department"] = s.source.department
                df["_line"] = lines
                df["_source_key"] = df["_row_id"]
                yield df, sql_cols
        finally:
            result.close()


def _python_pass(engine, d: Dialect, plan: EntityPlan, tallies, fails: Failures, ctx, bad_parent_keys,
                 batch_rows: int) -> int:
    """Run the Python rules on every row in batches; check the database's normalisation; count rows."""
    from crmbridge.validation.gxsuite import SuiteRunner

    refs = [r for r in plan.sql_rules if r.kind == "reference"]
    runner = SuiteRunner(plan.entity, plan.py_rules) if plan.py_rules else None  # suite built once
    try:
        return _python_batches(engine, d, plan, tallies, fails, ctx, bad_parent_keys, batch_rows, refs, runner)
    finally:
        if runner is not None:
            runner.close()


def _python_batches(engine, d, plan, tallies, fails, ctx, bad_parent_keys, batch_rows, refs, runner) -> int:
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.outcome import _reference_messages, messages
    from crmbridge.validation.rules import referenced_columns

    rows_in = 0
    for s in plan.sources:
        for df, sql_cols in _stream_source(engine, d, plan, s, batch_rows):
            rows_in += len(df)
            raw = df.drop(columns=["__sql__" + c for c in sql_cols])
            frame = normalise(raw, plan.rules_def, referenced_columns(plan.rules)).frame
            for c in sql_cols:
                py = (raw[c[len(RAW_PREFIX):]] if c.startswith(RAW_PREFIX) else frame[c]).astype(object)
                py = py.reset_index(drop=True)
                db = df["__sql__" + c].astype(object).reset_index(drop=True)
                differ = (~((py == db) | (py.isna() & db.isna()))).to_numpy(dtype=bool)
                if differ.any():
                    i = int(np.flatnonzero(differ)[0])
                    raise UsageError(
                        f"entity {plan.entity}: the database normalises {c} differently from Python "
                        f"({int(differ.sum())} value(s) in one batch, e.g. row {df['_row_id'].iloc[i]}: "
                        f"{py[i]!r} in Python, {db[i]!r} in {d.name}); its figures would not be the pandas path's",
                        hint="use `crmbridge extract` + `crmbridge validate` for this source, or a database "
                             "whose collation/functions match (docs/validate-sql.md)")
            depts, keyvals = frame["_department"].to_numpy(dtype=object), frame[plan.key].to_numpy(dtype=object)

            def ident(p: int) -> tuple:
                return _ident(depts[p], keyvals[p])
            if runner is not None and len(frame):
                erun = runner.run(frame, ctx)
                pos_of = pd.Index(frame["_row_id"])
                by_id = {res.expectation_config.meta["rule_id"]: (res.result or {}) for res in erun.gx_result.results}
                for o in erun.outcomes:
                    t = tallies[o.rule.rule_id]
                    res = by_id.get(o.rule.rule_id) or {}
                    t.element_count += o.element_count
                    t.unexpected_count += o.unexpected_count
                    t.basis += o.element_count - int(res.get("missing_count") or 0)
                    if not len(o.failing_row_ids):
                        continue
                    pos = pos_of.get_indexer(o.failing_row_ids)
                    fails.add_many((ident(p) for p in pos), o.rule, messages(o.rule, frame, pos, ctx))
            for r in refs:  # children of a parent that exists but was quarantined
                bad = bad_parent_keys.get(r.rule_id)
                if not bad:
                    continue
                f = r.fields[0]
                hit = _in_index(frame[f], bad)
                if hit.any():
                    tallies[r.rule_id].unexpected_count += int(hit.sum())
                    pos = np.flatnonzero(hit)
                    orig = next(x for x in plan.rules if x.rule_id == r.rule_id)
                    vals = frame[f].to_numpy(dtype=object)[pos]
                    fails.add_many((ident(p) for p in pos), orig, _reference_messages(orig, vals, ctx))
    return rows_in
