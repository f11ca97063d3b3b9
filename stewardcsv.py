"""One layout for every quarantine file a data steward opens, whichever stage wrote it.

Validate's ``quarantine/<entity>.csv`` and map's ``quarantine/<step>.csv`` share their column names:

- the record key (validate) first, then ``_stage`` (validate | map), ``_reasons`` (every reason),
  ``_blocking`` (the reasons that kept the row out of the load) and ``_warnings`` (the ones that did not);
- the row's data, where every field a reason names is followed by ``<field> (legacy)``: the value as
  extracted from the legacy system, next to the normalised value the rule saw;
- the lineage columns (``_row_id``, ``_source``, ``_department``, ``_line``, ``_source_key`` ...).
"""

from __future__ import annotations

import re
from typing import Iterable

import pandas as pd

REASON_SEP = "; "
STATUS_COLUMNS = ("_stage", "_reasons", "_blocking", "_warnings")
LEGACY = " (legacy)"


def legacy_column(field: str) -> str:
    return f"{field}{LEGACY}"


def split_reasons(text) -> list[str]:
    return [p for p in str(text).split(REASON_SEP) if p] if isinstance(text, str) and text else []


def add_legacy(quarantine: pd.DataFrame, raw: pd.DataFrame | None, named: Iterable[set[str]]) -> pd.DataFrame:
    """Insert ``<field> (legacy)`` after each field named in some row's reasons, holding the raw value of
    that row (matched by ``_row_id``); blank in rows whose reasons do not name the field."""
    named = list(named)
    if raw is None or quarantine.empty or "_row_id" not in raw.columns or "_row_id" not in quarantine.columns:
        return quarantine
    fields = [c for c in quarantine.columns
              if not str(c).startswith("_") and c in raw.columns and any(c in n for n in named)]
    if not fields:
        return quarantine
    by_id = raw[["_row_id", *fields]].drop_duplicates("_row_id")
    by_id = by_id.set_index(by_id["_row_id"].astype(str))
    ids = quarantine["_row_id"].astype(str)
    out = quarantine.copy()
    for f in fields:
        values = ids.map(by_id[f].astype(object)).astype(object)
        mask = pd.Series([f in n for n in named], index=out.index)
        col = values.where(mask & values.notna(), None)
        out.insert(out.columns.get_loc(f) + 1, legacy_column(f), col.to_numpy())
    return out


def ordered(quarantine: pd.DataFrame, key: Iterable[str] = ()) -> pd.DataFrame:
    """Columns in the shared order: key, status columns, data (legacy values beside), lineage."""
    q = quarantine.copy()
    for c in STATUS_COLUMNS:
        if c not in q.columns:
            q[c] = None
    first = [c for c in key if c in q.columns] + list(STATUS_COLUMNS)
    lineage = [c for c in q.columns if str(c).startswith("_") and c not in first]
    rest = [c for c in q.columns if c not in first and c not in lineage]
    return q[first + rest + lineage]


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def tokens(text: str) -> set[str]:
    """Identifier-like words of a reason (field names appear as such)."""
    return set(_TOKEN.findall(text or ""))
