"""Content hashes of mapped records: what makes a delta run skip records that did not change.

The hash covers exactly the Salesforce fields a step writes (not lineage columns), with values put
in a canonical text form first, so that a value read back as ``1234.0`` and one mapped as ``"1234"``
or a missing cell and an empty string hash alike.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable

_SEP = "\x1f"  # unit separator: cannot occur in a canonical value (control characters are stripped)


def canonical(value: Any) -> str:
    """One text form per value: null/empty -> "", whole floats without ``.0``, bools lower-case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    if text.strip() == "" or text in ("nan", "NaT", "<NA>", "None"):
        return ""
    return text.replace(_SEP, " ")


def record_hash(record: dict[str, Any], fields: Iterable[str]) -> str:
    """SHA-256 over the canonical values of ``fields`` (field names included, sorted)."""
    h = hashlib.sha256()
    for f in sorted(fields):
        h.update(f.encode())
        h.update(b"=")
        h.update(canonical(record.get(f)).encode())
        h.update(_SEP.encode())
    return h.hexdigest()


def frame_hashes(df, fields: list[str]) -> list[str]:
    """``record_hash`` for every row of a DataFrame (same result as the per-record function)."""
    cols = sorted(f for f in fields if f in df.columns)
    missing = sorted(set(fields) - set(cols))
    out = []
    for values in df[cols].itertuples(index=False, name=None) if cols else ([()] * len(df)):
        rec = dict(zip(cols, values))
        rec.update({m: None for m in missing})
        out.append(record_hash(rec, fields))
    return out
