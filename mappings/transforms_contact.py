"""Phone and e-mail normalisation (phonenumbers, email-validator).

Phones: NFKC first (full-width digits and brackets), Chinese extension markers rewritten, then parsed
for a region and checked with ``is_valid_number`` (never ``is_possible_number``). A fixed-line number
written without its area code (``6234 5678``) is invalid by design; when the mapping names a city
column, the city's area code is put in front.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from crmbridge.mappings.transforms_arrow import WHITESPACE, column_strings, flags, strings
from crmbridge.mappings.transforms_base import FAIL, Applied, Params, as_text, finish, is_missing, map_unique

# `转 123`, `分机 123`, `分机号：123`, `ext 123`, `x123` and a trailing `-8001` after a full number.
_EXT_WORDS = re.compile(r"\s*(?:转|分机号?|內線|内线|ext\.?|extension|x)\s*[:：]?\s*(\d{1,6})\s*$", re.IGNORECASE)
_EXT_DASH = re.compile(r"^(.*\d{7,}.*?)-(\d{1,5})$")
_FORMATS = {"e164": "E164", "international": "INTERNATIONAL", "national": "NATIONAL"}


class PhoneParams(Params):
    region: str = Field("CN", min_length=2, max_length=2, description="ISO region for numbers without +country")
    city_column: str | None = Field(None, description="column whose city supplies a missing area code")
    area_codes: dict[str, str] = Field(default_factory=dict, description="extra city -> area code entries")
    format: Literal["e164", "international", "national"] = "e164"
    keep_extension: bool = True


def rewrite_extension(raw: str) -> list[str]:
    """Spellings of ``raw`` to try, extension markers rewritten to `` ext. N`` (what phonenumbers reads).

    ``转 123`` / ``分机 123`` / ``ext 123`` are unambiguous; a trailing ``-8001`` is only an extension
    when the number before it is complete, so that spelling is tried after the number as written.
    """
    m = _EXT_WORDS.search(raw)
    if m:
        return [raw[: m.start()].rstrip(" -,;") + f" ext. {m.group(1)}"]
    out = [raw]
    m = _EXT_DASH.match(raw.replace(" ", ""))
    if m:
        out.append(f"{m.group(1)} ext. {m.group(2)}")
    return out


# Province-level prefixes of the geocoder's descriptions, written with or without 省/自治区.
_PROVINCES = ("北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|"
              "四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门")
_PROVINCE_PREFIX = re.compile(rf"^(?:{_PROVINCES})(?:省|壮族自治区|回族自治区|维吾尔自治区|自治区)?")
_PROVINCE_NAMES = frozenset(_PROVINCES.split("|"))
# 延边朝鲜族自治州 -> 延边, 海西蒙古族藏族自治州 -> 海西: people write the place without the nationalities.
_AUTONOMOUS = re.compile(r"^(.+?)(?:(?:朝鲜|土家|苗|藏|蒙古|回|彝|白|壮|布依|哈萨克|柯尔克孜|傣|景颇|傈僳|侗|羌|哈尼|"
                         r"维吾尔|纳西|水|仫佬|毛南|仡佬|瑶|黎)族?)+自治[州县]$")
# Subscriber numbers to probe each area code with: most three-digit codes only take 7-digit numbers
# in phonenumbers' metadata, the big cities 8 digits.
_PROBES = tuple(f"{d}234567" for d in "2345678") + tuple(f"{d}2345678" for d in "2345678")


def geocoder_cities(description: str) -> list[str]:
    """The place names in one zh geocoder description, province removed.

    One area code often serves several cities, listed in one string:
    ``四川省成都市、资阳市、眉山市`` -> ``["成都市", "资阳市", "眉山市"]``.
    """
    m = _PROVINCE_PREFIX.match(description)
    rest = description[m.end():] if m and description[m.end():] not in ("", "市") else description
    return [p.strip() for p in rest.split("、") if p.strip()]


def _city_keys(place: str) -> set[str]:
    """Spellings a city column may use for one geocoder place name (成都市 -> 成都; 延边朝鲜族自治州 -> 延边)."""
    keys = {place, re.sub(r"(市|地区|县|盟)$", "", place)}
    m = _AUTONOMOUS.match(place)
    base = m.group(1) if m else ""
    # 海南藏族自治州 must not take the name of Hainan province.
    if base and base not in _PROVINCE_NAMES:
        keys.add(base)
    return {k for k in keys if k}


def _latin_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _probe(code: str):
    import phonenumbers

    for sub in _PROBES:
        num = phonenumbers.parse(f"+86{code}{sub}")
        if phonenumbers.is_valid_number(num):
            return num
    return None


def _probe_all(codes: list[str]) -> list:
    """``_probe`` of every code: the probe numbers of all codes checked against phonenumbers' metadata in
    one pass (``transforms_phonefast.valid_national``); a code with a probe that the national prefix
    pattern could shorten (a carrier-code start) is probed by ``parse`` as before."""
    from phonenumbers import PhoneMetadata, PhoneNumber

    from crmbridge.mappings.transforms_phonefast import valid_national

    md = PhoneMetadata.metadata_for_region("CN")
    carrier = re.compile(md.national_prefix_for_parsing or "(?!)")
    numbers = [code + sub for code in codes for sub in _PROBES]
    valid = valid_national(pd.Series(numbers, dtype=object), md).to_numpy().reshape(len(codes), len(_PROBES))
    out = []
    for i, code in enumerate(codes):
        if any(carrier.match(code + sub) for sub in _PROBES):
            out.append(_probe(code))
        elif valid[i].any():
            out.append(PhoneNumber(country_code=86, national_number=int(code + _PROBES[int(valid[i].argmax())])))
        else:
            out.append(None)
    return out


@lru_cache(maxsize=1)
def _geocoded_area_codes() -> dict[str, str]:
    """City name (zh and en, with or without 市) -> Chinese area code, derived from phonenumbers' geocoder.

    Every city of a multi-city description gets its own key; a name shared by several codes keeps the
    lowest code (the geocoder lists the main city of a code first, so collisions are rare).
    """
    from phonenumbers import geocoder

    table: dict[str, str] = {}
    codes = [str(c) for c in range(10, 30)] + [str(c) for c in range(310, 1000)]
    for code, num in zip(codes, _probe_all(codes)):
        if num is None:
            continue
        zh = geocoder.description_for_number(num, "zh")
        if not zh or zh == "中国":
            continue
        table.setdefault(zh, code)
        for place in geocoder_cities(zh):
            for key in _city_keys(place):
                table.setdefault(key, code)
        en = geocoder.description_for_number(num, "en")
        if en:
            for place in en.rsplit(",", 1)[0].split("/"):
                if _latin_key(place):
                    table.setdefault(_latin_key(place), code)
    return table


def area_code_for(city: str | None, extra: dict[str, str] | None = None) -> str | None:
    """Area code (without leading 0) for a city name in Chinese or English, or digits given directly."""
    if not city:
        return None
    c = unicodedata.normalize("NFKC", str(city)).strip()
    if re.fullmatch(r"0?\d{2,3}", c):
        return c.lstrip("0")
    keys = (c, c.lower(), re.sub(r"(市|地区)$", "", c), _latin_key(c))
    for table in (extra or {}, None):
        table = _geocoded_area_codes() if table is None else table  # the geocoder scan only when needed
        for key in keys:
            if key and key in table:
                return str(table[key]).lstrip("0")
    return None


def _format(num, fmt: str, keep_extension: bool) -> str:
    import phonenumbers

    out = phonenumbers.format_number(num, getattr(phonenumbers.PhoneNumberFormat, _FORMATS[fmt]))
    if fmt == "e164" and keep_extension and num.extension:
        out += f" ext. {num.extension}"
    elif not keep_extension and num.extension and " ext. " in out:
        out = out.split(" ext. ")[0]
    return out


def normalize_phone(raw: str, *, region: str = "CN", city: str | None = None, area_codes: dict | None = None,
                    format: str = "e164", keep_extension: bool = True):
    """One phone number to the requested format, or ``FAIL`` when it is not a valid number."""
    import phonenumbers

    candidates = []
    for text in rewrite_extension(unicodedata.normalize("NFKC", raw).strip()):
        candidates.append(text)
        digits = re.sub(r"\D", "", text.split(" ext. ")[0])
        # 7-8 digits without a leading 0 or 1: a local fixed-line number missing its area code (the
        # city's code is looked up only then: the table is built from the geocoder on first use).
        if city and not text.startswith("+") and digits[:1] not in ("0", "1") and 7 <= len(digits) <= 8:
            code = area_code_for(city, area_codes)
            if code:
                candidates.append(f"0{code} {text}")
    for cand in candidates:
        try:
            num = phonenumbers.parse(cand, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return _format(num, format, keep_extension)
    return FAIL


def phone(series: pd.Series, *, region: str = "CN", city: pd.Series | None = None,
          area_codes: dict[str, str] | None = None, format: str = "e164", keep_extension: bool = True,
          arrow=None) -> Applied:
    """Phone numbers to E.164 (default) for ``region``; invalid numbers fail and keep their value.
    ``arrow``: the values in Arrow when the caller has them (``distinct.run_step``)."""
    if format == "e164":
        from crmbridge.mappings.transforms_phonefast import fast_phone_e164

        fast, fails = fast_phone_e164(series, region, city, area_codes, keep_extension, arrow)
        rest = ~(fast.notna() | fails).to_numpy()
        if not rest.all():
            if city is not None:  # the rest's cities, by position (the index may repeat labels)
                city = city if city.index.equals(series.index) else city.reindex(series.index)
            values, failed = _with_rest(series, fast, rest, lambda part: _phone_slow(
                part, region=region, city=None if city is None else city[rest], area_codes=area_codes,
                format=format, keep_extension=keep_extension))
            return finish(series, values, failed | fails)
    return _phone_slow(series, region=region, city=city, area_codes=area_codes, format=format,
                       keep_extension=keep_extension)


def _phone_slow(series: pd.Series, *, region: str, city: pd.Series | None, area_codes: dict[str, str] | None,
                format: str, keep_extension: bool) -> Applied:
    """One phonenumbers parse per distinct value (per distinct phone and city when a city is given)."""
    opts = dict(region=region, area_codes=area_codes or {}, format=format, keep_extension=keep_extension)
    if city is None:
        return map_unique(series, lambda v: normalize_phone(v, **opts))
    # Per distinct (phone, city) pair: the city only matters for numbers missing an area code.
    src = as_text(series)
    present = ~is_missing(src)
    pairs = pd.DataFrame({"p": src[present], "c": as_text(city.reindex(series.index))[present]})
    cache: dict[tuple, object] = {}
    out = src.copy()
    failed = pd.Series(False, index=series.index)
    vals, fails = [], []
    for p, c in zip(pairs["p"].array, pairs["c"].array):
        key = (p, c)
        if key not in cache:
            cache[key] = normalize_phone(p, city=c, **opts)
        r = cache[key]
        vals.append(None if r is FAIL else r)
        fails.append(r is FAIL)
    out.loc[present] = pd.Series(vals, index=pairs.index, dtype=object)
    failed.loc[present] = pd.Series(fails, index=pairs.index, dtype=bool)
    return finish(series, out, failed)


class EmailParams(Params):
    lowercase: bool = Field(True, description="lower-case the whole address (local parts are case-insensitive in practice)")


def normalize_email(raw: str, *, lowercase: bool = True):
    """One e-mail address normalised by email-validator (syntax only, no DNS), or ``FAIL``."""
    from email_validator import EmailNotValidError, validate_email

    text = unicodedata.normalize("NFKC", raw).strip().strip("<>").replace("＠", "@")
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return FAIL
    out = info.normalized
    return out.lower() if lowercase else out


# Plain ASCII addresses of this shape are accepted by email-validator as they stand and come back
# with the domain lower-cased; they are recognised in a few Arrow (RE2) passes over the column instead
# of ~170 us per call. Everything else (IDN, quoted local parts, full-width ＠, odd lengths) goes through
# email-validator itself. The local part: 1-63 characters, starting with a letter or digit, no "..",
# no "." at the end (RE2 has no lookarounds: its length is checked apart). Shared with the e-mail check
# (validation/checks.py); proved equal value by value in tests/mappings/test_email_fast_path.py and
# tests/validation/test_checks.py.
_EMAIL_PLAIN = (r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_%+-])*@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$")


def plain_emails(values) -> np.ndarray:
    """Per value (str or None; or an Arrow string array): a plainly written ASCII address that
    email-validator accepts as it stands: the shape above, at most 254 characters, no "--" in the domain
    (xn-- punycode, or hyphens where IDNA forbids them), not a special-use domain."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    arr = values if isinstance(values, pa.Array) else strings(values)
    ok = pc.and_(pc.match_substring_regex(arr, _EMAIL_PLAIN), pc.less_equal(pc.utf8_length(arr), 254))
    ok = pc.and_(ok, pc.less_equal(pc.find_substring(arr, "@"), 63))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(arr, "@.*--")))
    # the last label, case-insensitively, among the special-use names (a name with a dot is never one label)
    names = "|".join(re.escape(n) for n in SPECIAL_USE_DOMAIN_NAMES if "." not in n)
    special = pc.match_substring_regex(arr, rf"\.(?:{names})$", ignore_case=True)
    return flags(pc.and_(ok, pc.invert(special)))


def fast_email(series: pd.Series, *, lowercase: bool = True, arrow=None) -> pd.Series:
    """``normalize_email`` for plainly written ASCII addresses; None for every other value (``arrow``: the
    values in Arrow, when the caller has them)."""
    import pyarrow.compute as pc
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    text = pc.utf8_trim(column_strings(series, arrow)[1], WHITESPACE)  # str.strip()
    ok = plain_emails(text)
    out = np.full(len(series), None, dtype=object)
    if ok.any():
        plain = text.filter(ok)
        if lowercase:  # ASCII: Arrow's lower case is str.lower()
            out[ok] = pc.ascii_lower(plain).to_numpy(zero_copy_only=False)
        else:
            plain = pd.Series(plain.to_numpy(zero_copy_only=False), dtype=object)
            parts = plain.str.rsplit("@", n=1)
            local = parts.str[0]
            # RFC 2142 role mailboxes (info, sales, postmaster ...) come back lower-cased
            role = local.str.lower().isin(list(CASE_INSENSITIVE_MAILBOX_NAMES))
            out[ok] = (local.where(~role, local.str.lower()) + "@" + parts.str[1].str.lower()).to_numpy(dtype=object)
    return pd.Series(out, index=series.index, dtype=object)


def email(series: pd.Series, *, lowercase: bool = True, arrow=None) -> Applied:
    """E-mail addresses: NFKC, trimmed, syntax-checked, domain lower-cased (whole address by default)."""
    fast = fast_email(series, lowercase=lowercase, arrow=arrow)
    taken = fast.notna().to_numpy()
    if not taken.any():
        return map_unique(series, lambda v: normalize_email(v, lowercase=lowercase))
    return finish(series, *_with_rest(series, fast, ~taken, lambda rest: map_unique(
        rest, lambda v: normalize_email(v, lowercase=lowercase))))


def _with_rest(series: pd.Series, fast: pd.Series, rest: np.ndarray, slow) -> tuple[pd.Series, pd.Series]:
    """(values, failed) of a fast path's results completed by ``slow`` (a whole-column transform, value
    by value) run on the ``rest`` rows only: what ``slow`` would give on them within the whole column."""
    values, failed = fast.copy(), pd.Series(False, index=series.index)
    if rest.any():
        done = slow(series[rest])
        values[rest], failed[rest] = done.values.to_numpy(), done.failed.to_numpy()
    return values, failed
