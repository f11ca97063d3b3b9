"""Checks that read a value together with its row's region (a country column, else the rule's default):
phone numbers and postal codes. Like ``checks``, each returns True, False or None (missing) per row,
working once per distinct value or (value, region) pair.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from crmbridge.validation.checks import combine_verdicts, text_dictionary

if TYPE_CHECKING:
    import pyarrow as pa

# Postal codes by ISO country; countries without an entry only need a plausible shape.
POSTAL_PATTERNS: dict[str, str] = {
    "CN": r"\d{6}", "US": r"\d{5}(-\d{4})?", "HK": r".*", "DE": r"\d{5}", "FR": r"\d{5}", "JP": r"\d{3}-?\d{4}",
    "GB": r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", "SG": r"\d{6}", "TW": r"\d{3}(\d{2,3})?", "KR": r"\d{5}",
}
_POSTAL_FALLBACK = r"[A-Za-z0-9][A-Za-z0-9 \-]{1,9}"


def phone_valid(value: str, region: str) -> bool:
    """Valid per phonenumbers' ``is_valid_number`` (never ``is_possible_number``: it accepts junk)."""
    import phonenumbers

    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(num))


def _regions(series: pd.Series, country: pd.Series | None, default: str) -> pd.Series:
    codes, names = _region_codes(series, country, default)
    return pd.Series(names[codes], index=series.index, dtype=object)


def _codes(series: pd.Series, arrow) -> np.ndarray:
    """``gxdistinct.column_codes`` of ``series``, read from ``arrow`` (the column as Arrow text) where given."""
    from crmbridge.validation.gxdistinct import column_codes, text_codes

    return column_codes(series) if arrow is None else text_codes(arrow)


def _region_codes(series: pd.Series, country: pd.Series | None, default: str,
                  country_arrow=None) -> tuple[np.ndarray, np.ndarray]:
    """(a code per row, the region each code stands for): the region read once per distinct country
    (``country_arrow``: the country column as Arrow text, ``columntext.arrow_text``)."""
    from crmbridge.validation.gxdistinct import first_positions

    if country is None or not len(country):
        return np.zeros(len(series), dtype=np.intp), np.array([default], dtype=object)
    codes = _codes(country, country_arrow)
    regions = _region_values(country.iloc[first_positions(codes)].reset_index(drop=True), default)
    small, names = pd.factorize(regions.to_numpy(dtype=object))
    return small[codes], np.asarray(names, dtype=object)


_REGION = re.compile(r"[A-Z]{2}")


def _region_values(country: pd.Series, default: str) -> pd.Series:
    """Per value: NFKC and upper-cased, if that is two letters A-Z; else (missing too) ``default``. A loop
    over the few distinct countries: pandas' string methods cost milliseconds per call, however few values."""
    def region(v) -> str:
        c = "" if pd.isna(v) else unicodedata.normalize("NFKC", str(v)).upper()
        return c if _REGION.fullmatch(c) else default

    return pd.Series([region(v) for v in country.to_numpy(dtype=object)], index=country.index, dtype=object)


def _pairwise(series: pd.Series, regions: pd.Series, fn: Callable[[str, str], bool]) -> pd.Series:
    codes, names = pd.factorize(regions.to_numpy(dtype=object), use_na_sentinel=False)
    return _pairwise_codes(series, codes, np.asarray(names, dtype=object), fn)


def _pairwise_codes(series: pd.Series, regions: np.ndarray, names: np.ndarray,
                    fn: Callable[[str, str], bool], arrow=None) -> pd.Series:
    """``fn(str(value), str(names[region]))`` per present row, called once per distinct pair. Pairs are found
    by integer codes (``column_codes``; a pandas MultiIndex of text pairs took a third longer), hashed, not
    sorted; codes keep ``1`` and ``"1"`` apart, which at most calls ``fn`` once more on the same text.
    ``arrow``: ``series`` as Arrow text, its codes read there."""
    from crmbridge.validation.gxdistinct import first_positions

    present = series.notna().to_numpy()
    out = np.full(len(series), None, dtype=object)
    if present.any():
        v, r = _codes(series, arrow)[present].astype(np.int64), np.asarray(regions)[present].astype(np.int64)
        codes = pd.factorize(v * (int(r.max()) + 1) + r)[0]
        first = first_positions(codes)
        vals, regs = series.to_numpy(dtype=object)[present][first], names[r[first]]
        res = np.array([bool(fn(str(a), str(b))) for a, b in zip(vals, regs)], dtype=object)
        out[present] = res[codes]
    return pd.Series(out, index=series.index, dtype=object)


# Phones are read the way the ``phone`` transform's fast path reads them (``transforms_phonefast``): a
# number plainly written for region CN (``+86 ...``, ``0086 ...``, ``021-...``, ``138 ...``; no extension
# word) is valid exactly when its national number is valid in phonenumbers' metadata, the test
# ``is_valid_number`` makes, without a ~40 us parse per value. A number written with "+" reads the same
# whatever the row's region. Everything else goes through phonenumbers itself.
_DECIDED, _VALID, _PLUS = 1, 2, 4
# What the phone transform writes (E.164, no extension): ``read_all`` reads it as the national number after
# "+86", refused where the national prefix pattern would strip a carrier code; read here in fewer passes.
_E164_CN = r"^\+86[1-9][0-9]{4,13}$"


def _phone_readings(series: pd.Series, arrow=None) -> tuple[np.ndarray, np.ndarray]:
    """(present, per row bits: ``_DECIDED`` (read as a region CN number), ``_VALID``, ``_PLUS`` (written
    with "+")), read once per distinct text (the text ``_pairwise`` parses; ``arrow``: ``series`` as Arrow
    text)."""
    import pyarrow.compute as pc
    from phonenumbers import PhoneMetadata

    from crmbridge.mappings.transforms_arrow import flags

    md = PhoneMetadata.metadata_for_region("CN")
    present, distinct, at = text_dictionary(series, arrow)
    e164 = flags(pc.match_substring_regex(distinct, _E164_CN))
    bits = np.zeros(len(distinct) + 1, dtype=np.int8)  # the last: missing
    if e164.any():
        bits[:-1][e164] = _e164_bits(pc.utf8_slice_codeunits(distinct.filter(e164), 3), md)
    if not e164.all():
        bits[:-1][~e164] = _reading_bits(distinct.filter(~e164).to_numpy(zero_copy_only=False), md)
    return present, bits[at]


def _e164_bits(national: "pa.Array", md) -> np.ndarray:
    """``_reading_bits`` of ``+86`` + ``national`` (an Arrow array of digit strings)."""
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import flags
    from crmbridge.mappings.transforms_phonefast import valid_national

    strip = md.national_prefix_for_parsing
    decided = ~flags(pc.match_substring_regex(national, f"^(?:{strip})")) if strip else np.ones(len(national), bool)
    valid = np.zeros(len(national), dtype=bool)
    numbers = pd.Series(national.filter(decided).to_numpy(zero_copy_only=False), dtype=object)  # not via Arrow text
    valid[decided] = valid_national(numbers, md).to_numpy()
    return (decided * _DECIDED + valid * _VALID + _PLUS).astype(np.int8)


def _reading_bits(text: np.ndarray, md) -> np.ndarray:
    """The bits of each text (str or None) as ``read_all`` reads it: every shape, and the reference the
    E.164 reading is proved against."""
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import flags, strings
    from crmbridge.mappings.transforms_phonefast import read_all, valid_national

    r = read_all(text, "86", md.national_prefix_for_parsing)
    national = pd.Series(np.where(r.word, None, r.national), dtype=object)
    decided = national.notna().to_numpy()
    valid = valid_national(national, md).to_numpy()
    plus = flags(pc.starts_with(strings(text), "+"))
    return (decided * _DECIDED + (decided & valid) * _VALID + plus * _PLUS).astype(np.int8)


def phone_check(series: pd.Series, *, region: str = "CN", country: pd.Series | None = None, arrow=None) -> pd.Series:
    """``phone_valid`` per row in its region (``arrow``: ``series`` as Arrow text, ``columntext.arrow_text``)."""
    present, bits = _phone_readings(series, arrow)
    decided, plus = (bits & _DECIDED).astype(bool), (bits & _PLUS).astype(bool)
    # the row's region only matters for numbers not read as written with "+"
    regions = pd.Series(None, index=series.index, dtype=object)
    need = present & ~(decided & plus)
    if need.any():
        regions[need] = _regions(series[need], None if country is None else country[need], region).to_numpy()
    decided &= (regions == "CN").to_numpy(dtype=bool) | plus
    valid = (bits & _VALID).astype(bool)

    def slow(rest: pd.Series) -> pd.Series:
        return _pairwise(series[rest], regions[rest], phone_valid)

    return combine_verdicts(series, present, decided, valid, slow)


def postal_valid(value: str, region: str) -> bool:
    pattern = POSTAL_PATTERNS.get(region, _POSTAL_FALLBACK)
    return re.fullmatch(pattern, value.strip().upper()) is not None


def postal_check(series: pd.Series, *, region: str = "CN", country: pd.Series | None = None, arrow=None,
                 country_arrow=None) -> pd.Series:
    """``postal_valid`` per row in its region (``arrow``, ``country_arrow``: the columns as Arrow text)."""
    return _pairwise_codes(series, *_region_codes(series, country, region, country_arrow), postal_valid, arrow)
