"""Small helpers of the load: mapped rows as Python records, and the crash-point test hook."""

from __future__ import annotations

import os

from crmbridge.cells import to_native
from crmbridge.connectors.salesforce.values import ColumnRecords

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


def frame_columns(df) -> dict[str, list]:
    """Each column's cells as a list (``Series.tolist``), for ``frame_records`` and ``record_columns``."""
    return {c: df[c].tolist() for c in df.columns}


def frame_records(df, columns: dict[str, list] | None = None) -> list[dict]:
    """Rows as dicts, column by column (several times faster than ``DataFrame.to_dict("records")``).
    ``columns``: ``frame_columns(df)`` when the caller has it already."""
    cols = list(df.columns)
    lists = (df[c].tolist() for c in cols) if columns is None else (columns[c] for c in cols)
    return [dict(zip(cols, vals)) for vals in zip(*lists)]


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


_PLAIN = frozenset((str, int, bool, type(None)))  # cells to_native returns unchanged (no float: NaN)


def _native_column(vals: list) -> list:
    """``to_record``'s conversion of one column's cells (the list itself when no cell needs one)."""
    if set(map(type, vals)) <= _PLAIN:
        return vals
    out = []
    append = out.append
    for v in vals:
        t = type(v)
        if t is not str and t is not int and t is not bool:
            v = None if t is float and v != v else v if t is float else to_native(v)
        append(v)
    return out


def _assemble(cols: list[list], fields: list[str], n: int) -> list[dict]:
    records = [dict(zip(fields, vals)) for vals in zip(*cols)] if cols else [{} for _ in range(n)]
    dotted = [f for f in fields if "." in f]
    if dotted:  # no parent reference: leave the lookup empty rather than reference a null key
        for rec in records:
            for f in dotted:
                if rec[f] is None:
                    del rec[f]
    return records


def to_records(rows: list[dict], fields: list[str]) -> list[dict]:
    """``to_record`` of every row (same result), field by field: for the records of a whole Bulk job."""
    if not rows:
        return []
    if len(set(fields)) != len(fields):  # a field named twice: keep to_record's exact rules
        return [to_record(r, fields) for r in rows]
    return _assemble([_native_column([row.get(f) for row in rows]) for f in fields], fields, len(rows))


def frame_to_records(df, positions: list[int] | None, fields: list[str], columns: dict[str, list] | None = None,
                     rows: list[dict] | None = None) -> tuple[list[dict], int | None]:
    """``to_records`` of the rows ``frame_records(df)`` gives at ``positions`` (None: every row), read
    from the frame's columns (``columns``: ``frame_columns(df)``) instead of the row dicts (same result),
    and the characters of their cells for ``plan_batches`` (None where the row dicts' exact rules were
    used: a field or a column named twice). ``rows``: ``frame_records(df)`` when the caller has it."""
    cols = record_columns(df, positions, fields, columns)
    if cols is None:  # the row dicts' exact rules
        rows = frame_records(df, columns) if rows is None else rows
        return to_records(rows if positions is None else [rows[i] for i in positions], fields), None
    return records_of(cols, fields), cells_chars(cols)


def records_of(cols: list[list], fields: list[str]) -> list[dict]:
    """The records (as ``to_records`` builds them) of ``record_columns``' columns."""
    n = len(cols[0]) if cols else 0
    if not n:
        return []
    records = _assemble(cols, fields, n)
    if any("." in f for f in fields):  # a record may lack a lookup (None): the dicts are the truth
        return records
    return ColumnRecords(records, fields, cols)  # the upload's cells come from the columns


def record_columns(df, positions: list[int] | None, fields: list[str],
                   columns: dict[str, list] | None = None) -> list[list] | None:
    """The cells of ``frame_to_records``' records, field by field (a dotted field's None included);
    None when a field or a column is named twice, or no field is named (the row dicts' rules then)."""
    if len(set(fields)) != len(fields) or not df.columns.is_unique or not fields:
        return None
    n = len(df) if positions is None else len(positions)
    cols = []
    for f in fields:
        if f not in df.columns:  # row.get(f): None
            cols.append([None] * n)
            continue
        column = df[f]
        vals = column.tolist() if columns is None else columns[f]
        vals = list(vals) if positions is None else [vals[i] for i in positions]  # a copy: NaN set below
        kinds = set(map(type, vals))
        if float in kinds and kinds <= _PLAIN | {float}:
            # text with gaps (NaN) or numbers: a float stays, NaN (what isna finds among these) is None
            nan = column.isna().to_numpy()
            for i in (nan if positions is None else nan[positions]).nonzero()[0].tolist():
                vals[i] = None
            cols.append(vals)
        else:
            cols.append(_native_column(vals))
    return cols


def cells_chars(cols: list[list]) -> int:
    """The characters of every cell as ``str`` writes it (text columns, gaps included, summed without
    joining: ``str(None)`` is ``"None"``)."""
    return sum(_column_chars(c) for c in cols)


def _column_chars(c: list) -> int:
    kinds = set(map(type, c))
    if kinds <= {str}:
        return sum(map(len, c))
    if kinds <= {str, type(None)}:  # text with gaps (the usual mapped column)
        return sum(map(len, filter(None, c))) + 4 * c.count(None)
    return len("".join(map(str, c)))
