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
    """SHA-256 over ``field=canonical value`` for ``fields`` (sorted), joined by the unit separator."""
    text = _SEP.join(f"{f}={canonical(record.get(f))}" for f in sorted(fields))
    return hashlib.sha256(text.encode()).hexdigest()


def frame_hashes(df, fields: list[str]) -> list[str]:
    """``record_hash`` for every row of a DataFrame (same result), built column by column for speed."""
    if len(df) == 0:
        return []
    joined = None
    for f in sorted(fields):
        col = df[f].astype(object).map(canonical) if f in df.columns else ""
        part = f + "=" + (col if f in df.columns else "")
        if isinstance(part, str):
            import pandas as pd

            part = pd.Series([part] * len(df), index=df.index, dtype=object)
        joined = part if joined is None else joined + _SEP + part
    if joined is None:
        return [hashlib.sha256(b"").hexdigest()] * len(df)
    return [hashlib.sha256(t.encode()).hexdigest() for t in joined]
