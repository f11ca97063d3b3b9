"""Small helpers of the load: mapped rows as Python records, and the crash-point test hook."""

from __future__ import annotations

import os

from crmbridge.cells import to_native

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


def frame_records(df) -> list[dict]:
    """Rows as dicts, column by column (several times faster than ``DataFrame.to_dict("records")``)."""
    cols = list(df.columns)
    return [dict(zip(cols, vals)) for vals in zip(*(df[c].tolist() for c in cols))]


def to_record(row: dict, fields: list[str]) -> dict:
    rec = {}
    for f in fields:
        v = row.get(f)
        t = type(v)
        # text, whole numbers and booleans are already what to_native returns (most cells): skip it
        if t is not str and t is not int and t is not bool:
            v = None if t is float and v != v else v if t is float else to_native(v)
        if v is None and "." in f:
            continue  # no parent reference: leave the lookup empty rather than reference a null key
        rec[f] = v
    return rec


def to_records(rows: list[dict], fields: list[str]) -> list[dict]:
    """``to_record`` of every row (same result), field by field: for the records of a whole Bulk job."""
    if not rows:
        return []
    if len(set(fields)) != len(fields):  # a field named twice: keep to_record's exact rules
        return [to_record(r, fields) for r in rows]
    cols = []
    for f in fields:
        out = []
        append = out.append
        for row in rows:
            v = row.get(f)
            t = type(v)
            if t is not str and t is not int and t is not bool:
                v = None if t is float and v != v else v if t is float else to_native(v)
            append(v)
        cols.append(out)
    records = [dict(zip(fields, vals)) for vals in zip(*cols)] if cols else [{} for _ in rows]
    dotted = [f for f in fields if "." in f]
    if dotted:  # no parent reference: leave the lookup empty rather than reference a null key
        for rec in records:
            for f in dotted:
                if rec[f] is None:
                    del rec[f]
    return records
