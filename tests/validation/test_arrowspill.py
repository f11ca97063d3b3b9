"""validation.arrowspill: validate's spills in Arrow IPC give back, batch by batch, the very frames (values,
Python types, dtypes) and Arrow tables the previous Parquet spill's round trip gave; in a forked worker too;
and the disagreement report read from such a spill is byte for byte the one read from the Parquet file.
The normalised columns written from the Arrow values normalisation kept (``Normalised.arrow``) are the
columns ``pa.Table.from_pandas`` made of the frame.

Tricky batches: an all-null column in the first batch (text from then on), an empty batch, a batch of one
row, Arrow-backed ``str`` columns with missing values, unicode and control characters, the int64 ``_line``,
normalised frames of the real kind (``test_pass1_equality.tricky_frame``), quarantine views with ``_reasons``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation import disagreement as D
from crmbridge.validation.arrowspill import ArrowSpill, is_arrow_file
from crmbridge.validation.parallel import fork_available, ordered_map
from crmbridge.validation.parquetsink import ParquetSink
from tests.validation.test_disagreement_equality import criteria, rows
from tests.validation.test_parquetsink import awkward_batches
from tests.validation.test_pass1_equality import FIELD_VALUES, customers_frame, tricky_frame


def _normalised_like(seed: int) -> list[pd.DataFrame]:
    """Spill-like batches: object text (str/None), Arrow-backed ``str``, the int64 ``_line``, a batch of none."""
    frames = []
    for b, n in enumerate((400, 1, 0, 257)):
        df = tricky_frame(seed + b, n).drop(columns=["a", "b"])
        df["a"] = pd.Series([None if pd.isna(v) else str(v) for v in tricky_frame(seed + b, n)["a"]], dtype=object)
        df["_line"] = np.arange(n, dtype=np.int64)
        frames.append(df)
    return frames


def _quarantine_like() -> list[pd.DataFrame]:
    return [pd.DataFrame({"customer_no": pd.Series(v, dtype=object), "_reasons": pd.Series(r, dtype=object),
                          "_line": np.arange(len(v), dtype=np.int64)})
            for v, r in ((["C1", None, "客户\x00"], ["a; b", "c", ""]), ([], []), (["C2"], [None]))]


CASES = {"parquetsink": lambda: awkward_batches(3), "normalised": lambda: _normalised_like(5),
         "quarantine": _quarantine_like}


def _write(sink, frames):
    for df in frames:
        sink.write(df)
    sink.close()
    return sink


def _assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert got.index.equals(want.index)
    for c in want.columns:
        x, y = got[c].to_numpy(dtype=object), want[c].to_numpy(dtype=object)
        assert [type(v) for v in x] == [type(v) for v in y], c
        assert [v if v == v else "nan" for v in x] == [v if v == v else "nan" for v in y], c


@pytest.mark.parametrize("case", sorted(CASES))
def test_frames_read_back_equal_the_parquet_round_trip(tmp_path, case):
    frames = CASES[case]()
    old = _write(ParquetSink(tmp_path / "old.parquet", dictionary=False), frames)
    new = _write(ArrowSpill(tmp_path / "new.arrow"), frames)
    assert is_arrow_file(new.path) and not is_arrow_file(old.path)
    assert new.lengths == old.lengths == [len(f) for f in frames] and new.rows == old.rows
    assert new.schema == old.schema
    pairs = list(zip(new.lazy_batches(), old.lazy_batches(), strict=True))
    assert len(pairs) == len(frames)
    for (a, b), written in zip(pairs, frames):
        assert a.table().equals(b.table()) and a.table().schema == b.table().schema
        _assert_same_frame(a.frame(), b.frame())
        assert len(a.frame()) == len(written)
        assert new.exact(a.table()) == old.exact(b.table())
        some = [c for c in written.columns if c.startswith("_")]
        _assert_same_frame(a.narrow(some), b.narrow(some))
        at = np.arange(len(written))[::2]
        _assert_same_frame(a.rows(at), b.rows(at))
    cols = [c for c in frames[0].columns if c != "_line"][:2]
    for a, b in zip(new.batches(cols), old.batches(cols), strict=True):
        _assert_same_frame(a, b)


def test_a_worker_process_reads_its_batches_from_its_own_handle(tmp_path):
    """Validate's workers (``parallel.ordered_map``, forked) walk the spill themselves: every batch comes
    back from whichever process read it as the parent reads it."""
    if not fork_available():
        pytest.skip("no fork here: validate stays serial")
    frames = _normalised_like(9) * 3
    spill = _write(ArrowSpill(tmp_path / "s.arrow"), frames)
    got = [r for _x, r in ordered_map(lambda b: b.frame(), spill.lazy_batches, 1, share=True, what="reading")]
    assert len(got) == len(frames)
    for g, b in zip(got, spill.batches()):
        _assert_same_frame(g, b)


def test_an_entity_without_rows_spills_nothing_to_read(tmp_path):
    spill = _write(ArrowSpill(tmp_path / "s.arrow"), [_normalised_like(1)[2]])
    (batch,) = spill.lazy_batches()
    assert len(batch.frame()) == 0 and list(batch.frame().columns) == list(_normalised_like(1)[2].columns)
    assert spill.rows == 0 and list(ArrowSpill(tmp_path / "unused.arrow").batches()) == []


@pytest.mark.parametrize("seed,n,batch", [(6, 1, 1), (7, 300, 7), (8, 5000, 1000)])
def test_disagreement_report_from_the_arrow_spill_equals_the_parquet_one(tmp_path, seed, n, batch):
    frame = rows(seed, n)
    parts = [frame.iloc[i:i + max(1, n // 3)].reset_index(drop=True) for i in range(0, n, max(1, n // 3))]
    _write(ParquetSink(tmp_path / "rows.parquet", dictionary=False), parts)
    _write(ArrowSpill(tmp_path / "rows.arrow"), parts)
    crit = criteria()
    for key in (["customer_no"], [], ["customer_no", "_row_id"]):
        reports = [json.dumps(D.disagreement_from_file(tmp_path / f"rows.{ext}", crit, key,
                                                       ["credit_code", "customer_no"], batch),
                              ensure_ascii=False, sort_keys=True).encode() for ext in ("arrow", "parquet")]
        assert reports[0] == reports[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.arrow", "rows.parquet"]  # DuckDB's folder is gone


def _extracted_like(seed: int, n: int) -> pd.DataFrame:
    """``customers_frame`` as extract reads it back: every data column Arrow-backed text (``str``)."""
    df = customers_frame(seed, n)
    for c in FIELD_VALUES:
        df[c] = pd.array([v if isinstance(v, str) else None if pd.isna(v) else str(v) for v in df[c]], dtype="str")
    return df


@pytest.mark.parametrize("seed,n", [(40, 1), (41, 60), (42, 3000)])
def test_columns_normalisation_kept_in_arrow_equal_the_pandas_conversion(tmp_path, seed, n):
    import pyarrow as pa

    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.rules import compile_rules, referenced_columns
    from tests.validation.conftest import TEMPLATE_DEFINITION

    rules = load_definition(TEMPLATE_DEFINITION).entities["customers"]
    extra = referenced_columns(compile_rules("customers", rules))
    empty = _extracted_like(0, 3)
    for c in FIELD_VALUES:
        empty[c] = pd.array([None] * 3, dtype="str")
    frames = [_extracted_like(seed, n), empty, _extracted_like(seed + 1, n).iloc[:0], _extracted_like(seed + 2, 7)]
    norms = [normalise(f, rules, extra, prune=False) for f in frames]
    assert {"name", "city", "customer_no", "credit_code"} <= set(norms[0].arrow)  # the path ran
    assert set(norms[1].arrow) and all(a.null_count == 3 for a in norms[1].arrow.values())  # all missing
    for norm in norms:
        want = pa.Table.from_pandas(norm.frame, preserve_index=False).replace_schema_metadata(None)
        got = ParquetSink._converted(norm.frame, norm.arrow, None)
        assert got.column_names == want.column_names
        for c in want.column_names:  # an all-missing column: text in Arrow, null from pandas (the file's text)
            g, w = (t.column(c).cast("string") if t.column(c).type == "null" else t.column(c) for t in (got, want))
            assert g.type == w.type and g.equals(w), c
    old = _write(ParquetSink(tmp_path / "old.parquet", dictionary=False), [x.frame for x in norms])
    new = ArrowSpill(tmp_path / "new.arrow")
    for norm in norms:
        new.write(norm.frame, norm.arrow)
    new.close()
    assert new.schema == old.schema
    for a, b in zip(new.lazy_batches(), old.lazy_batches(), strict=True):
        assert a.table().equals(b.table())
        _assert_same_frame(a.frame(), b.frame())
