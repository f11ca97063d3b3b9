"""The ``replace`` transform's fast path (Arrow picks the values holding a character a match needs, or
blank ones; only those go through ``re``) gives what pandas' regex replace over every value gives:
values, types, dtype, changed and failed, on every whitespace character and tricky data."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings import textfast
from crmbridge.mappings import transforms_text as T
from crmbridge.mappings.transforms_base import as_text

FAST = [r"[\s-]", r"\s+", r"-", r"[-\s]+", r"[a-c_]", r"a|b", r"[\s\u3000]+?", r"[，,]", r"x{2,}", r"[０-９]"]
SLOW = [r"\s*", r"(?i)a", r"[^a]", r"\d", r"a+b", r"^-", r"-$", r"(-)", r"[\w]", r"[\ud800]", r"[a-\U0010ffff]"]


def values(seed: int, n: int) -> list:
    rnd = random.Random(seed)
    alphabet = textfast.PY_WHITESPACE + "-_abcxyzABC，,０１９客户\u200b\u180e\x00\ufeff😀"
    pool = [None, np.nan, "", " ", "-", "--", "a-b", "x" * 5, "\u3000", "客户 编号", "9131-0000 0000"]
    return [rnd.choice(pool) if rnd.random() < 0.2 else "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6)))
            for _ in range(n)]


def same(got, want) -> None:
    assert got.values.dtype == want.values.dtype == object
    assert [type(v) for v in got.values] == [type(v) for v in want.values]
    assert got.values.tolist() == want.values.tolist()
    assert got.changed.tolist() == want.changed.tolist() and got.failed.tolist() == want.failed.tolist()


@pytest.mark.parametrize("pattern", FAST + SLOW)
@pytest.mark.parametrize("seed,n", [(1, 1), (2, 300), (3, 3000)])
@pytest.mark.parametrize("arrow", [False, True])
def test_replace_equals_pandas_regex_replace(pattern, seed, n, arrow):
    s = pd.Series(values(seed, n), dtype=object)
    if arrow:
        s = s.astype("str")
    for repl in ("", " ", "_", r"\g<0>"):
        same(T.replace(s, pattern=pattern, replacement=repl), T._replace_python(s, as_text(s), pattern, repl))


def test_every_whitespace_character_alone_and_inside():
    ws = list(textfast.PY_WHITESPACE)
    s = pd.Series(ws + [f"a{c}b" for c in ws] + [f"{c}a" for c in ws] + [chr(i) for i in range(0x3100)], dtype=object)
    for pattern in (r"[\s-]", r"\s+"):
        same(T.replace(s, pattern=pattern), T._replace_python(s, as_text(s), pattern, ""))


def test_which_patterns_take_the_fast_path():
    assert all(T._match_chars(p) is not None for p in FAST)
    assert all(T._match_chars(p) is None for p in SLOW)


def test_mixed_and_missing_columns_take_the_pandas_path():
    for data in ([1, "a-b", None, 2.5], [None, None], []):
        s = pd.Series(data, dtype=object)
        same(T.replace(s, pattern="-"), T._replace_python(s, as_text(s), "-", ""))
