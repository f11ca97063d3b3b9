"""Legacy file sources: CSV/TXT (any encoding, sniffed delimiter, quoted newlines) and Excel (.xlsx).

A reader turns one source into a ``SourceRead``: the column names (after the source's ``columns``
rename) and a stream of events, one per record, in file order:

- ``(line, cells, None)`` a kept record, ``cells`` aligned with ``columns`` (``None`` or ``""`` for
  empty: the stage stores both as null);
- ``(line, None, (reason, raw))`` a rejected record with the raw text (CSV) or cells (Excel).

Blank records carry no data and are counted in ``SourceRead.skipped_blank`` instead of as rows.
Nothing is guessed or coerced: every value stays the string the file holds.

CSV sources also offer ``SourceRead.batches``: the same records as Arrow batches (``Batch``), parsed by
pyarrow's CSV parser without a Python list per row (``events`` is then a view of the batches). See
``_csv_batches`` for how line numbers, ragged and blank rows are kept exactly as the ``csv`` module
path (``read_csv_rows``, still used for odd stretches of a file) gives them.
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
    batches: Iterator["Batch"] | None = None  # CSV: the records as Arrow batches (consume this or events)


@dataclass
class Batch:
    """Consecutive records of a source: kept rows as Arrow string columns, rejects as (line, reason, raw).

    ``columns`` are aligned with ``SourceRead.columns`` and hold ``""`` for an empty cell (the stage
    stores it as null); ``lines`` (int64) is each kept row's starting line. ``rejects`` are in line order.
    """

    lines: Any  # pyarrow.Array of int64
    columns: list
    rejects: list[tuple[int, str, str]]
    parsed_by: str = "arrow"  # or "csv": the csv module path read these records

    @property
    def rows(self) -> int:
        return len(self.lines)


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


class _Text:
    """A file's decoded text, handed out as physical lines (iteration) or as runs of text (``take``).

    Lines keep their terminators; CR-only files (old Mac exports) split on CR, decided on the first
    block. ``unread`` gives text back, so the csv-module path and the Arrow path can take turns.
    """

    def __init__(self, blocks: Iterator[str]):
        self.blocks = blocks
        self.buf = ""
        self.pos = 0
        self.searched = 0  # buf[pos:searched] holds no separator
        self.sep: str | None = None

    def _more(self) -> bool:
        block = next(self.blocks, None)
        if block is None:
            return False
        if self.sep is None:
            self.sep = "\r" if "\r" in block and "\n" not in block and len(block) > 1 else "\n"
        rest = self.buf[self.pos:]
        self.searched = len(rest)
        self.buf, self.pos = rest + block, 0
        return True

    def __iter__(self) -> "_Text":
        return self

    def __next__(self) -> str:
        while True:
            i = self.buf.find(self.sep, max(self.pos, self.searched)) if self.sep else -1
            if i >= 0:
                line = self.buf[self.pos:i + 1]
                self.pos = self.searched = i + 1
                return line
            self.searched = len(self.buf)
            if not self._more():
                if self.pos < len(self.buf):
                    line = self.buf[self.pos:]
                    self.buf, self.pos, self.searched = "", 0, 0
                    return line
                raise StopIteration

    def take(self) -> str | None:
        """The next run of unread text (what is buffered, else the next decoded block); None at the end."""
        if self.pos >= len(self.buf) and not self._more():
            return None
        text = self.buf[self.pos:]
        self.buf, self.pos, self.searched = "", 0, 0
        return text

    def unread(self, text: str) -> None:
        if text:
            self.buf = text + self.buf[self.pos:]
            self.pos = self.searched = 0


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


def read_csv(source, path: Path, shown: str, *, encoding: str | None = None,
             batch_rows: int = 50_000) -> SourceRead:
    """Open a CSV/TXT source; ``encoding`` overrides the configured/detected one.

    The records come as Arrow batches (``read.batches``) or, from the same parse, as events
    (``read.events``); consume one of the two.
    """
    read, text, lines, dialect, hasher = _open_csv(source, path, shown, encoding)
    read.batches = _csv_batches(text, lines, dialect, len(read.columns), read, hasher, batch_rows)
    read.events = _batch_events(read.batches)
    return read


def read_csv_rows(source, path: Path, shown: str, *, encoding: str | None = None) -> SourceRead:
    """The ``csv`` module path: events only, record by record (the reference the Arrow path equals)."""
    read, _, lines, dialect, hasher = _open_csv(source, path, shown, encoding)
    read.events = _csv_events(lines, dialect, len(read.columns), read, hasher)
    return read


def _open_csv(source, path: Path, shown: str, encoding: str | None):
    _missing_file(path, shown, source.name)
    wanted = encoding or (source.encoding if source.encoding != "auto" else None)
    det = enc.declared(path, wanted) if wanted else enc.detect_encoding(path)
    tried = "utf-8, gb18030 or big5" if det.how == "fallback" else ""
    hasher = hashlib.sha256()
    text = _Text(enc.decoded_text(path, det, shown, hasher, tried))
    where = f"source {source.name} ({shown})"
    for _ in range(source.header_row - 1):  # preamble lines above the header
        if next(text, None) is None:
            raise UsageError(f"{where}: the file ends before header_row {source.header_row}")
    sample = list(itertools.islice(text, SNIFF_LINES))
    lines = _Lines(text)
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
    return read, text, lines, dialect, hasher


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


def _csv_events(lines: _Lines, dialect: dict, width: int, read: SourceRead, hasher,
                until: int | None = None) -> Iterator[Event]:
    """Records parsed by the csv module; with ``until``, stop at the first record boundary at or past
    that line (nothing pushed back pending), leaving the rest of the text unread."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_RECORD_CHARS)
    try:
        reader = csv.reader(lines.feed(), **dialect)
        while True:
            if until is not None and lines.line_no >= until and not lines.pending:
                return
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
    if hasher is not None:
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


# --------------------------------------------------------------------------- CSV as Arrow batches

# Text handed to pyarrow at a time (characters): memory follows this, not the file size.
ARROW_CHARS = 4 << 20
# A record still incomplete after this much text (an unterminated quote, a giant field) is left to the
# csv module path, which has the limits above. Kept below MAX_RECORD_CHARS on purpose.
MAX_CARRY = 16 << 20
# Superset of the characters str.isspace() accepts (checked in tests): candidates for blank rows.
_BLANK_RX = r"^[\p{Z}\p{Cc}]*$"


def _csv_batches(text: _Text, lines: _Lines, dialect: dict, width: int, read: SourceRead, hasher,
                 batch_rows: int) -> Iterator[Batch]:
    """The records after the header as Arrow batches, equal to what ``_csv_events`` gives.

    The decoded text is taken in runs of ``ARROW_CHARS``, encoded to UTF-8 and scanned with numpy:
    quote parity tells which newlines end a record (the physical line where each record starts is
    the number of newlines before it) and which delimiters separate fields. A run whose quotes follow
    the csv module's strict grammar (a quote opens a field, closes it before a delimiter or line end,
    or is doubled) and holds no bare CR is parsed by pyarrow; only its odd records (wrong field
    count, blank, trailing delimiters with quoted empties) go through the csv module one by one. From
    the first record that breaks the grammar (a stray quote, a bare CR, an unterminated quote, a
    record over the limits) the csv module path reads on until it reaches a record boundary past the
    offending line, then the Arrow path takes over again. CR-only files and non-ASCII delimiters or
    quote characters use the csv module path throughout.
    """
    delim, quote = dialect["delimiter"], dialect["quotechar"]
    text.unread("".join(lines.pending))
    lines.pending.clear()
    line_no = lines.line_no  # lines consumed so far
    fast = (width > 0 and text.sep == "\n" and len(quote or "") == 1 and delim != quote
            and all(ord(c) < 128 and c not in "\r\n" for c in (delim, quote)))
    if not fast:
        yield from _slow_batches(text, line_no, dialect, width, read, None, batch_rows)
        read.sha256 = hasher.hexdigest()
        return
    parser = _ArrowCsv(width, dialect)
    carry, want, eof = "", ARROW_CHARS, False
    while True:
        parts, size = [carry], len(carry)
        while size < want and not eof:
            block = text.take()
            if block is None:
                eof = True
                break
            parts.append(block)
            size += len(block)
        carry = "".join(parts)
        if not carry:
            break
        data = carry.encode("utf-8")
        added = eof and not data.endswith(b"\n")
        if added:  # the last record without a line end: parse it as if it had one
            data += b"\n"
        cut, bad_line, more = parser.scan(data)
        if cut:
            batch, lines_in = parser.parse(data, cut, line_no, added and cut == len(data), read)
            line_no += lines_in
            if batch.rows or batch.rejects:
                yield batch
        rest = data[cut:-1] if added and cut < len(data) else data[cut:]
        carry = rest.decode("utf-8")
        if bad_line is None and more and not eof and len(carry) < MAX_CARRY:
            want = max(ARROW_CHARS, len(carry) + 1)  # an incomplete record: read on
            continue
        want = ARROW_CHARS
        if bad_line is not None or (carry and (eof or len(carry) >= MAX_CARRY)):
            text.unread(carry)
            carry = ""
            until = line_no + (bad_line or 1)
            line_no = yield from _slow_batches(text, line_no, dialect, width, read, until, batch_rows)
            eof = False  # the csv module path may have stopped before the end: take what it left
        elif eof and not carry:
            break
    read.sha256 = hasher.hexdigest()


def _slow_batches(text: _Text, line_no: int, dialect: dict, width: int, read: SourceRead,
                  until: int | None, batch_rows: int):
    """Batches from the csv module path, from ``line_no`` on (to ``until``, see ``_csv_events``).
    Returns the number of lines consumed when it stops; what it has not parsed is unread."""
    lines = _Lines(text)
    lines.line_no = line_no
    kept_lines: list[int] = []
    kept: list[list] = []
    rejects: list[tuple[int, str, str]] = []
    for line, cells, bad in _csv_events(lines, dialect, width, read, None, until):
        if bad is None:
            kept_lines.append(line)
            kept.append(cells)
        else:
            rejects.append((line, *bad))
        if len(kept) + len(rejects) >= batch_rows:
            yield _rows_batch(kept_lines, kept, rejects, width)
            kept_lines, kept, rejects = [], [], []
    if kept or rejects:
        yield _rows_batch(kept_lines, kept, rejects, width)
    text.unread("".join(lines.pending))
    return lines.line_no


def _rows_batch(lines: list[int], rows: list[list], rejects: list, width: int) -> Batch:
    import pyarrow as pa

    cols = [pa.array(c, pa.string()) for c in zip(*rows)] if rows else \
        [pa.array([], pa.string()) for _ in range(width)]
    return Batch(pa.array(lines, pa.int64()), cols, rejects, "csv")


def _batch_events(batches: Iterator[Batch]) -> Iterator[Event]:
    """The batches as per-record events (kept rows and rejects merged in line order)."""
    for batch in batches:
        cols = [c.to_pylist() for c in batch.columns]
        kept = [(ln, list(cells)) for ln, cells in zip(batch.lines.to_pylist(), zip(*cols))]
        rejects = iter(batch.rejects)
        nxt = next(rejects, None)
        for ln, cells in kept:
            while nxt is not None and nxt[0] < ln:
                yield nxt[0], None, nxt[1:]
                nxt = next(rejects, None)
            yield ln, cells, None
        while nxt is not None:
            yield nxt[0], None, nxt[1:]
            nxt = next(rejects, None)


class _ArrowCsv:
    """Scans UTF-8 CSV text with numpy and parses its regular records with pyarrow."""

    def __init__(self, width: int, dialect: dict):
        import pyarrow as pa
        import pyarrow.csv as pv

        self.width, self.dialect = width, dialect
        self.D, self.Q = ord(dialect["delimiter"]), ord(dialect["quotechar"])
        self.names = [f"c{i}" for i in range(width)]
        self.parse_opts = pv.ParseOptions(delimiter=dialect["delimiter"], quote_char=dialect["quotechar"],
                                          double_quote=True, escape_char=False, newlines_in_values=True,
                                          ignore_empty_lines=False)
        self.convert_opts = pv.ConvertOptions(column_types={n: pa.string() for n in self.names},
                                              strings_can_be_null=False, quoted_strings_can_be_null=False,
                                              check_utf8=False)  # we encoded it ourselves

    def scan(self, data: bytes) -> tuple[int, int | None, bool]:
        """``(cut, bad_line, more)``: records in ``data[:cut]`` can take the Arrow path; ``bad_line``
        (1-based from ``cut``) is the first line the csv module must read, if any; ``more`` says the
        text after ``cut`` is an incomplete record. Keeps what ``parse`` needs of the scan."""
        import numpy as np

        b = np.frombuffer(data, np.uint8)
        D, Q = self.D, self.Q
        nl = np.flatnonzero(b == 10)
        self._scanned = None
        if not len(nl):
            return 0, None, True
        last = int(nl[-1])
        q = np.flatnonzero(b == Q)
        # Quote parity: a byte is inside quotes when an odd number of quotes precede it. The k-th
        # quote (from 0) opens a field when k is even and closes one (or starts a "" pair) when odd.
        nl_inside = (np.searchsorted(q, nl) & 1).astype(bool) if len(q) else np.zeros(len(nl), bool)
        bad_at = len(b)
        qs = q[q < last]
        if len(qs):
            opening = (np.arange(len(qs)) & 1) == 0
            prev = b[np.maximum(qs - 1, 0)]
            ok_open = (qs == 0) | (prev == D) | (prev == 10) | (prev == Q)
            nxt = b[qs + 1]
            nxt2 = b[np.minimum(qs + 2, len(b) - 1)]
            ok_close = (nxt == D) | (nxt == 10) | (nxt == Q) | ((nxt == 13) & (nxt2 == 10))
            wrong = np.flatnonzero(np.where(opening, ~ok_open, ~ok_close))
            if len(wrong):
                bad_at = int(qs[wrong[0]])
        cr = np.flatnonzero(b[:last] == 13)
        if len(cr):
            lone = np.flatnonzero(b[cr + 1] != 10)
            if len(lone):
                bad_at = min(bad_at, int(cr[lone[0]]))
        end_idx = np.flatnonzero(~nl_inside)  # indexes into nl of the newlines that end a record
        end_idx = end_idx[nl[end_idx] < bad_at]
        if len(end_idx):
            span = np.diff(end_idx, prepend=-1)
            too_long = np.flatnonzero(span > MAX_RECORD_LINES)
            if len(too_long):  # the csv module path rejects these: leave the record to it
                k = int(too_long[0])
                bad_at = min(bad_at, int(nl[end_idx[k]]))
                end_idx = end_idx[:k]
        cut = int(nl[end_idx[-1]]) + 1 if len(end_idx) else 0
        if cut:
            self._scanned = (nl[:end_idx[-1] + 1], end_idx, q[q < cut])
        if bad_at < len(b):
            bad_line = int(np.count_nonzero(nl[nl >= cut] < bad_at)) + 1
            return cut, bad_line, False
        return cut, None, cut < len(b)

    def parse(self, data: bytes, cut: int, line_no: int, added: bool, read: SourceRead) -> tuple[Batch, int]:
        """The records of ``data[:cut]`` (``scan`` just found them; they start on line ``line_no + 1``)
        as a batch; also the number of lines they span. ``added``: the last line end was added."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pv

        width = self.width
        b = np.frombuffer(data, np.uint8, count=cut)
        nl, end_idx, q = self._scanned
        ends = nl[end_idx]
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        first_line = np.empty_like(end_idx)
        first_line[0] = 0
        first_line[1:] = end_idx[:-1] + 1
        rec_line = first_line + (line_no + 1)
        cend = ends - ((b[np.maximum(ends - 1, 0)] == 13) & (ends > starts))
        dpos = np.flatnonzero(b == self.D)
        if len(q):
            dpos = dpos[(np.searchsorted(q, dpos) & 1) == 0]  # delimiters outside quotes
        first_d = np.searchsorted(dpos, starts)
        n = np.searchsorted(dpos, cend) - first_d + 1
        n[cend == starts] = 0
        read.skipped_blank += int(np.count_nonzero(n == 0))
        keep = n == width
        trim = np.zeros(len(n), bool)
        over = np.flatnonzero(n > width)
        if len(over):  # trailing delimiters only (no quoted empties): cut them off, keep the record
            pos = dpos[first_d[over] + width - 1]
            ok = (cend[over] - pos) == (n[over] - width)
            trim[over[ok]] = True
            trim_pos = pos[ok]
        keep |= trim
        if keep.all() and not trim.any():
            kept_bytes = data[:cut]
        else:  # leave out the records pyarrow does not take and the trailing delimiters cut off
            drop = np.flatnonzero(~keep)
            gaps = [(int(starts[i]), int(ends[i]) + 1) for i in drop]
            if trim.any():
                gaps += zip(trim_pos.tolist(), cend[trim].tolist())
            gaps.sort()
            pieces, at = [], 0
            for a, z in gaps:
                pieces.append(data[at:a])
                at = z
            pieces.append(data[at:cut])
            kept_bytes = b"".join(pieces)
        n_keep = int(np.count_nonzero(keep))
        if n_keep:
            table = pv.read_csv(pa.BufferReader(kept_bytes),
                                read_options=pv.ReadOptions(column_names=self.names, use_threads=False,
                                                            block_size=max(len(kept_bytes) + 1, 1 << 20)),
                                parse_options=self.parse_opts, convert_options=self.convert_opts)
            if table.num_rows != n_keep:
                raise RuntimeError(f"CSV parse: {table.num_rows} rows where {n_keep} records were found")
            cols = [c.combine_chunks() for c in table.columns]
        else:
            cols = [pa.array([], pa.string()) for _ in range(width)]
        line_arr = pa.array(rec_line[keep], pa.int64())
        # blank rows (every cell empty or whitespace): few candidates, checked exactly in Python
        cand = np.flatnonzero(pc.match_substring_regex(cols[0], _BLANK_RX).to_numpy(zero_copy_only=False))
        if len(cand):
            sub = [pc.take(c, pa.array(cand)).to_pylist() for c in cols]
            blank = [i for j, i in enumerate(cand.tolist()) if _is_blank([s[j] for s in sub])]
            if blank:
                read.skipped_blank += len(blank)
                mask = np.ones(len(line_arr), bool)
                mask[blank] = False
                m = pa.array(mask)
                cols = [c.filter(m) for c in cols]
                line_arr = line_arr.filter(m)
        rejects: list[tuple[int, str, str]] = []
        slow = np.flatnonzero(~keep & (n != 0))
        if len(slow):
            extra_lines, extra_rows = [], []
            for i in slow.tolist():
                raw = data[starts[i]:ends[i] + 1].decode("utf-8")
                if added and i == len(ends) - 1:
                    raw = raw[:-1]
                line, row, reject = self._record(raw, int(rec_line[i]), read)
                if reject is not None:
                    rejects.append(reject)
                elif row is not None:
                    extra_lines.append(line)
                    extra_rows.append(row)
            if extra_rows:
                more = _rows_batch(extra_lines, extra_rows, [], width)
                all_lines = pa.concat_arrays([line_arr, more.lines])
                order = pc.sort_indices(all_lines)
                line_arr = all_lines.take(order)
                cols = [pa.concat_arrays([c, e]).take(order) for c, e in zip(cols, more.columns)]
        return Batch(line_arr, cols, rejects), len(nl)

    def _record(self, raw: str, line: int, read: SourceRead):
        """One record the Arrow path does not take, parsed and judged as ``_csv_events`` does."""
        parts = raw.split("\n")
        physical = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        old_limit = csv.field_size_limit()
        csv.field_size_limit(MAX_RECORD_CHARS)
        try:
            row = next(csv.reader(physical, **self.dialect), [])
        finally:
            csv.field_size_limit(old_limit)
        width, n = self.width, len(row)
        if n == width:
            if _is_blank(row):
                read.skipped_blank += 1
                return line, None, None
            return line, row, None
        if n == 0 or _is_blank(row):
            read.skipped_blank += 1
            return line, None, None
        if n > width and not any(row[width:]):
            return line, row[:width], None
        reason = "too_many_fields" if n > width else "too_few_fields"
        return line, None, (line, f"{reason} ({n} instead of {width})", raw)


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
