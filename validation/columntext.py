"""A column's values as the text the format checks read (``checks``: phone, e-mail)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Arrow's text types: a frame read from such a column holds the same texts (object str/None, or pandas' str)
ARROW_TEXT = ("string", "large_string")


def texts(series: pd.Series) -> np.ndarray:
    """Each present value as ``series[present].astype(str)`` writes it, None where missing. A column of
    ``str`` is its own text: pandas' ``astype(str)`` would convert it to Arrow-backed text and back, which
    leaves every ``str`` as it is. Proved equal in tests/validation/test_keycheck.py."""
    return present_texts(series)[1]


def present_texts(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(``series.notna()`` as a numpy array, ``texts(series)``): the mask the text is built from, for
    callers that need both (a pass over an object column each)."""
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # every value a str, so none missing
        return np.ones(len(values), dtype=bool), values.copy()
    present = series.notna().to_numpy()
    out = np.full(len(series), None, dtype=object)
    if pd.api.types.infer_dtype(values[present], skipna=False) in ("string", "empty"):
        out[present] = values[present]
    else:
        out[present] = series[present].astype(str).to_numpy(dtype=object)
    return present, out


def arrow_text(table, col: str):
    """``table``'s column ``col`` as one Arrow ``string`` array, where it is Arrow text (None otherwise, or
    without a table). A frame read from such a column holds the same texts, so the checks read them here as
    they are instead of converting the frame's column back to Arrow (``checks.text_dictionary``)."""
    import pyarrow as pa

    if table is None or col not in table.column_names or table.schema.field(col).type not in ARROW_TEXT:
        return None
    arr = table.column(col).combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())
