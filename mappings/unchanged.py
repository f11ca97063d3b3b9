"""The rows a field's whole transform chain leaves as they are, found in Arrow before the chain runs.

What map reads was mostly normalised by validate already: keys, credit codes and phone numbers come in
as their transforms would write them, and they are mostly distinct, so running the chain once per
distinct value still costs a Python string per row and a pass per transform. Each function below gives
the values its transform *may* change or fail on (a superset: never fewer), from the column's Arrow
array. A value no transform of the chain may change is left as it is by the first one, so the second
sees it as it was, and so on: the chain gives it back unchanged and fails nowhere. ``engine._chain``
runs the chain on the other rows only. A transform without such a function here (or a parameter
setting it does not cover) means the whole chain runs as before.

Proved against the chain itself, value by value with its stats and reasons, in
tests/mappings/test_unchanged_rows.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pandas as pd

from crmbridge.mappings import textfast


def _trim(arr, params):
    return textfast.trim_pick(arr, params.collapse)


def _nfkc(arr, params):
    return textfast.nfkc_class()  # what ``textfast.nfkc_pick`` matches


def _case(arr, params):
    return textfast.case_class(params.to) if params.to in ("upper", "lower") else None  # title: context


def _phone(arr, params):
    """Not a valid number written in E.164 already (``+8613800138000``): such a number is read by the phone
    fast path as ``+86`` + a valid national number with nothing to strip, and written back as it was."""
    import pyarrow.compute as pc
    from phonenumbers import PhoneMetadata, country_code_for_region

    from crmbridge.mappings.transforms_phonefast import _FAST_REGIONS, valid_arrow

    region = params.region.upper()
    if params.format != "e164" or region not in _FAST_REGIONS:
        return None
    md = PhoneMetadata.metadata_for_region(region)
    cc = str(country_code_for_region(region))
    shaped = textfast.flags(pc.match_substring_regex(arr, rf"^\+{cc}[1-9][0-9]{{4,13}}$"))
    rows = np.flatnonzero(shaped)
    national = pc.utf8_slice_codeunits(arr.take(rows), len(cc) + 1)
    ok = valid_arrow(national, md)  # ASCII digits, no nulls: read in Arrow, not as Python strings
    strip = md.national_prefix_for_parsing
    if strip:  # a national number the region's prefix pattern would strip: the fast path leaves it to the library
        ok = ok & ~textfast.flags(pc.match_substring_regex(national, f"^(?:{strip})"))
    canonical = np.zeros(len(arr), dtype=bool)
    canonical[rows[ok]] = True
    return ~canonical


# each gives the values its transform may change as a mask (Arrow or numpy), or as an RE2 character class
# found in them: the chain's classes are then searched for as one (``class_hits``)
MAY_CHANGE: dict[str, Callable[[Any, Any], Any]] = {"trim": _trim, "nfkc": _nfkc, "case": _case, "phone": _phone}


def class_hits(arr, pattern: str) -> np.ndarray:
    """The rows of the Arrow text ``arr`` where ``pattern`` (RE2 character classes, ``(?:[..])|(?:[..])``: a
    row matches when one of its characters is in one) finds a match, null as False: what
    ``flags(match_substring_regex(arr, pattern))`` gives. RE2 costs 55-90 ns a value even for ``[a-z]``;
    the ASCII characters of the classes are looked for in the UTF-8 bytes instead (a byte below 0x80 is
    always a whole character), RE2 runs only on the values with other characters."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return textfast.flags(pc.match_substring_regex(arr, pattern))
    out = np.zeros(len(arr), dtype=bool)
    found = _ascii_members(pattern)
    _, offsets, data = arr.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    ends = ends[arr.offset:arr.offset + len(arr) + 1]
    if found.any() and len(arr) and ends[-1] > ends[0]:
        hit = np.flatnonzero(found[np.frombuffer(data, dtype=np.uint8)[ends[0]:ends[-1]]]) + ends[0]
        out[np.searchsorted(ends, hit, side="right") - 1] = True  # the value whose bytes hold each hit
    if arr.null_count:  # a null's offsets may span bytes (Arrow allows it): never a hit
        out &= arr.is_valid().to_numpy(zero_copy_only=False)
    wide = np.flatnonzero(~textfast.flags(pc.fill_null(pc.string_is_ascii(arr), True)))
    if len(wide):
        out[wide] = textfast.flags(pc.match_substring_regex(arr.take(pa.array(wide)), pattern))
    return out


@lru_cache(maxsize=16)
def _ascii_members(pattern: str) -> np.ndarray:
    """Byte -> whether ``pattern`` matches it as a one-character string (False from 0x80 on), by RE2 itself."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = np.zeros(256, dtype=bool)
    found[:128] = textfast.flags(pc.match_substring_regex(pa.array([chr(i) for i in range(128)]), pattern))
    return found


SAMPLE = 4096  # first values looked at to tell a mostly distinct column (see ``_mostly_distinct``)


def _arrow(series: pd.Series):
    """``(values or None, arr)``: the column as an Arrow string array, and as ``as_text`` gives it (an object
    array, None for missing) when that came for free; None when it is not text Arrow can hold."""
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        import pyarrow as pa

        arr = pa.array(series.array)
        return None, arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return textfast.text_column(series)


def _mostly_distinct(arr) -> bool:
    """Whether 90% of the column's first values are distinct or more. Only a matter of speed (the rows come out
    the same either way): a column of repeated values (cities, statuses) costs less through the chain,
    once per distinct value, than one Python string per row here."""
    import pyarrow.compute as pc

    head = arr.slice(0, SAMPLE)
    return 10 * len(pc.unique(head)) > 9 * len(head)


def unchanged_rows(transforms: list, series: pd.Series) -> tuple[np.ndarray, np.ndarray, Any] | None:
    """``(values, same, arr)`` for a chain of ``transforms`` (``TransformRef``s) on ``series``: the column's
    text values, the rows no transform of the chain may change, and the Arrow array ``values`` were read
    from (None when they came as Python objects already). None when some transform (or the column) is
    not covered here."""
    steps = [MAY_CHANGE.get(t.name) for t in transforms]
    if not steps or any(s is None for s in steps):
        return None
    text = _arrow(series)
    if text is None or not _mostly_distinct(text[1]):
        return None
    values, arr = text
    may = np.zeros(len(arr), dtype=bool)
    patterns = []
    for step, t in zip(steps, transforms):
        pick = step(arr, t.model)
        if pick is None:
            return None
        if isinstance(pick, str):
            patterns.append(pick)
        else:
            may |= pick if isinstance(pick, np.ndarray) else textfast.flags(pick)
    if patterns:
        may |= class_hits(arr, "|".join(f"(?:{p})" for p in patterns))
    if values is None:
        return arr.to_numpy(zero_copy_only=False), ~may, arr
    return values, ~may, None
