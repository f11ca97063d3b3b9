"""The vectorised phone fast path must give exactly what phonenumbers gives, value by value: the E.164
value it takes, and FAIL where it fails a value."""

import random

import pandas as pd

from crmbridge.mappings.transforms import apply_transform
from crmbridge.mappings.transforms_contact import normalize_phone
from crmbridge.mappings.transforms_phonefast import fast_phone_e164
from crmbridge.mappings.transforms_base import FAIL


def _samples(n=3000, seed=11):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        digits = "1" + "".join(rnd.choice("0123456789") for _ in range(10))
        form = rnd.randrange(5)
        out.append([digits, f"+86{digits}", f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
                    f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", "１" + digits[1:]][form])
    # not mobiles, or not plainly written: must be left to the library
    out += ["021-6234 5678", "010 8888 6666", "6234 5678", "13800138000 转 123", "+1 650 253 0000", "bad", "",
            "1380013800", "138001380001", "+8613800138000-8001"]
    return out


def test_fast_path_agrees_with_phonenumbers_on_every_value_it_takes():
    values = _samples()
    s = pd.Series(values, dtype=object)
    fast, fails = fast_phone_e164(s, "CN")
    taken = fast.notna()
    assert taken.sum() > 1000  # the fast path is really used
    for raw, got in zip(s[taken], fast[taken]):
        assert normalize_phone(raw, region="CN") == got, raw
    for raw in s[fails]:
        assert normalize_phone(raw, region="CN") is FAIL, raw
    # other countries and ambiguous extensions go the library's way
    assert not (taken | fails)[s.isin(["+1 650 253 0000", "+8613800138000-8001", "bad", ""])].any()


def test_phone_transform_same_result_with_and_without_fast_path():
    s = pd.Series(_samples(800, seed=3), dtype=object)
    applied = apply_transform("phone", s, {"region": "CN"})
    for raw, val, failed in zip(s, applied.values, applied.failed):
        expected = normalize_phone(raw, region="CN") if raw and raw.strip() else None
        if expected is FAIL:
            assert failed and val == raw, raw
        elif expected is not None:
            assert not failed and val == expected, raw


def _trunk_samples(n=4000, seed=21):
    from crmbridge.mappings.transforms_contact import _geocoded_area_codes

    rnd = random.Random(seed)
    codes = sorted(set(_geocoded_area_codes().values())) + [str(rnd.randint(10, 999)) for _ in range(40)]
    out = []
    for _ in range(n):
        area = rnd.choice(codes)
        local = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([6, 7, 7, 8, 8, 8, 9])))
        out.append(rnd.choice([f"0{area}-{local}", f"0{area} {local[:4]} {local[4:]}", f"0{area}{local}",
                               f"0{area}-{local[:4]}-{local[4:]}", f"{area}-{local}", f"0{area}-{local}-801",
                               f"0{area}{local} 转 12", f"0-{area}-{local}", f"00{area}{local}", f"({area}){local}",
                               f"(0{area}){local}", f"（0{area}）{local}", f"(0{area}) {local[:4]}-{local[4:]}",
                               local, f"{local[:4]} {local[4:]}", f"{local[:3]}-{local[3:]}", f"１{local}",
                               f"+86{area}{local}", f"+86 {area} {local}", f"+86-{area}-{local}", f"+860{area}{local}"]))
    return out + ["+8617951123456789", "+861795112345678", "+8611234567890", "+8612345678901", "+8640012345678",
                  "+8695512345", "+8613800138000", "+86 21 6234 5678", "013800138000", "0138 0013 8000", "0400 123 4567", "0800-123-4567", "095512345", "01012345678",
                  "021", "0", "021-62345678-8001", "0216234-5678"]


def test_trunk_fast_path_agrees_with_phonenumbers_on_every_value_it_takes():
    values = _trunk_samples()
    s = pd.Series(values, dtype=object)
    fast, fails = fast_phone_e164(s, "CN")
    taken = fast.notna()
    assert taken.sum() > 500 and fails.sum() > 300  # the fast path is really used
    for raw, got in zip(s[taken], fast[taken]):
        assert normalize_phone(raw, region="CN") == got, raw
    for raw in s[fails]:
        assert normalize_phone(raw, region="CN") is FAIL, raw
    us, us_fails = fast_phone_e164(s, "US")
    assert not us.notna().any() and not us_fails.any()  # only regions it is proved for
    cities = ["上海", None, "北京", "nowhere", "Atlantis", "odd"]
    city = pd.Series([cities[i % 6] for i in range(len(s))], dtype=object)
    extra = {"nowhere": "0571", "odd": "0abc"}
    with_city, city_fails = fast_phone_e164(s, "CN", city, extra)
    assert with_city.notna().sum() > taken.sum() + 50  # local numbers completed by the city's area code
    for raw, c, got, failed in zip(s, city, with_city, city_fails):
        expected = normalize_phone(raw, region="CN", city=c, area_codes=extra)
        if got is not None:
            assert expected == got, (raw, c)
        elif failed:
            assert expected is FAIL, (raw, c)


def test_phone_transform_with_city_same_result_with_and_without_fast_paths():
    values = _trunk_samples(1500, seed=8) + _samples(500, seed=2)
    cities = pd.Series([["上海", None, "北京", "杭州"][i % 4] for i in range(len(values))], dtype=object)
    s = pd.Series(values, dtype=object)
    applied = apply_transform("phone", s, {"region": "CN", "city_column": "city"}, frame=pd.DataFrame({"city": cities}))
    for raw, city, val, failed in zip(s, cities, applied.values, applied.failed):
        if not raw.strip():
            assert not failed and (val is None or not val.strip())
            continue
        expected = normalize_phone(raw, region="CN", city=city)
        if expected is FAIL:
            assert failed and val == raw, raw
        else:
            assert not failed and val == expected, raw


def _shaped_samples(n=6000, seed=5):
    """The shapes legacy exports have: +86 / 0086 prefixes, spaces, dashes, brackets, full-width digits,
    extension words, and values on the edge of each (carrier codes, 86 without +, odd characters)."""
    rnd = random.Random(seed)
    codes = ["10", "21", "20", "755", "571", "28", "898", "351", "999", "11", "179"]
    out = []
    for _ in range(n):
        area = rnd.choice(codes)
        local = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([6, 7, 8, 8, 9])))
        mob = rnd.choice(["13", "15", "17", "18", "19", "12", "16", "14"]) + "".join(
            rnd.choice("0123456789") for _ in range(rnd.choice([8, 9, 9, 9, 10])))
        ext = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 7)))
        num = rnd.choice([f"0{area}-{local}", f"0{area} {local}", mob, f"{mob[:3]} {mob[3:7]} {mob[7:]}", local,
                          f"+86 {area} {local}", f"+86{mob}", f"0086 {mob}", f"0086-{area}-{local}", f"86{mob}",
                          f"(0{area}){local}", f"（0{area}）{local}", f"+86-{mob[:3]}-{mob[3:]}", f"0{mob}"])
        tail = rnd.choice(["", "", "", f" 转 {ext}", f"转{ext}", f" 分机 {ext}", f" 分机号：{ext}", f" ext {ext}",
                           f" EXT.{ext}", f"x{ext}", f" extension {ext}", f"-{ext[:4]}", f" 内线 {ext}", " 转 ١٢"])
        value = num + tail
        if rnd.random() < 0.1:
            value = value.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
        if rnd.random() < 0.05:
            value = rnd.choice(["\u3000", " ", "\t", ""]) + value + rnd.choice(["\u3000", " ", "", "\n"])
        out.append(value)
    return out + ["+86 179 5112 3456 78", "0086 0 21 6234 5678", "86 21 6234 5678", "+86 (21) 6234 5678",
                  "021–6234 5678", "021.6234.5678", "+86 138 0013 8000 转 ", "转 123", "ext. 12", "x", "0",
                  "+86", "0086", "0６２３４５６７８", "13800138000", "138 0013 8000 x 123456", "138 0013 8000 x 1234567",
                  "021-6234 5678 转 ١٢٣", "上海 021-6234 5678", "021-6234 5678 (office)"]


def test_fast_path_on_extensions_prefixes_and_adversarial_shapes():
    s = pd.Series(_shaped_samples() + ["", "   ", "\u3000"], dtype=object)
    cities = ["上海", None, "北京", "杭州", "Atlantis", "深圳市"]
    city = pd.Series([cities[i % 6] for i in range(len(s))], dtype=object)
    no_city = pd.Series(None, index=s.index, dtype=object)  # a city column with every value missing
    for keep, city in ((True, city), (False, city), (True, no_city), (True, no_city.astype(float))):
        fast, fails = fast_phone_e164(s, "CN", city, keep_extension=keep)
        assert fast.notna().sum() > 1000 and fails.sum() > 300  # the fast path is really used
        assert fast.str.contains(" ext. ").sum() > (300 if keep else -1)
        for raw, c, got, failed in zip(s, city, fast, fails):
            if got is None and not failed:
                continue
            expected = normalize_phone(raw, region="CN", city=None if c != c else c, keep_extension=keep)
            assert (expected is FAIL) if failed else expected == got, (raw, c, got, failed)


def test_phone_transform_on_shaped_values_equals_the_library():
    """The whole transform (fast path, then the library for the rest) against normalize_phone on every
    value, also with missing values (None, NaN) and a non-unique index."""
    values = _shaped_samples(1500, seed=12) + [None, float("nan"), "", "  "]
    cities = pd.Series([["上海", None, "北京", "杭州"][i % 4] for i in range(len(values))], dtype=object)
    s = pd.Series(values, dtype=object)
    applied = apply_transform("phone", s, {"region": "CN", "city_column": "city"}, frame=pd.DataFrame({"city": cities}))
    for raw, city, val, failed in zip(s, cities, applied.values, applied.failed):
        if not isinstance(raw, str) or not raw.strip():
            assert not failed and (val is None or val == raw), raw
            continue
        expected = normalize_phone(raw, region="CN", city=city)
        if expected is FAIL:
            assert failed and val == raw, raw
        else:
            assert not failed and val == expected and type(val) is str, raw
    idx = pd.Index([i // 2 for i in range(len(s))])  # repeated labels: the fast path works by position
    again = apply_transform("phone", s.set_axis(idx), {"region": "CN"}, distinct=False)
    ref = apply_transform("phone", s, {"region": "CN"}, distinct=False)
    assert again.values.tolist() == ref.values.tolist() and again.failed.tolist() == ref.failed.tolist()


def _edge_values(n=6000, seed=31):
    """Short strings of the characters the reader's steps turn on (digits, +, brackets, dashes, spaces,
    extension letters), with whitespace, full-width forms, CJK and emoji, and missing values."""
    rnd = random.Random(seed)
    chars = "0000111223456789+()- " + "\t\n" + "xXe" + "（）－＋０１" + "\u3000转上😀"
    out = ["".join(rnd.choice(chars) for _ in range(rnd.randint(0, 16))) for _ in range(n)]
    return out + [None, "", " ", "\u3000", "\x1c021-6234 5678\x1f", "(021)6234 5678", "(0212)6234567", "(021))62345678",
                  "((021)62345678", "( 021)62345678", "(021 )62345678", "(21)62345678", "(02)162345678",
                  "0862345678", "+86-0-21-62345678", "008613800138000", "+86 179 5112 3456", "86 13800138000",
                  "021-62345678-8001", "02162345678-80011", "021-6234-5678", "138-0013-8000-12", "😀13800138000"]


def test_vectorised_reader_reads_every_value_as_the_per_value_reader():
    from phonenumbers import PhoneMetadata

    from crmbridge.mappings.transforms_phonefast import _reader, read_all

    strip = PhoneMetadata.metadata_for_region("CN").national_prefix_for_parsing
    values = _edge_values() + _shaped_samples(3000, seed=6) + _trunk_samples(3000, seed=7) + _samples(1000, seed=8)
    text = pd.Series(values, dtype=object).to_numpy()
    got = read_all(text, "86", strip)
    read = _reader("86", strip)
    shaped = 0
    for i, v in enumerate(text):
        want = read(v)
        if want is None:
            assert got.national[i] is None and not (got.bare[i] or got.word[i] or got.dash[i]), repr(v)
            continue
        shaped += 1
        row = (got.national[i], bool(got.bare[i]), got.ext[i], bool(got.word[i]), bool(got.dash[i]))
        assert row == want and type(row[0]) is str, repr(v)
    assert shaped > 4000 and got.dash.sum() > 50 and got.word.sum() > 500 and got.bare.sum() > 1000  # every kind occurs


def _boundary_values():
    """Every prefix the reader cuts (and near misses) before national numbers one digit shorter and longer
    than each shape allows, with separators and brackets between, trailing NULs, huge numbers, extensions."""
    out = []
    prefixes = ("", "0", "00", "+", "+8", "+86", "86", "086", "0086", "00860", "+860", "(010)", "(0", "+-86", "0 086")
    for prefix in prefixes:
        for first in "0123":
            for k in range(2, 17):
                d = prefix + first + "".join(str((i * 7 + k) % 10) for i in range(k - 1))
                out += [d, d[:len(prefix) + 3] + "-" + d[len(prefix) + 3:], d + "\x00", prefix + " " + d[len(prefix):]]
                out += [d + "-12", d + "-123456", d + " x12", "e" + d]
    return out + ["9" * 40, "+86" + "1" * 30, "0" * 30, "+86", "0086", "0", "00", "", "-", "--13800138000", "+86-",
                  "0-", "13800138000\x00\x00", "1 3 8 0 0 1 3 8 0 0 0", "８６13800138000", "+86１３８００１３８０００",
                  "１７９５１１２３４５６"]


def test_reader_at_the_shapes_length_and_prefix_boundaries():
    """``read_all`` (Arrow: the prefix cut, the digits and length test, the refusals) against ``_reader``
    on numbers one digit either side of every shape's lengths, after every prefix it could cut."""
    from phonenumbers import PhoneMetadata

    from crmbridge.mappings.transforms_phonefast import _reader, read_all

    strip = PhoneMetadata.metadata_for_region("CN").national_prefix_for_parsing
    text = pd.Series(_boundary_values(), dtype=object).to_numpy()
    got, read = read_all(text, "86", strip), _reader("86", strip)
    for i, v in enumerate(text):
        want = read(v) or (None, False, "", False, False)
        assert (got.national[i], bool(got.bare[i]), got.ext[i], bool(got.word[i]), bool(got.dash[i])) == want, repr(v)
    assert sum(v is not None for v in got.national) > 1000 and got.dash.sum() > 100  # every kind occurs
    assert got.numbers is None  # "x12" extensions are read by ``_reader``: no Arrow copy of the numbers
    plain = [v for v in text if v.isascii() and not any(c in v for c in "eExX")]
    got = read_all(pd.Series(plain, dtype=object).to_numpy(), "86", strip)
    assert got.numbers.to_pylist() == got.national.tolist() and got.national.any()
    values = pd.Series(_boundary_values(), dtype=object)
    fast, fails = fast_phone_e164(values, "CN")
    for raw, value, failed in zip(values, fast, fails):
        if value is not None or failed:
            expected = normalize_phone(raw, region="CN")
            assert (expected is FAIL) if failed else expected == value, repr(raw)


def test_valid_national_of_every_length_is_phonenumbers_is_valid_number():
    """The lengths are tested before the patterns: numbers of every length 1-17 after the first digits of
    each number type, and the empty string and None (never valid)."""
    import phonenumbers
    from phonenumbers import PhoneMetadata, PhoneNumber

    from crmbridge.mappings.transforms_phonefast import valid_national

    rnd = random.Random(23)
    numbers = [p + "".join(rnd.choice("0123456789") for _ in range(k)) for p in "123456789" for k in range(17)
               for _ in range(30)]
    numbers += [p + "".join(rnd.choice("0123456789") for _ in range(k)) for p in ("10", "13", "1740", "400", "800",
                "95", "96", "179", "86", "21", "755") for k in range(14) for _ in range(30)]
    got = valid_national(pd.Series(numbers + ["", None], dtype=object), PhoneMetadata.metadata_for_region("CN"))
    assert not got.iloc[-2:].any()
    want = [phonenumbers.is_valid_number(PhoneNumber(country_code=86, national_number=int(v))) for v in numbers]
    assert got.iloc[:-2].tolist() == want and 300 < sum(want) < len(want) - 300


def test_valid_national_is_phonenumbers_is_valid_number():
    import phonenumbers
    from phonenumbers import PhoneMetadata, PhoneNumber

    from crmbridge.mappings.transforms_phonefast import valid_national

    rnd = random.Random(17)
    numbers = ["".join([rnd.choice("123456789")] + [rnd.choice("0123456789") for _ in range(rnd.randint(3, 15))])
               for _ in range(20000)]
    numbers += [p + "".join(rnd.choice("0123456789") for _ in range(k)) for p in ("1", "13", "138", "10", "21", "400",
                "800", "95", "755", "179", "86") for k in range(4, 11) for _ in range(20)]
    got = valid_national(pd.Series(numbers + [None], dtype=object), PhoneMetadata.metadata_for_region("CN"))
    assert not got.iloc[-1]  # a missing number is not valid
    want = [phonenumbers.is_valid_number(PhoneNumber(country_code=86, national_number=int(v))) for v in numbers]
    assert got.iloc[:-1].tolist() == want
    assert 1000 < sum(want) < len(want) - 1000  # valid and invalid numbers of every kind


def test_arrow_whitespace_is_what_str_strip_removes_and_unencodable_text_is_left_alone():
    import sys

    from crmbridge.mappings.transforms_arrow import WHITESPACE, strings

    assert WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    values = pd.Series(["13800138000", "\ud800138", None, "+8613800138000"], dtype=object)
    assert strings(values.to_numpy()).to_pylist() == ["13800138000", None, None, "+8613800138000"]
    fast, fails = fast_phone_e164(values, "CN")  # the unencodable value goes the library's way
    assert fast.tolist() == ["+8613800138000", None, None, "+8613800138000"] and not fails.any()


def test_nfkc_of_full_width_forms_by_arrow_is_pythons():
    """``read_all`` puts values made of ASCII and full-width forms through Arrow's NFKC: Python's, on every
    such character alone, in random strings and in phone numbers written full-width; with any other
    character in the column (``转``) Python normalises, and the readings are ``_reader``'s either way."""
    import re
    import unicodedata

    import numpy as np
    import pyarrow.compute as pc
    from phonenumbers import PhoneMetadata

    from crmbridge.mappings.transforms_arrow import strings
    from crmbridge.mappings.transforms_phonefast import _WIDTH_ONLY, _nfkc, _reader, read_all

    chars = [chr(c) for c in range(0x80)] + [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
    rnd = random.Random(11)
    width = "（）０１２３４５６７８９－＋　ｅｘＸ"
    phones = ["（０２１）６２３４ ５６７８", "１３８ ００１３ ８０００", "＋８６ １３８００１３８０００", "０２１－６２３４５６７８ ｘ１２",
              "(010)3142９110", "\u3000１３８００１３８０００\u3000", "０２１　６２３４５６７８－８００１"]
    values = chars + ["".join(rnd.choice(chars) for _ in range(rnd.randrange(13))) for _ in range(3000)] + phones + [
        "".join(rnd.choice(width + "0123456789 -") for _ in range(rnd.randrange(8, 16))) for _ in range(3000)] + [None]
    text = np.array(values, dtype=object)
    arr = strings(text)
    wide = np.flatnonzero(~pc.fill_null(pc.string_is_ascii(arr), True).to_numpy(zero_copy_only=False))
    assert len(wide) > 3000 and all(re.fullmatch("[\x00-\x7f\u3000\uff01-\uff5e]*", v) for v in text[wide])
    assert pc.all(pc.match_substring_regex(arr.take(wide), _WIDTH_ONLY)).as_py()  # Arrow's branch is taken
    assert _nfkc(arr, text, wide).to_pylist() == [v if v is None else unicodedata.normalize("NFKC", v) for v in values]
    strip = PhoneMetadata.metadata_for_region("CN").national_prefix_for_parsing
    read = _reader("86", strip)
    for column in (text, np.append(text, "０２１ ６２３４ ５６７８ 转 12")):  # the second: Python's NFKC
        got = read_all(column, "86", strip)
        for i, v in enumerate(column):
            want = read(v)
            row = (got.national[i], bool(got.bare[i]), got.ext[i], bool(got.word[i]), bool(got.dash[i]))
            assert row == (want if want is not None else (None, False, "", False, False)), repr(v)
        assert got.national[len(chars) + 3000: len(chars) + 3000 + len(phones)].tolist().count(None) < 3
