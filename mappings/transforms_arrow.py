"""Text columns as Arrow arrays, for the transforms' and checks' vectorised fast paths (RE2 matching
over a whole column instead of one Python call per value).

A fast path only takes the values it can prove it reads as the per-value function would; every
other value, including any Arrow cannot hold, is left to that function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from crmbridge.mappings.textfast import PY_WHITESPACE, flags  # noqa: F401 (flags re-exported for the fast paths)

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


def column_strings(series: "pd.Series", arrow: "pa.Array | None" = None) -> tuple[np.ndarray, "pa.Array"]:
    """(``as_text(series)`` as an object array, the same as ``strings`` gives it); taken from ``arrow``, the
    column's values in Arrow handed over by ``distinct.run_step`` (a column of str and None, so ``as_text``
    has nothing to change), instead of converted again when the caller has it."""
    from crmbridge.mappings.transforms_base import as_text

    if arrow is not None:
        return series.to_numpy(), as_strings(arrow)
    values = as_text(series).to_numpy(dtype=object)
    return values, strings(values)


def as_strings(arrow: "pa.Array") -> "pa.Array":
    """A text array (``string`` or ``large_string``) as ``strings`` types it."""
    import pyarrow as pa

    return arrow if arrow.type == pa.string() else arrow.cast(pa.string())
