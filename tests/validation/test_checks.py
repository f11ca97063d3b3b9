"""The vectorised fast paths of the e-mail and phone checks agree with the libraries themselves."""

from __future__ import annotations

import pandas as pd

from crmbridge.validation.checks import email_check, email_valid, phone_check, phone_valid

EMAILS = ["info@example.cn", "a.b-c+d@sub.example.com", "x@y", "bad@", "a..b@example.cn", ".a@example.cn",
          "a.@example.cn", "a@example.test", "a@localhost", "a@-bad.example.cn", "a@bad-.example.cn",
          "a@xn--ls8h.la", "用户@例子.中国", "a@b.c", "a@example.123", "A@EXAMPLE.CN", "a b@example.cn",
          "a@exa_mple.cn", "x" * 65 + "@example.cn", "a@" + "b" * 64 + ".cn", "a%b@example.cn", None]
PHONES = ["+8613800138000", "+862162345678", "+86 21 6234 5678", "+8610888866661", "+861380013800",
          "+8640012345678", "+864001234567", "+8695512345", "+86123", "+8612345678901", "+8619912345678",
          "+862162345678 ext. 123", "13800138000", "+12125550100", "+8620123", "+8675512345678", None]


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
    return out + ["", " ", "91310000MA1FL2XQ3A", "9131 0000 MA1F L2XQ 3A", "91310000ma1fl2xq3a", "Ｙ1310000MA1FL2XQ3A"]


def test_uscc_vectorised_check_agrees_with_stdnum_value_by_value():
    from crmbridge.validation.checks import uscc_check, uscc_valid

    values = _uscc_samples()
    got = uscc_check(pd.Series(values + [None], dtype=object))
    assert got.iloc[-1] is None
    assert sum(1 for g in got if g is True) > 400 and sum(1 for g in got if g is False) > 1000
    for v, g in zip(values, got):
        assert g is uscc_valid(v), repr(v)


def test_fast_paths_on_distinct_values_equal_every_value():
    """``per_distinct`` runs the e-mail and phone fast paths and the country-to-region step once per
    distinct value; the result per row (and its dtype) is what the functions give on every row."""
    from crmbridge.validation import checks

    mixed = ["1", 1, 1.0, True, None, float("nan"), "CN", "cn", "ＣＮ", "中国", "US", "CN", 1]
    cases = [(checks._email_fast_values, EMAILS * 3 + [None, 1, "1"]),
             (checks._phone_reading_values, PHONES * 3 + ["+86 13800138000", 8613800138000, None]),
             (lambda s: checks._region_values(s, "CN"), mixed * 2)]
    for fn, values in cases:
        s = pd.Series(values, dtype=object, index=range(100, 100 + len(values)))
        got, want = checks.per_distinct(s, fn), fn(s)
        assert got.dtype == want.dtype
        assert got.index.equals(want.index)
        assert got.tolist() == want.tolist()
        assert checks.per_distinct(s.iloc[:0], fn).tolist() == []
