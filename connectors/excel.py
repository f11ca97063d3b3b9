"""Excel (.xlsx) rows as record events: sheet choice and cells as the text a person sees."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Iterator

from crmbridge.connectors.records import Event, SourceRead, _is_blank, sha256_file
from crmbridge.errors import UsageError

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
