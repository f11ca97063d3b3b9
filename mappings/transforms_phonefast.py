"""The ``phone`` transform's vectorised fast path: E.164 for plainly written numbers, decided from
phonenumbers' own metadata in a few passes over the distinct values instead of one ``parse`` each.

Taken (region CN, the region it is proved for): after NFKC and trimming, with spaces, dashes and the
brackets of a leading area code (``(021)``, ``（021）``) removed,

- ``0`` + national number (``021-6234 5678``), ``+86`` / ``0086`` + national number, and a national
  number as written (mobiles ``138 0013 8000``, 7-8 digit local numbers valid as they stand);
- a 7-8 digit local number completed by the row's city's area code (``6234 5678`` in 上海), the
  candidate ``normalize_phone`` tries second;
- any of these followed by an extension word (``转 123``, ``分机 123``, ``ext 123``, ``x123``): the
  number with `` ext. N`` (or without it when ``keep_extension`` is false).

A number is valid when it matches the metadata's general pattern and lengths and some number type's,
the tests ``is_valid_number`` makes. Where every candidate ``normalize_phone`` would try is one of these
shapes and none is valid, the value is *failed* here too (``021-0123 4567``). Everything else (a
trailing ``-8001`` that may be an extension, national numbers a carrier-code prefix could be stripped
from, other countries, letters, odd punctuation) goes through phonenumbers one value at a time.
Proved value by value against ``normalize_phone`` in tests/mappings/test_phone_fast_path.py.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmbridge.mappings.transforms_arrow import WHITESPACE, column_strings, flags, strings
from crmbridge.mappings.transforms_base import as_text
from crmbridge.mappings.transforms_contact import _EXT_DASH, _EXT_WORDS, area_code_for

_FAST_REGIONS = {"CN"}
# The common types first, mobile (a short pattern) before fixed_line (a long one): each later type is
# only tried on the numbers still untyped, and any type makes a number valid.
_TYPES = ("mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
          "uan", "voicemail")
_SEPARATORS = r"[ \-]|^\(|(?<=^\(0\d\d)\)|(?<=^\(0\d\d\d)\)"
# the text before an extension word and its digits: the leftmost place ``_EXT_WORDS.search`` finds
_EXT_SPLIT = re.compile(r"^(.*?)" + _EXT_WORDS.pattern, re.IGNORECASE | re.DOTALL)


def _matching(values: pa.Array, length: np.ndarray, rows: np.ndarray, desc) -> np.ndarray:
    """The ``rows`` whose digit strings match a number description's possible lengths and pattern: the
    lengths first (one numpy test), Arrow's RE2 then on the rows of a possible length only (the metadata
    patterns are plain regular expressions; on ASCII digits ``^(?:p)$`` in RE2 matches what
    ``re.fullmatch(p)`` matches)."""
    if desc is None or not desc.national_number_pattern:
        return rows[:0]
    if desc.possible_length:  # a table by length, the last entry for longer ones and for missing (-1)
        top = max(desc.possible_length) + 1
        fits = np.zeros(top + 1, dtype=bool)
        fits[list(desc.possible_length)] = True
        rows = rows[fits[np.minimum(length[rows], top)]]
    if not len(rows):
        return rows
    some = values if len(rows) == len(values) else values.take(pa.array(rows))
    return rows[flags(pc.match_substring_regex(some, f"^(?:{desc.national_number_pattern})$"))]


def valid_national(national: pd.Series, md) -> pd.Series:
    """Whether national numbers (ASCII digit strings, missing allowed) are valid per the region's metadata:
    the general pattern and lengths, and some number type (what ``is_valid_number`` checks). Each type is
    only tried on the numbers still untyped of one of its lengths. Proved against
    ``phonenumbers.is_valid_number`` in tests/mappings/test_phone_fast_path.py."""
    return pd.Series(valid_arrow(strings(national.to_numpy(dtype=object)), md), index=national.index)


def valid_arrow(values: pa.Array, md) -> np.ndarray:
    """``valid_national`` of national numbers already in Arrow (a numpy bool array)."""
    length = pc.fill_null(pc.utf8_length(values), -1).to_numpy(zero_copy_only=False)
    todo = _matching(values, length, np.arange(len(values)), md.general_desc)
    valid = np.zeros(len(values), dtype=bool)
    for t in _TYPES:
        if not len(todo):
            break
        hit = _matching(values, length, todo, getattr(md, t, None))
        valid[hit] = True
        todo = np.setdiff1d(todo, hit, assume_unique=True)
    return valid


# characters an extension word starts with (after NFKC): values without any skip the word pattern
_MAYBE_WORD = re.compile(r"[转分內内eExX]")
_LOCAL = re.compile(r"[2-9][0-9]{6,7}")


@lru_cache(maxsize=8)
def _reader(cc: str, strip: str):
    """The per-value reading of one region's numbers: (national number, is it written without prefix,
    extension digits, has an extension word, may end in a dash extension), or None when not a fast shape.

    One function per value with precompiled patterns: the cheapest way through a column of mostly
    distinct numbers (a pandas string pass per step costs more in total)."""
    shape = re.compile(rf"0(?P<trunk>[1-9][0-9]{{5,11}})|(?:\+{cc}|00{cc})(?P<intl>[1-9][0-9]{{4,13}})"
                       r"|(?P<bare>[1-9][0-9]{4,13})")
    separators, stripped = re.compile(_SEPARATORS), re.compile(strip)

    def read(v):
        if not isinstance(v, str):
            return None
        t = unicodedata.normalize("NFKC", v).strip()  # what normalize_phone parses
        base, ext, word = t, "", False
        if _MAYBE_WORD.search(t):
            m = _EXT_SPLIT.match(t)
            if m:
                if not m.group(2).isascii():
                    return None
                base, ext, word = m.group(1).rstrip(" -,;"), m.group(2), True
        m = shape.fullmatch(separators.sub("", base))
        if m is None:
            return None
        trunk, intl, bare = m.group("trunk", "intl", "bare")
        # national numbers the region's national prefix pattern would strip (carrier codes) are left to
        # the library; so are "86..." numbers written without "+", which parse() may read as +86
        if (intl or bare) and stripped.match(intl or bare) or bare and bare.startswith(cc):
            return None
        dash = not word and "-" in t and _EXT_DASH.match(t.replace(" ", "")) is not None
        return trunk or intl or bare, bool(bare), ext, word, dash

    return read


# The reader's steps in RE2 for Arrow: the brackets of
# a leading area code (the lookbehinds of ``_SEPARATORS``), the number shapes, a dash extension.
_AREA_BRACKETS = r"^\((?:(0[0-9]{2,3})\))?"
_EXT_DASH_RE2 = r"^(.*[0-9]{7,}.*?)-([0-9]{1,5})$"


# Full-width forms of ASCII (U+FF01-U+FF5E) and the ideographic space: NFKC turns each into one ASCII
# character, whatever its neighbours (no composition involves ASCII alone), in every Unicode version
# (normalisation stability), so Arrow's NFKC of a value made of them and ASCII is Python's.
_WIDTH_ONLY = r"^[\x00-\x7f\x{3000}\x{ff01}-\x{ff5e}]*$"


def _nfkc(arr: pa.Array, text: np.ndarray, wide: np.ndarray) -> pa.Array:
    """``arr`` (``strings(text)``) with the values at ``wide`` in NFKC: by Arrow when all of them are
    ASCII and the full-width forms above (an exported column's ``（010）``), else by Python."""
    sub = arr.take(pa.array(wide))
    if pc.all(pc.match_substring_regex(sub, _WIDTH_ONLY)).as_py():
        mask = np.zeros(len(arr), dtype=bool)
        mask[wide] = True
        return pc.replace_with_mask(arr, pa.array(mask), pc.utf8_normalize(sub, "NFKC"))
    nfkc = text.copy()
    nfkc[wide] = [unicodedata.normalize("NFKC", v) for v in text[wide]]
    return strings(nfkc)


@dataclass
class Readings:
    """``_reader``'s tuple per value, as columns: national number (None: not a fast shape), written
    without prefix, extension digits, has an extension word, may end in a dash extension."""

    national: np.ndarray
    bare: np.ndarray
    ext: np.ndarray
    word: np.ndarray
    dash: np.ndarray
    numbers: pa.Array | None = None  # ``national`` in Arrow, when the Arrow passes read all of them


def read_all(text: np.ndarray, cc: str, strip: str | None, arr: pa.Array | None = None) -> Readings:
    """``_reader(cc, strip)`` on every value (str or None). Values that are ASCII after NFKC and hold no
    letter an extension word starts with (most of a column) are read in a few Arrow passes: no extension
    word can match them; the others go through ``_reader`` one by one (``arr``: ``strings(text)``, when the
    caller has it). Proved equal value by value in tests/mappings/test_phone_fast_path.py."""
    n = len(text)
    national = np.full(n, None, dtype=object)
    bare, word, dash = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    ext = np.full(n, "", dtype=object)
    arr = strings(text) if arr is None else arr
    wide = np.flatnonzero(~pc.fill_null(pc.string_is_ascii(arr), True).to_numpy(zero_copy_only=False))
    if len(wide):  # NFKC (what ``_reader`` reads) of the non-ASCII values: full-width digits, brackets
        arr = _nfkc(arr, text, wide)
    ascii_ = np.ones(n, dtype=bool)
    ascii_[wide] = flags(pc.string_is_ascii(arr.take(pa.array(wide))))  # NFKC made many of them ASCII
    ascii_ &= flags(pc.is_valid(arr))
    rows = np.flatnonzero(ascii_)
    plain, numbers = np.zeros(n, dtype=bool), None
    if len(rows):
        t = pc.utf8_trim(arr if len(rows) == n else arr.filter(pa.array(ascii_)), WHITESPACE)
        spaceless = pc.replace_substring(pc.replace_substring_regex(t, _AREA_BRACKETS, r"\1"), " ", "")
        base = pc.replace_substring(spaceless, "-", "")
        # the shapes of ``_reader``: the first of "+cc", "00cc", "0" a value starts with cut off (RE2 tries
        # them in that order), the rest is the national number, [1-9] and digits, 6-12 of them after "0",
        # 5-14 after the others (RE2 extracting groups costs several matches)
        number = pc.replace_substring_regex(base, rf"^(?:\+{cc}|00{cc}|0)", "")
        size = pc.binary_length(number).to_numpy(zero_copy_only=False)
        cut = pc.binary_length(base).to_numpy(zero_copy_only=False) - size  # 0: "bare", 1: "trunk"
        shaped = flags(pc.and_(pc.ascii_is_decimal(number), pc.invert(pc.starts_with(number, "0"))))
        shaped &= np.where(cut == 1, (size >= 6) & (size <= 12), (size >= 5) & (size <= 14))
        # as ``_reader``: "86..." without "+", and carrier codes the national prefix pattern would strip
        refused = (cut == 0) & flags(pc.starts_with(base, cc))
        if strip:
            refused |= (cut != 1) & flags(pc.match_substring_regex(number, f"^(?:{strip})"))
        ok = shaped & ~refused
        # no extension word can end an ASCII value without e, E, x, X: only the others need ``_reader``
        # (a shaped value holds no letter)
        letters = np.zeros(len(rows), dtype=bool)
        unread = np.flatnonzero(~ok)
        letters[unread] = flags(pc.match_substring_regex(t.take(pa.array(unread)), "[eExX]"))
        plain[rows] = ~letters
        taken = np.flatnonzero(ok)
        national[rows[taken]] = number.to_numpy(zero_copy_only=False)[taken]
        bare[rows] = ok & (cut == 0)
        # ``"-" in t`` (the dashes removed made the value shorter), then the pattern
        dashes = np.flatnonzero(ok & (pc.binary_length(spaceless).to_numpy(zero_copy_only=False) != cut + size))
        dash[rows[dashes]] = flags(pc.match_substring_regex(
            pc.replace_substring(t.take(pa.array(dashes)), " ", ""), _EXT_DASH_RE2))
        if len(rows) == n:  # the national numbers in Arrow as well, unless ``_reader`` finds others below
            numbers = pc.if_else(pa.array(ok), number, pa.scalar(None, pa.string()))
    read = _reader(cc, strip or "(?!)")
    for i in np.flatnonzero(~plain):
        r = read(text[i])
        if r is not None:
            national[i], bare[i], ext[i], word[i], dash[i] = r
            numbers = None  # a number the Arrow passes did not read
    return Readings(national, bare, ext, word, dash, numbers)


def fast_phone_e164(series: pd.Series, region: str = "CN", city: pd.Series | None = None,
                    area_codes: dict[str, str] | None = None, keep_extension: bool = True, arrow=None
                    ) -> tuple[pd.Series, pd.Series]:
    """(E.164 value or None, failed) per value: ``normalize_phone``'s result for the values of the shapes
    above (``failed`` True where it gives ``FAIL``); None and False for the values left to it. ``arrow``:
    the values in Arrow, when the caller has them."""
    from phonenumbers import PhoneMetadata, country_code_for_region

    index = series.index
    if region.upper() not in _FAST_REGIONS:
        return pd.Series(None, index=index, dtype=object), pd.Series(False, index=index)
    if city is not None:  # positions from here on (the index may repeat labels)
        city = (city if city.index.equals(index) else city.reindex(index)).reset_index(drop=True)
    md = PhoneMetadata.metadata_for_region(region.upper())
    cc = str(country_code_for_region(region.upper()))
    text, arr = column_strings(series, arrow)
    r = read_all(text, cc, md.national_prefix_for_parsing, arr)
    n = len(text)
    national = pd.Series(r.national, dtype=object)
    valid = valid_arrow(strings(r.national) if r.numbers is None else r.numbers, md)
    local = r.bare & ~valid
    local[local] = [_LOCAL.fullmatch(v) is not None for v in r.national[local]]
    completed, undecided, completed_ok = np.full(n, None, dtype=object), np.zeros(n, bool), np.zeros(n, bool)
    if local.any():
        completed, undecided = (x.to_numpy() for x in _with_area_code(
            national.where(local), city, area_codes, national.index))
        completed_ok = valid_national(pd.Series(completed, dtype=object), md).to_numpy()
    number = np.where(valid, r.national, np.where(completed_ok, completed, None))
    taken = valid | completed_ok
    values = np.full(n, None, dtype=object)
    plus = "+" + cc
    values[taken] = plus + number[taken]  # numpy adds the str objects one by one, without a Python loop
    if keep_extension:
        ext = np.flatnonzero(taken & (r.ext != ""))
        values[ext] = values[ext] + " ext. " + r.ext[ext]
    # a national number is a non-empty str: truth is presence, in one numpy pass
    failed = r.national.astype(bool) & ~taken & ~r.word & ~r.dash & ~undecided
    return pd.Series(values, index=index, dtype=object), pd.Series(failed, index=index, dtype=bool)


def _with_area_code(local: pd.Series, city: pd.Series | None, area_codes: dict[str, str] | None,
                    index: pd.Index) -> tuple[pd.Series, pd.Series]:
    """(area code + local number where the row's city has one, None elsewhere; True where the city's
    code is not plain digits, a candidate parse() might read otherwise). The city table is only built
    when some local number needs it."""
    none = pd.Series(None, index=index, dtype=object)
    odd = pd.Series(False, index=index)
    todo = local.notna()
    if city is None or not todo.any():
        return none, odd
    cities = as_text(city)[todo]
    table = {c: area_code_for(c, area_codes) for c in pd.unique(cities.dropna())}
    codes = [table.get(c) if isinstance(c, str) else None for c in cities.to_numpy(dtype=object)]
    plain = np.array([isinstance(c, str) and c.isascii() and c.isdigit() for c in codes], dtype=bool)
    rows = np.flatnonzero(todo.to_numpy())
    odd.iloc[rows[np.array([c is not None for c in codes], dtype=bool) & ~plain]] = True
    numbers = local.to_numpy(dtype=object)[rows]
    none.iloc[rows[plain]] = [c + n for c, n, p in zip(codes, numbers, plain) if p]
    return none, odd
