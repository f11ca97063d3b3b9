"""A ``number`` chain on plain whole numbers read in Arrow (``mappings/plainnumbers.py``, taken by
``engine._chain``) against the chain itself (``engine._chain_rows``: ``parse_number`` once per distinct
value): the same values (type included: Python floats, None where missing), stats and reasons, for
every setting of the transform, and the columns it must leave to the chain."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crmbridge.mappings.engine import _chain, _chain_rows, _Reasons
from crmbridge.mappings.models import FieldSpec
from crmbridge.mappings.plainnumbers import plain_numbers


def _digits(n: int, seed: int, missing: float = 0.0) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < missing:
            out.append(None)
            continue
        width = rng.choice([1, 3, 6, 7, 9, 12, 15])
        out.append(rng.choice([str(rng.randrange(10 ** width)), f"{i:0{width}d}"[-width:], "0", "000123",
                               "999999999999999", "900719925474099", "123456789012345"]))
    return out


def _spec(params: dict, on_failure: str = "quarantine") -> FieldSpec:
    return FieldSpec.model_validate({"column": "v", "transforms": [{"number": params}], "on_failure": on_failure})


def _run(run, spec: FieldSpec, series: pd.Series):
    stats: dict = {}
    frame = pd.DataFrame({"v": series})
    reasons = _Reasons(frame.index)
    reasons.text.loc[frame.index[::7]] = "earlier: reason"
    values = run("F", spec, series, frame, reasons, stats)
    return values, stats, reasons.text


def _assert_same(series: pd.Series, spec: FieldSpec):
    (values, stats, reasons), (rvalues, rstats, rreasons) = _run(_chain, spec, series), _run(_chain_rows, spec, series)
    assert values.dtype == rvalues.dtype and values.index.equals(rvalues.index)
    assert [(type(v), v) for v in values.tolist()] == [(type(v), v) for v in rvalues.tolist()]
    assert stats == rstats
    assert reasons.tolist() == rreasons.tolist()


PARAMS = [{}, {"scale": 0}, {"scale": 2}, {"scale": 8}, {"decimal": ",", "thousands": "."},
          {"thousands": ""}, {"thousands": " "}, {"decimal": ",", "thousands": "'"}, {"cn_units": True},
          {"percent": True}, {"percent": True, "scale": 3, "cn_units": True}]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("missing", [0.0, 0.1])
@pytest.mark.parametrize("on_failure", ["quarantine", "blank", "keep"])
def test_whole_numbers_equal_the_chain(params, missing, on_failure):
    series = pd.Series(_digits(5000, 3, missing), dtype="str")
    series.index = pd.RangeIndex(5000) * 2 + 3  # not the positions
    spec = _spec(params, on_failure)
    values, present, twin = plain_numbers(spec.transforms, series)  # the Arrow path is the one compared
    _assert_same(series, spec)
    assert present == series.notna().sum()
    assert twin.type == pa.float64() and twin.to_pylist() == values.tolist()  # the records writer's twin


@pytest.mark.parametrize("odd", ["1234567890123456", "12.5", "1,234", " 12", "12 ", "", "+12", "-12", "１２", "1e3",
                                 "¥12", "12%", "12万", "(12)", "0x1F"])
def test_other_values_leave_the_column_to_the_chain(odd):
    values = _digits(3000, 5, 0.05)
    values[1234] = odd
    series = pd.Series(values, dtype="str")
    spec = _spec({"percent": True, "cn_units": True})
    assert plain_numbers(spec.transforms, series) is None
    _assert_same(series, spec)


@pytest.mark.parametrize("transforms", [[{"number": {"integer": True}}], [{"number": {}}, "trim"],
                                        ["trim", {"number": {}}], ["trim"]])
def test_other_chains_run_the_chain(transforms):
    """``integer: true`` gives ints (an Int64 column), other chains other values: the chain runs."""
    series = pd.Series(_digits(2000, 9), dtype="str")
    spec = FieldSpec.model_validate({"column": "v", "transforms": transforms})
    assert plain_numbers(spec.transforms, series) is None
    _assert_same(series, spec)


def test_columns_not_arrow_text_or_all_missing_run_the_chain():
    spec = _spec({"scale": 0})
    for series in (pd.Series(_digits(2000, 1), dtype=object), pd.Series([None] * 50, dtype="str"),
                   pd.Series(np.arange(50, dtype=float)), pd.Series([], dtype="str")):
        assert plain_numbers(spec.transforms, series) is None
        _assert_same(series, spec)



def test_a_step_maps_the_same_records_without_the_arrow_path(tmp_path, monkeypatch):
    """A step whose external ID and an amount are number chains on plain digits (repeated keys among them):
    map_rows + finish_rows give the same records, quarantine and counts with the chain run as before, and
    the records file written with the amount's float64 twin is the one written without it."""
    from crmbridge.mappings import plainnumbers
    from crmbridge.mappings.engine import finish_rows, map_rows
    from crmbridge.mappings.keyindex import KeyIndex
    from crmbridge.mappings.output import RecordsWriter

    from .test_required_twins import account_step

    loaded = account_step(tmp_path, "Legacy_Num__c",
                          "      Legacy_Num__c: {column: num, required: true, transforms: [number]}\n"
                          "      Name: {column: name, required: true}\n"
                          "      AnnualRevenue: {column: revenue, on_failure: blank,"
                          " transforms: [{number: {scale: 0}}]}\n")
    rng = random.Random(4)
    batch = pd.DataFrame({"num": [str(i if i % 50 else 7) for i in range(3000)],
                          "name": [rng.choice(["甲", "乙", None]) for _ in range(3000)],
                          "revenue": _digits(3000, 6, 0.05), "_row_id": [f"r:{i}" for i in range(3000)]}, dtype="str")
    outs = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(plainnumbers, "plain_numbers", lambda transforms, series: None)
        part = map_rows(loaded, batch)
        keys = part.candidate_keys()
        done = finish_rows(loaded, part, KeyIndex.of(keys[keys.duplicated(keep=False)]))
        writer = RecordsWriter(tmp_path / f"r{fast}.parquet", tmp_path)
        writer.add(0, done.records, in_memory=True, twins=done.twins)
        writer.write(1)
        outs.append((done, (tmp_path / f"r{fast}.parquet").read_bytes(), part.stats))
    (got, got_file, got_stats), (ref, ref_file, ref_stats) = outs
    assert "AnnualRevenue" in got.twins and "AnnualRevenue" not in ref.twins
    pd.testing.assert_frame_equal(got.records, ref.records, check_exact=True)
    pd.testing.assert_frame_equal(got.quarantine, ref.quarantine, check_exact=True)
    assert (got.rows_in, got.rows_out, got.reasons, got_stats) == (ref.rows_in, ref.rows_out, ref.reasons, ref_stats)
    assert got.reasons.get("duplicate_external_id: Legacy_Num__c", 0) == 61  # the 60 rows of 7 and row 7
    assert got_file == ref_file


def test_a_column_in_several_arrow_chunks():
    parts = [pd.Series(_digits(700, seed, 0.1), dtype="str") for seed in range(3)]
    series = pd.concat(parts, ignore_index=True)  # Arrow-backed, one chunk per part
    spec = _spec({"scale": 0})
    assert plain_numbers(spec.transforms, series) is not None
    _assert_same(series, spec)
