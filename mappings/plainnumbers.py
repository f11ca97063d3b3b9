"""A ``number`` chain on a column of plain whole numbers, read in Arrow before the chain runs.

Validate hands amounts over as digits alone (``445200``), mostly distinct, so the chain costs its
every pass once per row: Python strings out of the column, the transform's shape tests, a float object
and a comparison per value. For such digits its result is known: ``parse_number`` reads a value of
at most 15 digits through its simple shape, whatever the separators, units or percent setting (none
of them can be in digits alone), with Arrow's cast to float64 (exact: 15 digits fit a double), then
rounds to ``scale``; nothing fails, and every present value changes (text became a number). A missing
value stays missing, unchanged. Any other column, chain or ``integer: true`` (an Int64 result) runs
the chain as before.

Proved against the chain itself, values, types and stats, in tests/mappings/test_plain_numbers.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

_WHOLE = r"^[0-9]{1,15}$"


def _whole(arr) -> bool:
    """Every present value of the Arrow text ``arr`` is a plain whole number (true when none is present)."""
    import pyarrow.compute as pc

    return pc.all(pc.match_substring_regex(arr, _WHOLE), min_count=0).as_py()


def plain_numbers(transforms: list, series: pd.Series) -> tuple[np.ndarray, int, "pa.Array"] | None:
    """``(values, present, twin)`` of the chain ``transforms`` (``TransformRef``s) on ``series``: the chain's
    output as an object array (Python floats, None where the input is missing), how many rows it changes
    and the same values in Arrow (``float64``, null where missing: the column's twin, mappings/twins.py);
    None when the chain is not one ``number`` or a present value is not a plain whole number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(transforms) != 1 or transforms[0].name != "number" or not len(series):
        return None
    params = transforms[0].model
    if params.integer or not (isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        return None
    arr = pa.array(series.array)
    present = len(arr) - arr.null_count
    if not present or not _whole(arr.slice(0, 64)) or not _whole(arr):  # (amounts as extracted fail at once)
        return None
    num = pd.Series(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
    if params.scale is not None:  # as parse_number rounds
        num = num.round(params.scale)
    values = num.to_numpy(dtype=object)
    if arr.null_count:
        values[num.isna().to_numpy()] = None
    return values, present, pa.array(num.to_numpy(), type=pa.float64(), from_pandas=True)


def number_chain(label: str, transforms: list, series: pd.Series, stats: dict, twins: dict | None) -> pd.Series | None:
    """``engine._chain`` of ``plain_numbers``: the chain's output, its stats counted in ``stats`` and its twin
    put in ``twins`` (when given) under ``label``; None when ``plain_numbers`` is."""
    known = plain_numbers(transforms, series)
    if known is None:
        return None
    values, changed, twin = known
    stats.setdefault(label, {}).setdefault("number", {"changed": 0, "failed": 0})["changed"] += changed
    if twins is not None:
        twins[label] = twin
    return pd.Series(values, index=series.index, dtype=object)
