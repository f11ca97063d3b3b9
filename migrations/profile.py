"""Profile the extracted entities of a run: counts, nulls, distinct values, lengths, suspicious patterns.

Computed column by column with pyarrow compute over the run's Parquet files, so memory follows one
column of one entity, not the whole run. Suspicious patterns are the ones legacy Chinese exports are
known for: full-width characters (``Ｃ000123``, ``２００１２０``), leading/trailing spaces (including the
ideographic space U+3000), HTML-like content (``<b>Evil</b> Corp``), control characters (embedded NULs)
and U+FFFD replacement characters (text that was already mis-decoded before it reached us).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LINEAGE = {"_row_id", "_source", "_department", "_line", "_source_key"}
TOP = 5
MAX_SHOWN = 200  # characters of a top value kept in profile.json

PATTERNS = {
    "full_width": r"[\x{FF01}-\x{FF5E}\x{3000}]",
    "leading_trailing_space": r"^[\s\x{3000}\x{A0}]|[\s\x{3000}\x{A0}]$",
    "html_like": r"<[A-Za-z/!][^>]*>|&[A-Za-z]+;|&#[0-9]+;",
    "control_chars": r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]",
    "replacement_char": r"\x{FFFD}",
}


def profile_dir(extract_dir: Path, manifest: dict) -> dict:
    """The profile of every entity in ``manifest`` whose Parquet files are under ``extract_dir``."""
    out: dict[str, Any] = {"run_id": manifest.get("run_id"), "entities": {}}
    for entity, totals in manifest["entities"].items():
        files = [Path(extract_dir) / s["parquet"] for s in manifest["sources"] if s["entity"] == entity]
        out["entities"][entity] = profile_entity(files, totals.get("sources", []))
    return out


def profile_entity(files: list[Path], sources: list[str]) -> dict:
    """Row count and per-column statistics of the Parquet ``files`` of one entity."""
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]
    rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    columns: list[str] = []
    for sch in schemas:
        columns += [n for n in sch.names if n not in LINEAGE and n not in columns]
    stats = {c: _column(files, schemas, rows, c) for c in columns}
    return {"rows": sum(rows), "sources": sources, "columns": stats}


def _column(files, schemas, rows, name: str) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    chunks, absent = [], 0
    for f, sch, n in zip(files, schemas, rows):
        if name in sch.names:
            chunks += pq.read_table(f, columns=[name]).column(0).chunks
        else:
            absent += n
    arr = pa.chunked_array(chunks, type=pa.string())
    total = len(arr) + absent
    nulls = arr.null_count + absent
    out: dict[str, Any] = {"nulls": nulls, "null_pct": round(100.0 * nulls / total, 2) if total else 0.0,
                           "distinct": 0, "top": [], "min_length": None, "max_length": None,
                           "suspicious": {k: 0 for k in PATTERNS}}
    if len(arr) == arr.null_count:
        return out
    out["distinct"] = pc.count_distinct(arr).as_py()
    lengths = pc.min_max(pc.utf8_length(arr))
    out["min_length"], out["max_length"] = lengths["min"].as_py(), lengths["max"].as_py()
    counts = pc.value_counts(arr)
    vals, cnts = counts.field("values"), counts.field("counts")
    order = pc.array_sort_indices(cnts, order="descending")[:TOP]  # stable: ties keep first-seen order
    out["top"] = [[_short(vals[i].as_py()), cnts[i].as_py()] for i in order.to_pylist()
                  if vals[i].is_valid]
    for key, pattern in PATTERNS.items():
        out["suspicious"][key] = int(pc.sum(pc.match_substring_regex(arr, pattern)).as_py() or 0)
    return out


def _short(v: str | None) -> str | None:
    if v is None or len(v) <= MAX_SHOWN:
        return v
    return v[:MAX_SHOWN] + "…"


def load_profile(run_dir: Path) -> dict:
    """The stored profile of a run's extract stage (recomputed if the file is missing)."""
    from crmbridge.migrations.extract import STAGE, load_manifest

    p = Path(run_dir) / STAGE / "profile.json"
    if p.is_file():
        return json.loads(p.read_text("utf-8"))
    return profile_dir(Path(run_dir) / STAGE, load_manifest(run_dir))
