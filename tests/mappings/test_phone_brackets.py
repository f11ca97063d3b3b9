"""The phone fast path on the brackets of an area code, value by value: a value written with full-width
forms is read as its NFKC (Python's) is read, and what the fast path takes from bracketed shapes and their
near misses (a missing or extra bracket, a space or dash inside, full-width) is what phonenumbers gives."""

import random
import unicodedata

import numpy as np
import pandas as pd
from phonenumbers import PhoneMetadata

from crmbridge.mappings.transforms_base import FAIL
from crmbridge.mappings.transforms_contact import normalize_phone
from crmbridge.mappings.transforms_phonefast import fast_phone_e164, read_all

STRIP = PhoneMetadata.metadata_for_region("CN").national_prefix_for_parsing


def _bracketed(n_per_length=300, seed=12):
    rnd = random.Random(seed)
    opens = ["(", "（", "( ", "(0", "(01", "(021)", "(0755)", "(07555)", "(021", "(02a)", "(1021)", "((021)", "(021))",
             "(0 21)", "(021 )", "(0-21)", "（０２１）", "（021）", "(010）", ")", ""]
    values = [rnd.choice(opens) + rnd.choice(["", " ", "-"]) + "".join(rnd.choice("0123456789") for _ in range(k))
              + rnd.choice(["", "-12", " x12", ")"]) for k in range(4, 13) for _ in range(n_per_length)]
    return values + _area_coded(n_per_length * 4, rnd) + ["(", "()", "(0)", "(00)", "(000)", "(0000)", "（", "）", "（）"]


def _area_coded(n, rnd):
    """Numbers of the right length after real area codes in brackets, as exported columns write them."""
    return [rnd.choice(["(021)", "(010)", "（021）", "(0755)", "（０７５５）", "(020) ", "(0571)-", "(0755) "])
            + rnd.choice("2345678") + "".join(rnd.choice("0123456789") for _ in range(rnd.choice((6, 7))))
            for _ in range(n)]


def _rows(r):
    return list(zip(r.national, r.bare.tolist(), r.ext, r.word.tolist(), r.dash.tolist()))


def test_full_width_values_read_as_their_nfkc():
    rnd = random.Random(8)
    width = "（）０１２３４５６７８９－＋　ｅ"
    values = ["".join(rnd.choice(width + "0123456789 -()") for _ in range(rnd.randrange(1, 16))) for _ in range(4000)]
    values += ["（０２１）６２３４５６７８", "（010）31429110", "（0755）1234567", "x（y）"] + _bracketed(50)
    wide = np.array(values, dtype=object)
    nfkc = np.array([unicodedata.normalize("NFKC", v) for v in values], dtype=object)
    got, want = read_all(wide, "86", STRIP), read_all(nfkc, "86", STRIP)
    assert _rows(got) == _rows(want)
    assert sum(v is not None for v in want.national) > 300  # many are read as numbers


def test_bracketed_numbers_taken_are_what_phonenumbers_gives():
    values = pd.Series(_bracketed() + [None], dtype=object)
    fast, fails = fast_phone_e164(values, "CN")
    taken = 0
    for raw, value, failed in zip(values, fast, fails):
        if value is not None or failed:
            taken += 1
            expected = normalize_phone(raw, region="CN")
            assert (expected is FAIL) if failed else expected == value, repr(raw)
    assert fast.notna().sum() > 400 and fails.sum() > 400  # taken and failed by the fast path
    coded = pd.Series(_area_coded(500, random.Random(3)), dtype=object)
    fast, fails = fast_phone_e164(coded, "CN")
    assert (fast.notna() | fails).all()  # the brackets read, not left to phonenumbers
