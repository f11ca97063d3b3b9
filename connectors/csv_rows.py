"""CSV through the ``csv`` module, record by record: decoded text as physical lines, the delimiter
sniffer, the header row and the record events (the reference the Arrow path in ``csv_arrow`` equals).
"""

from __future__ import annotations

import csv
from collections import deque
from typing import Iterator

from crmbridge.connectors.records import Event, SourceRead, _is_blank
from crmbridge.errors import UsageError

# An unterminated quote would swallow the rest of the file into one field; a record spanning more
# than this is rejected from its first line and parsing resumes on the next physical line.
MAX_RECORD_LINES = 10_000
MAX_RECORD_CHARS = 32 * 1024 * 1024
DELIMITERS = [",", ";", "\t", "|", "^", "~", "\x1f", "\x01", ":"]
SNIFF_LINES = 200


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
