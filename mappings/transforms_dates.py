"""Date and datetime parsing with explicit formats.

Formats are always declared (``%Y-%m-%d``, ``%Y/%m/%d``, ``%Y年%m月%d日`` ...): a slash date such as
``01/02/2023`` means different days in different systems, so the mapping states the order instead of
guessing per cell. Pre-passes: NFKC (full-width digits), Chinese numerals via cn2an (``二〇二三年一月五日``),
``号`` as day marker, optional Excel serial numbers (``44931`` = 2023-01-05). Output is ISO text, the
form Salesforce's APIs accept: ``YYYY-MM-DD`` for dates, ``YYYY-MM-DDTHH:MM:SS.000+0000`` (UTC) for datetimes.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
from typing import Literal

from pydantic import Field, field_validator

from crmbridge.mappings.transforms_base import Applied, Params, as_text, finish, is_missing

_CN_NUMERALS = re.compile(r"[〇零一二三四五六七八九十两]")
_EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (it counts the 1900 leap-year bug)
_SERIAL = re.compile(r"^\d{4,5}(\.\d+)?$")


class DateParams(Params):
    formats: list[str] = Field(default_factory=list, description="strptime formats tried in order")
    excel_serial: bool = Field(False, description="also read Excel serial day numbers like 44931")
    min_year: int = Field(1900, description="dates before this year fail (typos like 0203-01-05)")
    max_year: int = Field(2100, description="dates after this year fail")

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, v: list[str]) -> list[str]:
        for f in v:
            if "%" not in f:
                raise ValueError(f"format {f!r} has no % directive (e.g. '%Y-%m-%d')")
            try:
                datetime(2023, 1, 5, 13, 4, 5).strftime(f)
            except ValueError as exc:
                raise ValueError(f"format {f!r} is invalid: {exc}") from None
        return v


class DatetimeParams(DateParams):
    timezone: str = Field("Asia/Shanghai", description="time zone the legacy system wrote local times in")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Asia/Shanghai')") from None
        return v


@lru_cache(maxsize=1 << 16)  # a batch of 50k rows holds some 11k distinct dates in three spellings
def _prepass(v: str) -> str:
    t = unicodedata.normalize("NFKC", v).strip()
    if _CN_NUMERALS.search(t):
        import cn2an

        try:
            t = cn2an.transform(t, "cn2an")
        except Exception:  # cn2an raises bare ValueErrors on odd input; keep the text for the formats
            pass
        t = t.replace("〇", "0")
    return t.replace("号", "日")


def _parse(series: pd.Series, formats: list[str], excel_serial: bool, min_year: int, max_year: int):
    """(parsed datetime64 series or NaT, present mask) for the distinct values of ``series``."""
    src = as_text(series)
    present = ~is_missing(src)
    codes, uniq = pd.factorize(src[present].to_numpy(dtype=object))
    uniq = pd.Series(uniq, dtype=object)
    prepped = uniq.map(_prepass)
    parsed = pd.Series(pd.NaT, index=uniq.index, dtype="datetime64[us]")
    for fmt in formats:
        todo = parsed.isna()
        if not todo.any():
            break
        got = pd.to_datetime(prepped[todo], format=fmt, errors="coerce")
        parsed.loc[todo] = got.astype("datetime64[us]")
    if excel_serial:
        todo = parsed.isna() & prepped.str.match(_SERIAL)
        if todo.any():
            days = pd.to_numeric(prepped[todo], errors="coerce")
            parsed.loc[todo] = (pd.Timestamp(_EXCEL_EPOCH) + pd.to_timedelta(days, unit="D")).astype("datetime64[us]")
    years = parsed.dt.year
    parsed = parsed.where((years >= min_year) & (years <= max_year))
    # spread back to the rows by codes; the unit is what to_datetime gives Timestamps (``us``), or NaT alone
    full = np.full(len(src), np.datetime64("NaT"), dtype="datetime64[us]")
    full[present.to_numpy(dtype=bool)] = parsed.to_numpy(dtype="datetime64[us]")[codes]
    out = pd.Series(full, index=src.index, name=src.name)
    return (out if out.notna().any() else out.astype("datetime64[s]")), present


def parse_date(series: pd.Series, *, formats: list[str], excel_serial: bool = False, min_year: int = 1900,
               max_year: int = 2100) -> Applied:
    """Dates to ``YYYY-MM-DD``; values matching no declared format fail."""
    parsed, present = _parse(series, formats, excel_serial, min_year, max_year)
    out = parsed.dt.strftime("%Y-%m-%d").astype(object)
    out = out.where(parsed.notna(), None)
    return finish(series, out, present & parsed.isna())


def parse_datetime(series: pd.Series, *, formats: list[str], excel_serial: bool = False, min_year: int = 1900,
                   max_year: int = 2100, timezone: str = "Asia/Shanghai") -> Applied:
    """Local date-times (in ``timezone``) to UTC ``YYYY-MM-DDTHH:MM:SS.000+0000``."""
    parsed, present = _parse(series, formats, excel_serial, min_year, max_year)
    utc = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    out = utc.dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000").astype(object)
    out = out.where(utc.notna(), None)
    return finish(series, out, present & utc.isna())


class MonthsParams(Params):
    start_column: str = Field(description="column with the start date (already ISO or parseable with formats)")
    formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d"])
    rounding: Literal["nearest", "up", "down"] = Field(
        "nearest", description="how leftover days count: nearest month (15+ days), any day, or never")


def months_between(series: pd.Series, *, start: pd.Series, formats: list[str] | None = None,
                   rounding: str = "nearest") -> Applied:
    """Months from ``start`` to this column's end date (Contract.ContractTerm from start/end dates).

    Salesforce computes ``EndDate = StartDate + ContractTerm months - 1 day``, so an end date of
    2024-01-04 after a start of 2023-01-05 is exactly 12 months. End dates before the start fail.
    """
    fmts = formats or ["%Y-%m-%d"]
    end, present = _parse(series, fmts, False, 1900, 2100)
    begin, _ = _parse(start.reindex(series.index), fmts, False, 1900, 2100)
    # Count from the day after the end date: that is where the org's own arithmetic lands.
    after = end + pd.Timedelta(days=1)
    whole = (after.dt.year - begin.dt.year) * 12 + (after.dt.month - begin.dt.month)
    short = after.dt.day < begin.dt.day
    whole = whole - short.astype("Int64")
    prev_month_days = (after - pd.to_timedelta(after.dt.day, unit="D")).dt.day
    rem = (after.dt.day - begin.dt.day).where(~short, after.dt.day + (prev_month_days - begin.dt.day).clip(lower=0))
    if rounding == "up":
        whole = whole + (rem > 0).astype("Int64")
    elif rounding == "nearest":
        whole = whole + (rem >= 15).astype("Int64")
    ok = end.notna() & begin.notna() & (whole > 0).fillna(False).astype(bool)
    out = whole.astype("Int64").astype(object).where(ok, None)
    return finish(series, out, present & ~ok)


def excel_serial_to_date(n: float) -> date:
    """Excel serial day number to a date (helper for callers outside the vectorised path)."""
    return _EXCEL_EPOCH + timedelta(days=int(n))
