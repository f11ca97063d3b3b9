"""Writing map artifacts: load files (Parquet), quarantine (CSV) and previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from crmbridge.cells import to_native


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed Python types become text, so pyarrow can store them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        types = {type(v) for v in out[c].array if v is not None and not (isinstance(v, float) and v != v)}
        if len(types) > 1 and not types <= {int, float}:
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    return out


def write_records(df: pd.DataFrame, path: Path) -> None:
    _parquet_safe(df).to_parquet(path, index=False)


def write_quarantine(df: pd.DataFrame, path: Path) -> None:
    """Source row + ``_reason`` (UTF-8 with BOM so Excel shows Chinese text correctly; formula-like
    cells neutralised by ``crmbridge.csvout``)."""
    from crmbridge.csvout import write_frame

    write_frame(df, path)


def preview_rows(source: pd.DataFrame, records: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    """The first ``n`` mapped records next to the source row(s) they came from."""
    if n <= 0 or records.empty:
        return []
    by_id = source.set_index(source["_row_id"].astype(str)) if "_row_id" in source.columns else None
    rows = []
    for rec in records.head(n).to_dict("records"):
        src_rows = []
        if by_id is not None:
            for rid in str(rec.get("_merged_row_ids") or rec["_row_id"]).split(";"):
                if rid in by_id.index:
                    r = by_id.loc[rid]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    src_rows.append({k: to_native(v) for k, v in r.items() if not str(k).startswith("_")
                                     or k in ("_department", "_row_id")})
        rows.append({"mapped": {k: to_native(v) for k, v in rec.items()}, "source": src_rows})
    return rows


