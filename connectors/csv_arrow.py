"""CSV as Arrow batches: the decoded text scanned with numpy and parsed by pyarrow's CSV parser,
odd stretches handed to the ``csv`` module path (``csv_rows``). See ``_csv_batches``.
"""

from __future__ import annotations

import csv
from typing import Iterator

from crmbridge.connectors import csv_rows
from crmbridge.connectors.csv_rows import _csv_events, _Lines, _Text
from crmbridge.connectors.records import Batch, Event, SourceRead, _is_blank

# Text handed to pyarrow at a time (characters): memory follows this, not the file size.
ARROW_CHARS = 4 << 20
# A record still incomplete after this much text (an unterminated quote, a giant field) is left to the
# csv module path, which has the limits in ``csv_rows``. Kept below MAX_RECORD_CHARS on purpose.
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
        if not size:
            break
        data = b"".join([p.encode("utf-8") for p in parts])  # one copy of the bytes, not of the text too
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
    from crmbridge import arrowvals as av

    cols = [av.strings(c) for c in zip(*rows)] if rows else [av.strings([]) for _ in range(width)]
    return Batch(av.ints(lines), cols, rejects, "csv")


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
        # A CR is bare unless a newline follows it: counted, CRLF files need no CR positions.
        if np.count_nonzero(b[:last] == 13) > np.count_nonzero(b[nl[nl > 0] - 1] == 13):
            cr = np.flatnonzero(b[:last] == 13)
            lone = np.flatnonzero(b[cr + 1] != 10)
            if len(lone):
                bad_at = min(bad_at, int(cr[lone[0]]))
        end_idx = np.flatnonzero(~nl_inside)  # indexes into nl of the newlines that end a record
        end_idx = end_idx[nl[end_idx] < bad_at]
        if len(end_idx):
            span = np.diff(end_idx, prepend=-1)
            too_long = np.flatnonzero(span > csv_rows.MAX_RECORD_LINES)
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

        from crmbridge import arrowvals as av

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
        if len(q):  # leave out the delimiters inside quotes (``q`` holds whole pairs: cut is outside quotes)
            lo, hi = np.searchsorted(dpos, q[0::2]), np.searchsorted(dpos, q[1::2])
            if (hi > lo).any():  # rare: one pass over the delimiters only then, none over the quotes
                inside = np.zeros(len(dpos) + 1, np.int32)
                inside[lo[hi > lo]] += 1
                inside[hi[hi > lo]] -= 1
                dpos = dpos[np.cumsum(inside[:-1]) == 0]
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
            cols = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in table.columns]  # no copy
        else:
            cols = [av.strings([]) for _ in range(width)]
        line_arr = av.ints(rec_line[keep])
        # blank rows (every cell empty or whitespace): few candidates, checked exactly in Python
        cand = np.flatnonzero(av.to_numpy(pc.match_substring_regex(cols[0], _BLANK_RX), null=False))
        if len(cand):
            sub = [pc.take(c, av.ints(cand)).to_pylist() for c in cols]
            blank = [i for j, i in enumerate(cand.tolist()) if _is_blank([s[j] for s in sub])]
            if blank:
                read.skipped_blank += len(blank)
                mask = np.ones(len(line_arr), bool)
                mask[blank] = False
                m = av.bools(mask)
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
        csv.field_size_limit(csv_rows.MAX_RECORD_CHARS)
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

