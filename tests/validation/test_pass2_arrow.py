"""Validate's pass 2 hands each spilled batch's Arrow table along beside its frame: the valid rows are written
from the table (``outcome.valid_table``, ``ParquetSink.write_table``), the control-character check scans its
text columns (``control_chars_check(..., table)``) and the distinct values are numbered by Arrow
(``gxdistinct._text_codes``). Each gives exactly what the frame path gave, on tricky
batches: NULs and other control characters, full-width and CJK text, None/NaN, an all-missing first column,
Arrow-backed ``str`` columns, integers with and without missing values, empty batches, batches over a row group,
and ``_warnings`` missing or present in the first batch."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmbridge.validation import parquetsink
from crmbridge.validation.controlchars import control_chars_check
from crmbridge.validation.outcome import Split, valid_table
from crmbridge.validation.parquetsink import ParquetSink

from .test_parallel import _assert_identical

TEXT = [None, "", " ", "C001", "Ｃ００１", "客户", "C001\x00", "\x00", "a\x00b", "a\tb", "x\r\ny", "ok\x85", "\x7f", "😀",
        "\u3000", "\u2028", "\ufeff", "9" * 40, "；分号"]


def _spill_frames(seed: int, lengths, int_missing: bool = False) -> list[pd.DataFrame]:
    """Normalised batches as validate spills them: object text, ``str`` lineage, the integer ``_line``."""
    rnd = random.Random(seed)
    frames, start = [], 0
    for b, n in enumerate(lengths):
        line = pd.Series(range(start, start + n), dtype="int64")
        if int_missing and n:
            line = pd.Series([None if i % 4 == 0 else (1 << 62) + i for i in range(n)], dtype="Int64")
        frames.append(pd.DataFrame({
            "customer_no": pd.Series([rnd.choice(TEXT) for _ in range(n)], dtype=object),
            "name": pd.Series([rnd.choice(TEXT) for _ in range(n)], dtype=object),
            "empty_first": pd.Series([None if b == 0 else rnd.choice(TEXT) for _ in range(n)], dtype=object),
            "city": pd.Series([rnd.choice(TEXT) for _ in range(n)], dtype="str"),
            "_row_id": pd.Series([f"s:{start + i}" for i in range(n)], dtype="str"),
            "_source": pd.Series([rnd.choice([None, "crm", "客户"]) for _ in range(n)], dtype="str"),
            "_line": line,
        }))
        start += n
    return frames


def _spill(tmp_path, frames) -> ParquetSink:
    sink = ParquetSink(tmp_path / "spill.parquet", dictionary=False)
    for f in frames:
        sink.write(f)
    sink.close()
    return sink


def _split(frame: pd.DataFrame, rnd: random.Random, warned: float) -> Split:
    keep = np.array([rnd.random() < 0.8 for _ in range(len(frame))], dtype=bool)
    warnings = np.array([rnd.choice(["w: 甲", "w: NUL \x00"]) if rnd.random() < warned else None
                         for _ in range(int(keep.sum()))], dtype=object)
    return Split(quarantine=frame.loc[~keep], rows_warned=int(pd.notna(warnings).sum()), quarantined_by_rule={},
                 frame=frame, valid_rows=np.flatnonzero(keep), warnings=warnings)


CASES = [  # (seed, batch lengths, warned share in the first batch, missing integers, row group)
    (0, (40, 0, 35, 1, 60), 0.0, False, 1 << 20),
    (1, (40, 25, 0, 30), 0.3, False, 1 << 20),
    (2, (0, 30, 30), 0.3, False, 1 << 20),
    (3, (1, 50, 20), 1.0, False, 1 << 20),
    (4, (50, 50), 0.2, False, 16),  # several row groups a batch: read back in chunks
    (5, (40, 30, 30), 0.2, True, 1 << 20),  # a missing integer turns float in pandas: frame path
]


@pytest.mark.parametrize("seed,lengths,warned,int_missing,row_group", CASES)
def test_valid_file_from_arrow_equals_the_file_from_the_frame(tmp_path, monkeypatch, seed, lengths, warned,
                                                            int_missing, row_group):
    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    spill = _spill(tmp_path, _spill_frames(seed, lengths, int_missing))
    rnd = random.Random(seed)
    old, new = ParquetSink(tmp_path / "old.parquet"), ParquetSink(tmp_path / "new.parquet")
    taken, first_warned = 0, None
    for i, batch in enumerate(spill.lazy_batches()):
        split = _split(batch.frame(), rnd, warned if i == 0 else 0.3)
        first_warned = split.rows_warned > 0 if first_warned is None else first_warned
        old.write(split.valid.reset_index(drop=True))  # what validate wrote before
        rows = valid_table(split, batch, new.schema)
        if rows is None:
            new.write(split.valid.reset_index(drop=True))
        else:
            new.write_table(rows)
            taken += 1
    old.close()
    new.close()
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()
    assert new.lengths == old.lengths
    # the Arrow path is really taken, except where the frame would not convert back to the same table
    assert (taken == 0) == int_missing
    # pandas infers ``str`` for the first batch's warnings where there are some: Arrow's large_string
    assert pq.read_schema(tmp_path / "new.parquet").field("_warnings").type == \
        ("large_string" if first_warned else "string")


@pytest.mark.parametrize("seed,lengths,row_group", [(6, (300, 0, 1, 200), 1 << 20), (7, (120, 90), 25)])
def test_control_chars_from_arrow_equal_the_check_on_the_frame(tmp_path, monkeypatch, seed, lengths, row_group):
    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    frames = _spill_frames(seed, lengths)
    for f in frames:  # integers in an object column: no text in Arrow, checked from the frame on both paths
        f["count"] = pd.Series(range(len(f)), dtype=object)
    spill = _spill(tmp_path, frames)
    assert spill.schema.field("count").type == "int64"
    seen = 0
    for batch in spill.lazy_batches():
        frame, table = batch.frame(), batch.table()
        for keys in (("customer_no",), ("customer_no", "name", "city"), ()):
            want = control_chars_check(frame, keys)
            got = control_chars_check(frame, keys, table)
            assert got.tolist() == want.tolist() and got.index.equals(want.index) and got.dtype == want.dtype
            seen += int((~want.astype(bool)).sum())
    assert seen > 20  # the batches do hold control characters


@pytest.mark.parametrize("seed,lengths,row_group", [(8, (400, 0, 1, 250), 1 << 20), (9, (150, 90), 40)])
def test_distinct_codes_from_arrow_equal_the_codes_of_the_frame(tmp_path, monkeypatch, seed, lengths, row_group):
    from crmbridge.validation.gxdistinct import _joint_codes

    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    frames = _spill_frames(seed, lengths)
    for f in frames:  # few distinct values, so codes repeat; an all-missing column; integers: not text in Arrow
        f["status"] = pd.Series([[None, "Active", "活跃", "Active\x00", ""][i % 5] for i in range(len(f))], dtype=object)
        f["none"] = pd.Series([None] * len(f), dtype=object)
    spill = _spill(tmp_path, frames)
    for batch in spill.lazy_batches():
        frame, table = batch.frame(), batch.table()
        for cols in (["customer_no"], ["status"], ["city"], ["_source"], ["none"], ["_line"], ["status", "city"],
                     ["name", "_source", "empty_first"], ["_line", "status"]):
            want = _joint_codes(frame, cols)
            got = _joint_codes(frame, cols, table)
            assert got.dtype == want.dtype and got.tolist() == want.tolist(), cols


def test_validate_writes_what_the_frame_path_wrote(case_run, tmp_path, monkeypatch):
    """The whole stage on the case files, in batches of 3 rows: every output byte for byte as with the frame path
    (no Arrow table handed to the checks and to the distinct values, the valid rows written from pandas)."""
    import shutil

    from crmbridge.validation import gxsuite
    from crmbridge.validation.stage import run_validate

    project, run = case_run
    run_validate(project, run, batch_rows=3, workers=0)
    shutil.copytree(run.dir / "validate", tmp_path / "arrow")
    run_suite = gxsuite.SuiteRunner.run
    monkeypatch.setattr(gxsuite.SuiteRunner, "run", lambda self, frame, ctx, table=None: run_suite(self, frame, ctx))
    monkeypatch.setattr(ParquetSink, "exact", lambda self, t: False)
    run_validate(project, run, batch_rows=3, workers=0)
    shutil.copytree(run.dir / "validate", tmp_path / "frame")
    _assert_identical(tmp_path / "arrow", tmp_path / "frame")
