"""Two per-row string operations of the map stage's bookkeeping done by Arrow's kernels, with pandas'
results: ``as_text(s).str.strip()`` and the count of a character over a column. Python's ``str.strip``
removes its own whitespace set (``str.isspace``: also the separators U+001C..U+001F, which Unicode's
White_Space and so ``utf8_trim_whitespace`` leave), so the Arrow trim is given exactly that set.
Values Arrow cannot hold (lone surrogates) go the pandas way."""

from __future__ import annotations

import pandas as pd

from crmbridge.mappings.textfast import PY_WHITESPACE, arrow_text
from crmbridge.mappings.transforms import as_text


def _arrow(text: pd.Series):
    """An object column of ``str`` and None as an Arrow string array (None: other values, or not Arrow-safe)."""
    return arrow_text(text.to_numpy(dtype=object)) if text.dtype == object else None


def strip_text(series: pd.Series) -> pd.Series:
    """``as_text(series).str.strip()``: object dtype, present values stripped, missing values None."""
    import pyarrow.compute as pc

    text = as_text(series)
    arr = _arrow(text)
    if arr is None or arr.null_count != int(pd.isna(text).sum()):
        return text.str.strip()
    values = pc.utf8_trim(arr, characters=PY_WHITESPACE).to_numpy(zero_copy_only=False)
    return pd.Series(values, index=text.index, name=text.name, dtype=object)


def count_char(text: pd.Series, char: str) -> int:
    """``int(text.str.count(char).sum())`` of a text column (``char``: one character, as a regex itself)."""
    import pyarrow.compute as pc

    arr = _arrow(text)
    if arr is None and isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow":
        import pyarrow as pa

        arr = pa.array(text.array)  # (pandas' count would search for ``char`` as a regex: 3x slower)
    if arr is None:
        return int(text.str.count(char).sum())
    total = pc.sum(pc.count_substring(arr, char)).as_py()
    return int(total or 0)
