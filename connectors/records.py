"""What a file or SQL reader hands the extract stage: ``SourceRead`` (columns and record events) and,
for CSV, ``Batch`` (the same records as Arrow columns). See ``connectors/files.py`` for the event format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from crmbridge.connectors import encoding as enc
from crmbridge.errors import UsageError

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




def _is_blank(cells: list) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _missing_file(path: Path, shown: str, source: str) -> None:
    if not path.is_file():
        raise UsageError(f"source {source}: file {shown} not found",
                         hint="check `path:` for this source in crmbridge.yml (relative to the project folder)")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(enc.BLOCK):
            h.update(block)
    return h.hexdigest()
