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

import pandas as pd
from pydantic import Field

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


@lru_cache(maxsize=1)
def _geocoded_area_codes() -> dict[str, str]:
    """City name (zh and en, with or without 市) -> Chinese area code, derived from phonenumbers' geocoder.

    Every city of a multi-city description gets its own key; a name shared by several codes keeps the
    lowest code (the geocoder lists the main city of a code first, so collisions are rare).
    """
    from phonenumbers import geocoder

    table: dict[str, str] = {}
    for code in [str(c) for c in range(10, 30)] + [str(c) for c in range(310, 1000)]:
        num = _probe(code)
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
    for table in (extra or {}, _geocoded_area_codes()):
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
    code = area_code_for(city, area_codes)
    for text in rewrite_extension(unicodedata.normalize("NFKC", raw).strip()):
        candidates.append(text)
        digits = re.sub(r"\D", "", text.split(" ext. ")[0])
        # 7-8 digits without a leading 0 or 1: a local fixed-line number missing its area code.
        if code and not text.startswith("+") and digits[:1] not in ("0", "1") and 7 <= len(digits) <= 8:
            candidates.append(f"0{code} {text}")
    for cand in candidates:
        try:
            num = phonenumbers.parse(cand, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return _format(num, format, keep_extension)
    return FAIL


def fast_mobile_e164(series: pd.Series, region: str) -> pd.Series:
    """E.164 for plainly written mobile numbers of ``region`` (ASCII digits, spaces, dashes, optional +CC);
    None for every other value.

    Only numbers that match the region's mobile pattern and possible lengths from phonenumbers' own
    metadata are taken, which is exactly when ``is_valid_number`` says yes for such a number; anything
    else (fixed lines, extensions, full-width digits, junk) is left to the per-value path. Legacy phone
    columns are mostly distinct mobiles, so this keeps 1M-row runs off one library call per row.
    """
    import re as _re

    from phonenumbers import PhoneMetadata, country_code_for_region

    none = pd.Series(None, index=series.index, dtype=object)
    md = PhoneMetadata.metadata_for_region(region.upper())
    desc = md.mobile if md is not None else None
    if desc is None or not desc.national_number_pattern:
        return none
    cc = country_code_for_region(region.upper())
    lengths = set(desc.possible_length or ()) or set((md.general_desc.possible_length or ()))
    text = as_text(series)
    cleaned = text.where(~is_missing(text)).astype(object).str.replace(r"[ \-]", "", regex=True)
    national = cleaned.str.extract(rf"^(?:\+{cc})?([0-9]{{4,17}})$", expand=False)
    pattern = _re.compile(desc.national_number_pattern)
    ok = [isinstance(n, str) and len(n) in lengths and pattern.fullmatch(n) is not None for n in national.array]
    ok_mask = pd.Series(ok, index=series.index, dtype=bool)
    out = none.copy()
    if ok_mask.any():
        out.loc[ok_mask] = ("+" + str(cc) + national[ok_mask]).astype(object)
    return out


# Regions whose fixed lines written with the trunk prefix (``021-6234 5678``) are checked against
# phonenumbers' metadata in one pass: there the prefix is a plain "0" that parse() strips whenever the
# rest is a viable national number. Proved value by value in tests/mappings/test_phone_fast_path.py.
_TRUNK_FAST_REGIONS = {"CN"}
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")


def _desc_match(national: pd.Series, desc) -> pd.Series:
    if desc is None or not desc.national_number_pattern:
        return pd.Series(False, index=national.index)
    hit = national.str.fullmatch(desc.national_number_pattern).fillna(False).astype(bool)
    if desc.possible_length:
        hit &= national.str.len().isin(list(desc.possible_length))
    return hit


def _valid_national(n: pd.Series, md) -> pd.Series:
    """Whether national numbers (digit strings) are valid per the region's metadata: the tests
    ``is_valid_number`` makes (the general pattern and lengths, and some number type)."""
    typed = pd.Series(False, index=n.index)
    for t in _TYPES:
        typed |= _desc_match(n, getattr(md, t, None))
    return _desc_match(n, md.general_desc) & typed


def fast_trunk_e164(series: pd.Series, region: str, city: pd.Series | None = None,
                    area_codes: dict[str, str] | None = None) -> pd.Series:
    """E.164 for plainly written national numbers that phonenumbers' metadata says are valid; None
    for every other value. Taken: the trunk prefix 0 and the rest (``021-6234 5678``, ``(021)62345678``
    after NFKC), and, when a city column is given, a 7-8 digit local number whose city's area code
    completes it (``6234 5678`` in 上海), exactly the candidates ``normalize_phone`` tries."""
    from phonenumbers import PhoneMetadata, country_code_for_region

    none = pd.Series(None, index=series.index, dtype=object)
    if region.upper() not in _TRUNK_FAST_REGIONS:
        return none
    md = PhoneMetadata.metadata_for_region(region.upper())
    cc = "+" + str(country_code_for_region(region.upper()))
    text = as_text(series)
    present = text.where(~is_missing(text)).astype(object)
    cleaned = present.str.normalize("NFKC").str.strip().str.replace(r"[ \-]|^\(|(?<=^\(0\d\d)\)|(?<=^\(0\d\d\d)\)",
                                                                     "", regex=True)
    out = none.copy()
    national = cleaned.str.extract(r"^0([1-9][0-9]{5,11})$", expand=False)
    # Already E.164 (what validation writes): only numbers parse() takes as they stand, i.e. none
    # that its national-prefix-for-parsing pattern would strip (carrier codes such as 17951).
    e164 = cleaned.str.extract(rf"^\{cc}([1-9][0-9]{{4,13}})$", expand=False)
    e164 = e164.where(~e164.str.match(md.national_prefix_for_parsing or "(?!)").fillna(True).astype(bool))
    national = national.where(national.notna(), e164)
    has = national.notna()
    if has.any():
        ok = _valid_national(national[has], md)
        out.loc[ok[ok].index] = (cc + national[has][ok]).astype(object)
    local = cleaned.str.extract(r"^([2-9][0-9]{6,7})$", expand=False)
    has = local.notna() & out.isna()
    if has.any():
        n = local[has]
        as_is = _valid_national(n, md)  # the number as written comes first
        out.loc[as_is[as_is].index] = (cc + n[as_is]).astype(object)
        rest = n[~as_is]
        if city is not None and len(rest):
            cities = as_text(city.reindex(series.index))[rest.index]
            table = {c: area_code_for(c, area_codes) for c in pd.unique(cities.dropna())}
            codes = cities.map(table)
            full = (codes + rest).dropna()
            ok = _valid_national(full, md)
            out.loc[ok[ok].index] = (cc + full[ok]).astype(object)
    return out


def phone(series: pd.Series, *, region: str = "CN", city: pd.Series | None = None,
          area_codes: dict[str, str] | None = None, format: str = "e164", keep_extension: bool = True) -> Applied:
    """Phone numbers to E.164 (default) for ``region``; invalid numbers fail and keep their value."""
    if format == "e164":
        fast = fast_mobile_e164(series, region)
        fast = fast.where(fast.notna(), fast_trunk_e164(series, region, city, area_codes))
        if fast.notna().any():
            rest = series.where(fast.isna())
            slow = _phone_slow(rest, region=region, city=city, area_codes=area_codes, format=format,
                               keep_extension=keep_extension)
            values = slow.values.where(fast.isna(), fast)
            return finish(series, values, slow.failed & fast.isna())
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
# with the domain lower-cased; they are normalised in one vectorised pass instead of ~170 us per
# call. Everything else (IDN, quoted local parts, full-width ＠, odd lengths) goes through
# email-validator itself. Proved equal value by value in tests/mappings/test_email_fast_path.py.
_EMAIL_PLAIN = (r"[A-Za-z0-9](?:[A-Za-z0-9_%+-]|\.(?!\.)){0,62}(?<!\.)@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}")


def fast_email(series: pd.Series, *, lowercase: bool = True) -> pd.Series:
    """``normalize_email`` for plainly written ASCII addresses; None for every other value."""
    from email_validator import SPECIAL_USE_DOMAIN_NAMES
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    text = as_text(series)
    t = text.where(~is_missing(text), None).str.strip()
    ok = t.str.fullmatch(_EMAIL_PLAIN).fillna(False).astype(bool) & (t.str.len() <= 254).fillna(False).astype(bool)
    # "--" in a domain (xn-- punycode, or hyphens in places IDNA forbids) goes to the library
    ok &= ~t.str.contains(r"@.*--", regex=True).fillna(False).astype(bool)
    ok &= ~t.str.rsplit(".", n=1).str[-1].str.lower().isin(list(SPECIAL_USE_DOMAIN_NAMES)).fillna(False).astype(bool)
    out = pd.Series(None, index=series.index, dtype=object)
    if ok.any():
        plain = t[ok]
        if lowercase:
            out.loc[ok] = plain.str.lower()
        else:
            parts = plain.str.rsplit("@", n=1)
            local = parts.str[0]
            # RFC 2142 role mailboxes (info, sales, postmaster ...) come back lower-cased
            role = local.str.lower().isin(list(CASE_INSENSITIVE_MAILBOX_NAMES))
            out.loc[ok] = local.where(~role, local.str.lower()) + "@" + parts.str[1].str.lower()
    return out


def email(series: pd.Series, *, lowercase: bool = True) -> Applied:
    """E-mail addresses: NFKC, trimmed, syntax-checked, domain lower-cased (whole address by default)."""
    fast = fast_email(series, lowercase=lowercase)
    taken = fast.notna()
    if not taken.any():
        return map_unique(series, lambda v: normalize_email(v, lowercase=lowercase))
    slow = map_unique(series.where(~taken, None), lambda v: normalize_email(v, lowercase=lowercase))
    return finish(series, slow.values.where(~taken, fast), slow.failed & ~taken)
