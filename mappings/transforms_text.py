"""Text transforms: trim, case, NFKC, HTML stripping, replace, null markers, value maps, truncation,
splitting, defaults and required checks. All vectorised with pandas' string methods or on distinct values.

Those with an Arrow fast path also take ``arrow``: the column's values already in Arrow, handed over by
``distinct.run_step`` from the step before (``Applied.arrow``), so a chain of steps converts once.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, Literal

import pandas as pd
import pyarrow.compute as pc
from pydantic import Field, model_validator

from crmbridge.mappings import textfast
from crmbridge.mappings.transforms_base import FAIL, Applied, Params, as_text, finish, is_missing, map_unique

# Full-width (U+3000) and no-break spaces are common in Chinese exports; str.strip() already
# treats them as whitespace, the regex below collapses them inside values too.
_WS = re.compile(r"[\s\u3000\u00a0]+")


class TrimParams(Params):
    collapse: bool = Field(False, description="also collapse runs of inner whitespace to one space")


def trim(series: pd.Series, *, collapse: bool = False, arrow=None) -> Applied:
    """Strip leading/trailing whitespace (incl. full-width space); blank values become missing."""
    text = textfast.text_column(series, arrow)
    if text is not None and not collapse:
        return textfast.trimmed(series, *text)
    if text is not None:  # only values with whitespace at an end or inside, or empty, change
        values, arr = text
        return textfast.patched(series, values, arr, textfast.flags(textfast.trim_pick(arr, True)),
                                lambda v: _WS.sub(" ", v.strip()) or None)
    return _trim_python(series, as_text(series), collapse)


def _trim_python(series: pd.Series, s: pd.Series, collapse: bool) -> Applied:
    """The reference: pandas' string methods over every value (any column; proves the fast path)."""
    out = s.str.strip()
    if collapse:
        out = out.str.replace(_WS, " ", regex=True)
    out = out.where(out.fillna("") != "", None)
    return finish(series, out, pd.Series(False, index=series.index))


class CaseParams(Params):
    to: Literal["upper", "lower", "title"]


def case(series: pd.Series, *, to: str, arrow=None) -> Applied:
    """Change letter case (Chinese characters are unaffected)."""
    text = textfast.text_column(series, arrow) if to != "title" else None  # title case depends on context
    if text is not None:  # only values holding a character that str.upper/lower changes
        values, arr = text
        return textfast.patched(series, values, arr, textfast.flags(textfast.case_pick(arr, to)), getattr(str, to))
    return _case_python(series, as_text(series), to)


def _case_python(series: pd.Series, s: pd.Series, to: str) -> Applied:
    """The reference: pandas' string methods over every value (any column; proves the fast path)."""
    out = getattr(s.str, to)()
    return finish(series, out, pd.Series(False, index=series.index))


class NoParams(Params):
    pass


def nfkc(series: pd.Series, *, arrow=None) -> Applied:
    """Unicode NFKC: full-width letters/digits/punctuation to ASCII (``Ｃ０１`` -> ``C01``).

    Lossy (``①`` -> ``1``, ``㎡`` -> ``m2``): use it on keys, codes, phones and e-mails, never on
    display names or addresses.
    """
    text = textfast.text_column(series, arrow)
    if text is not None:  # only values holding a character NFKC may change or compose
        values, arr = text
        return textfast.patched(series, values, arr, textfast.flags(textfast.nfkc_pick(arr)),
                                lambda v: unicodedata.normalize("NFKC", v))
    return _nfkc_python(series, as_text(series))


def _nfkc_python(series: pd.Series, s: pd.Series) -> Applied:
    """The reference: pandas' string methods over every value (any column; proves the fast path)."""
    out = s.str.normalize("NFKC")
    return finish(series, out, pd.Series(False, index=series.index))


_TAG = re.compile(r"<[^>]*>")


def _strip_html_one(v: str):
    return html.unescape(_TAG.sub("", v)).strip() or None


def strip_html(series: pd.Series) -> Applied:
    """Remove HTML tags and decode entities (``<b>Evil</b> Corp`` -> ``Evil Corp``)."""
    s = as_text(series)
    # Without "<" no tag and without "&" no entity: the value is only trimmed (present values are not
    # blank, so never become missing). Only the others go through the tag and entity pass.
    marked = s.str.contains("[<&]", regex=True).fillna(False).astype(bool)
    present = ~is_missing(s)
    out = s.where(~present, s.str.strip())
    if marked.any():
        out = out.where(~marked, map_unique(series.where(marked), _strip_html_one).values)
    return finish(series, out, pd.Series(False, index=series.index))


class ReplaceParams(Params):
    pattern: str = Field(description="regular expression (Python syntax)")
    replacement: str = ""

    @model_validator(mode="after")
    def _compiles(self):
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


def replace(series: pd.Series, *, pattern: str, replacement: str = "", arrow=None) -> Applied:
    """Regular-expression replace; a value that becomes empty becomes missing."""
    chars = _match_chars(pattern) if "\\" not in replacement else None
    text = textfast.text_column(series, arrow) if chars is not None else None
    if text is not None:  # only values holding a character a match needs, or blank ones, change
        values, arr = text
        blank = pc.equal(pc.binary_length(pc.utf8_trim(arr, characters=textfast.PY_WHITESPACE)), 0)
        pick = pc.or_(pc.match_substring_regex(arr, chars), blank)
        rx = re.compile(pattern)

        def one(v: str) -> str | None:
            out = rx.sub(replacement, v)
            return out if out.strip() else None

        return textfast.patched(series, values, arr, textfast.flags(pick), one)
    return _replace_python(series, as_text(series), pattern, replacement)


def _match_chars(pattern: str) -> str | None:
    """An RE2 class of characters of which every match of ``pattern`` holds one, for a pattern that is
    one literal or character class of literals, ranges and ``\\s`` (Python's, ``str.isspace``), maybe
    repeated at least once, without flags; None for any other pattern (the whole column goes to ``re``)."""
    try:
        from re import _parser as sre  # the parser re itself uses (Python 3.11+)
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as sre

    try:
        parsed = sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if parsed.state.flags != re.UNICODE or len(parsed) != 1:
        return None
    op, av = parsed[0]
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, _, sub = av
        if low < 1 or len(sub) != 1:
            return None
        op, av = sub[0]
    items = [(op, av)] if op == sre.LITERAL else av if op == sre.IN else None
    codes: set[int] = set()
    for kind, value in items or [(None, None)]:
        if kind == sre.LITERAL:
            codes.add(value)
        elif kind == sre.RANGE and value[1] - value[0] < 4096:
            codes.update(range(value[0], value[1] + 1))
        elif kind == sre.CATEGORY and value == sre.CATEGORY_SPACE:
            codes.update(map(ord, textfast.PY_WHITESPACE))
        else:
            return None
    if any(0xD800 <= c <= 0xDFFF for c in codes):  # not UTF-8: no Arrow value holds one
        return None
    return textfast.re2_class(sorted(codes))


def _replace_python(series: pd.Series, s: pd.Series, pattern: str, replacement: str) -> Applied:
    """The reference: pandas' regex replace over every value (any pattern; proves the fast path)."""
    out = s.str.replace(pattern, replacement, regex=True)
    out = out.where(out.fillna("").str.strip() != "", None)
    return finish(series, out, pd.Series(False, index=series.index))


# C0 controls, DEL and C1 controls: never typed by a person, they come from broken exports (NUL padding
# of fixed-width fields, ESC sequences). Tab, LF and CR are kept on request for free text.
CONTROL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
LINE_BREAKS = "\t\n\r"


class StripControlParams(Params):
    keep_line_breaks: bool = Field(False, description="keep tab, LF and CR (multi-line addresses, notes)")


def strip_control(series: pd.Series, *, keep_line_breaks: bool = False) -> Applied:
    """Remove control characters (NUL, ESC, DEL, C1; tab and line breaks too unless kept)."""
    pattern = f"[{CONTROL_CHARS}]" if keep_line_breaks else f"[{CONTROL_CHARS}{LINE_BREAKS}]"
    s = as_text(series)
    out = s.str.replace(pattern, "", regex=True)
    out = out.where(out.fillna("").str.strip() != "", None)
    return finish(series, out, pd.Series(False, index=series.index))


class NullIfParams(Params):
    values: list[str] = Field(min_length=1, description="markers meaning 'no value', e.g. ['N/A', '-', '无']")
    ignore_case: bool = True


def null_if(series: pd.Series, *, values: list[str], ignore_case: bool = True, arrow=None) -> Applied:
    """Turn placeholder values (``N/A``, ``-``, ``无``) into missing."""
    markers = {v.strip() for v in values}
    if ignore_case:
        markers = {m.lower() for m in markers}
    text = textfast.text_column(series, arrow)
    if text is not None:
        values, arr = text
        # A marker is at most this long, and neither str.strip() nor str.lower() makes a value shorter
        # than its trimmed self (no character lowers to nothing): longer values cannot be markers.
        trimmed = pc.utf8_trim(arr, characters=textfast.PY_WHITESPACE)
        pick = pc.less_equal(pc.utf8_length(trimmed), max(map(len, markers), default=-1))
        return textfast.patched(series, values, arr, textfast.flags(pick),
                                lambda v: None if _marker_key(v, ignore_case) in markers else v)
    return _null_if_python(series, as_text(series), markers, ignore_case)


def _marker_key(v: str, ignore_case: bool) -> str:
    return v.strip().lower() if ignore_case else v.strip()


def _null_if_python(series: pd.Series, s: pd.Series, markers: set[str], ignore_case: bool) -> Applied:
    """The reference: pandas' string methods over every value (any column; proves the fast path)."""
    key = s.str.strip()
    if ignore_case:
        key = key.str.lower()
    out = s.where(~key.isin(markers), None)
    return finish(series, out, pd.Series(False, index=series.index))


class ValueMapParams(Params):
    map: dict[str, Any] = Field(min_length=1, description="legacy value -> Salesforce value")
    default: Any = None
    on_missing: Literal["default", "error", "keep"] | None = None
    ignore_case: bool = True

    @model_validator(mode="after")
    def _explicit_miss_policy(self):
        if self.on_missing is None:
            if self.default is None:
                raise ValueError("value_map needs a 'default' or 'on_missing: error' (or 'keep') "
                                 "so unmapped legacy values are never silently dropped")
            object.__setattr__(self, "on_missing", "default")
        if self.on_missing == "default" and self.default is None:
            raise ValueError("on_missing: default needs a 'default' value")
        return self


def _map_key(v: Any, ignore_case: bool) -> str:
    # Keys are codes: trimming and NFKC make `Ｐ０１ ` match `P01`.
    k = unicodedata.normalize("NFKC", str(v)).strip()
    return k.lower() if ignore_case else k


def value_map(series: pd.Series, *, map: dict[str, Any], default: Any = None, on_missing: str | None = "error",
              ignore_case: bool = True) -> Applied:
    """Map legacy codes to picklist values. Misses take ``default``, fail (``error``) or pass (``keep``)."""
    table = {_map_key(k, ignore_case): v for k, v in map.items()}
    policy = on_missing or ("default" if default is not None else "error")

    def one(v: str) -> Any:
        k = _map_key(v, ignore_case)
        if k in table:
            return table[k]
        if policy == "default":
            return default
        if policy == "keep":
            return v
        return FAIL

    return map_unique(series, one)


class TruncateParams(Params):
    length: int = Field(gt=0, description="maximum number of characters")
    ellipsis: str = ""


def truncate(series: pd.Series, *, length: int, ellipsis: str = "") -> Applied:
    """Cut values to ``length`` characters; every cut value is counted in ``changed``."""
    s = as_text(series)
    too_long = s.str.len().fillna(0) > length
    cut = s.str.slice(0, max(length - len(ellipsis), 0)) + ellipsis
    out = s.where(~too_long, cut)
    return finish(series, out, pd.Series(False, index=series.index))


class SplitParams(Params):
    sep: str = Field(min_length=1, description="separator (plain text; use regex: true for a pattern)")
    index: int = Field(0, description="which part to keep (0 = first, -1 = last)")
    regex: bool = False
    strict: bool = Field(False, description="fail when the part does not exist instead of giving missing")


def split(series: pd.Series, *, sep: str, index: int = 0, regex: bool = False, strict: bool = False) -> Applied:
    """Keep one part of a value split on ``sep`` (``"上海;浦东"`` with index 1 -> ``浦东``)."""
    pattern = re.compile(sep if regex else re.escape(sep))

    def one(v: str) -> Any:
        parts = [p.strip() for p in pattern.split(v)]
        try:
            part = parts[index]
        except IndexError:
            return FAIL if strict else None
        return part or None

    return map_unique(series, one)


class DefaultParams(Params):
    value: Any = Field(description="value used where the column is missing")


def default(series: pd.Series, *, value: Any) -> Applied:
    """Fill missing values with a constant."""
    miss = is_missing(series)
    out = as_text(series).where(~miss, value)
    return finish(series, out, pd.Series(False, index=series.index))


def required(series: pd.Series) -> Applied:
    """Fail rows where the value is missing (e.g. a required Salesforce field)."""
    return Applied(values=as_text(series), changed=pd.Series(False, index=series.index), failed=is_missing(series))


class PrefixParams(Params):
    prefix: str = ""
    suffix: str = ""


def affix(series: pd.Series, *, prefix: str = "", suffix: str = "") -> Applied:
    """Add a prefix and/or suffix to present values (``C000123`` -> ``LEG-C000123``)."""
    s = as_text(series)
    present = ~is_missing(s)
    out = s.where(~present, prefix + s.fillna("") + suffix)
    return finish(series, out, pd.Series(False, index=series.index))
