"""Small helpers of the load: mapped rows as Python records, and the crash-point test hook."""

from __future__ import annotations

import os
from typing import Any

CRASH_ENV = "CRMBRIDGE_TEST_CRASH_AT"
_crash_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``CRMBRIDGE_TEST_CRASH_AT=load:after_job_created[@N]`` kills the process (exit 137)
    the N-th time that point is reached, as ``kill -9`` would, so resume can be tested end to end."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _crash_seen[name] = _crash_seen.get(name, 0) + 1
    if _crash_seen[name] >= int(nth or 1):
        os._exit(137)


def _native(v: Any) -> Any:
    """pandas/numpy cell -> a JSON-able Python value (dates as ISO text) or None."""
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if hasattr(v, "isoformat"):
        if getattr(v, "hour", 0) == 0 and getattr(v, "minute", 0) == 0 and getattr(v, "second", 0) == 0 \
                and hasattr(v, "date"):
            return v.date().isoformat()
        return v.isoformat()
    return v


def frame_records(df) -> list[dict]:
    """Rows as dicts, column by column (several times faster than ``DataFrame.to_dict("records")``)."""
    cols = list(df.columns)
    return [dict(zip(cols, vals)) for vals in zip(*(df[c].tolist() for c in cols))]


def to_record(row: dict, fields: list[str]) -> dict:
    rec = {}
    for f in fields:
        v = _native(row.get(f))
        if "." in f and v is None:
            continue  # no parent reference: leave the lookup empty rather than reference a null key
        rec[f] = v
    return rec
