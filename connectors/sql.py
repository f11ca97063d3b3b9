"""SQL sources: a table or a query on any SQLAlchemy URL, streamed, optionally incremental.

Incremental extraction keeps a watermark per source: the largest value of the source's
``incremental.column`` seen so far. It is stored as JSON text ``{"type": ..., "value": ...}`` so the
next run can bind it with the right Python type (a datetime, a number, a string) whatever the
dialect. Rows with a value strictly greater than the watermark are extracted; the caller stores the
new watermark only once the run's extract stage has committed.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Iterator

from crmbridge.connectors.files import SourceRead, build_columns
from crmbridge.errors import RunFailed, UsageError
from crmbridge.secretref import redact


def to_text(v: Any) -> str | None:
    """A database value as lossless text (ISO dates, plain decimals, hex for bytes); '' is null."""
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return str(v)


# MySQL/MariaDB store "no date" as 0000-00-00 (when sql_mode lacks NO_ZERO_DATE). Python has no such
# date, so PyMySQL hands the text over; it means "missing", not a malformed date.
_ZERO_DATE = re.compile(r"0000-00-00(?:[ T]00:00:00(?:\.0+)?)?")
# DBAPI type codes of date and time-stamp columns (MySQL's FIELD_TYPE: TIMESTAMP, DATE, DATETIME, NEWDATE)
_MYSQL_DATE_TYPES = {7, 10, 12, 14}


def _zero_date_columns(engine, result, width: int) -> list[int]:
    """Indexes of the columns whose MySQL zero dates are read as missing (none on other databases)."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return []
    desc = getattr(getattr(result, "cursor", None), "description", None)
    if not desc or len(desc) != width:
        return list(range(width))  # no type information: the exact zero-date text is enough
    return [i for i, d in enumerate(desc) if d[1] in _MYSQL_DATE_TYPES]


def encode_watermark(v: Any) -> str:
    """The watermark as JSON text carrying its type."""
    kinds = [(bool, "str"), (datetime, "datetime"), (date, "date"), (int, "int"), (Decimal, "decimal"),
             (float, "float")]
    kind = next((k for t, k in kinds if isinstance(v, t)), "str")
    return json.dumps({"type": kind, "value": to_text(v) if kind != "str" else str(v)}, ensure_ascii=False)


def decode_watermark(stored: str | None) -> Any:
    """The Python value of a stored watermark (``None`` when there is none)."""
    if not stored:
        return None
    try:
        d = json.loads(stored)
        kind, val = d["type"], d["value"]
    except (ValueError, KeyError, TypeError):
        return stored  # written by hand or by an older version: compare as text
    parse = {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "int": int,
             "decimal": Decimal, "float": float}.get(kind, str)
    return parse(val)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return redact(make_url(url).render_as_string(hide_password=True))


def require_table(insp, table: str, where: str, found_in: str = "") -> tuple[str, str]:
    """``table`` (``name`` or ``schema.name``) as ``(schema or '', name)``; a ``UsageError`` naming ``where``
    and the tables there when the database (``insp``, a SQLAlchemy inspector) has no such table."""
    schema, _, name = table.rpartition(".")
    if not insp.has_table(name, schema=schema or None):
        tables = insp.get_table_names(schema=schema or None)
        raise UsageError(f"{where}: table '{table}' not found{found_in}; "
                         f"tables there: {', '.join(tables[:30]) or '(none)'}",
                         hint="fix `table:` for this source in crmbridge.yml")
    return schema, name


def _engine(url: str, source):
    from sqlalchemy import create_engine

    try:
        return create_engine(url)
    except Exception as exc:  # unknown dialect or a driver that is not installed
        raise UsageError(f"source {source.name}: cannot use URL {_shown(url)}: {redact(exc)}",
                         hint="check `url:`; drivers: postgresql+psycopg, mysql+pymysql, mssql+pyodbc, "
                              "oracle+oracledb, sqlite") from None


def _statement(engine, source, since: Any):
    from sqlalchemy import MetaData, Table, bindparam, column, inspect, literal_column, select, text

    wm = source.incremental.column if source.incremental else None
    if source.table:
        schema, name = require_table(inspect(engine), source.table, f"source {source.name}",
                                     f" in {_shown(str(engine.url))}")
        table = Table(name, MetaData(), autoload_with=engine, schema=schema or None)
        stmt = select(table)
        if wm:
            if wm not in table.c:
                raise UsageError(f"source {source.name}: incremental column '{wm}' not in table '{source.table}' "
                                 f"(columns: {', '.join(table.c.keys())})",
                                 hint="fix `incremental.column` for this source")
            if since is not None:
                stmt = stmt.where(table.c[wm] > bindparam("wm", since, type_=table.c[wm].type))
        return stmt
    if not wm:
        return text(source.query)
    sub = text(source.query).columns(column(wm)).subquery("q")
    stmt = select(literal_column("*")).select_from(sub)
    if since is not None:
        stmt = stmt.where(sub.c[wm] > bindparam("wm", since))
    return stmt


def read_sql(source, url: str, *, chunk_rows: int, watermark: str | None = None) -> SourceRead:
    """Open a SQL source; ``watermark`` is the stored value (None for a full extraction).

    ``SourceRead.watermark`` becomes ``{"column", "from", "to", "stored"}`` once the events are consumed
    (``stored`` is the JSON text to save as the new watermark, ``None`` if no row was read).
    """
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    engine = _engine(url, source)
    since = decode_watermark(watermark)
    try:
        stmt = _statement(engine, source, since)
        conn = engine.connect()
    except (UsageError, RunFailed):
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        if exc.connection_invalidated or "connect" in str(exc.orig).lower():
            raise RunFailed(f"source {source.name}: cannot connect to {_shown(url)}: {redact(exc.orig)}") from None
        raise UsageError(f"source {source.name}: {redact(exc.orig)}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise UsageError(f"source {source.name}: {redact(exc)}") from None
    try:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
    except DBAPIError as exc:
        conn.close()
        engine.dispose()
        what = "query" if source.query else f"table '{source.table}'"
        raise UsageError(f"source {source.name}: the {what} failed: {redact(exc.orig)}",
                         hint="fix `query:` (or the incremental column) for this source") from None
    read = SourceRead(columns=[], events=iter(()))
    where = f"source {source.name} ({source.table or 'query'})"
    try:
        read.columns, _ = build_columns(list(result.keys()), source.columns, source.key, where, read.notes)
    except UsageError:
        result.close(), conn.close(), engine.dispose()
        raise
    wm_idx = None
    if source.incremental:
        wm_name = source.columns.get(source.incremental.column, source.incremental.column)
        if wm_name not in read.columns:
            result.close(), conn.close(), engine.dispose()
            raise UsageError(f"{where}: incremental column '{source.incremental.column}' not in the result "
                             f"({', '.join(read.columns)})")
        wm_idx = read.columns.index(wm_name)
        read.watermark = {"column": source.incremental.column, "from": to_text(since), "to": to_text(since),
                          "stored": None}
    zero_idx = _zero_date_columns(engine, result, len(read.columns))
    read.events = _sql_events(engine, conn, result, wm_idx, read, zero_idx, chunk_rows)
    return read


def _sql_events(engine, conn, result, wm_idx: int | None, read: SourceRead,
                zero_idx: list[int] = (), chunk_rows: int | None = None) -> Iterator[tuple]:
    top = None
    ordinal = 0
    zeros = [0] * len(read.columns)
    match = _ZERO_DATE.fullmatch
    try:
        # sized explicitly: a text() statement (a `query:` source) ignores yield_per and came in whole
        for part in result.partitions(chunk_rows):
            for row in part:
                ordinal += 1
                for i in zero_idx:
                    v = row[i]
                    if v.__class__ is str and v[:4] == "0000" and match(v):
                        if row.__class__ is not list:
                            row = list(row)  # a SQLAlchemy Row is read-only
                        row[i] = None
                        zeros[i] += 1
                if wm_idx is not None:
                    v = row[wm_idx]
                    if v is not None and (top is None or v > top):
                        top = v
                yield ordinal, [to_text(v) for v in row], None
    finally:
        result.close()
        conn.close()
        engine.dispose()
    for i, n in enumerate(zeros):
        if n:
            col = read.columns[i]
            read.zero_dates[col] = n
            read.notes.append(f"column {col}: {n} MySQL zero date(s) (0000-00-00) read as missing")
    if read.watermark is not None and top is not None:
        read.watermark["to"] = to_text(top)
        read.watermark["stored"] = encode_watermark(top)
