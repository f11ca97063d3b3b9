"""The vectorised fast paths of the format checks agree with the libraries themselves."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crmbridge.validation.checks import email_check, email_valid
from crmbridge.validation.regionchecks import phone_check, phone_valid

EMAILS = ["info@example.cn", "a.b-c+d@sub.example.com", "x@y", "bad@", "a..b@example.cn", ".a@example.cn",
          "a.@example.cn", "a@example.test", "a@localhost", "a@-bad.example.cn", "a@bad-.example.cn",
          "a@xn--ls8h.la", "用户@例子.中国", "a@b.c", "a@example.123", "A@EXAMPLE.CN", "a b@example.cn",
          "a@exa_mple.cn", "x" * 65 + "@example.cn", "a@" + "b" * 64 + ".cn", "a%b@example.cn",
          "x" * 63 + "@example.cn", "x" * 64 + "@example.cn", "a.-b@example.cn", "a-.b@example.cn", "a@example.cn\n",
          " a@example.cn", "😀@example.cn", "a@例子.cn", "a@b--c.cn", "a--b@example.cn", "A@EXAMPLE.TEST", "a@ex.LOCAL",
          "a@ex.Onion", "", " ", "ａ@example.cn",
          "a@" + ".".join(["abcdefghij"] * 24) + ".cn", None]
PHONES = ["+8613800138000", "+862162345678", "+86 21 6234 5678", "+8610888866661", "+861380013800",
          "+8640012345678", "+864001234567", "+8695512345", "+86123", "+8612345678901", "+8619912345678",
          "+862162345678 ext. 123", "13800138000", "+12125550100", "+8620123", "+8675512345678", None]
# Near the E.164 form the phone transform writes (read apart from the other shapes): carrier-code starts the
# national prefix pattern strips, lengths at and past the bounds, trailing newline, NUL, full-width, spaces.
TRICKY_PHONES = ["+8611012345678", "+8612012345678", "+86179012345678", "+8617912345678", "+861791234567", "+86100",
                 "+8610000", "+8610", "+861", "+8601234567", "+86" + "9" * 13, "+86" + "9" * 14, "+86" + "1" * 13,
                 "+8613800138000\n", "+8613800138000 ", " +8613800138000", "＋8613800138000", "+86１3800138000",
                 "+8613800138000\x00", "+86\u200b13800138000", "+86-138-0013-8000", "+85212345678", "+8613800138000x",
                 "+86 13800138000", "++8613800138000", "+8686123456", "+8613800138000+", "+86\ud80013800138000",
                 "+8640012345", "+864001234567", "+8610123", "+8621123", "+8695512345", "", "+", "+86"]


def test_email_fast_path_agrees_with_email_validator():
    got = email_check(pd.Series(EMAILS, dtype=object))
    for v, g in zip(EMAILS, got):
        assert g == (None if v is None else email_valid(v)), v


def test_email_fast_path_agrees_on_random_addresses():
    import random

    rnd = random.Random(12)
    alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    values = []
    for _ in range(3000):
        local = "".join(rnd.choice(alpha + "._%+-") for _ in range(rnd.randint(1, 12)))
        dom = ".".join("".join(rnd.choice(alpha + "-") for _ in range(rnd.randint(1, 8))) for _ in range(rnd.randint(1, 3)))
        values.append(f"{local}@{dom}." + rnd.choice(["cn", "COM", "org", "test", "x", "中国", "c0m", "museum"]))
    got = email_check(pd.Series(values, dtype=object))
    for v, g in zip(values, got):
        assert g == email_valid(v), v


def test_phone_fast_path_agrees_with_phonenumbers():
    got = phone_check(pd.Series(PHONES, dtype=object), region="CN")
    for v, g in zip(PHONES, got):
        assert g == (None if v is None else phone_valid(v, "CN")), v


def _phone_samples(n=6000, seed=41):
    """Numbers as exports and the phone transform leave them (E.164, trunk, +86 / 0086, brackets, dashes,
    extensions, carrier-code starts), with whitespace, full-width forms, CJK, emoji and junk."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        mob = rnd.choice(["13", "15", "17", "18", "19", "12", "16", "14", "10"]) + "".join(
            rnd.choice("0123456789") for _ in range(rnd.choice([8, 9, 9, 10])))
        area = rnd.choice(["10", "21", "20", "755", "571", "28", "898", "999", "11", "179", "400"])
        local = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([6, 7, 8, 8, 9])))
        value = rnd.choice([f"+86{mob}", f"+86{area}{local}", f"0{area}-{local}", f"(0{area}){local}", mob, local,
                            f"0086 {mob}", f"86{mob}", f"+86 {area} {local}", f"0{area}{local}-{local[:3]}",
                            f"+86{mob} ext. {local[:3]}", f"{mob} 转 12", f"+1 650 253 {local[:4]}",
                            f"+44 20 7946 {local[:4]}",
                            f"0{mob}", f"+860{area}{local}", f"{area}-{local}"])
        r = rnd.random()
        if r < 0.05:
            value = value.translate(str.maketrans("0123456789-()+", "０１２３４５６７８９－（）＋"))
        elif r < 0.1:
            value = rnd.choice([" ", "\u3000", "\t", "☎", "电话"]) + value + rnd.choice(["", " ", "😀", "\n"])
        out.append(value)
    return out + ["", " ", "+", "+86", "0", "x", "😀", "上海"] + TRICKY_PHONES


def test_phone_check_equals_phonenumbers_per_row_and_region():
    from crmbridge.validation.regionchecks import _DECIDED, _VALID, _phone_readings, _regions

    values = _phone_samples()
    countries = ["CN", "US", None, "中国", "cn", "GB", "ＣＮ", "Atlantis"]
    s = pd.Series(values + [None, float("nan")], dtype=object)
    country = pd.Series([countries[i % len(countries)] for i in range(len(s))], dtype=object)
    for default in ("CN", "US"):
        regions = _regions(s, country, default)
        got = phone_check(s, region=default, country=country)
        for v, r, g in zip(s, regions, got):
            assert g == (None if v is None or v != v else phone_valid(str(v), r)), (v, r)
    bits = _phone_readings(s)[1]
    decided = (bits & _DECIDED).astype(bool)
    assert decided.sum() > 3000 and (decided & ~(bits & _VALID).astype(bool)).sum() > 1000  # both verdicts fast


def _uscc_samples(n=4000, seed=5):
    import random

    from stdnum.cn import uscc

    from crmbridge.validation.checks import _USCC_ALPHABET

    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        first = rnd.choice("123456789ANY" + "BZ0")
        body = first + rnd.choice(_USCC_ALPHABET) + "".join(rnd.choice("0123456789") for _ in range(6)) + \
            "".join(rnd.choice(_USCC_ALPHABET) for _ in range(9))
        check = uscc.calc_check_digit("1" + body[1:]) if first in "BZ" else uscc.calc_check_digit(body)
        form = rnd.randrange(8)
        if form == 0:  # wrong check character
            check = rnd.choice(_USCC_ALPHABET.replace(check, ""))
        code = body + check
        out.append([code, code, code, code.lower(), code + "\n", code[:17], code + "0", code[:9] + "I" + code[10:]][form])
    wide = [c[:2] + c[2:8].translate(str.maketrans("0123456789", rnd.choice(["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩"]))) + c[8:]
            for c in out[:300]]
    return out + wide + ["", " ", "\u3000", "91310000MA1FL2XQ3A", "9131 0000 MA1F L2XQ 3A", "91310000ma1fl2xq3a",
                         "Ｙ1310000MA1FL2XQ3A", "91310000MA1FL2XQ3A\n\n", "91310000MA1FL2XQ3A ", "😀1310000MA1FL2XQ3A",
                         "统一社会信用代码", "91310000MA1FL2XQ3A😀"]


def test_uscc_vectorised_check_agrees_with_stdnum_value_by_value():
    from crmbridge.validation.checks import uscc_check, uscc_valid

    values = _uscc_samples()
    got = uscc_check(pd.Series(values + [None], dtype=object))
    assert got.iloc[-1] is None
    assert sum(1 for g in got if g is True) > 400 and sum(1 for g in got if g is False) > 1000
    for v, g in zip(values, got):
        assert g is uscc_valid(v), repr(v)


def test_uscc_check_reads_18_byte_values_and_others_from_the_arrow_buffers():
    """Every value 18 bytes (the buffer read as it lies), or some 19 ("\\n": read by offsets); a column
    that is not text, repeated non-ASCII values, missing values of every kind, a sliced Series."""
    from crmbridge.validation.checks import uscc_check, uscc_valid

    codes = [c for c in _uscc_samples(600, seed=9) if len(c) == 18 and c.isascii()]
    for values in (codes, codes[:50] + [codes[0] + "\n"] + codes[50:], ["Ｙ1310000MA1FL2XQ3A"] * 5 + codes[:3],
                   [91310000, 1.5, True, None, float("nan"), pd.NA, "91310000MA1FL2XQ3A"], []):
        s = pd.Series(values, dtype=object)
        for part in (s, s.iloc[1:]):
            got = uscc_check(part)
            assert got.index.equals(part.index) and got.dtype == object
            assert got.tolist() == [None if pd.isna(v) else uscc_valid(str(v)) for v in part], values[:3]


def test_as_numbers_arrow_path_equals_pandas_bit_for_bit():
    """Plain integer text is cast in Arrow; any other column goes through ``pd.to_numeric``. Both give the
    same float64 bits (NaN, -0.0 included), index and name as ``pd.to_numeric`` on every column."""
    from crmbridge.validation.checks import _plain_integers, as_numbers

    def old(s):
        return pd.to_numeric(s.astype(object), errors="coerce").astype("float64")

    big = "9" * 15
    columns = [["445200", "0", "-1", big, "-" + big, None], ["1", "2", float("nan")], ["1", "2", pd.NA], ["1", "2"],
               ["-0", "1"], ["-0", None], ["-00", None], ["007", "1"], ["9" * 16, "1"], ["1.5", "2"], ["1e3"], [" 1", "2"], ["１２", "3"], ["+1"],
               ["", "1"], ["1", 2], [True, "1"], [1, 2.5], ["1\n"], ["1", "a\ud800"], [None, None], [], ["inf"],
               ["18446744073709551615", "-1"], ["9007199254740993", None], ["-" + big, "1.5", None]]
    seen_fast = 0
    for values in columns:
        for dtype in (object, "str", "string"):
            try:
                s = pd.Series(values, dtype=dtype, index=range(3, 3 + len(values)), name="amount")
            except (TypeError, ValueError):
                continue
            got, want = as_numbers(s), old(s)
            seen_fast += _plain_integers(s) is not None
            assert got.dtype == want.dtype == np.float64 and got.name == want.name, values
            assert got.index.equals(want.index)
            assert got.to_numpy().view(np.int64).tolist() == want.to_numpy().view(np.int64).tolist(), (values, dtype)
    assert seen_fast >= 9
    for s in (pd.Series([1.5, None]), pd.Series([1, 2]), pd.Series(pd.to_datetime(["2020-01-01"]))):
        assert _plain_integers(s) is None


def test_fast_paths_on_distinct_values_equal_every_value():
    """The e-mail and phone fast paths run once per distinct text (an Arrow dictionary), the
    country-to-region step once per distinct country; per row that is what they give on every value."""
    from phonenumbers import PhoneMetadata

    from crmbridge.mappings.transforms_contact import plain_emails
    from crmbridge.validation import checks, regionchecks
    from crmbridge.validation.columntext import texts

    md = PhoneMetadata.metadata_for_region("CN")
    mixed = ["1", 1, 1.0, True, None, float("nan"), "CN", "cn", "ＣＮ", "中国", "US", "CN", 1]
    # (text UTF-8 cannot hold only in a column of str: pandas' astype(str) refuses it, as it always did)
    for values in (EMAILS * 3 + [None, 1, "1"], EMAILS + ["a\ud800@example.cn"], PHONES * 3 + [8613800138000],
                   PHONES + TRICKY_PHONES):
        s = pd.Series(values, dtype=object, index=range(100, 100 + len(values)))
        text = texts(s)
        present, fast = checks._email_fast(s)
        assert present.tolist() == s.notna().tolist()
        assert fast.tolist() == plain_emails(text).tolist()
        present, bits = regionchecks._phone_readings(s)
        want = [0 if t is None else int(regionchecks._reading_bits(np.array([t], dtype=object), md)[0]) for t in text]
        assert bits.tolist() == want
    mixed += [pd.NA, pd.NaT, "ß", "ﬀ", "CN\n", " CN", "C", "CNN", "Ｕｓ", "ＵＳＡ", "c\u0301n", "中", 12, "i̇t", "İT", "ǅ1"]
    s = pd.Series(mixed * 2, dtype=object, index=range(7, 7 + 2 * len(mixed)))
    for country in (s, s.iloc[:0], s.iloc[:6].astype("str")):
        got, want = regionchecks._regions(country, country, "CN"), _previous_region_values(country, "CN")
        assert got.dtype == object and got.index.equals(country.index)
        assert got.tolist() == want.tolist()
        assert regionchecks._region_values(country, "XX").tolist() == _previous_region_values(country, "XX").tolist()


def _previous_region_values(country, default):
    """The country-to-region step before it looped over the distinct values: pandas string methods."""
    import unicodedata

    c = country.astype(object).where(country.notna(), "").map(lambda v: unicodedata.normalize("NFKC", str(v)).upper())
    return c.where(c.str.fullmatch(r"[A-Z]{2}").fillna(False).astype(bool), default)


def test_postal_check_equals_postal_valid_per_row_and_region():
    """``_pairwise`` finds the distinct (value, region) pairs by integer codes; every row still gets
    ``postal_valid(str(value), region)``. ``10`` and ``10.0`` read differently (a merged pair would not)."""
    import random

    from crmbridge.validation.regionchecks import _regions, postal_check, postal_valid

    rnd = random.Random(7)
    pool = ["200120", "２００１２０", " 200120 ", "20012", "10001", "10001-1234", "SW1A 1AA", "sw1a1aa", "100-0001",
            "1000001", "HK", "", " ", "邮编", "٢٠٠١٢٠", "A1", 10, 10.0, 200120, True, "10", "10.0", None, float("nan")]
    values = [rnd.choice(pool) for _ in range(3000)] + pool
    countries = ["CN", "US", None, "gb", "ＪＰ", "中国", "XX", "HK", float("nan"), 1]
    s = pd.Series(values, dtype=object, index=range(50, 50 + len(values)))
    country = pd.Series([countries[i % len(countries)] for i in range(len(s))], dtype=object, index=s.index)
    for default in ("CN", "US"):
        regions = _regions(s, country, default)
        got = postal_check(s, region=default, country=country)
        assert got.index.equals(s.index) and got.dtype == object
        for v, r, g in zip(s, regions, got):
            assert g is (None if v is None or v != v else postal_valid(str(v), r)), (v, r)
        assert {True, False, None} <= set(got.tolist())
    got = postal_check(pd.Series([10, 10.0, "10.0"], dtype=object), region="XX")
    assert got.tolist() == [True, False, False]
    assert postal_check(pd.Series([None, None], dtype=object)).tolist() == [None, None]


def _arrow_columns(values):
    """``values`` as Arrow text the ways a batch holds it: string, large_string, in two chunks."""
    import pyarrow as pa

    half = len(values) // 2
    return [pa.chunked_array([pa.array(values, pa.string())]), pa.chunked_array([pa.array(values, pa.large_string())]),
            pa.chunked_array([pa.array(values[:half], pa.string()), pa.array(values[half:], pa.string())])]


def test_checks_reading_the_batch_arrow_text_equal_the_frame_checks():
    """Validate hands the format checks its batch's Arrow table (``Rule.derive_arrow``): e-mail, phone, USCC
    and postal codes read their text columns there as they are; per row the verdicts of the frame's column."""
    import pyarrow as pa

    from crmbridge.validation.checks import uscc_check
    from crmbridge.validation.columntext import arrow_text
    from crmbridge.validation.regionchecks import postal_check

    phones = [v for v in _phone_samples(1500) + PHONES if v is None or not re.search("[\ud800-\udfff]", v)]
    usccs = _uscc_samples(1500) + [None, None]
    postal = ["200120", "２００１２０", " 200120 ", "20012", "10001", "SW1A 1AA", "100-0001", "HK", "", "邮编", None] * 30
    countries = ["CN", "US", None, "gb", "ＪＰ", "中国", "XX", "HK", ""]
    country = [countries[i % len(countries)] for i in range(len(postal))]
    for values, check in ((EMAILS, email_check), (phones, lambda s, a: phone_check(s, region="CN", arrow=a)),
                          (usccs, uscc_check)):
        s = pd.Series(values, dtype=object, index=range(9, 9 + len(values)))
        want = check(s, None)
        assert {True, False, None} <= set(want.tolist())
        for col in _arrow_columns(values):
            got = check(s, arrow_text(pa.table({"c": col}), "c"))
            assert got.index.equals(s.index) and got.tolist() == want.tolist()
    s, cs = pd.Series(postal, dtype=object), pd.Series(country, dtype=object)
    for default in ("CN", "US"):
        want = postal_check(s, region=default, country=cs)
        assert {True, False, None} <= set(want.tolist())
        for col, ccol in zip(_arrow_columns(postal), _arrow_columns(country)):
            t = pa.table({"p": col, "c": ccol})
            got = postal_check(s, region=default, country=cs, arrow=arrow_text(t, "p"), country_arrow=arrow_text(t, "c"))
            assert got.tolist() == want.tolist()
    t = pa.table({"n": pa.array([1, 2]), "s": pa.array(["a", None])})
    assert arrow_text(t, "n") is None and arrow_text(t, "x") is None and arrow_text(None, "s") is None
    assert arrow_text(t, "s").to_pylist() == ["a", None]
