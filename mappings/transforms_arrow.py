"""Text columns as Arrow arrays, for the transforms' and checks' vectorised fast paths (RE2 matching
over a whole column instead of one Python call per value).

A fast path only takes the values it can prove it reads as the per-value function would; every
other value, including any Arrow cannot hold, is left to that function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from crmbridge.mappings.textfast import PY_WHITESPACE, flags, known  # noqa: F401 (flags re-exported for the fast paths)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# What ``str.strip()`` removes (``str.isspace()``'s set; Arrow's own whitespace trimming uses another).
WHITESPACE = PY_WHITESPACE


def strings(values: np.ndarray) -> "pa.Array":
    """``values`` (str or None/NaN) as an Arrow string array. A str UTF-8 cannot encode (a lone
    surrogate) becomes null, which every fast path leaves to its per-value function."""
    import pyarrow as pa  # lazily: the CLI starts without it

    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except UnicodeEncodeError:
        clean = np.array([v if not isinstance(v, str) or _encodes(v) else None for v in values], dtype=object)
        return pa.array(clean, type=pa.string(), from_pandas=True)


def _encodes(v: str) -> bool:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def column_strings(series: "pd.Series") -> tuple[np.ndarray, "pa.Array"]:
    """(``as_text(series)`` as an object array, the same as ``strings`` gives it); taken from the column's
    Arrow form when it is known (``textfast.remember``: a column of str and None, so ``as_text`` has
    nothing to change) instead of converted again."""
    from crmbridge.mappings.transforms_base import as_text

    arr = known_strings(series)
    if arr is not None:
        return series.to_numpy(), arr
    values = as_text(series).to_numpy(dtype=object)
    return values, strings(values)


def known_strings(series: "pd.Series") -> "pa.Array | None":
    """``strings(as_text(series))`` when the column's Arrow form is known, else None."""
    import pyarrow as pa

    arr = known(series)
    return arr if arr is None or arr.type == pa.string() else arr.cast(pa.string())
