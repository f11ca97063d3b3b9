"""The map stage's output as the later stages (load, reconcile, rollback) read it: the plan of steps in
load order and each step's mapped records. The hand-off between map and what follows, in one place."""

from __future__ import annotations

import json
from pathlib import Path

from crmbridge.errors import UsageError
from crmbridge.migrations.hashing import frame_hashes
from crmbridge.migrations.runs import Run


def read_plan(run: Run) -> list[dict]:
    """The map stage's plan (steps in load order); a usage error if the run was never mapped."""
    path = run.dir / "map" / "plan.json"
    if not path.exists():
        raise UsageError(f"run {run.run_id} has no map/plan.json", hint="run `crmbridge map` (or `crmbridge migrate`)")
    return json.loads(path.read_text(encoding="utf-8"))["steps"]


def step_file(run: Run, step: dict) -> Path:
    p = Path(step.get("file") or f"{step['step']}.parquet")
    for cand in (p, run.dir / p, run.dir / "map" / p, run.dir / "map" / p.name):
        if cand.is_absolute() and cand.exists():
            return cand
    raise UsageError(f"run {run.run_id}: load file for step {step['step']} not found ({p})",
                     hint="re-run `crmbridge map` for this run")


def step_fields(step: dict, columns) -> list[str]:
    fields = step.get("fields") or []
    fields = [f for f in fields if f in columns] or [c for c in columns if not c.startswith("_")]
    ext = step.get("external_id_field")
    if ext and ext not in fields and ext in columns:
        fields.append(ext)
    return fields


def read_step_frame(run: Run, step: dict, *, hashes: bool = True):
    """The mapped records of a step with their content hashes and source row ids."""
    import pandas as pd

    df = pd.read_parquet(step_file(run, step))
    fields = step_fields(step, df.columns)
    if hashes:
        df["_hash"] = frame_hashes(df, fields)
    row_ids = df["_row_id"].tolist()  # whole columns at once: iterating Arrow-backed cells is slow
    if "_merged_row_ids" in df.columns:
        merged = df["_merged_row_ids"].astype(object).where(df["_merged_row_ids"].notna(), None).tolist()
        df["_rows"] = [m.split(";") if m else [r] for m, r in zip(merged, row_ids)]
    else:
        df["_rows"] = [[r] for r in row_ids]
    return df, fields
