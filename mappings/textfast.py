"""Exact fast paths for the text transforms: Arrow finds the few values a transform changes, Python
changes them.

pandas' object string methods call a Python function per cell, and most text columns are mostly
distinct values (names, e-mails, keys), so even the distinct-value pass costs a call per row. Here a
column of ``str``/None goes to Arrow once; a vectorised kernel picks out the values the transform
*may* change (a superset, never fewer); only those go through the very Python code the transform
always used (``str.strip``, ``str.upper``, ``unicodedata.normalize`` ...), and every other value is
kept as the same object.
So the results are today's by construction, as long as the picking never misses a value:
tests/mappings/test_text_fast_path.py proves that over every code point and random strings.

Arrow is never trusted with the result itself: its Unicode White_Space and case mappings differ from
Python's (U+001C-U+001F and U+0085 are whitespace to Python only, U+180E and U+200B to neither,
``ß``.upper() is ``SS`` in Python). The character sets below are Python's own.
"""

from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np
import pandas as pd

from crmbridge.mappings.transforms_base import Applied

# Every code point for which str.isspace() is True: what str.strip() and re's \s remove. The test
# checks this against all 0x110000 code points.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def re2_class(codepoints: list[int]) -> str:
    """An RE2 character class (``[...]``) of exactly these code points, as ranges."""
    parts, start, prev = [], None, None
    for cp in sorted(codepoints) + [None]:
        if start is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            parts.append(f"\\x{{{start:x}}}" + (f"-\\x{{{prev:x}}}" if prev > start else ""))
        start = prev = cp
    return "[" + "".join(parts) + "]"


WS_CLASS = re2_class([ord(c) for c in PY_WHITESPACE])
WS_BUT_SPACE = re2_class([ord(c) for c in PY_WHITESPACE if c != " "])


@cache
def case_class(to: str) -> str:
    """RE2 class of the code points that ``str.upper``/``str.lower`` change (``textfast_tables`` when it
    was made with this Python's Unicode version, else computed once, ~30 ms)."""
    stored = _stored(f"{to.upper()}_CLASS")
    return stored if stored is not None else computed_case_class(to)


@cache
def nfkc_class() -> str:
    """RE2 class of the code points that may make a string change under NFKC (``textfast_tables`` when
    it was made with this Python's Unicode version, else computed once, ~0.1 s: in every process)."""
    stored = _stored("NFKC_CLASS")
    return stored if stored is not None else computed_nfkc_class()


def _stored(name: str) -> str | None:
    import unicodedata

    from crmbridge.mappings import textfast_tables

    return getattr(textfast_tables, name) if textfast_tables.UNIDATA_VERSION == unicodedata.unidata_version else None


def computed_case_class(to: str) -> str:
    """``case_class`` computed. Planes 2 and up hold no cased letters (CJK ideographs, tags, private
    use); the test checks all."""
    return re2_class([i for i in range(0x20000) if getattr(chr(i), to)() != chr(i)])


def computed_nfkc_class() -> str:
    """``nfkc_class`` computed.

    A string made only of other characters is left as it is: each is its own NFKC form, none is a
    combining mark (no reordering) and none can be the second of a composed pair (the Unicode quick
    check's NFKC_QC=Yes with canonical order kept). Planes 3 to 13 are unassigned or CJK ideographs
    without decompositions; the test checks every code point."""
    import unicodedata

    hangul_vt = [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]  # jamo that compose with the syllable before
    seconds = set(hangul_vt)
    picked = []
    for i in [*range(0x30000), *range(0xE0000, 0x110000)]:
        c = chr(i)
        if 0xD800 <= i <= 0xDFFF:
            continue
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<") and len(d.split()) == 2:
            seconds.add(int(d.split()[1], 16))
        if unicodedata.combining(c) or unicodedata.normalize("NFKC", c) != c:
            picked.append(i)
    return re2_class(sorted(seconds.union(picked)))


def arrow_text(values: np.ndarray):
    """``values`` (str, or None/NaN/NA for missing) as an Arrow string array, or None when Arrow cannot
    hold them (a lone surrogate is not UTF-8, an odd missing marker): the caller then takes its
    plain Python path."""
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.large_string(), from_pandas=True)
    except (UnicodeEncodeError, pa.ArrowException, TypeError, ValueError):
        return None


def all_text(texts):
    """``texts`` as an Arrow string array when every one is a ``str`` Arrow can hold, else None (the
    caller then takes its Python path)."""
    arr = arrow_text(texts)
    return arr if arr is not None and not arr.null_count else None


def text_column(series: pd.Series, arrow=None):
    """``(values, arr)`` for a column of text: ``values`` what ``as_text`` gives, as an object array (the
    same str objects, None for missing), and ``arr`` the same in Arrow. None for any other column.

    Cheaper than ``as_text``: no copy of the column and no second pass for missing values (Arrow's
    null mask says where they are). ``arrow``: the column's values in Arrow, handed over by the caller
    (``distinct.run_step``: an object column of str and None), taken as ``arr`` instead of converting."""
    if arrow is not None:
        return series.to_numpy(), arrow
    if series.dtype == object:
        values = series.to_numpy()
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            return None
    elif isinstance(series.dtype, pd.StringDtype):
        values = series.to_numpy(dtype=object)
    else:
        return None
    arr = arrow_text(values)
    if arr is None:
        return None
    if arr.null_count:
        values = values.copy()
        values[arr.is_null().to_numpy(zero_copy_only=False)] = None
    return values, arr


def missing(series: pd.Series) -> pd.Series | None:
    """``is_missing`` of an object column of text: missing, empty or only whitespace; None when the
    column holds other values (or ones Arrow cannot hold)."""
    import pyarrow.compute as pc

    text = text_column(series)
    if text is None:
        return None
    arr = text[1]
    blank = pc.equal(pc.binary_length(pc.utf8_trim(arr, characters=PY_WHITESPACE)), 0)
    out = arr.is_null().to_numpy(zero_copy_only=False) | flags(blank)
    return pd.Series(out, index=series.index, copy=False)


def trim_pick(arr, collapse: bool = False):
    """The values ``trim`` may change: whitespace at an end (or, to ``collapse``, inside), or empty."""
    import pyarrow.compute as pc

    pick = pc.or_(pc.not_equal(pc.binary_length(pc.utf8_trim(arr, characters=PY_WHITESPACE)), pc.binary_length(arr)),
                  pc.equal(pc.binary_length(arr), 0))
    if collapse:
        pick = pc.or_(pick, pc.match_substring_regex(arr, f"{WS_BUT_SPACE}|{WS_CLASS}{{2}}"))
    return pick


def case_pick(arr, to: str):
    """The values ``case`` (``to``: upper or lower) may change: a character ``str.upper``/``str.lower`` changes."""
    import pyarrow.compute as pc

    return pc.match_substring_regex(arr, case_class(to))


def nfkc_pick(arr):
    """The values ``nfkc`` may change: a character NFKC may change or compose."""
    import pyarrow.compute as pc

    return pc.match_substring_regex(arr, nfkc_class())


def flags(mask) -> np.ndarray:
    """An Arrow boolean result as a numpy bool array, null as False."""
    import pyarrow.compute as pc

    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def patched(series: pd.Series, values: np.ndarray, arr, picked: np.ndarray,
            fn: Callable[[str], str | None]) -> Applied:
    """The ``Applied`` of a transform that changes at most the ``picked`` values of a text column
    (``text_column``'s ``values`` and ``arr``) to ``fn(value)`` and leaves the others as they are;
    nothing fails.

    Equal to ``finish(series, out, no failures)``: an unpicked value is the input itself; a picked one
    is changed when ``fn`` gave None or another string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = values.copy()
    changed = np.zeros(len(values), dtype=bool)
    pos = np.flatnonzero(picked)
    if len(pos):
        new = [fn(v) for v in values[pos]]
        out[pos] = np.array(new + [None], dtype=object)[:-1]  # the extra None keeps a 1-d object array
        changed[pos] = [n is None or n != v for n, v in zip(new, values[pos])]
        try:  # the output's Arrow form: the picked values replaced
            arr = pc.replace_with_mask(arr, pa.array(picked, pa.bool_()), pa.array(new, arr.type))
        except (UnicodeEncodeError, pa.ArrowException, TypeError, ValueError):
            arr = None  # fn made a value Arrow cannot hold: the next step converts (and declines) itself
    return _applied(series, out, changed, arr)


def trimmed(series: pd.Series, values: np.ndarray, arr) -> Applied:
    """``patched`` with ``trim_pick`` and ``str.strip() or None`` (``trim`` without collapsing), the
    stripping done by Arrow: trimming Python's whitespace set off both ends is what ``str.strip()``
    does, so only the picked values become Python strings, from Arrow's result. Every picked value
    changes (it lost characters, or it was empty and becomes None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    length = pc.binary_length(arr)
    stripped = pc.utf8_trim(arr, characters=PY_WHITESPACE)
    picked = flags(pc.or_(pc.not_equal(pc.binary_length(stripped), length), pc.equal(length, 0)))
    out = values.copy()
    if picked.any():
        new = stripped.filter(picked).to_numpy(zero_copy_only=False)
        new[new == ""] = None
        out[picked] = new
        stripped = pc.if_else(pc.equal(pc.binary_length(stripped), 0), pa.scalar(None, stripped.type), stripped)
    return _applied(series, out, picked, stripped)


def _applied(series: pd.Series, out: np.ndarray, changed: np.ndarray, arr) -> Applied:
    """The ``Applied`` of a text transform, with its values in Arrow (``arr``, None when Arrow cannot hold them)."""
    idx = series.index
    return Applied(values=pd.Series(out, index=idx, dtype=object, copy=False),
                   changed=pd.Series(changed, index=idx, copy=False), failed=pd.Series(False, index=idx), arrow=arr)
