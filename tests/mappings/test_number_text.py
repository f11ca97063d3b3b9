"""The number transform's simple values lose their currency sign and thousands commas exactly as the
previous RE2 replace of ``[¥$€£,]`` removed them, for every separator setting and tricky data."""

from __future__ import annotations

import random

import pandas as pd
import pyarrow.compute as pc
import pytest

from crmbridge.mappings.transforms_arrow import strings
from crmbridge.mappings.transforms_numbers import _simple, _simple_text


def values(seed: int, n: int) -> list:
    rnd = random.Random(seed)
    alphabet = "0123456789,.¥$€£￥ -１"
    shaped = ["¥1,234,500.00", "$1", "€0.5", "£12,345", "1,234", "¥¥1", "1,23", "12,345,678.901", ",1", "1.", "¥,1"]
    return [rnd.choice(shaped + [None, "", "客户"]) if rnd.random() < 0.3 else
            rnd.choice(["", "¥", "$", "€", "£"]) + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
            for _ in range(n)]


@pytest.mark.parametrize("seed,n", [(1, 1), (2, 500), (3, 20000)])
@pytest.mark.parametrize("decimal,thousands", [(".", ","), (",", "."), (".", " "), (".", ""), (".", "'"), (",", " ")])
def test_simple_text_equals_the_regex_replace(seed, n, decimal, thousands):
    src = pd.Series(values(seed, n), dtype=object)
    simple = _simple(strings(src.to_numpy(dtype=object)), decimal, thousands)
    picked = src[simple]
    want = pc.replace_substring_regex(strings(picked.to_numpy(dtype=object)), "[¥$€£,]", "").to_numpy(zero_copy_only=False)
    got = _simple_text(strings(picked.to_numpy(dtype=object)))
    assert got.tolist() == want.tolist() and got.dtype == want.dtype
    if (decimal, thousands) == (".", ",") and n > 1:
        assert any("¥" in v for v in picked) and any("," in v for v in picked)  # the data really has them
