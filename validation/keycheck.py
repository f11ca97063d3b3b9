"""A unique rule's verdict on one batch against the whole entity's duplicate index.

``checks.unique_check`` builds every row's key text (``checks.key_text``: a compound key joined
length-prefixed, two pandas string operations over the batch) and looks each up in the index of the
key texts that occur more than once. The index holds few keys, and a row's text can only be among them
if each of its key columns' text is among the same column's parts of the index's texts; ``unique_check``
here builds the joined text for those rows only. The verdicts are ``checks.unique_check``'s, proved
equal row by row in tests/validation/test_keycheck.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmbridge.validation import checks

if TYPE_CHECKING:
    import pyarrow as pa


def unique_check(df: pd.DataFrame, columns: list[str], index: checks.DuplicateIndex | None = None) -> pd.Series:
    """``checks.unique_check(df, columns, index)``: True (unique), False (occurs again), None (a key
    column missing)."""
    if index is None:  # the rows given are the whole population: every row's text is needed
        return checks.unique_check(df, columns, index)
    parts = _parts(index, len(columns)) if len(columns) > 1 and len(index.values) else None
    if len(index.values) and parts is None:  # one key column (its text is the key text), or an unknown layout
        return checks.unique_check(df, columns, index)
    present, cols = checks._key_columns(df, columns)
    out = np.full(len(df), None, dtype=object)
    out[present] = True
    if parts is not None:
        maybe = np.ones(int(present.sum()), dtype=bool)
        for c, known in zip(cols, parts):
            maybe &= _among(c, present, known)
        rows = np.flatnonzero(present)[maybe]
        if len(rows):
            text = checks.key_text(df.iloc[rows], columns)[1]
            out[rows] = ~pd.Series(text, dtype=object).isin(index.values).to_numpy()
    return pd.Series(out, index=df.index, dtype=object)


def _among(column: pd.Series, present: np.ndarray, known: "pa.Array") -> np.ndarray:
    """Per present row: its key column's text (``checks._column_text``) among ``known``, by Arrow's hash
    lookup on UTF-8 (which equal text shares); an Arrow-backed text column is looked up as it is. Text
    UTF-8 cannot hold stays a candidate: the joined key text is compared exactly after this."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import strings

    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        text = pa.array(column.array).filter(present)
    else:
        text = strings(checks._column_text(column, present))
    return pc.fill_null(pc.is_in(text, value_set=known, skip_nulls=True), True).to_numpy(zero_copy_only=False)


def _parts(index: checks.DuplicateIndex, n: int) -> list["pa.Array"] | None:
    """``_index_parts`` of the index, kept on it: the same index judges every batch."""
    from crmbridge.mappings.transforms_arrow import strings

    if n not in index.parts:
        parts = _index_parts(index.values, n)
        index.parts[n] = None if parts is None else [strings(np.array(p, dtype=object)) for p in parts]
    return index.parts[n]


def _index_parts(texts: pd.Index, n: int) -> list[list[str]] | None:
    """Per key column, its parts of the compound key ``texts`` (``len:text`` each); None when a text
    does not read back as ``n`` such parts joined (then no row is passed over)."""
    parts: list[list[str]] = [[] for _ in range(n)]
    for text in texts:
        if not isinstance(text, str):
            return None
        pos, mine = 0, []
        try:
            for _ in range(n):
                colon = text.index(":", pos)
                size = int(text[pos:colon])
                mine.append(text[colon + 1:colon + 1 + size])
                pos = colon + 1 + size
        except ValueError:
            return None
        if pos != len(text) or "".join(f"{len(p)}:{p}" for p in mine) != text:
            return None
        for col, p in zip(parts, mine):
            col.append(p)
    return parts
