"""The map stage's vectorised bookkeeping against the row-by-row code it replaced, value by value: the
reasons completed for stewards, the source columns a reason names, the reason counts, lookups per
distinct value, Arrow's strip and counts, the quarantined keys taken from the mapped values. On
generated values built from the pieces those functions look at (field names, dots, digits,
separators, parent reasons) mixed with None, NaN, NA, blanks, full-width, CJK and emoji."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from crmbridge import stewardcsv as S
from crmbridge.mappings.check import _used_columns
from crmbridge.mappings.engine import reason_counts, reason_key
from crmbridge.mappings.owners import map_distinct
from crmbridge.mappings.engine import ParentKeys
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.steward import _PARENT, _may_change, _named_columns, _named_columns_by_word, steward_reasons
from crmbridge.mappings.textops import PY_WHITESPACE, count_char, strip_text
from crmbridge.mappings.transforms import as_text

MAPS = load_mappings(Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings")
SOURCES = {"Name": {"name"}, "Phone": {"phone", "city"}, "Legacy_Id__c": {"customer_no"}, "OwnerId": {"sales_rep"},
           "Id": {"id_col"}, "_x": {"under"}, "": {"status"}}
PIECES = ["Name", "Phone", "Legacy_Id__c", "OwnerId", "Id", "_x", "Names", "xName", "1Name", "9.Name", ".Name",
          "Name.", "Name.Id", "Account.Name", "Phone_", "Name1", "a.b.Phone", "Ｎａｍｅ", "名Name", "Name名", "😀",
          "\u3000", " ", "  ", "; ", "; ; ", ";", "=", " '", "'", " (", "(", ")", "[", "]", ".", "..", "0", "12",
          ": ", "filtered: ", "parent_quarantined: ", "parent_quarantined: Account.Legacy_Id__c=", "C1", "C2",
          "duplicate_external_id: Legacy_Id__c=", "transform_failed: Phone (phone) on '", "\n", "\t", "é", ""]


def _texts(n: int, seed: int) -> list:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))) for _ in range(n)]


def _reference_named(texts, sources):
    """The previous code: the words of each text, then every field among them."""
    named = []
    for text in texts:
        words = S.tokens(text) | {w.split(".")[0] for w in S.tokens(text)}
        named.append(set().union(*(cols for f, cols in sources.items() if f and f in words)))
    return named


def _reference_with_parent(text, parent_reasons):
    parts = []
    for p in S.split_reasons(text):
        m = _PARENT.match(p)
        why = parent_reasons.get(m.group(1), {}).get(m.group(2)) if m else None
        parts.append(p + f" [{m.group(1).split('.')[0]} {m.group(2)} is itself quarantined: {why}]" if why else p)
    return S.REASON_SEP.join(parts)


def _reference_counts(texts):
    counts: dict[str, int] = {}
    for r in texts:
        for p in r.split("; "):
            k = reason_key(p)
            counts[k] = counts.get(k, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(4))
def test_named_columns_equal_the_word_by_word_reading(seed):
    texts = _texts(3000, seed)
    ref = _reference_named(texts, SOURCES)
    assert _named_columns(texts, SOURCES) == ref
    assert _named_columns_by_word(texts, SOURCES) == ref
    # a field name with a dot (or other characters) is read word by word; texts Arrow cannot hold too
    dotted = {**SOURCES, "Account.Name": {"acc"}, "a-b": {"ab"}}
    assert _named_columns(texts, dotted) == _reference_named(texts, dotted)
    odd = texts[:50] + ["Name \ud800 Phone", "\ud800"]
    assert _named_columns(odd, SOURCES) == _reference_named(odd, SOURCES)


def test_named_columns_edge_cases():
    texts = ["", "Name", " Name", "Name.", "x.Name", "1.Name", "_Name", "Name_", "NameId", "Name;Phone", "Id.Id",
             "=Name=", "'Name'", "名Name", "Ｎａｍｅ", "Name\nPhone", "99Phone.x", "a9Phone", "OwnerId.Name"]
    assert _named_columns(texts, SOURCES) == _reference_named(texts, SOURCES)
    assert _named_columns(texts, {}) == [set()] * len(texts)


@pytest.mark.parametrize("seed", range(3))
def test_reasons_completed_for_stewards_equal_the_part_by_part_code(seed):
    texts = _texts(3000, seed) + [None, float("nan"), "", "; ", "x; ", "; x", "a; ; b"]
    parent_reasons = {"Account.Legacy_Id__c": {"C1": "required_missing: Name", "C2": ""}}
    q = pd.DataFrame({"_reason": pd.Series(texts, dtype=object), "_row_id": range(len(texts))})
    step = load_mappings(Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings").by_name("Contact")
    view, named = steward_reasons(step, q, parent_reasons)
    expected = [_reference_with_parent(t, parent_reasons) for t in texts]
    assert view["_reasons"].tolist() == expected
    may = _may_change(texts)
    assert all(isinstance(t, str) and _reference_with_parent(t, parent_reasons) == t
               for t, m in zip(texts, may) if not m)  # the texts left alone are the ones it gives back
    assert sum(may) < len(texts) / 2  # (and the test data has both kinds)
    sources: dict[str, set[str]] = {}
    for fname, col in _used_columns(step):
        sources.setdefault(fname or "", set()).add(col)
    assert named == _reference_named(expected, sources)


@pytest.mark.parametrize("seed", range(3))
def test_reason_counts_equal_the_part_by_part_count(seed):
    texts = [t for t in _texts(3000, seed)]
    texts += ["filtered: a=b (c) 'd'", "a=b", "a (b", "a 'b", "", "; ", "x; ; y", "名=值", "😀 (x)"]
    got = reason_counts(texts)
    ref = _reference_counts(texts)
    assert got == ref and list(got) == list(ref)  # the same counts, in the same (first-seen) order
    assert reason_counts([]) == {}
    odd = texts[:20] + ["\ud800=x"]  # lone surrogate: the Python way
    assert list(reason_counts(odd).items()) == list(_reference_counts(odd).items())
    with pytest.raises(AttributeError):
        reason_counts(["a", None])


@pytest.mark.parametrize("dtype", [object, "str"])
def test_map_distinct_equals_series_map(dtype):
    rng = random.Random(5)
    pool = ["R001", "R002", "rep1@sandbox.crmbridge", "ADMIN@X", "", " ", "\u3000", "Ｒ００１", "上海", "😀", None,
            float("nan"), pd.NA]
    table = {"R001": "rep1@sandbox.crmbridge", "R002": None, "上海": "x", "": 5}
    fns = [lambda c: table.get(c) if c is not None else None, lambda u: str(u).lower() if u is not None else None,
           lambda v: v, lambda v: len(v) if isinstance(v, str) else v]
    for n in (0, 10, 70, 300):
        vals = [rng.choice(pool) for _ in range(n)]
        s = pd.Series(vals, dtype=dtype, index=range(7, 7 + n), name="code")
        for fn in fns:
            got, want = map_distinct(s, fn), s.map(fn)
            pd.testing.assert_series_equal(got, want)
            assert [type(x) for x in got] == [type(x) for x in want]
    mixed = pd.Series([1, 1.0, True, "1", None] * 20, dtype=object)  # equal under hashing, not under str()
    pd.testing.assert_series_equal(map_distinct(mixed, str), mixed.map(str))


def test_python_whitespace_is_the_set_str_strip_removes():
    assert PY_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())


@pytest.mark.parametrize("seed", range(3))
def test_strip_text_and_count_char_equal_pandas(seed):
    rng = random.Random(seed)
    pool = [" C1 ", "\u3000Ｃ１\u3000", "\x1cx\x1f", "\x85y\xa0", "a;b;", ";", "", "  ", "上海 ", " 😀", "\t=1\n",
            "r:1;r:2", None, float("nan"), pd.NA, 5, 1.0, 2.5, True]
    for n in (0, 1, 50, 400):
        vals = [rng.choice(pool) for _ in range(n)]
        for s in (pd.Series(vals, dtype=object, name="k"), pd.Series([v for v in vals if isinstance(v, str)],
                                                                       dtype=object),
                  pd.Series([v if isinstance(v, str) else None for v in vals], dtype="str")):
            pd.testing.assert_series_equal(strip_text(s), as_text(s).str.strip())
            assert [type(v) for v in strip_text(s)] == [type(v) for v in as_text(s).str.strip()]
            text = as_text(s)
            assert count_char(text, ";") == int(text.str.count(";").sum())
            if s.dtype == "str":  # Arrow-backed text as it is, in one chunk or several
                for t in (s, pd.concat([s, s.iloc[::-1]])):
                    assert count_char(t, ";") == int(t.str.count(";").sum())
    odd = pd.Series([" \ud800 ", "a;b"], dtype=object)  # a lone surrogate: the pandas way
    pd.testing.assert_series_equal(strip_text(odd), odd.str.strip())
    assert count_char(odd, ";") == 1


def _batch(step_name: str, n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    keys = ["C1", " C1 ", "Ｃ１", "c1", "C2", "", "  ", None, "上海1", "😀", "HT1", "HT2", " ht3", "x" * 70]
    if step_name == "Contract":
        df = pd.DataFrame({"contract_no": [rng.choice(keys) for _ in range(n)],
                           "customer_no": [rng.choice(keys) for _ in range(n)],
                           "start_date": [rng.choice(["2023-01-05", "bad", None]) for _ in range(n)],
                           "end_date": [rng.choice(["2024-01-04", "2023/02/01", None]) for _ in range(n)],
                           "amount": [rng.choice(["1234.5", "x", None]) for _ in range(n)],
                           "status": [rng.choice(["Activated", "Terminated", "已终止", "作废", None]) for _ in range(n)],
                           "payment_terms": [rng.choice(["30天", "预付", None]) for _ in range(n)]}, dtype=object)
    else:
        from crmbridge.benchmarks.map_1m import make_rows

        df = make_rows(n, rng=rng)
        df["customer_no"] = [rng.choice(keys) for _ in range(n)]
        df["name"] = [rng.choice(["甲", None, " "]) for _ in range(n)]
        df["_merged_row_ids"] = [rng.choice([None, f"r:{i};x:{i}", f"r:{i};x:{i};y:{i}"]) for i in range(n)]
    df["_row_id"] = [f"r:{i}" for i in range(n)]
    return df


@pytest.mark.parametrize("step_name", ["Account", "Contract"])
def test_quarantined_key_texts_equal_the_keys_read_from_the_quarantine(step_name):
    """Keys taken from the mapped values (the chain run again only for rows a filter left out) == the
    key chain run on the quarantine, golden records' lines and filtered rows included."""
    from crmbridge.mappings.engine import OrgRefs, finish_rows, map_rows
    from crmbridge.mappings.keyindex import KeyIndex
    from crmbridge.mappings.stream import quarantined_key_texts, quarantined_keys

    step = MAPS.by_name(step_name)
    parents = {("account", "Legacy_Id__c"): ParentKeys(frozenset({"C1", "C2"}), frozenset({"HT1"}))}
    refs = OrgRefs(owners={"R001": "rep1@sandbox.crmbridge"}, users={"rep1@sandbox.crmbridge": "005A"})
    seen = set()
    for seed in range(6):
        part = map_rows(step, _batch(step_name, 300, seed), refs=refs, parents=parents)
        keys = part.candidate_keys()
        done = finish_rows(step, part, KeyIndex.of(keys[keys.duplicated(keep=False)]))
        want = quarantined_keys(step, done.quarantine)
        got_keys, got_texts = quarantined_key_texts(step, part, done.quarantine)
        assert dict(zip(got_keys, got_texts)) == want and list(dict(zip(got_keys, got_texts))) == list(want)
        seen.update(r.split(":")[0] for r in done.quarantine["_reason"])
    assert len(seen) > 3  # filtered, duplicate, missing, failed ... rows among them
