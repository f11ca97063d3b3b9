"""The empty- or shrunken-source guard of the extract stage.

A header-only export, a query against the wrong schema or a half-copied file reads as "no customers"
or "far fewer customers"; loaded, that silently updates records with another department's values and
leaves the rest behind. So a full extract of a source that reads 0 rows, or fewer than
:data:`SHRINK_RATIO` of what the same source read in the last successful run, stops the run before
anything is written. ``--allow-shrink`` says the drop is intended. Incremental reads (a SQL source read
from its watermark) are exempt: a delta with no changes is normal.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from crmbridge.errors import UsageError
from crmbridge.state import run_stages, runs

# Half of the last successful read: legacy sources grow or lose a few percent between rehearsals;
# losing half is an export or query gone wrong far more often than a real clean-up.
SHRINK_RATIO = 0.5


def last_counts(engine, runs_dir, *, exclude_run: str | None = None) -> tuple[str | None, dict[str, int]]:
    """(run id, source -> rows read) of the newest migrate run that succeeded (or was rolled back after
    succeeding), counting only sources its extract read in full."""
    q = (select(runs.c.run_id).join(run_stages, run_stages.c.run_id == runs.c.run_id)
         .where(runs.c.kind == "migrate", runs.c.status.in_(("succeeded", "rolled_back")), runs.c.dry_run == 0,
                run_stages.c.stage == "extract", run_stages.c.status == "succeeded")
         .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()))
    with engine.connect() as c:
        found = [r.run_id for r in c.execute(q)]
    for run_id in found:
        path = Path(runs_dir) / run_id / "extract" / "manifest.json"
        if run_id == exclude_run or not path.is_file():
            continue
        counts = {s["source"]: int(s["rows_read"]) for s in json.loads(path.read_text("utf-8"))["sources"]
                  if not s.get("incremental")}
        if counts:
            return run_id, counts
    return None, {}


def check(engine, runs_dir, run_id: str, results, sources: dict, incremental: set[str], *, allow: bool) -> None:
    """Raise a UsageError naming every empty or shrunken source (unless ``allow``)."""
    if allow:
        return
    base_run, base = last_counts(engine, runs_dir, exclude_run=run_id)
    problems = []
    for r in results:
        if r.source in incremental:
            continue
        where = _where(sources.get(r.source))
        before = base.get(r.source)
        if r.rows_read == 0:
            problems.append(f"source {r.source}{where}: 0 rows read" +
                            (f" (the last successful run {base_run} read {before:,})" if before else ""))
        elif before and r.rows_read < before * SHRINK_RATIO:
            problems.append(f"source {r.source}{where}: {r.rows_read:,} rows read, {r.rows_read / before:.0%} of "
                            f"the {before:,} the last successful run {base_run} read")
    if problems:
        raise UsageError("empty or shrunken source, nothing was extracted:\n  " + "\n  ".join(problems),
                         hint="check the export or query; if the drop is intended, run again with --allow-shrink")


def _where(src) -> str:
    if src is None:
        return ""
    path = getattr(src, "path", None)
    if path:
        return f" ({path})"
    table = getattr(src, "table", None)
    return f" (table {table})" if table else " (query)"
