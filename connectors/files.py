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
``csv_arrow._csv_batches`` for how line numbers, ragged and blank rows are kept exactly as the ``csv``
module path (``read_csv_rows``, still used for odd stretches of a file) gives them.

This module holds the entry points and the header handling; the work is done in ``records``
(``SourceRead``, ``Batch``), ``csv_rows`` (the ``csv`` module path and its record limits),
``csv_arrow`` (the Arrow path) and ``excel`` (cells as text).
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, Iterable

from crmbridge.connectors import encoding as enc
from crmbridge.connectors.csv_arrow import _batch_events, _csv_batches
from crmbridge.connectors.csv_rows import SNIFF_LINES, _csv_events, _header, _Lines, _Text, sniff_delimiter
from crmbridge.connectors.excel import _CellText, _excel_events, _sheet
from crmbridge.connectors.records import Batch, Event, SourceRead, _missing_file, sha256_file
from crmbridge.errors import UsageError

__all__ = ["LINEAGE", "Batch", "Event", "SourceRead", "build_columns", "read_csv", "read_csv_rows", "read_excel",
           "sha256_file", "sniff_delimiter"]

LINEAGE = ("_row_id", "_source", "_department", "_line", "_source_key")


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


# --------------------------------------------------------------------------- CSV


def read_csv(source, path: Path, shown: str, *, encoding: str | None = None,
             batch_rows: int = 50_000, tentative: bool = False) -> SourceRead:
    """Open a CSV/TXT source; ``encoding`` overrides the configured/detected one.

    The records come as Arrow batches (``read.batches``) or, from the same parse, as events
    (``read.events``); consume one of the two. ``tentative``: a detected utf-8 or gb18030 is checked
    on the file's first block only and confirmed while reading (``encoding.NotThatEncoding`` where
    it fails later: the caller drops what it read and opens the file again without ``tentative``).
    """
    read, text, lines, dialect, hasher = _open_csv(source, path, shown, encoding, tentative)
    read.batches = _csv_batches(text, lines, dialect, len(read.columns), read, hasher, batch_rows)
    read.events = _batch_events(read.batches)
    return read


def read_csv_rows(source, path: Path, shown: str, *, encoding: str | None = None) -> SourceRead:
    """The ``csv`` module path: events only, record by record (the reference the Arrow path equals)."""
    read, _, lines, dialect, hasher = _open_csv(source, path, shown, encoding)
    read.events = _csv_events(lines, dialect, len(read.columns), read, hasher)
    return read


def _open_csv(source, path: Path, shown: str, encoding: str | None, tentative: bool = False):
    _missing_file(path, shown, source.name)
    wanted = encoding or (source.encoding if source.encoding != "auto" else None)
    det = enc.declared(path, wanted) if wanted else enc.detect_encoding(path, whole=not tentative)
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
