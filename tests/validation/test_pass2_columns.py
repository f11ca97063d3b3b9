"""Validate's pass 2 converts to pandas only the columns the rules read (``LazyBatch.narrow``) and the rows the
quarantine takes whole (``LazyBatch.rows``): each gives what the whole frame gave there, on the tricky batches of
``test_pass2_arrow`` (NULs, full-width and CJK text, None, ``str`` columns, integers with missing values: the
whole frame then), and the stage writes every output byte for byte as when it converted every batch whole."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation import parquetsink
from crmbridge.validation.controlchars import control_chars_check
from crmbridge.validation.parquetsink import LazyBatch

from .test_parallel import _assert_identical
from .test_pass2_arrow import _spill, _spill_frames

COLUMNS = [set(), {"_row_id"}, {"customer_no"}, {"city", "_line", "absent"}, {"name", "empty_first", "_source"}]


@pytest.mark.parametrize("seed,lengths,int_missing,row_group", [
    (0, (40, 0, 35, 1, 60), False, 1 << 20), (4, (50, 50), False, 16), (5, (40, 30), True, 1 << 20)])
def test_narrow_columns_and_rows_equal_the_whole_frame(tmp_path, monkeypatch, seed, lengths, int_missing, row_group):
    monkeypatch.setattr(parquetsink, "ROW_GROUP", row_group)
    spill = _spill(tmp_path, _spill_frames(seed, lengths, int_missing))
    rnd = random.Random(seed)
    for fresh, whole in zip(spill.lazy_batches(), spill.lazy_batches()):
        frame = whole.frame()
        for cols in COLUMNS:
            got, want = LazyBatch(spill, *fresh._args).narrow(cols), frame[[c for c in frame.columns if c in cols]]
            pd.testing.assert_frame_equal(got[list(want.columns)], want, check_index_type=True,
                                          check_column_type=len(want.columns) > 0)  # no columns: a RangeIndex
        for pos in (np.zeros(0, dtype=np.intp), np.arange(len(frame)),
                    np.array(sorted(rnd.sample(range(len(frame)), len(frame) // 3)), dtype=np.intp),
                    np.array(rnd.sample(range(len(frame)), len(frame) // 2), dtype=np.intp)):  # unsorted: messages
            got = fresh.rows(pos)
            pd.testing.assert_frame_equal(got, frame.iloc[pos], check_index_type=False)
            assert got.index.tolist() == pos.tolist()
        assert (fresh._frame is None) != int_missing  # the whole frame only where a column would convert otherwise


@pytest.mark.parametrize("seed,lengths", [(6, (300, 0, 1, 200)), (7, (120, 90))])
def test_control_chars_on_the_narrow_frame_equal_the_whole_frame(tmp_path, seed, lengths):
    spill = _spill(tmp_path, _spill_frames(seed, lengths))
    seen = 0
    for batch in spill.lazy_batches():
        frame, table = batch.frame(), batch.table()
        for cols in COLUMNS:
            narrow = frame[[c for c in frame.columns if c in cols]]
            for keys in (("customer_no",), ("customer_no", "name", "city"), ()):
                want = control_chars_check(frame, keys)
                got = control_chars_check(narrow, keys, table)
                assert got.tolist() == want.tolist() and got.index.equals(want.index) and got.dtype == want.dtype
                seen += int((~want.astype(bool)).sum())
    assert seen > 20  # the batches do hold control characters


@pytest.mark.parametrize("batch_rows", [3, 1000])
def test_validate_writes_what_converting_every_column_wrote(case_run, tmp_path, monkeypatch, batch_rows):
    """The whole stage on the case files: every output byte for byte as when every batch was converted whole."""
    import shutil

    from crmbridge.validation.stage import run_validate

    project, run = case_run
    calls = {"narrow": 0, "rows": 0}
    narrow, rows = LazyBatch.narrow, LazyBatch.rows

    def counted(name, fn):
        def call(self, *a):
            calls[name] += 1
            return fn(self, *a)
        return call

    monkeypatch.setattr(LazyBatch, "narrow", counted("narrow", narrow))
    monkeypatch.setattr(LazyBatch, "rows", counted("rows", rows))
    run_validate(project, run, batch_rows=batch_rows, workers=0)
    assert calls["narrow"] and calls["rows"]
    shutil.copytree(run.dir / "validate", tmp_path / "narrow")
    monkeypatch.setattr(LazyBatch, "narrow", lambda self, columns: self.frame())
    monkeypatch.setattr(LazyBatch, "rows", lambda self, positions: self.frame().iloc[positions])
    run_validate(project, run, batch_rows=batch_rows, workers=0)
    shutil.copytree(run.dir / "validate", tmp_path / "whole")
    _assert_identical(tmp_path / "narrow", tmp_path / "whole")


CELLS = [None, "", "=1+2", "+8613800000000", "-5", "@x", "\tx", "\rx", "'=x", "''", "'a", 'say "hi"', "a,b", "x\ny",
         "x\r\ny", "客户", "Ｃ００１", "C001\x00", "\x00", "ok\x85", "😀", "\ufeff", "9" * 40, " ", "；分号"]


def _views(seed: int, lengths, missing_line: bool = False) -> list[pd.DataFrame]:
    """Quarantine views as validate spills them: object and ``str`` text, an all-missing first column, ``_line``."""
    rnd = random.Random(seed)
    frames = []
    for b, n in enumerate(lengths):
        line = [(1 << 62) + i if not (missing_line and i % 3 == 0) else None for i in range(n)]
        frames.append(pd.DataFrame({
            "customer_no": pd.Series([rnd.choice(CELLS) for _ in range(n)], dtype=object),
            "_stage": pd.Series(["validate"] * n, dtype=object),
            "_reasons": pd.Series([rnd.choice(CELLS[1:]) for _ in range(n)], dtype=object),
            "_blocking": pd.Series([rnd.choice(CELLS) for _ in range(n)], dtype=object),
            "_warnings": pd.Series([rnd.choice([None, "w: 甲"]) for _ in range(n)], dtype="str"),
            "name (legacy)": pd.Series([None if b == 0 else rnd.choice(CELLS) for _ in range(n)], dtype=object),
            "city": pd.Series([rnd.choice(CELLS) for _ in range(n)], dtype="str"),
            "_line": pd.Series(line, dtype="Int64" if missing_line else "int64"),
        }))
    return frames


@pytest.mark.parametrize("seed,lengths,missing_line", [(10, (60, 0, 1, 40), False), (11, (30, 30), True)])
def test_quarantine_csv_from_arrow_equals_the_csv_from_pandas(tmp_path, monkeypatch, seed, lengths, missing_line):
    from crmbridge import csvout
    from crmbridge.validation.quarantine import write_quarantine_csv

    sink = parquetsink.ParquetSink(tmp_path / "q.parquet")
    for f in _views(seed, lengths, missing_line):
        sink.write(f)
    sink.close()
    columns = ["_line", "city", "name (legacy)", "_reasons", "_stage", "_warnings", "customer_no", "_blocking"]
    taken, write_table = [], csvout.write_table
    monkeypatch.setattr(csvout, "write_table", lambda *a, **k: taken.append(write_table(*a, **k)) or taken[-1])
    write_quarantine_csv(tmp_path / "arrow.csv", sink.lazy_batches(), columns, ["customer_no"])
    assert taken == [not missing_line] * len(lengths)  # a missing integer is a float in pandas: its own way
    monkeypatch.setattr(csvout, "write_table", lambda table, fh, header=True: False)
    write_quarantine_csv(tmp_path / "pandas.csv", sink.lazy_batches(), columns, ["customer_no"])
    assert (tmp_path / "arrow.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert len((tmp_path / "arrow.csv").read_bytes()) > 1000
