"""Shared pieces of the transform library: the ``Applied`` record and small vectorised helpers.

Every transform is a pure function ``f(series, **params) -> Applied``. Missing values (None, NaN,
NA, blank strings) pass through untouched: they are neither changed nor failed, so a transform never
invents data. Values a transform cannot handle are *failed* and left as they were; the caller decides
whether that quarantines the row (mapping) or becomes a finding (validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

FAIL = object()  # returned by per-value functions for a value they cannot transform


class Params(BaseModel):
    """Base of every transform's parameter model: strict, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Applied:
    """Result of one transform over one column.

    ``values``: the transformed column (object dtype, missing as None); failed cells keep their input.
    ``changed``: True where the output differs from the input (truncations and fixes are counted here).
    ``failed``: True where the value could not be transformed.
    ``arrow``: ``values`` as an Arrow string array (null for None), when the transform had it at hand
    (the text transforms): ``distinct.run_step`` hands it to the next step, which then need not convert.
    """

    values: pd.Series
    changed: pd.Series
    failed: pd.Series
    arrow: Any = field(default=None, repr=False, compare=False)

    @property
    def n_changed(self) -> int:
        return int(self.changed.sum())

    @property
    def n_failed(self) -> int:
        return int(self.failed.sum())


def is_missing(series: pd.Series) -> pd.Series:
    """True for None/NaN/NA and for strings that are empty or only whitespace."""
    if series.dtype == object and len(series):  # Arrow finds the blanks (Python's whitespace set)
        from crmbridge.mappings import textfast

        blank = textfast.missing(series)
        if blank is not None:
            return blank
    miss = series.isna()
    if not len(series) or series.dtype.kind in "biufcmM":  # numbers, booleans, dates: never blank text
        return miss
    if is_text(series):  # one vectorised strip (per value in C) instead of a Python call per cell
        blank = series.str.strip().to_numpy(dtype=object) == ""
    else:
        blank = series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return miss | blank if blank.any() else miss


def as_text(series: pd.Series) -> pd.Series:
    """The column as object dtype: present values as ``str`` (integral floats without ``.0``), missing as None."""
    out = series.astype(object)
    na = out.isna()
    if na.any():
        out = out.where(~na, None)

    def _s(v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    if len(out) and pd.api.types.infer_dtype(out, skipna=True) not in ("string", "empty"):
        out = out.map(_s)
    return out


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def finish(original: pd.Series, values: pd.Series, failed: pd.Series) -> Applied:
    """Build an ``Applied``: failed cells keep their input; ``changed`` compares value and type."""
    original_obj, original_na = _as_object(original)
    values, values_na = _as_object(values)
    failed = failed.fillna(False).astype(bool)
    if failed.any():
        values = values.where(~failed, original_obj)
        values_na = np.where(failed.to_numpy(), original_na, values_na)
    both_missing = pd.Series(original_na & values_na, index=original.index)
    same = pd.Series(_same(original_obj, values), index=original.index, dtype=bool)
    changed = ~(same | both_missing) & ~failed
    return Applied(values=values, changed=changed, failed=failed)


def is_text(series: pd.Series) -> bool:
    """True when every present value is a ``str`` (object dtype) or the dtype is pandas' own text dtype."""
    if isinstance(series.dtype, pd.StringDtype):
        return True
    return series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``_equal`` element by element. Two text columns (str or None) compare in one numpy pass: for
    ``str`` against ``str`` (or None), equal values are also equal types."""
    x, y = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
    if is_text(a) and is_text(b):
        return np.asarray(x == y, dtype=bool)
    # Values of different types are never the same (text against the numbers a transform made), str
    # and None pairs compare in one numpy pass, and only other pairs of one type call ``_equal``.
    tx = np.fromiter(map(type, x), dtype=object, count=len(x))
    ty = np.fromiter(map(type, y), dtype=object, count=len(y))
    kind = tx == ty
    plain = kind & ((tx == str) | (tx == type(None)))
    out = np.zeros(len(x), dtype=bool)
    out[plain] = x[plain] == y[plain]
    rest = np.flatnonzero(kind & ~plain)
    if len(rest):
        out[rest] = [_equal(x[i], y[i]) for i in rest]
    return out


def as_object(series: pd.Series) -> pd.Series:
    return _as_object(series)[0]


def _as_object(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``as_object`` and where it is missing (None there), which ``finish`` would otherwise find again."""
    out = series.astype(object)
    na = out.isna().to_numpy()
    return (out.where(~na, None) if na.any() else out), na


def map_unique(series: pd.Series, fn: Callable[[Any], Any], *, text: bool = True) -> Applied:
    """Apply a per-value function once per distinct present value and spread the results back.

    ``fn`` returns the new value, or ``FAIL``. Legacy columns repeat values a lot (cities, statuses,
    dates), so working on the distinct values is what keeps 1M-row mappings fast.
    """
    src = as_text(series) if text else as_object(series)
    present = ~is_missing(src)
    values = src.copy()
    failed = pd.Series(False, index=series.index)
    if present.any():
        codes, uniques = pd.factorize(src[present], use_na_sentinel=True)
        results = [fn(u) for u in uniques]
        fail_u = [r is FAIL for r in results]
        out_u = [None if r is FAIL else r for r in results]
        out_arr = np.empty(len(codes), dtype=object)
        fail_arr = np.zeros(len(codes), dtype=bool)
        if len(uniques):
            out_arr[:] = np.array(out_u + [None], dtype=object)[codes]
            fail_arr[:] = np.array(fail_u + [False], dtype=bool)[codes]
        values.loc[present] = out_arr
        failed.loc[present] = fail_arr
    return finish(series, values, failed)
