"""The vectorised e-mail fast path must give exactly what email-validator gives, value by value."""

import random

import pandas as pd

from crmbridge.mappings.transforms import apply_transform
from crmbridge.mappings.transforms_base import FAIL
from crmbridge.mappings.transforms_contact import fast_email, normalize_email

ODD = ["info@example.cn", " INFO@Example.CN ", "a.b-c+d@Sub.Example.com", "x@y", "bad@", "a..b@example.cn",
       ".a@example.cn", "a.@example.cn", "a@example.test", "a@localhost", "a@b.local", "a@-bad.example.cn",
       "a@bad-.example.cn", "a@xn--ls8h.la", "用户@例子.中国", "a@b.c", "a@example.123", "a b@example.cn",
       "a@exa_mple.cn", "x" * 64 + "@example.cn", "x" * 65 + "@example.cn", "a@" + "b" * 63 + ".cn",
       "a@" + "b" * 64 + ".cn", "a%b@example.cn", "<a@example.cn>", "a＠example.cn", "ａ@example.cn",
       "a@example.cn\u3000", "\ta@example.cn\n", "a@EXAMPLE.ONION", "a_b@example.museum", "-a@example.cn",
       "a@example.c", "Sales@Example.cn", "PostMaster@x.cn", "a@" + ".".join(["abcdefghij"] * 24) + ".cn", "A@B.CN", "", "  ", None]


def _samples(n=4000, seed=9):
    rnd = random.Random(seed)
    alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out = []
    for _ in range(n):
        local = "".join(rnd.choice(alpha + "._%+-") for _ in range(rnd.randint(1, 12)))
        dom = ".".join("".join(rnd.choice(alpha + "-") for _ in range(rnd.randint(1, 8))) for _ in range(rnd.randint(1, 3)))
        tld = rnd.choice(["cn", "COM", "org", "test", "x", "中国", "c0m", "museum"])
        out.append(rnd.choice(["", " "]) + f"{local}@{dom}.{tld}" + rnd.choice(["", " ", "\u3000"]))
    return out + ODD


def test_fast_email_agrees_with_email_validator_on_every_value_it_takes():
    values = _samples()
    s = pd.Series(values, dtype=object)
    for lowercase in (True, False):
        fast = fast_email(s, lowercase=lowercase)
        taken = fast.notna()
        assert taken.sum() > 800  # the fast path is really used
        for raw, got in zip(s[taken], fast[taken]):
            assert normalize_email(raw, lowercase=lowercase) == got, raw


def test_email_transform_same_result_with_and_without_fast_path():
    values = _samples(1500, seed=4)
    for lowercase in (True, False):
        applied = apply_transform("email", pd.Series(values, dtype=object), {"lowercase": lowercase})
        for raw, got, failed in zip(values, applied.values, applied.failed):
            if raw is None or not str(raw).strip():
                assert got is None or not str(got).strip()
                continue
            want = normalize_email(raw, lowercase=lowercase)
            assert failed == (want is FAIL), raw
            assert got == (raw if want is FAIL else want), raw
