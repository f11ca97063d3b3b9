"""Text columns as Arrow arrays, for the transforms' and checks' vectorised fast paths (RE2 matching
over a whole column instead of one Python call per value).

A fast path only takes the values it can prove it reads as the per-value function would; every
other value, including any Arrow cannot hold, is left to that function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

# What ``str.strip()`` removes: the characters ``str.isspace()`` holds true for (Arrow's own whitespace
# trimming uses another definition). Checked against Python in tests/mappings/test_phone_fast_path.py.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


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
