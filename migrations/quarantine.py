"""Quarantined source rows in the run ledger, so every source row of a run has exactly one ledger row.

Rows rejected by extract (``extract/rejects/<source>.csv``), quarantined by validation
(``validate/quarantine/<entity>.csv``) or by the mapping (``map/quarantine/<step>.csv``) get action
``quarantined`` with the stage as error code and the reason as message, under their entity's load
step; rows a mapping's ``filters:`` left out on purpose get error code ``filtered`` instead of ``map``. Written idempotently at the start of each load (an interrupted load rewrites them).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from crmbridge.migrations import ledger as L
from crmbridge.state import utcnow


def _read(path: Path):
    from crmbridge.csvout import read_frame  # the files are neutralised for Excel: read the originals

    return read_frame(path)


def quarantined_rows(run_dir: Path, plan: list[dict]) -> list[dict]:
    """Ledger rows (without run_id) for every quarantined source row of the run."""
    import json

    first_step = {}
    for s in plan:
        first_step.setdefault(s["entity"], s)
    out: list[dict] = []

    def add(entity: str, row_id: str, source_key: str, stage: str, reason: str) -> None:
        step = first_step.get(entity)
        out.append(dict(step=step["step"] if step else entity, row_id=row_id[:190], object=step["object"] if step else "",
                        source_key=(source_key or None) and source_key[:190], external_id=None, sf_id=None,
                        action="quarantined", error_code=stage, message=reason, content_hash=None, batch_no=None))

    manifest_path = run_dir / "extract" / "manifest.json"
    if manifest_path.exists():
        for src in json.loads(manifest_path.read_text("utf-8"))["sources"]:
            f = run_dir / "extract" / "rejects" / f"{src['source']}.csv"
            if src.get("rows_rejected") and f.exists():
                for r in _read(f).to_dict("records"):
                    add(src["entity"], f"{src['source']}:{r.get('_line', '')}", "", "extract", r.get("_reason", ""))
    for f in sorted((run_dir / "validate" / "quarantine").glob("*.csv")):
        for r in _read(f).to_dict("records"):
            add(f.stem, r["_row_id"], r.get("_source_key", ""), "validate", r.get("_reasons", ""))
    for s in plan:
        f = run_dir / "map" / "quarantine" / f"{s['step']}.csv"
        if f.exists():
            for r in _read(f).to_dict("records"):
                reason = r.get("_reasons", r.get("_reason", ""))  # map files share validate's `_reasons`
                add(s["entity"], r["_row_id"], r.get("_source_key", ""),
                    "filtered" if reason.startswith("filtered: ") else "map", reason)
    return out


def record_quarantine(engine, run_id: str, run_dir: Path, plan: list[dict]) -> int:
    """Replace the run's ``quarantined`` ledger rows with those of its quarantine files; returns how many."""
    rows = quarantined_rows(run_dir, plan)
    now = utcnow()
    with engine.begin() as c:
        c.execute(delete(L.ledger).where(L.ledger.c.run_id == run_id, L.ledger.c.action == "quarantined"))
        L.insert_many(c, L.ledger, rows, {"run_id": run_id, "recorded_at": now})  # one COPY / executemany
    return len(rows)
