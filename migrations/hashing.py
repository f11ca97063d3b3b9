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


_NULL_TEXT = frozenset(("nan", "NaT", "<NA>", "None"))


def canonical_fast(value: Any) -> str:
    """``canonical`` (same result), without its chain of type checks for text, the common case."""
    if type(value) is str:
        if value in _NULL_TEXT or not value.strip():
            return ""
        return value.replace(_SEP, " ") if _SEP in value else value
    return canonical(value)


def canonical_column(values) -> list[str]:
    """``canonical`` of every value of a column (same result), with text cells (most of them) done inline."""
    out = []
    append = out.append
    for v in values:
        if type(v) is str:
            if v in _NULL_TEXT or not v.strip():
                append("")
            else:
                append(v.replace(_SEP, " ") if _SEP in v else v)
        elif type(v) is float:
            append("" if v != v else str(int(v)) if v.is_integer() else repr(v))
        else:
            append(canonical(v))
    return out


def frame_hashes(df, fields: list[str]) -> list[str]:
    """``record_hash`` for every row of a DataFrame (same result), built column by column for speed."""
    n = len(df)
    if n == 0:
        return []
    parts = []
    for f in sorted(fields):
        prefix = f + "="
        if f in df.columns:
            parts.append([prefix + c for c in canonical_column(df[f].astype(object).tolist())])
        else:
            parts.append([prefix] * n)
    if not parts:
        return [hashlib.sha256(b"").hexdigest()] * n
    sha, sep = hashlib.sha256, _SEP
    return [sha(sep.join(row).encode()).hexdigest() for row in zip(*parts)]
