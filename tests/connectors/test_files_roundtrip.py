"""Whatever a CSV writer produces, the reader gives back exactly, with the right line numbers."""

from __future__ import annotations

import csv
import io
import random

import pytest

from crmbridge.config import CsvSource
from crmbridge.connectors.files import read_csv

ALPHABET = list("abcXYZ019 ,;|\t\"'") + ["\n", "\r\n", "\x00", "上海", "Ｃ", "　", "<b>", "€", "𠮷", "\\"]


def random_cell(rnd: random.Random) -> str:
    return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 12)))


@pytest.mark.parametrize("encoding, delimiter, terminator", [
    ("utf-8", ",", "\r\n"), ("gb18030", ";", "\n"), ("utf-16", "\t", "\r\n"), ("utf-8-sig", "|", "\n")])
def test_random_records_round_trip(tmp_path, encoding, delimiter, terminator):
    rnd = random.Random(f"{encoding}{delimiter}")
    header = ["id", "a", "b", "c"]
    rows = []
    for i in range(1500):
        row = [str(i)] + [random_cell(rnd) for _ in range(3)]
        rows.append(row)
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator=terminator, quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    text = buf.getvalue()
    p = tmp_path / "fuzz.csv"
    p.write_bytes(text.encode(encoding))
    read = read_csv(CsvSource(type="csv", name="f", entity="e", path="fuzz.csv"), p, "fuzz.csv")
    got = [(line, cells) for line, cells, bad in read.events if bad is None]
    assert read.delimiter == delimiter
    assert [c for _, c in got] == rows
    # the line number is the physical line where each record starts
    starts, line = [], 2
    for r in rows:
        starts.append(line)
        body = io.StringIO(newline="")
        csv.writer(body, delimiter=delimiter, lineterminator=terminator).writerow(r)
        line += body.getvalue().count("\n")
    assert [ln for ln, _ in got] == starts
