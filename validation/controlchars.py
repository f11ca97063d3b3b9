"""Control characters in keys and text: the ``control_chars`` rule's check and its reason text (moved
out of ``checks``, which re-exports them)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crmbridge.validation.columntext import ARROW_TEXT

# Keys: no control character at all (``C00\0\00009`` must not pass as a key of its own). Free text:
# tab and line breaks are legitimate (multi-line addresses), the rest is damage from the export.
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
CONTROL_IN_KEY = re.compile(f"[{_CONTROL}\t\n\r]")
CONTROL_IN_TEXT = re.compile(f"[{_CONTROL}]")


def control_chars_check(df: pd.DataFrame, key_fields: tuple[str, ...] | list[str], table=None) -> pd.Series:
    """``True`` for rows whose data columns hold no control character (keys: not even tab/line breaks).

    Every text column of every row is scanned, so a Python call per value (even per distinct value)
    would cost seconds per million rows: each column goes to Arrow once and its UTF-8 bytes are
    scanned in numpy (``_control_rows``). ``table``: the Arrow table ``df`` was read from (validate's
    spilled batch), whose text columns are scanned as they are instead of converted back to Arrow, those
    ``df`` lacks too (validate converts only the columns the rules read where the others are text or whole
    numbers, ``parquetsink.LazyBatch.narrow``).
    """
    import pyarrow as pa

    ok = np.ones(len(df), dtype=bool)
    text = [] if table is None else [f.name for f in table.schema if f.type in ARROW_TEXT]
    for col in dict.fromkeys([*df.columns, *text]):
        if str(col).startswith("_"):
            continue
        key = col in key_fields
        if col in text:  # any frame holds an Arrow text column as text (object or str)
            ok &= ~np.concatenate([_control_rows(c, key) for c in table.column(col).chunks] or [np.zeros(0, bool)])
            continue
        s = df[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        try:
            arr = pa.array(s, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed non-text values: check them as text
            arr = pa.array([None if v is None or v != v else str(v) for v in s], type=pa.string())
        ok &= ~_control_rows(arr, key=key)
    return pd.Series(ok, index=df.index, dtype=object)


def _control_rows(arr, key: bool) -> np.ndarray:
    """Per value of ``arr`` (an Arrow string or large_string array): does it hold a character of
    ``CONTROL_IN_TEXT`` (``key``: ``CONTROL_IN_KEY``)? Read from the UTF-8 bytes, where these characters
    cannot hide: U+0000-001F and U+007F are the only characters with a byte below 0x20 or 0x7F, and
    U+0080-009F are exactly the pairs C2 80-C2 9F (0xC2 is never a continuation byte). A byte scan in
    numpy costs a tenth of RE2's match per value. Proved equal to the regexes in
    tests/validation/test_control_chars.py."""
    n = len(arr)
    wide = arr.type == "large_string"
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    if data is None or n == 0:
        return np.zeros(n, dtype=bool)
    b = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]
    bad = (b < 0x20) | (b == 0x7F)
    if not key:
        bad &= (b != 0x09) & (b != 0x0A) & (b != 0x0D)
    c1 = np.flatnonzero((b[:-1] == 0xC2) & (b[1:] >= 0x80) & (b[1:] <= 0x9F))
    where = np.concatenate([np.flatnonzero(bad), c1]) + offsets[0]
    out = np.zeros(n, dtype=bool)
    out[np.searchsorted(offsets, where, side="right") - 1] = True
    if arr.null_count:
        out &= arr.is_valid().to_numpy(zero_copy_only=False)
    return out


def _escaped(value: str, limit: int = 60) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return "".join(f"\\x{ord(c):02x}" if CONTROL_IN_KEY.match(c) else c for c in shown)


def control_chars_reason(row: dict, key_fields: tuple[str, ...] | list[str]) -> str:
    """Which fields of ``row`` hold control characters, where, and what to do about it."""
    parts = []
    for col, v in row.items():
        if str(col).startswith("_") or not isinstance(v, str):
            continue
        m = (CONTROL_IN_KEY if col in key_fields else CONTROL_IN_TEXT).search(v)
        if m:
            parts.append(f"{col} '{_escaped(v)}' holds control character U+{ord(m.group()):04X} "
                         f"at position {m.start() + 1}")
    what = "; ".join(parts) or "a value holds a control character"
    return f"{what} (declare `strip_control` under normalise for the field to remove them)"
