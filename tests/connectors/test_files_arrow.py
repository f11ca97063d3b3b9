"""The Arrow CSV path (``read_csv``) gives exactly what the csv module path (``read_csv_rows``) gives:
the same kept rows with the same starting lines, the same rejects (line, reason, raw text), the same
blank-row count, encoding facts and sha256, on every CSV under tests/data, on the demo project's
exports and on randomly damaged files, whatever the size of the runs of text handed to pyarrow."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

import crmbridge.connectors.csv_arrow as csv_arrow
import crmbridge.connectors.csv_rows as csv_rows
import crmbridge.connectors.files as files
from crmbridge.config import CsvSource
from crmbridge.errors import UsageError

DATA = Path(__file__).parent.parent / "data"
ALL_CSV = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".csv", ".txt"))


def outcome(reader, source: CsvSource, path: Path):
    try:
        read = reader(source, path, path.name)
        events = list(read.events)
    except UsageError as exc:
        return ("error", str(exc))
    return (read.columns, read.encoding, read.delimiter, read.notes, events, read.skipped_blank, read.sha256)


def same(source: CsvSource, path: Path):
    old = outcome(files.read_csv_rows, source, path)
    new = outcome(files.read_csv, source, path)
    assert new == old
    return new


def src(path: str, **kw) -> CsvSource:
    return CsvSource(type="csv", name="s", entity="e", path=path, **kw)


@pytest.fixture(params=[csv_arrow.ARROW_CHARS, 97], ids=["default-runs", "tiny-runs"])
def runs(request, monkeypatch):
    """Also with tiny runs of text, so every record boundary case meets a run boundary."""
    monkeypatch.setattr(csv_arrow, "ARROW_CHARS", request.param)
    monkeypatch.setattr(csv_arrow, "MAX_CARRY", max(4 * request.param, 1000))
    return request.param


@pytest.mark.parametrize("path", ALL_CSV, ids=lambda p: p.name)
def test_every_test_csv_gives_the_same_records(path, runs):
    out = same(src(path.name), path)
    if path.name == "csv__preamble_header_row3.csv":
        same(src(path.name, header_row=3), path)
    assert out[0] != "error" or "not valid" in out[1]


def test_the_demo_exports_give_the_same_records(tmp_path, runs):
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(tmp_path)
    write_demo_data(tmp_path, customers=1500, erp=False)
    project = load_project(tmp_path)
    csv_sources = [s for s in project.config.sources if s.type == "csv"]
    assert len(csv_sources) >= 2
    for s in csv_sources:
        out = same(s, project.path(s.path))
        assert len(out[4]) > 100
        by = {"arrow": 0, "csv": 0}
        for b in files.read_csv(s, project.path(s.path), s.path).batches:
            by[b.parsed_by] += b.rows + len(b.rejects)
        assert by["arrow"] > 0.95 * (by["arrow"] + by["csv"])  # the fast path really is the one taken


PIECES = ["a", "b", "上海", "Ｃ", "　", " ", ",", ";", '"', '""', "\n", "\r\n", "\r", "\x00", "𠮷", "x y", "'"]


def damaged_file(rnd: random.Random, rows: int, delimiter: str) -> str:
    """Mostly regular records, some quoted with newlines, and now and then a defect of every kind."""
    out = ["id,name,city,phone\r\n".replace(",", delimiter)]
    for i in range(rows):
        cells = [str(i)] + ["".join(rnd.choice(["abc", "上海", " ", "x", ""]) for _ in range(2)) for _ in range(3)]
        if rnd.random() < 0.2:
            cells[1] = '"' + cells[1].replace('"', '""') + '\n' + rnd.choice(["", "2号楼", '"" q']) + '"'
        line = delimiter.join(cells) + rnd.choice(["\n", "\r\n"])
        r = rnd.random()
        if r < 0.04:  # a defect: random junk spliced into the record
            at = rnd.randint(0, len(line) - 1)
            line = line[:at] + "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3))) + line[at:]
        elif r < 0.06:
            line = delimiter * rnd.randint(0, 5) + "\n"  # blank-ish
        elif r < 0.08:
            line = line.rstrip("\r\n") + delimiter * rnd.randint(1, 3) + rnd.choice(["", '""', " "]) + "\n"
        elif r < 0.09:
            line = "   \n"
        out.append(line)
    return "".join(out)


@pytest.mark.parametrize("seed", range(12))
def test_randomly_damaged_files_give_the_same_records(tmp_path, monkeypatch, seed):
    rnd = random.Random(seed)
    monkeypatch.setattr(csv_arrow, "ARROW_CHARS", rnd.choice([64, 300, 5000, 1 << 20]))
    monkeypatch.setattr(csv_arrow, "MAX_CARRY", 20_000)
    monkeypatch.setattr(csv_rows, "MAX_RECORD_LINES", rnd.choice([3, 50, 10_000]))
    delimiter = rnd.choice([",", ";", "\t", "|"])
    text = damaged_file(rnd, 400, delimiter)
    if seed % 3 == 0:
        text = text.rstrip("\r\n")  # no line end after the last record
    p = tmp_path / "damaged.csv"
    p.write_bytes(text.encode(rnd.choice(["utf-8", "gb18030", "utf-16", "utf-8-sig"])))
    out = same(src("damaged.csv", delimiter=delimiter), p)
    assert out[0] != "error"


def test_an_unterminated_quote_early_in_a_long_file(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_arrow, "ARROW_CHARS", 500)
    monkeypatch.setattr(csv_arrow, "MAX_CARRY", 2000)
    monkeypatch.setattr(csv_rows, "MAX_RECORD_LINES", 40)
    p = tmp_path / "open.csv"
    p.write_text("id,name\n1,\"open\n" + "".join(f'{i},n{i}\n' for i in range(2, 3000)), "utf-8")
    out = same(src("open.csv"), p)
    assert [(e[0], e[2][0]) for e in out[4] if e[2]] == [(2, "unterminated_quote")]
    assert sum(1 for e in out[4] if e[1]) == 2998


def test_batches_carry_the_same_rows_as_arrow(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text('id,name\n1,"a\nb"\n2,\n,\n3,x,y\n4,z,\n', "utf-8")
    read = files.read_csv(src("b.csv"), p, "b.csv")
    batches = list(read.batches)
    assert [b.lines.to_pylist() for b in batches] == [[2, 4, 7]]
    assert [c.to_pylist() for c in batches[0].columns] == [["1", "2", "4"], ["a\nb", "", "z"]]
    assert batches[0].rejects == [(6, "too_many_fields (3 instead of 2)", "3,x,y\n")]
    assert read.skipped_blank == 1 and len(read.sha256) == 64


def test_blank_row_pattern_covers_every_python_whitespace():
    import pyarrow as pa
    import pyarrow.compute as pc

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    got = pc.match_substring_regex(pa.array(spaces + ["".join(spaces), "", "a", " a"]), csv_arrow._BLANK_RX)
    assert got.to_pylist() == [True] * (len(spaces) + 2) + [False, False]


@pytest.mark.parametrize("seed", range(6))
def test_delimiters_inside_quotes_give_the_same_records(tmp_path, monkeypatch, seed):
    """``parse`` leaves out the delimiters between each pair of quotes: quoted fields full of delimiters,
    next to each other, empty, with doubled quotes and line ends, before trailing delimiters."""
    rnd = random.Random(seed)
    monkeypatch.setattr(csv_arrow, "ARROW_CHARS", rnd.choice([64, 300, 5000, 1 << 20]))
    d = rnd.choice([",", ";", "\t", "|"])
    quoted = ['""', f'"{d}"', f'"{d}{d}{d}"', f'"a{d}b"', f'"x""{d}""y"', f'"{d}\n{d}"', '"上海"', f'"Ｃ{d}　"']
    lines = [d.join(["id", "a", "b", "c"]) + "\n"]
    for i in range(300):
        cells = [str(i)] + [rnd.choice(quoted + ["", "v", "客户"]) for _ in range(3)]
        lines.append(d.join(cells) + d * rnd.choice([0, 0, 0, 1, 2]) + rnd.choice(["\n", "\r\n"]))
    p = tmp_path / "quoted.csv"
    p.write_bytes("".join(lines).encode(rnd.choice(["utf-8", "gb18030"])))
    out = same(src("quoted.csv", delimiter=d), p)
    assert len(out[4]) == 300


@pytest.mark.parametrize("seed", range(6))
def test_a_bare_cr_in_a_crlf_file_gives_the_same_records(tmp_path, monkeypatch, seed):
    """The scan counts CRs against the CRLF line ends and looks for a bare one only when they differ:
    a CRLF file with one bare CR (in a cell, before a line end, as a line end, just before the last
    line end, with some LF-only lines before it) reads as the csv module reads it, also when a run of
    text starts or ends near it."""
    rnd = random.Random(seed)
    monkeypatch.setattr(csv_arrow, "ARROW_CHARS", rnd.choice([40, 97, 1 << 20]))
    lines = [f"{i},n{i},c{i % 7}\r\n" for i in range(300)]
    at = rnd.randrange(len(lines))
    cell = rnd.choice([f"{at},n\r{at},x\r\n", f"{at},n{at},x\r\r\n", f"{at},n{at},x\r"])
    text = "id,name,city\r\n" + "".join(lines[:at] + [cell] + lines[at + 1:])
    for t in (text, text[:-2] + "\r\r\n", text.replace("\r\n", "\n", 3)):
        p = tmp_path / "cr.csv"
        p.write_bytes(t.encode("utf-8"))
        assert same(src("cr.csv"), p)[0] != "error"
