"""Run transforms once per distinct value: a column held as codes into its distinct values.

Legacy columns repeat values a lot (cities, statuses, dates, amounts), and every transform of the
library is a function of the row's value (and of the values of the columns its ``*_column``
parameters name). So a transform is computed on the distinct values (or distinct value tuples)
only, and spread back to the rows through integer codes. A chain of transforms on one column keeps
the codes between steps: the column is factorised once, not once per step, and "how many rows
changed" is a weighted count over the distinct values, not a per-cell comparison.

Only text columns (str or missing, what extract, validate and map hand over) are encoded; anything
else goes through the transform as a whole column, exactly as before. ``tests/mappings/
test_distinct.py`` proves the results equal to the whole-column path value by value on the test data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from crmbridge.mappings.transforms_base import Applied, is_text

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Encoded:
    """A column as ``uniques[codes]``: ``codes`` one int per row, ``uniques`` a RangeIndex object Series.

    ``uniques`` may hold repeated values after a transform (two spellings that normalise alike);
    that is harmless, the codes stay valid.
    """

    codes: np.ndarray
    uniques: pd.Series
    index: pd.Index
    _counts: np.ndarray | None = field(default=None, repr=False)
    arrow: "pa.Array | None" = field(default=None, repr=False)  # ``uniques`` in Arrow, when known

    @property
    def counts(self) -> np.ndarray:
        """Rows per distinct value."""
        if self._counts is None:
            self._counts = np.bincount(self.codes, minlength=len(self.uniques))
        return self._counts

    def rows(self, per_unique: np.ndarray) -> np.ndarray:
        """A per-distinct-value array spread to the rows."""
        return per_unique[self.codes]

    def count(self, per_unique: np.ndarray) -> int:
        """Rows whose distinct value has ``per_unique`` True."""
        return int(self.counts[np.asarray(per_unique, dtype=bool)].sum())

    def series(self) -> pd.Series:
        """The column, one value per row (object dtype, missing as None)."""
        return pd.Series(self.uniques.to_numpy(dtype=object)[self.codes], index=self.index, dtype=object, copy=False)


def encode(series: pd.Series) -> Encoded | None:
    """The column encoded, or None when it holds other values than text and missing."""
    import pyarrow as pa

    if not is_text(series):
        return None
    arrow = None  # the distinct values in Arrow, when Arrow found them
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        codes, uniques, arrow = _arrow_factorize(series)
    else:
        codes, uniq = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
        uniques = np.asarray(uniq, dtype=object)
    if len(codes) and codes.min() < 0:  # None and NaN: one distinct "missing" value, given as None
        codes = np.where(codes < 0, len(uniques), codes)
        uniques = np.append(uniques, np.array([None], dtype=object))
        arrow = None if arrow is None else pa.concat_arrays([arrow, pa.nulls(1, arrow.type)])
    return Encoded(codes.astype(np.intp, copy=False), pd.Series(uniques, dtype=object, copy=False), series.index,
                   arrow=arrow)


def encode_rows(series: pd.Series) -> Encoded | None:
    """The column encoded one value per row (codes ``0..n-1``, missing as None in place) where Arrow holds
    it, else as ``encode``. For columns of nearly all distinct values: hashing them finds almost no
    repeat to save a step, and costs what the steps cost. A step gives each row what it gives its value
    either way (``uniques`` may repeat values, see ``Encoded``)."""
    import pyarrow as pa

    if not (isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        return encode(series)
    arr = pa.array(series.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    uniques = arr.to_numpy(zero_copy_only=False).astype(object, copy=False)
    return Encoded(np.arange(len(arr), dtype=np.intp), pd.Series(uniques, dtype=object, copy=False), series.index,
                   arrow=arr)


def _arrow_factorize(series: pd.Series) -> tuple[np.ndarray, np.ndarray, "pa.Array"]:
    """``pd.factorize`` of an Arrow-backed text column (what extract's Parquet reads back as), done by
    Arrow's hash table on the UTF-8 bytes: only the distinct values become Python strings. Same codes
    and uniques (first-seen order, missing as -1), and the uniques as Arrow's dictionary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(series.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.intp)
    return codes, enc.dictionary.to_numpy(zero_copy_only=False).astype(object, copy=False), enc.dictionary


def _joint(parts: list[Encoded]) -> tuple[np.ndarray, np.ndarray]:
    """(codes per row, first row of each code) for the tuples of several encoded columns."""
    codes = parts[0].codes.astype(np.int64)
    for p in parts[1:]:
        codes, _ = pd.factorize(codes * np.int64(len(p.uniques)) + p.codes)
    _, first = np.unique(codes, return_index=True)
    return codes.astype(np.intp, copy=False), first


@dataclass
class Step:
    """One transform applied in distinct space: the new column and per-distinct-value flags."""

    column: Encoded
    changed: np.ndarray  # bool per distinct value of ``column``
    failed: np.ndarray

    @property
    def n_changed(self) -> int:
        return self.column.count(self.changed)

    @property
    def n_failed(self) -> int:
        return self.column.count(self.failed)

    def failed_rows(self) -> np.ndarray:
        return self.column.rows(self.failed)

    def applied(self) -> Applied:
        """The whole-column ``Applied`` this step stands for."""
        idx = self.column.index
        return Applied(values=self.column.series(),
                       changed=pd.Series(self.column.rows(self.changed), index=idx, dtype=bool),
                       failed=pd.Series(self.failed_rows(), index=idx, dtype=bool))


def run_step(func: Callable[..., Applied], kwargs: dict[str, Any], column: Encoded,
             others: dict[str, Encoded] | None = None, arrow: bool = False) -> Step:
    """``func`` on the distinct values of ``column`` (or of (column, *others) tuples). ``arrow``: ``func``
    takes those values in Arrow as well (``arrow=``), handed over when the column has them; the values
    in Arrow that ``func`` gives back (``Applied.arrow``) go with the new column to the next step."""
    import pyarrow as pa

    others = others or {}
    given = column.arrow if arrow else None
    if others:
        codes, first = _joint([column] + list(others.values()))
        values = column.uniques.take(column.codes[first]).reset_index(drop=True)
        extra = {k: o.uniques.take(o.codes[first]).reset_index(drop=True) for k, o in others.items()}
        given = None if given is None else given.take(pa.array(column.codes[first]))
    else:
        codes, values, extra = column.codes, column.uniques, {}
    if given is not None:
        extra["arrow"] = given
    res = func(values, **kwargs, **extra)
    # no copy: the values are the transform's new array (pandas' copy-on-write guards it from then on)
    out = Encoded(codes, pd.Series(res.values.to_numpy(dtype=object), dtype=object, copy=False), column.index,
                  column._counts if not others else None, arrow=res.arrow)
    return Step(out, res.changed.to_numpy(dtype=bool), res.failed.to_numpy(dtype=bool))
