"""Normalisation with the step cache of earlier batches (``normcache.StepCache``) gives exactly what it
gives without: values, types, dtypes, the Arrow forms handed to the spill, fixed and failed counts in the
same order; over batches that repeat values, bring new ones, overflow the cache, and hold other types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.validation.test_pass1_equality import assert_same_frames, customers_frame


def _text_only(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers as text: every column text (cached) instead of some of mixed types (step by step)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: str(v) if isinstance(v, (int, float)) and v == v else v)
    return out


def _batches(seed: int, n: int) -> list[pd.DataFrame]:
    frames = [customers_frame(seed + i, n) for i in range(3)]
    later = _text_only(customers_frame(seed + 9, n))  # values known and new ones side by side
    for c in ("name", "status", "country", "service_contracts"):
        later[c] = [v + "1" if isinstance(v, str) and i % 2 else v for i, v in enumerate(later[c])]
    return [_text_only(f) for f in frames] + frames + [later]


def _run(batches, cache):
    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.rules import compile_rules, referenced_columns
    from tests.validation.conftest import TEMPLATE_DEFINITION

    rules = load_definition(TEMPLATE_DEFINITION).entities["customers"]
    extra = referenced_columns(compile_rules("customers", rules))
    return [normalise(b.copy(), rules, extra, prune=False, cache=cache) for b in batches]


@pytest.mark.parametrize("seed,n,limit", [(30, 1, 8192), (31, 200, 8192), (32, 3000, 8192), (33, 3000, 40)])
def test_cached_chains_equal_the_steps(monkeypatch, tmp_path, seed, n, limit):
    from crmbridge.mappings import transforms
    from crmbridge.validation import normcache
    from crmbridge.validation.parquetsink import ParquetSink

    monkeypatch.setattr(normcache, "CACHE_VALUES", limit)
    batches = _batches(seed, n)
    calls = {"n": 0}
    step = transforms.apply_encoded

    def counted(*args, **kwargs):
        calls["n"] += 1
        return step(*args, **kwargs)

    monkeypatch.setattr(transforms, "apply_encoded", counted)
    old = _run(batches, None)
    steps_old, calls["n"] = calls["n"], 0
    new = _run(batches, normcache.StepCache())
    assert calls["n"] < steps_old  # chains ran whole from the cache
    for a, b in zip(new, old):
        assert list(a.fixed.items()) == list(b.fixed.items())
        assert list(a.failed.items()) == list(b.failed.items())
        assert_same_frames(a.frame, b.frame)
        for c in set(a.arrow) & set(b.arrow):
            assert a.arrow[c].equals(b.arrow[c]), c
    for name, res in (("new", new), ("old", old)):  # the spill takes the Arrow forms where there are some
        sink = ParquetSink(tmp_path / f"{name}.parquet", dictionary=False)
        for r in res:
            sink.write(r.frame, r.arrow)
        sink.close()
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()


def test_chains_read_by_other_columns_or_with_frame_steps_are_not_cached():
    from crmbridge.validation.normcache import cached_chains

    plan = [("city", "trim", {}), ("phone", "trim", {}), ("phone", "phone", {"region": "CN", "city_column": "city"}),
            ("status", "trim", {}), ("status", "case", {"to": "upper"})]
    assert cached_chains(plan) == {"status": [("trim", {}), ("case", {"to": "upper"})]}
    assert cached_chains(plan + [("full", "concat", {"columns": ["status", "city"]})]) == {}


def test_a_batch_of_more_values_than_the_cache_holds_runs_step_by_step(monkeypatch):
    from crmbridge.mappings.distinct import encode
    from crmbridge.validation import normcache

    monkeypatch.setattr(normcache, "CACHE_VALUES", 3)
    cache = normcache.StepCache()
    steps = [("trim", {}), ("case", {"to": "upper"})]
    small = encode(pd.Series([" a", "b", None, " a"], dtype=object))
    column, counts = cache.run("x", steps, small)
    assert column.series().tolist() == ["A", "B", None, "A"] and counts == [(2, 0), (3, 0)]
    assert cache.run("x", steps, encode(pd.Series(list("abcd"), dtype=object))) is None
    assert cache.run("x", steps, small) is None  # dropped for good, like gxcache's groups
    assert np.array_equal(small.codes, [0, 1, 2, 0])


@pytest.mark.parametrize("seed,n", [(40, 1), (41, 300), (42, 3000)])
def test_mostly_distinct_columns_unfactorised_equal_the_steps(monkeypatch, tmp_path, seed, n):
    """Batches of Arrow text (as extract's Parquet reads back): once a column held nearly one distinct value
    per row, later batches give it to its steps one value per row (``encode_rows``, its missing values in
    place); values, types, dtypes, Arrow forms, counts in order and the spill's bytes stay those of
    factorised columns without the cache."""
    from crmbridge.mappings import distinct
    from crmbridge.validation import normcache
    from crmbridge.validation.parquetsink import ParquetSink

    monkeypatch.setattr(normcache, "CACHE_VALUES", 40)
    batches = []
    for k, b in enumerate(_batches(seed, n)):
        few = k == 6  # a column found mostly distinct may bring repeated values later
        b["customer_no"] = [None if i % 17 == 3 else f" ｃ{k}-{i % 5 if few else i - (i % 23 == 0)} " for i in range(n)]
        b["email"] = [None if i % 13 == 5 else f" User{i % 4 if few else i}@Example.CN" for i in range(n)]
        for c in b.columns:
            if b[c].dtype == object and all(v is None or isinstance(v, str) for v in b[c]):
                b[c] = b[c].astype("str")
        batches.append(b)
    rows = {"n": 0}
    unfactorised = distinct.encode_rows

    def counted(series):
        rows["n"] += 1
        return unfactorised(series)

    monkeypatch.setattr(distinct, "encode_rows", counted)
    old = _run(batches, None)
    assert rows["n"] == 0
    new = _run(batches, normcache.StepCache())
    assert rows["n"] > 0 or n < 40
    for a, b in zip(new, old):
        assert list(a.fixed.items()) == list(b.fixed.items())
        assert list(a.failed.items()) == list(b.failed.items())
        assert_same_frames(a.frame, b.frame)
        for c in set(a.arrow) & set(b.arrow):  # cached chains give theirs in Arrow as well
            assert a.arrow[c].equals(b.arrow[c]) and a.arrow[c].type == b.arrow[c].type, c
    for name, res in (("new", new), ("old", old)):
        sink = ParquetSink(tmp_path / f"{name}.parquet", dictionary=False)
        for r in res:
            sink.write(r.frame, r.arrow)
        sink.close()
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()
