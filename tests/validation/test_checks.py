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


def test_phone_fast_path_agrees_with_phonenumbers():
    got = phone_check(pd.Series(PHONES, dtype=object), region="CN")
    for v, g in zip(PHONES, got):
        assert g == (None if v is None else phone_valid(v, "CN")), v
