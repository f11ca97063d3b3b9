"""Turning caller records into what the two APIs expect on the wire.

REST (JSON): ``None`` is ``null``; a relationship reference written ``"Account.Legacy_Id__c": "C1"``
becomes the nested ``{"Account": {"Legacy_Id__c": "C1"}}`` that Salesforce resolves by external id.
Bulk 2.0 (CSV): ``None`` is ``#N/A`` (an empty cell means "leave unchanged"), booleans are
``true``/``false`` and the relationship header stays ``Account.Legacy_Id__c``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from typing import Any, Iterable

BULK_NULL = "#N/A"


def plain(value: Any) -> Any:
    """A JSON-friendly Python value: numpy/pandas scalars unwrapped, NaN/NaT to None, dates ISO."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and type(value).__module__ == "numpy":
        value = value.item()
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        # JSON numbers: an integral Decimal stays exact as int; others go as float, which keeps the
        # 15-17 significant digits a Salesforce number/currency field (precision 18) can hold.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


def rest_record(record: dict, sobject: str | None = None,
                relationship_fields: dict[str, str] | None = None) -> dict:
    """One record as sent in an sObject Collections body.

    ``relationship_fields`` maps a relationship name (``Account``) to its lookup field
    (``AccountId``) so that a ``None`` reference clears the lookup instead of sending ``null`` as a
    nested object, which Salesforce rejects.
    """
    out: dict = {"attributes": {"type": sobject}} if sobject else {}
    for name, value in record.items():
        value = plain(value)
        if "." in name:
            rel, ext_field = name.split(".", 1)
            if value is None:
                lookup = (relationship_fields or {}).get(rel)
                out[lookup or rel] = None
            else:
                nested = out.get(rel)
                if not isinstance(nested, dict):
                    nested = out[rel] = {}
                nested[ext_field] = value
        else:
            out[name] = value
    return out


def csv_value(value: Any) -> str:
    value = plain(value)
    if value is None:
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_cell(value)
    return str(value)


def _float_cell(value: float) -> str:
    """``csv_value`` of a float: whole numbers without ``.0``, NaN as the Bulk null."""
    if value != value:
        return BULK_NULL
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class ColumnRecords(list):
    """Records (dicts) that also hold their values column by column, as the load builds them from its
    frame: every record holds exactly ``fields``, in that order, and ``columns[i]`` is ``fields[i]``'s
    values in record order. ``csv_header`` and ``csv_columns`` then take the columns instead of reading
    the key of every dict again (same result). A slice keeps its columns; nothing may change the records
    or the columns once built."""

    def __init__(self, records: list[dict], fields: list[str], columns: list[list]):
        super().__init__(records)
        self.fields, self.columns = list(fields), columns

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ColumnRecords(list.__getitem__(self, i), self.fields, [c[i] for c in self.columns])
        return list.__getitem__(self, i)


def csv_header(records: Iterable[dict], only: list[str] | None = None) -> list[str]:
    """The union of the records' keys, in first-seen order (or exactly ``only``)."""
    if only is not None:
        return list(only)
    if isinstance(records, ColumnRecords):
        return list(records.fields) if records else []
    return list(dict.fromkeys(chain.from_iterable(records)))  # a dict keeps first-seen order


_MISSING = object()


def csv_columns(records: list[dict], header: list[str]) -> list[list[str]]:
    """The CSV cells under ``header``, column by column (missing key: empty = unchanged).

    A text cell (most of them) is its own CSV value and skips ``csv_value``."""
    if isinstance(records, ColumnRecords) and header == records.fields:
        return [_csv_cells(vals) for vals in records.columns]
    cols = []
    for c in header:
        try:  # every record holds the key (the usual case): the cells in one C-level pass
            vals = list(map(itemgetter(c), records))
        except KeyError:
            vals = [r.get(c, _MISSING) for r in records]
        cols.append(_csv_cells(vals))
    return cols


def _csv_cells(vals: list) -> list[str]:
    """The CSV cells of one column's values (``_MISSING``: no such key, an empty cell)."""
    if set(map(type, vals)) <= {str}:
        return vals
    return [v if type(v) is str else BULK_NULL if v is None else _float_cell(v) if type(v) is float
            else "" if v is _MISSING else csv_value(v) for v in vals]


def csv_rows(records: list[dict], header: list[str]) -> list[tuple[str, ...]]:
    """Each record as the tuple of CSV cells under ``header`` (``csv_columns`` row by row)."""
    if not header:
        return [() for _ in records]
    return list(zip(*csv_columns(records, header)))


def to_csv(header: list[str], rows: list[tuple[str, ...]]) -> str:
    """The job's CSV with LF line ends. A cell holding a carriage return is quoted too: Python's writer
    quotes only the characters of its own line end (``"a\rb"`` would go up bare), while the Bulk guide
    asks for quotes around anything that could be read as a line ending."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)  # the C writer: quicker than joining in Python once many cells need quotes
    text = buf.getvalue()
    if "\r" not in text:  # the usual case: one scan in C
        return text
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    for row in [header, *rows]:
        if any("\r" in c for c in row):
            buf.write(",".join(_quoted(c) for c in row) + "\n")
        else:
            w.writerow(row)
    return buf.getvalue()


def _quoted(cell: str) -> str:
    """``cell`` as the minimal-quoting writer would write it, with a carriage return also quoted."""
    if any(ch in cell for ch in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def read_csv(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV payload (quoted newlines kept, unlike ``str.splitlines``)."""
    if not text or not text.strip():
        return [], []
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    return header, [row for row in reader if row]


def read_csv_columns(text: str, names: list[str]) -> list[list[str]] | None:
    """The cells of the columns ``names`` of a CSV payload, column by column (a name the header lacks:
    ``""`` in every row), parsed by Arrow's multi-threaded reader without building the other columns:
    the same cells as ``read_csv``. None when Arrow cannot read it exactly as ``read_csv`` would (a
    header naming a column twice, a row of another width): the caller then uses ``read_csv``."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not text or not text.strip():
        return [[] for _ in names]
    if text.startswith("\ufeff"):
        text = text[1:]
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if len(set(header)) != len(header):
        return None
    wanted = [n for n in dict.fromkeys(names) if n in header]
    try:
        table = pcsv.read_csv(io.BytesIO(text.encode("utf-8")),
                              parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
                              convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in wanted},
                                                                  include_columns=wanted, strings_can_be_null=False,
                                                                  quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    n = table.num_rows
    cols = {c: table.column(c).to_pylist() for c in wanted}
    return [cols[c] if c in cols else [""] * n for c in names]


def soql_in(values) -> str:
    """A SOQL ``IN (...)`` list of string literals (backslashes and quotes escaped)."""
    return ",".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
