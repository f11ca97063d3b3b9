"""The key index shared by validate and map: exact like a Python set / dict, long keys kept apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.mappings.keyindex import WIDEST, KeyCollector, KeyedText, KeyIndex, _strings


def _values(rng, n):
    """Short keys, keys around the WIDEST boundary and long ones, non-ASCII, NUL, repeats, missing."""
    pool = ["C1", "中文", "a\x00", "", "x" * (WIDEST - 1), "x" * WIDEST, "y" * (WIDEST + 1), "长" * 40, "z" * 300,
            *(f"K{i}" for i in range(20)), *("L" * 70 + str(i) for i in range(5))]
    vals = [pool[i] for i in rng.integers(0, len(pool), size=n)]
    return pd.Series([None if rng.random() < 0.1 else v for v in vals], dtype=object)


def test_key_index_equals_a_python_set_with_long_keys():
    rng = np.random.default_rng(5)
    probe = _values(rng, 200)
    probe = pd.concat([probe, pd.Series(["L" * 70, "y" * WIDEST, "z" * 299, "C1 "], dtype=object)], ignore_index=True)
    for _ in range(20):
        parts = [_values(rng, int(rng.integers(0, 30))) for _ in range(3)]
        want = {v for p in parts for v in p if v is not None}
        collect = KeyCollector()
        for p in parts:
            collect.add(p)
        for idx in (collect.freeze(), KeyIndex.union(parts), KeyIndex.of(pd.concat(parts))):
            assert len(idx) == len(want) and sorted(idx) == sorted(want)
            assert idx.keys.dtype.itemsize <= WIDEST  # a long key never widens the sorted array
            assert idx.contains(probe).tolist() == [v is not None and v in want for v in probe]
        seen = pd.concat(parts).dropna()
        twice = set(seen[seen.duplicated()])
        dup = KeyIndex.duplicates([_strings(p) for p in parts])
        assert sorted(dup) == sorted(twice)
        assert KeyIndex.union([dup, KeyIndex.of(["new"])]).contains(pd.Series(["new", *twice], dtype=object)).all()
        tallied = KeyIndex.tally([_strings(p) for p in parts])  # both from one sort: the same arrays, types too
        for got, ref in zip(tallied, (dup, KeyIndex.union([_strings(p) for p in parts]))):
            assert got.keys.dtype == ref.keys.dtype and got.keys.tobytes() == ref.keys.tobytes()
            assert got.long == ref.long


def test_keyed_text_equals_a_dict_with_long_keys():
    rng = np.random.default_rng(6)
    for _ in range(20):
        dicts = [{v: f"r{i}-{j}" for j, v in enumerate(_values(rng, 15)) if v is not None} for i in range(3)]
        want: dict = {}
        for d in dicts:
            want.update(d)
        kt = KeyedText.build([(_strings(pd.Series(list(d), dtype=object)), list(d.values())) for d in dicts[:2]])
        kt.update(dicts[2])
        assert len(kt) == len(want) and all(kt.get(k) == v for k, v in want.items())
        assert kt.get("z" * 301) is None and kt.get("L" * 70, "-") == want.get("L" * 70, "-")
        assert sorted(kt.key_index()) == sorted(want)


def test_strings_in_bulk_equal_the_per_value_encoding():
    """``_strings`` lays text out by Arrow and NumPy; the same bytes as encoding value by value."""

    def one_by_one(values):
        s = pd.Series(list(values), dtype=object)
        return np.array([str(v).encode("utf-8", "surrogatepass") + b"\x01" for v in s[s.notna()]], dtype=bytes)

    rng = np.random.default_rng(7)
    pieces = ["", "a", "Ｃ", "上海", "😀", "\x00", " ", "\u3000", "C0000001", "é", "\t"]
    for _ in range(200):
        vals = ["".join(pieces[i] for i in rng.integers(0, len(pieces), size=int(rng.integers(0, 6))))
                for _ in range(int(rng.integers(0, 40)))]
        vals += [[], [None], [float("nan")], ["x" * 70], [5, 1.5], ["\ud800"]][int(rng.integers(0, 6))]
        want = one_by_one(vals)
        for given in (vals, pd.Series(vals, dtype=object)):
            got = _strings(given)
            assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_keyed_text_takes_texts_as_arrow_arrays():
    import pyarrow as pa

    rng = np.random.default_rng(8)
    for _ in range(20):
        dicts = [{v: f"r{i}-{j}" for j, v in enumerate(_values(rng, 15)) if v is not None} for i in range(3)]
        parts = [(_strings(pd.Series(list(d), dtype=object)), list(d.values())) for d in dicts]
        as_list = KeyedText.build(parts)
        as_arrow = KeyedText.build([(k, pa.array(t, type=pa.string())) for k, t in parts])
        assert as_arrow.keys.tolist() == as_list.keys.tolist() and as_arrow.long == as_list.long
        assert as_arrow.texts.to_pylist() == as_list.texts.to_pylist()


def test_keys_of_one_length_laid_out_as_the_others():
    """``arrow_keys`` of keys all of one byte length (their bytes taken row by row) against the per-value
    encoding: ASCII, multi-byte UTF-8, a slice of an array (offsets not from 0), one key, empty keys."""
    import pyarrow as pa

    from crmbridge.mappings.keyindex import arrow_keys

    cases = [[f"C{i:07d}" for i in range(1000)], ["客户", "上海", "ａｂ"], ["x"], ["", "", ""],
             [f"K{i:03d}\x00" for i in range(50)]]
    for values in cases:
        for arr in (pa.array(values, type=pa.string()), pa.array(["longer one", *values, "z"], type=pa.string())[1:-1]):
            want = np.array([v.encode("utf-8") + b"\x01" for v in values], dtype=bytes)
            got = arrow_keys(arr)
            assert got.dtype == want.dtype and got.tolist() == want.tolist()
