"""Number parsing: currency signs, thousands separators, full-width digits, Chinese units.

``¥1,234,500.00``, ``１２３４５００``, ``RMB 1 234,50`` (with ``decimal: ","``), ``(1,234)`` (negative),
``12.5万`` (with ``cn_units: true``). Vectorised with pandas string methods and ``to_numeric``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from crmbridge.mappings.transforms_arrow import WHITESPACE, as_strings, flags, strings
from crmbridge.mappings.transforms_base import Applied, Params, as_text, finish, is_missing

if TYPE_CHECKING:
    import pyarrow as pa

_CURRENCY = r"(?:[¥￥$€£]|RMB|CNY|USD|EUR|人民币|元|圆)"
_UNITS = {"万": 1e4, "亿": 1e8, "千": 1e3, "百万": 1e6}
_NUMBER = r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"  # what to_numeric is given
# In RE2 for Arrow, ASCII only: digits with a point, and with the default separators a leading currency
# sign (one that NFKC keeps) and thousands groups. _rewrite turns these into the digits and the point.
_SIMPLE_GROUPED = r"^[¥$€£]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$"


class NumberParams(Params):
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'", ""] = ","
    cn_units: bool = Field(False, description="read 万 (1e4), 亿 (1e8), 千, 百万 multipliers")
    integer: bool = Field(False, description="result must be a whole number (fails otherwise)")
    scale: int | None = Field(None, ge=0, le=8, description="round to this many decimals")
    percent: bool = Field(False, description="'12%' -> 0.12")

    @model_validator(mode="after")
    def _distinct_separators(self):
        if self.decimal == self.thousands:
            raise ValueError("decimal and thousands separators must differ")
        return self


def parse_number(series: pd.Series, *, decimal: str = ".", thousands: str = ",", cn_units: bool = False,
                 integer: bool = False, scale: int | None = None, percent: bool = False, arrow=None) -> Applied:
    """Amounts and counts to numbers (float, or int with ``integer: true``); unparseable values fail.
    ``arrow``: the values in Arrow when the caller has them (``distinct.run_step``)."""
    if _all_missing(series):  # a column the data lacks (validate adds it empty): every step below gives None
        return Applied(values=pd.Series(np.full(len(series), None, dtype=object), index=series.index),
                       changed=pd.Series(False, index=series.index), failed=pd.Series(False, index=series.index))
    num, present = _plain_amounts(as_strings(arrow), series.index, decimal, thousands) if arrow is not None \
        else (None, None)
    plain = num is not None
    if not plain:
        num, present = _amounts(series, arrow, decimal=decimal, thousands=thousands, cn_units=cn_units,
                                percent=percent)
    if scale is not None:
        num = num.round(scale)
    failed = present & num.isna()
    if integer:
        # A whole number past int64 (an ERP's 20-digit code in a count column) fails like any other
        # unreadable number instead of stopping the stage in pandas' Int64 cast.
        whole = num.notna() & (num == num.round(0)) & (num.abs() < 2.0 ** 63)
        failed = failed | (present & num.notna() & ~whole)
        out = num.where(whole).astype("Int64").astype(object)
    else:
        out = num.astype(object)
    out = out.where(num.notna() & ~failed, None)
    if plain and not failed.any():  # what ``finish`` finds for text in, numbers out: every value Arrow holds
        # (a number, or blank text become None) changed, None not, and nothing failed
        return Applied(values=out, changed=pd.Series(as_strings(arrow).is_valid().to_numpy(zero_copy_only=False),
                                                     index=series.index), failed=failed)
    return finish(series, out, failed)


def _amounts(series: pd.Series, arrow, *, decimal: str, thousands: str, cn_units: bool, percent: bool
             ) -> tuple[pd.Series, pd.Series]:
    """(the numbers, NaN where there is none; the present values) of any column."""
    src = as_text(series)
    present = ~is_missing(src)
    # Plainly written amounts (``1234500``, ``12.5``, with the default separators also ``¥1,234,500.00``)
    # come out of the rewriting steps below as the digits and the point alone: they are recognised
    # and read in Arrow passes over the column, and only the other values go through those steps.
    arr = strings(src.to_numpy(dtype=object)) if arrow is None else as_strings(arrow)
    simple = _simple(arr, decimal, thousands)
    rest = present.to_numpy() & ~simple
    t = pd.Series(None, index=series.index, dtype=object)
    t.iloc[simple.nonzero()[0]] = _simple_text(arr.filter(simple))
    neg = pd.Series(False, index=series.index)
    mult = pd.Series(1.0, index=series.index)
    is_pct = pd.Series(False, index=series.index)
    ok_shape = pd.Series(simple, index=series.index)
    if rest.any():
        parts = _rewrite(src[rest], decimal=decimal, thousands=thousands, cn_units=cn_units, percent=percent)
        for target, part in zip((t, neg, mult, is_pct), parts):
            target.iloc[rest.nonzero()[0]] = part.to_numpy()
        ok_shape.iloc[rest.nonzero()[0]] = parts[0].str.fullmatch(_NUMBER).fillna(False).astype(bool).to_numpy()
    num = _whole_numbers(t, ok_shape)
    num = (pd.to_numeric(t.where(ok_shape), errors="coerce") if num is None else num) * mult
    num = num.where(~neg, -num)
    return num.where(~is_pct, num / 100), present


def _plain_amounts(arr: "pa.Array", index: pd.Index, decimal: str, thousands: str
                   ) -> tuple[pd.Series | None, pd.Series | None]:
    """``_amounts`` of a column whose every value (``arr``, in Arrow) is missing, blank or a simple amount of
    at most 15 digits (as ``_whole_numbers`` takes them), read without a Python string: ``_amounts`` reads
    such a column with the very same Arrow cast (its other steps leave these values as they are: no sign,
    multiplier or percent). (None, None) for any other column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = ~flags(pc.equal(pc.binary_length(pc.utf8_trim(arr, characters=WHITESPACE)), 0)) \
        & arr.is_valid().to_numpy(zero_copy_only=False)  # what is_missing says of text
    simple = _simple(arr, decimal, thousands)
    if not simple.any() or (present & ~simple).any():
        return None, None
    digits = pc.if_else(pa.array(simple), _simple_digits(arr), pa.scalar(None, pa.string()))
    num = _whole_arrow(digits)
    if num is None:
        return None, None
    return pd.Series(num, index=index), pd.Series(present, index=index)



def _all_missing(series: pd.Series) -> bool:
    """Only None/NaN/NA (blank text is not: it comes out as None, a change)."""
    return len(series) > 0 and bool(series.isna().all())


def _whole_numbers(t: pd.Series, ok: pd.Series) -> pd.Series | None:
    """``pd.to_numeric(t.where(ok))`` as float64 when every number text there is a plain integer of at most
    15 digits, maybe with a fraction of zeros (``445200.00``, amounts as validate hands them over), read
    by Arrow's cast: at most 15 digits in all make an integer exact as a float64 at every step of any
    parser (the digits, then a division by an exact power of ten), so the values are ``to_numeric``'s
    (times 1.0, as ``mult`` makes them). None otherwise, the column then goes to ``to_numeric``."""
    num = _whole_arrow(strings(t.where(ok).to_numpy(dtype=object)))
    return None if num is None else pd.Series(num, index=t.index)


def _whole_arrow(arr: "pa.Array") -> np.ndarray | None:
    """``_whole_numbers`` of the number texts in Arrow (null where there is none), as a float64 array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pc.and_(pc.match_substring_regex(arr, r"^(?:[0-9]{1,15}|[0-9]+\.0+)$"),
                    pc.less_equal(pc.utf8_length(arr), 16))
    if not pc.all(whole).as_py():  # None: no number at all
        return None
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


def _simple(arr: "pa.Array", decimal: str, thousands: str) -> np.ndarray:
    """Values (the column as ``strings`` gives it) of the simple shapes above (missing ones are not simple)."""
    import pyarrow.compute as pc

    if thousands == ".":
        pattern = r"^[0-9]+$"
    else:
        pattern = _SIMPLE_GROUPED if (decimal, thousands) == (".", ",") else r"^[0-9]+(?:\.[0-9]+)?$"
    return flags(pc.match_substring_regex(arr, pattern))


def _simple_text(arr: "pa.Array") -> np.ndarray:
    """The number text of simple values: without the currency sign and the thousands commas. A simple
    value holds a sign only as its first character and commas only between digits, so trimming the
    signs on the left and replacing the literal comma is removing every ``[¥$€£,]`` (RE2's replace with
    that class cost 13 ms per 50,000 values, these two 2 ms)."""
    return _simple_digits(arr).to_numpy(zero_copy_only=False)


def _simple_digits(arr: "pa.Array") -> "pa.Array":
    """``_simple_text`` in Arrow."""
    import pyarrow.compute as pc

    return pc.replace_substring(pc.utf8_ltrim(arr, characters="¥$€£"), ",", "")


def _rewrite(src: pd.Series, *, decimal: str, thousands: str, cn_units: bool, percent: bool):
    """(number text, negative, multiplier, percent) of values that are not plain numerals: NFKC, currency,
    brackets for negatives, Chinese units, percent, separators."""
    t = src.str.normalize("NFKC").str.strip()
    t = t.str.replace(_CURRENCY, "", regex=True, flags=re.IGNORECASE)
    neg = t.str.match(r"^\s*\(.*\)\s*$").fillna(False).astype(bool)
    t = t.str.replace(r"^\s*\((.*)\)\s*$", r"\1", regex=True)
    mult = pd.Series(1.0, index=src.index)
    if cn_units:
        for unit, factor in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
            has = t.str.endswith(unit).fillna(False).astype(bool)
            mult = mult.where(~has, factor)
            t = t.where(~has, t.str.slice(0, -len(unit)))
    is_pct = t.str.endswith("%").fillna(False).astype(bool) if percent else pd.Series(False, index=src.index)
    if percent:
        t = t.str.rstrip("%")
    if thousands:
        # Thousands separators only between digit groups, so "1.5" is not mangled when thousands="."
        t = t.str.replace(rf"(?<=\d){re.escape(thousands)}(?=\d{{3}}(?!\d))", "", regex=True)
        if thousands == " ":
            t = t.str.replace(r"(?<=\d)[ \u00a0\u202f](?=\d)", "", regex=True)
    if decimal == ",":
        t = t.str.replace(",", ".", regex=False)
    t = t.str.strip().str.replace(r"^\+", "", regex=True)
    return t, neg, mult, is_pct
