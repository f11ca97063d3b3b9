"""Declared normalisation: the definition's ``normalise`` steps and value maps, nothing guessed.

Uses the shared transform library (``crmbridge.mappings.transforms``). A fixable value is fixed and
counted (``changed``); a value a transform cannot handle keeps its original text and is counted as
``failed`` so that the format rule checking that field quarantines or warns with its real value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmbridge.validation.definition import EntityRules, split_step

if TYPE_CHECKING:
    import pyarrow as pa

    from crmbridge.validation.normcache import StepCache

LINEAGE = ("_row_id", "_source", "_department", "_line", "_source_key")


@dataclass
class Normalised:
    """The normalised frame and, per ``field:transform``, how many values were fixed or could not be.
    ``arrow``: some of the frame's text columns in Arrow as well, as ``pa.Table.from_pandas`` converts
    them (``string``), where normalisation had their values in Arrow (``Encoded.arrow``): validate's spill
    takes them instead of converting those columns again (``ParquetSink.write``)."""

    frame: pd.DataFrame
    fixed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    arrow: dict = field(default_factory=dict)


def data_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not str(c).startswith("_")]


def normalise(df: pd.DataFrame, rules: EntityRules, extra_columns: list[str] = (), *,
              prune: bool = True, cache: StepCache | None = None) -> Normalised:
    """Apply the declared steps (``*`` first, then per field in file order), then the value maps.

    ``extra_columns``: columns the rules read; absent ones are added empty so their rules report
    every row instead of crashing. All data columns come back as text (or None), like extract's.
    ``prune=False`` keeps every step's counts (zeros too), for adding up batches before ``prune_counts``.
    ``cache``: the results of earlier batches of the same entity (``normcache``), taken and added to.
    """
    from crmbridge.mappings.transforms import as_text

    out = df.copy()
    for col in list(extra_columns) + [f for f in rules.normalise if f != "*"]:
        if col not in out.columns:
            out[col] = pd.Series(None, index=out.index, dtype=object)
    res = Normalised(frame=out)
    plan: list[tuple[str, str, dict]] = []
    for step in rules.normalise.get("*", []):
        name, params = split_step(step)
        plan += [(c, name, params) for c in data_columns(df)]
    for fld, steps in rules.normalise.items():
        if fld != "*":
            plan += [(fld, *split_step(s)) for s in steps]
    for a in rules.allowed_values:
        if a.map:
            plan.append((a.field, "value_map", {"map": a.map, "on_missing": "keep", "ignore_case": a.ignore_case}))
    pending = _run_plan(out, plan, res, cache)
    data = data_columns(out)
    for col, column in pending.items():
        if col in data:
            out[col], arrow = _as_text_rows(column)
            if arrow is not None:
                res.arrow[col] = arrow
        else:
            out[col] = column.series()
    for col in data:
        if col not in pending:
            out[col] = as_text(out[col])
    if prune:
        res.fixed, res.failed = prune_counts(res.fixed, res.failed)
    return res


def prune_counts(fixed: dict[str, int], failed: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Only steps that did something are worth a steward's attention (``*`` expands to every column)."""
    used = [k for k in fixed if fixed[k] or failed[k]]
    return {k: fixed[k] for k in used}, {k: failed[k] for k in used if failed[k]}


def _as_text_rows(column) -> tuple[pd.Series, object]:
    """``as_text(column.series())`` done on the distinct values (as_text goes value by value) and spread
    to the rows with the dtype it gives (``str`` where it had to turn numbers into text); and the rows in
    Arrow as ``from_pandas`` converts the object column of text and None (``string``), when the column has
    its distinct values in Arrow and needs no ``as_text`` (else None)."""
    import pyarrow as pa

    from crmbridge.mappings.transforms import as_text

    arrow = _arrow_rows(column)
    # Distinct values with an Arrow form (extract's text, the text transforms' results, ``normcache``'s text)
    # are str and None: as_text would give these very values
    if arrow is not None:
        return column.series(), arrow
    values = column.uniques.to_numpy(dtype=object)
    kind = np.fromiter(map(type, values), dtype=object, count=len(values))
    plain = (kind == str) | (kind == type(None))
    if plain.all():  # as_text would give these very values, as object
        return column.series(), None
    text = _float_text(values, kind, plain)
    if text is not None:
        return pd.Series(pd.array(text.take(pa.array(column.codes)), dtype="str"), index=column.index), None
    text = as_text(column.uniques)
    return pd.Series(text.array.take(column.codes), index=column.index, dtype=text.dtype), None


def _arrow_rows(column):
    """An encoded column of text and None, one value per row in Arrow (``string``), from the distinct
    values it has in Arrow; None when it has none."""
    import pyarrow as pa

    if column.arrow is None or len(column.arrow) != len(column.uniques):
        return None
    return column.arrow.take(pa.array(column.codes)).cast(pa.string())


def _float_text(values: np.ndarray, kind: np.ndarray, plain: np.ndarray) -> "pa.Array | None":
    """``as_text`` of distinct values that are ``str``, None and Python floats (the number transform's
    amounts), in Arrow (``large_string``, what pandas' ``str`` dtype holds), or None for any other mix:
    whole floats below 2^63 are written by Arrow's int64-to-text cast in one pass (``str(int(v))`` one
    value at a time in ``as_text``), NaN becomes None, the other floats go through ``str``; the text
    never becomes Python strings. Proved equal to ``as_text`` in tests/validation/test_pass1_equality.py."""
    import pyarrow as pa

    nums = np.flatnonzero(~plain)
    if not (kind[nums] == float).all():
        return None
    f = values[nums].astype(np.float64)
    nan = np.isnan(f)
    whole = ~nan & np.isfinite(f) & (np.trunc(f) == f) & (np.abs(f) < 2.0 ** 63)
    if nan.all():  # no number becomes text: as_text's dtype then depends on the other values
        return None
    rest = nums[~nan & ~whole]
    text = pa.concat_arrays([
        pa.array(values[plain], pa.large_string()),
        pa.array(f[whole].astype(np.int64)).cast(pa.large_string()),
        pa.array([str(int(v)) if v.is_integer() else str(v) for v in values[rest]], pa.large_string()),
        pa.nulls(int(nan.sum()), pa.large_string())])
    at = np.empty(len(values), dtype=np.intp)  # where each distinct value's text is in ``text``
    at[np.concatenate([np.flatnonzero(plain), nums[whole], rest, nums[nan]])] = np.arange(len(values))
    return text.take(pa.array(at))


def _run_plan(out: pd.DataFrame, plan: list[tuple[str, str, dict]], res: Normalised,
              cache: StepCache | None = None) -> dict:
    """Apply ``plan`` to ``out`` in place. Text columns stay encoded (codes into distinct values)
    from their first step to the end, so each step runs once per distinct value; a step that needs
    whole columns (a frame transform, a non-text column) sees them written back first. With a
    ``cache``, a column's whole chain may be done at its first step (``normcache``), its later steps
    then only count. Returns the columns still encoded at the end (column -> ``Encoded``), for the
    caller to write back."""
    from crmbridge.mappings.distinct import encode, encode_rows
    from crmbridge.mappings.transforms import apply_encoded, apply_transform
    from crmbridge.validation.normcache import cached_chains

    coded: dict = {}  # column -> Encoded, or None when the column is not text
    dirty: set[str] = set()  # encoded columns newer than ``out``
    chains = cached_chains(plan) if cache is not None else {}
    counted: dict[str, list[tuple[int, int]]] = {}  # column -> (changed, failed) of its steps still to come

    def lookup(col: str):
        if col not in out.columns:
            return None
        if col not in coded:
            apart = cache is not None and cache.mostly_distinct(col)
            coded[col] = encode_rows(out[col]) if apart else encode(out[col])
        return coded[col]

    def counts(col: str, name: str, params: dict) -> tuple[int, int]:
        """Run one step (or its column's whole chain, when cached); (changed, failed) rows."""
        if counted.get(col):  # done with the chain's first step
            return counted[col].pop(0)
        column = lookup(col)
        steps = chains.pop(col, None)
        whole = cache.run(col, steps, column) if steps is not None and column is not None else None
        if whole is not None:
            coded[col], counted[col] = whole
            dirty.add(col)
            return counted[col].pop(0)
        step = apply_encoded(name, params, column, lookup) if column is not None else None
        if step is not None:
            coded[col] = step.column
            dirty.add(col)
            return step.n_changed, step.n_failed
        for c in dirty:
            out[c] = coded[c].series()
        dirty.clear()
        applied = apply_transform(name, out[col], params, frame=out, distinct=False)
        out[col] = applied.values
        coded.pop(col, None)
        return applied.n_changed, applied.n_failed

    for col, name, params in plan:
        key = f"{col}:{name}"
        changed, failed = counts(col, name, params)
        res.fixed[key] = res.fixed.get(key, 0) + changed
        res.failed[key] = res.failed.get(key, 0) + failed
    return {c: coded[c] for c in dirty}
