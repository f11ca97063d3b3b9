"""Legacy file sources: CSV/TXT (any encoding, sniffed delimiter, quoted newlines) and Excel (.xlsx).

A reader turns one source into a ``SourceRead``: the column names (after the source's ``columns``
rename) and a stream of events, one per record, in file order:

- ``(line, cells, None)`` a kept record, ``cells`` aligned with ``columns`` (``None`` or ``""`` for
  empty: the stage stores both as null);
- ``(line, None, (reason, raw))`` a rejected record with the raw text (CSV) or cells (Excel).

Blank records carry no data and are counted in ``SourceRead.skipped_blank`` instead of as rows.
Nothing is guessed or coerced: every value stays the string the file holds.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable, Iterator

from crmbridge.connectors import encoding as enc
from crmbridge.errors import UsageError

# An unterminated quote would swallow the rest of the file into one field; a record spanning more
# than this is rejected from its first line and parsing resumes on the next physical line.
MAX_RECORD_LINES = 10_000
MAX_RECORD_CHARS = 32 * 1024 * 1024
DELIMITERS = [",", ";", "\t", "|", "^", "~", "\x1f", "\x01", ":"]
SNIFF_LINES = 200
LINEAGE = ("_row_id", "_source", "_department", "_line", "_source_key")

Event = tuple  # (line, cells | None, (reason, raw) | None)


@dataclass
class SourceRead:
    """What a reader found: columns, encoding facts, and the record events (consumed once)."""

    columns: list[str]
    events: Iterator[Event]
    encoding: str | None = None
    encoding_how: str | None = None
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)
    skipped_blank: int = 0
    sha256: str | None = None  # final once ``events`` is exhausted
    watermark: dict | None = None
    zero_dates: dict[str, int] = field(default_factory=dict)  # column -> MySQL zero dates read as missing


# --------------------------------------------------------------------------- header handling


def build_columns(raw: Iterable[Any], rename: dict[str, str], key: list[str], where: str,
                  notes: list[str]) -> tuple[list[str], int]:
    """Column names from a header row: strip whitespace and BOM, rename, name blanks, dedupe.

    Returns the names and how many trailing blank headers were dropped (a trailing delimiter).
    A ``columns`` entry or ``key`` column missing from the header is a ``UsageError``.
    """
    names = ["" if v is None else str(v).replace("\ufeff", "").strip() for v in raw]
    trailing = 0
    while names and names[-1] == "":
        names.pop()
        trailing += 1
    if trailing:
        notes.append(f"{trailing} blank header(s) at the end (trailing delimiter) dropped")
    missing = [src for src, dst in rename.items() if src.strip() not in names and dst not in names]
    if missing:
        raise UsageError(f"{where}: column(s) {', '.join(repr(m) for m in missing)} named in `columns:` "
                         f"not found in the header; the header has: {', '.join(repr(n) for n in names)}",
                         hint="fix `columns:` for this source in crmbridge.yml or check header_row")
    stripped = {k.strip(): v for k, v in rename.items()}
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        name = stripped.get(n, n)
        if name == "":
            name = f"_col{i}"
            notes.append(f"blank header in column {i} named {name}")
        if name in LINEAGE:
            raise UsageError(f"{where}: column '{name}' clashes with a lineage column",
                             hint=f"rename it with `columns: {{{name}: another_name}}`")
        if name in seen:
            seen[name] += 1
            new = f"{name}__{seen[name]}"
            notes.append(f"duplicate header '{name}' in column {i} named {new}")
            name = new
        seen.setdefault(name, 1)
        out.append(name)
    absent = [k for k in key if k not in out]
    if absent:
        raise UsageError(f"{where}: key column(s) {', '.join(absent)} not in the columns "
                         f"({', '.join(out)})", hint="fix `key:` or `columns:` for this source")
    return out, trailing


def _is_blank(cells: list) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _missing_file(path: Path, shown: str, source: str) -> None:
    if not path.is_file():
        raise UsageError(f"source {source}: file {shown} not found",
                         hint="check `path:` for this source in crmbridge.yml (relative to the project folder)")


# --------------------------------------------------------------------------- CSV


class _TooLong(Exception):
    pass


class _Lines:
    """Physical lines for csv.reader, remembering the current record's raw lines for rejects."""

    def __init__(self, it: Iterator[str]):
        self.it = iter(it)
        self.pending: deque[str] = deque()
        self.line_no = 0
        self.buf: list[str] = []
        self.chars = 0

    def feed(self) -> Iterator[str]:
        """A fresh generator of lines for a new csv.reader (an exception ends a generator)."""
        buf, pending, it = self.buf, self.pending, self.it
        while True:
            if pending:
                line = pending.popleft()
            else:
                line = next(it, None)
                if line is None:
                    return
            self.line_no += 1
            buf.append(line)
            if len(buf) > 1:
                self.chars += len(line)
                if len(buf) > MAX_RECORD_LINES or self.chars > MAX_RECORD_CHARS:
                    raise _TooLong()
            yield line

    def start(self) -> int:
        self.buf.clear()  # in place: the running generator holds this list
        self.chars = 0
        return self.line_no + 1

    def push_back(self, lines: list[str]) -> None:
        self.pending.extendleft(reversed(lines))
        self.line_no -= len(lines)


def _split_lines(blocks: Iterator[str]) -> Iterator[str]:
    """Physical lines with their terminators; CR-only files (old Mac exports) split on CR."""
    rest = ""
    sep = None
    for block in blocks:
        block = rest + block
        if sep is None:
            sep = "\r" if "\r" in block and "\n" not in block and len(block) > 1 else "\n"
        parts = block.split(sep)
        rest = parts.pop()
        for p in parts:
            yield p + sep
    if rest:
        yield rest


def sniff_delimiter(lines: list[str], quotechar: str) -> str:
    """The candidate delimiter that splits the sample into the most consistent field count > 1."""
    best, best_score = ",", (-1.0, 0)
    text = [ln for ln in lines if ln.strip()]
    if not text:
        return ","
    for d in DELIMITERS:
        if not any(d in ln for ln in text):
            continue
        try:
            rows = [r for r in csv.reader(text, delimiter=d, quotechar=quotechar) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width or (len(r) > width and not any(r[width:])))
        score = (consistent / len(rows), width)
        if score > best_score:
            best, best_score = d, score
    return best


def read_csv(source, path: Path, shown: str, *, encoding: str | None = None) -> SourceRead:
    """Open a CSV/TXT source; ``encoding`` overrides the configured/detected one."""
    _missing_file(path, shown, source.name)
    wanted = encoding or (source.encoding if source.encoding != "auto" else None)
    det = enc.declared(path, wanted) if wanted else enc.detect_encoding(path)
    tried = "utf-8, gb18030 or big5" if det.how == "fallback" else ""
    hasher = hashlib.sha256()
    physical = _split_lines(enc.decoded_text(path, det, shown, hasher, tried))
    where = f"source {source.name} ({shown})"
    for _ in range(source.header_row - 1):  # preamble lines above the header
        if next(physical, None) is None:
            raise UsageError(f"{where}: the file ends before header_row {source.header_row}")
    sample = list(itertools.islice(physical, SNIFF_LINES))
    lines = _Lines(physical)
    lines.pending.extend(sample)
    lines.line_no = source.header_row - 1
    delim = source.delimiter if source.delimiter != "auto" else sniff_delimiter(sample, source.quotechar)
    delim = {"\\t": "\t", "tab": "\t"}.get(delim, delim)
    if len(delim) != 1:
        raise UsageError(f"{where}: delimiter must be a single character, got {delim!r}")
    dialect = dict(delimiter=delim, quotechar=source.quotechar, doublequote=True, strict=True)
    read = SourceRead(columns=[], events=iter(()), encoding=det.encoding, encoding_how=det.how, delimiter=delim)
    header = _header(lines, dialect, where)
    read.columns, _ = build_columns(header, source.columns, source.key, where, read.notes)
    read.events = _csv_events(lines, dialect, len(read.columns), read, hasher)
    return read


def _header(lines: _Lines, dialect: dict, where: str) -> list[str]:
    lines.start()
    reader = csv.reader(lines.feed(), **dialect)
    try:
        for row in reader:
            if row and not _is_blank(row):
                return row
    except (csv.Error, _TooLong) as exc:
        raise UsageError(f"{where}: the header row (line {lines.line_no - len(lines.buf) + 1}) is malformed: "
                         f"{exc or 'unterminated quote'}", hint="check header_row and quotechar") from None
    raise UsageError(f"{where}: no header row (the file is empty)")


def _csv_events(lines: _Lines, dialect: dict, width: int, read: SourceRead, hasher) -> Iterator[Event]:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_RECORD_CHARS)
    try:
        reader = csv.reader(lines.feed(), **dialect)
        while True:
            start = lines.start()
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, _TooLong) as exc:
                yield _bad_record(lines, start, exc)
                reader = csv.reader(lines.feed(), **dialect)
                continue
            n = len(row)
            if n == width:
                if not any(row) or (not row[0].strip() and _is_blank(row)):
                    read.skipped_blank += 1
                    continue
                yield start, row, None  # "" becomes null in the writer, vectorised
            elif n == 0 or _is_blank(row):
                read.skipped_blank += 1
            elif n > width and not any(row[width:]):  # trailing delimiter(s) on data rows
                yield start, row[:width], None
            else:
                reason = "too_many_fields" if n > width else "too_few_fields"
                yield start, None, (f"{reason} ({n} instead of {width})", "".join(lines.buf))
    finally:
        csv.field_size_limit(old_limit)
    read.sha256 = hasher.hexdigest()


def _bad_record(lines: _Lines, start: int, exc: Exception) -> Event:
    raw = list(lines.buf)
    msg = str(exc)
    unterminated = isinstance(exc, _TooLong) or "unexpected end of data" in msg
    if unterminated and len(raw) > 1:
        # Only the opening line is bad; give the lines it swallowed back to the parser.
        first = raw[0]
        lines.push_back(raw[1:])
        return start, None, ("unterminated_quote", first)
    if unterminated:
        reason = "unterminated_quote"
    elif "new-line character" in msg:  # a lone CR inside an unquoted field of a LF/CRLF file
        reason = "bare_carriage_return"
    elif "field larger than field limit" in msg:
        reason = f"field_too_long (over {MAX_RECORD_CHARS} characters)"
    elif "expected after" in msg:
        reason = f"malformed_quotes ({msg})"
    else:
        reason = f"malformed_record ({msg})"
    return start, None, (reason, "".join(raw))


# --------------------------------------------------------------------------- Excel


def read_excel(source, path: Path, shown: str) -> SourceRead:
    """Open an .xlsx source (read-only, streamed row by row)."""
    _missing_file(path, shown, source.name)
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise UsageError(f"source {source.name}: {shown} is not an .xlsx workbook",
                         hint="open it in Excel or LibreOffice and save it as .xlsx")
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise UsageError(f"source {source.name}: cannot open {shown} as a workbook ({type(exc).__name__}: {exc})")
    ws = _sheet(wb, source, shown)
    where = f"source {source.name} ({shown}, sheet {ws.title})"
    rows = ws.iter_rows(min_row=source.header_row)
    read = SourceRead(columns=[], events=iter(()))
    header = next(rows, None)
    if header is None:
        wb.close()
        raise UsageError(f"{where}: no header in row {source.header_row} (the sheet is empty there)")
    conv = _CellText(wb.epoch, set())
    raw = [(conv(c) or "").replace("\ufeff", "").strip() for c in header]
    read.columns, _ = build_columns(raw, source.columns, source.key, where, read.notes)
    # date_columns may name a column after the rename or by its legacy header
    dates = {i for i, c in enumerate(read.columns) if c in source.date_columns or raw[i] in source.date_columns}
    unknown = [d for d in source.date_columns if d not in read.columns and d not in raw]
    if unknown:
        wb.close()
        raise UsageError(f"{where}: date_columns {', '.join(unknown)} not in the columns ({', '.join(read.columns)})")
    read.events = _excel_events(wb, rows, _CellText(wb.epoch, dates), len(read.columns), read, path,
                                source.header_row)
    return read


def _sheet(wb, source, shown: str):
    names = wb.sheetnames
    s = source.sheet
    if isinstance(s, int):
        if 0 <= s < len(names):
            return wb[names[s]]
    elif s in names:
        return wb[s]
    wb.close()
    raise UsageError(f"source {source.name}: sheet {s!r} not found in {shown}; its sheets are "
                     f"{', '.join(repr(n) for n in names)} (an integer sheet counts from 0)")


def _excel_events(wb, rows, conv, width: int, read: SourceRead, path: Path, header_row: int) -> Iterator[Event]:
    try:
        for number, row in enumerate(rows, header_row + 1):
            cells = [conv(c, i) for i, c in enumerate(row)]
            if _is_blank(cells):
                read.skipped_blank += 1
                continue
            if len(cells) > width and any(c is not None for c in cells[width:]):
                yield number, None, ("too_many_fields (a value right of the last header column)",
                                     json.dumps(cells, ensure_ascii=False))
                continue
            cells = cells[:width] + [None] * (width - len(cells))
            yield number, cells, None
    finally:
        wb.close()
    read.sha256 = sha256_file(path)


class _CellText:
    """An Excel cell as the string a person sees (dates as ISO, numbers without float noise)."""

    def __init__(self, epoch, date_idx: set[int]):
        self.epoch = epoch
        self.date_idx = date_idx

    def __call__(self, cell, idx: int = -1) -> str | None:
        v = getattr(cell, "value", None)
        if v is None or v == "":
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if idx in self.date_idx and isinstance(v, (int, float)):
            from openpyxl.utils.datetime import from_excel

            v = from_excel(v, self.epoch)
        if isinstance(v, datetime):
            return v.date().isoformat() if v.time() == time(0) else v.isoformat()
        if isinstance(v, (date, time)):
            return v.isoformat()
        if isinstance(v, (int, float)):
            return _number(v, getattr(cell, "number_format", "General") or "General")
        return str(v)


def _number(v: float, fmt: str) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    if isinstance(v, int):
        s = str(v)
        if fmt and set(fmt) == {"0"} and len(fmt) > len(s):  # "000000": zero-padded codes, postal codes
            s = s.zfill(len(fmt))
        return s
    return format(v, ".15g")  # Excel keeps 15 significant digits


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(enc.BLOCK):
            h.update(block)
    return h.hexdigest()
