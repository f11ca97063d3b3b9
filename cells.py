"""Turning pandas/numpy cells into plain Python values for JSON, CSV and API payloads."""

from __future__ import annotations

from typing import Any


def to_native(v: Any) -> Any:
    """pandas/numpy cell -> a JSON-able Python value (midnight datetimes as ISO dates) or None."""
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):  # lists, dicts: not a scalar
        pass
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if hasattr(v, "isoformat"):
        if getattr(v, "hour", 0) == 0 and getattr(v, "minute", 0) == 0 and getattr(v, "second", 0) == 0 \
                and hasattr(v, "date"):
            return v.date().isoformat()
        return v.isoformat()
    return v
