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
from functools import lru_cache

import numpy as np
import pandas as pd

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


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _desc_ok(values: np.ndarray, desc) -> np.ndarray:
    """Digit strings matching a number description's pattern and possible lengths."""
    if desc is None or not desc.national_number_pattern:
        return np.zeros(len(values), dtype=bool)
    full = _compiled(desc.national_number_pattern).fullmatch
    lengths = frozenset(desc.possible_length or ())
    return np.fromiter((isinstance(v, str) and (not lengths or len(v) in lengths) and full(v) is not None
                        for v in values), dtype=bool, count=len(values))


def valid_national(national: pd.Series, md) -> pd.Series:
    """Whether national numbers (digit strings, missing allowed) are valid per the region's metadata: the
    general pattern and lengths, and some number type (what ``is_valid_number`` checks)."""
    values = national.to_numpy(dtype=object)
    ok = _desc_ok(values, md.general_desc)
    typed = np.zeros(len(values), dtype=bool)
    for t in _TYPES:
        todo = np.flatnonzero(ok & ~typed)
        if not len(todo):
            break
        typed[todo] = _desc_ok(values[todo], getattr(md, t, None))
    return pd.Series(ok & typed, index=national.index)


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


def fast_phone_e164(series: pd.Series, region: str = "CN", city: pd.Series | None = None,
                    area_codes: dict[str, str] | None = None, keep_extension: bool = True
                    ) -> tuple[pd.Series, pd.Series]:
    """(E.164 value or None, failed) per value: ``normalize_phone``'s result for the values of the shapes
    above (``failed`` True where it gives ``FAIL``); None and False for the values left to it."""
    from phonenumbers import PhoneMetadata, country_code_for_region

    index = series.index
    if region.upper() not in _FAST_REGIONS:
        return pd.Series(None, index=index, dtype=object), pd.Series(False, index=index)
    if city is not None:  # positions from here on (the index may repeat labels)
        city = (city if city.index.equals(index) else city.reindex(index)).reset_index(drop=True)
    md = PhoneMetadata.metadata_for_region(region.upper())
    cc = str(country_code_for_region(region.upper()))
    text = as_text(series).to_numpy(dtype=object)
    read = _reader(cc, md.national_prefix_for_parsing or "(?!)")
    shapes = [read(v) for v in text]
    n = len(shapes)
    national = pd.Series([r[0] if r else None for r in shapes], dtype=object)
    bare = np.fromiter((bool(r and r[1]) for r in shapes), dtype=bool, count=n)
    ext = np.array([r[2] if r else "" for r in shapes], dtype=object)
    word = np.fromiter((bool(r and r[3]) for r in shapes), dtype=bool, count=n)
    dash = np.fromiter((bool(r and r[4]) for r in shapes), dtype=bool, count=n)
    valid = valid_national(national, md).to_numpy()
    local = bare & ~valid & np.fromiter((bool(r) and _LOCAL.fullmatch(r[0]) is not None for r in shapes),
                                        dtype=bool, count=n)
    completed, undecided = _with_area_code(national.where(local), city, area_codes, national.index)
    completed_ok = valid_national(completed, md).to_numpy()
    number = np.where(valid, national.to_numpy(), np.where(completed_ok, completed.to_numpy(), None))
    taken = valid | completed_ok
    values = np.full(n, None, dtype=object)
    plus = "+" + cc
    values[taken] = [plus + num + (" ext. " + e if e and keep_extension else "")
                     for num, e in zip(number[taken], ext[taken])]
    failed = national.notna().to_numpy() & ~taken & ~word & ~dash & ~undecided.to_numpy()
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
