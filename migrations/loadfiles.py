"""Success and error files per object per run, in the shape Salesforce Data Loader users know.

Data Loader writes ``success*.csv`` as ``ID`` + the input row + ``STATUS`` (``Item Created`` /
``Item Updated``) and ``error*.csv`` as the input row + ``ERROR``. We keep those column names and
values, add ``Item Unchanged`` for records a delta run skipped, and append the lineage column
``_source_key`` so a steward can find the legacy record.
"""

from __future__ import annotations

import os
from pathlib import Path

STATUS = {"created": "Item Created", "updated": "Item Updated", "unchanged": "Item Unchanged"}


def write_result_files(out_dir: Path, step: str, df, fields: list[str], per_record, ext: str) -> tuple[Path, Path]:
    """Write ``<step>_success.csv`` and ``<step>_error.csv`` from the mapped rows and the ledger."""
    import pandas as pd

    from crmbridge.migrations.hashing import canonical_column

    led = per_record.set_index("external_id")
    keys = pd.Series(canonical_column(df[ext].to_numpy(dtype=object)), index=df.index, dtype=object)
    base = df[fields].copy()
    base["_source_key"] = df["_source_key"] if "_source_key" in df.columns else None
    action = keys.map(led["action"])
    ok = action.isin(list(STATUS))
    success = pd.concat([pd.DataFrame({"ID": keys[ok].map(led["sf_id"])}), base[ok]], axis=1)
    success["STATUS"] = action[ok].map(STATUS)
    failed = action == "failed"
    error = base[failed].copy()
    code, msg = keys[failed].map(led["error_code"]), keys[failed].map(led["message"])
    error["ERROR"] = [f"{c}:{m}" if m else str(c) for c, m in zip(code, msg)]
    ok_path, err_path = out_dir / f"{step}_success.csv", out_dir / f"{step}_error.csv"
    for frame, path in ((success, ok_path), (error, err_path)):
        # utf-8-sig: Excel, where stewards open these files, only detects UTF-8 with a BOM. The text is
        # built first and encoded in one write (pandas writing to the file encodes row by row).
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            f.write(frame.to_csv(index=False, lineterminator=os.linesep))
    return ok_path, err_path
