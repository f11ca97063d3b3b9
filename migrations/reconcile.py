"""Reconcile a run: the mapped source, the ledger and what the org really holds, field by field.

For every step: record counts (source records, ledger rows, records found in the org by external ID),
duplicates in the org, records the ledger says were loaded but the org lacks, and per written field a
checksum of the source values and of the org values plus the records that differ. Every mismatch is
listed in ``reconcile/<step>_mismatches.csv``; ``reconcile/summary.json`` holds the counts.
Values are compared in one canonical form (numbers as numbers, datetimes in UTC) because the org
hands back ``1234.0`` for a mapped ``"1234"`` and ``+0000`` for a mapped ``Z``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from crmbridge.migrations import ledger as L
from crmbridge.migrations.hashing import canonical
from crmbridge.migrations.load import read_plan, read_step_frame
from crmbridge.migrations.runs import Run, finish_stage, start_stage

_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def norm(value) -> str:
    """The comparison form of a value: canonical text, numbers rounded to 6 places, datetimes in UTC."""
    s = canonical(value)
    if not s:
        return ""
    if _NUM.match(s) and not (len(s) > 1 and s[0] == "0" and s[1] != "."):  # keep codes like 000123 as text
        x = round(float(s), 6)
        return str(int(x)) if x.is_integer() else repr(x)
    if _DT.match(s):
        t = s.replace("Z", "+00:00")
        if re.search(r"[+-]\d{4}$", t):
            t = t[:-2] + ":" + t[-2:]
        try:
            d = datetime.fromisoformat(t)
            d = d.replace(tzinfo=d.tzinfo or timezone.utc).astimezone(timezone.utc)
            return d.strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return s
    return s


def _checksum(values) -> str:
    total = 0
    for v in values:
        total = (total + int.from_bytes(hashlib.sha256(v.encode()).digest()[:8], "big")) % (1 << 64)
    return f"{total:016x}"


@dataclass(frozen=True)
class StepReconcile:
    step: str
    object: str
    source_records: int
    source_rows: int
    ledger_rows: int
    ledger_loaded: int
    ledger_failed: int
    org_found: int
    missing_in_org: int
    duplicates_in_org: int
    field_mismatches: int
    fields: dict[str, dict] = field(default_factory=dict)
    mismatch_file: str | None = None

    @property
    def ok(self) -> bool:
        return (self.ledger_rows == self.source_rows and self.missing_in_org == 0 and self.duplicates_in_org == 0
                and self.field_mismatches == 0 and self.org_found == self.ledger_loaded)

    def as_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


@dataclass(frozen=True)
class ReconcileResult:
    run_id: str
    steps: tuple[StepReconcile, ...]
    summary_file: str

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def mismatches(self) -> int:
        return sum(s.missing_in_org + s.duplicates_in_org + s.field_mismatches for s in self.steps)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "ok": self.ok, "mismatches": self.mismatches,
                "summary_file": self.summary_file, "steps": [s.as_dict() for s in self.steps]}


def _org_records(conn, sobject: str, ext: str, fields: list[str], describe: dict) -> list[dict]:
    names = {f["name"] for f in describe["fields"]}
    cols = [f for f in fields if f != ext and ("." in f or f in names)]
    soql = f"SELECT Id, {', '.join([ext] + cols)} FROM {sobject} WHERE {ext} != null"
    out = []
    for rec in conn.query(soql):
        flat = {"Id": rec.get("Id"), ext: rec.get(ext)}
        for f in cols:
            v = rec
            for part in f.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            flat[f] = v
        out.append(flat)
    return out, cols


def reconcile_step(engine, conn, run: Run, step: dict) -> StepReconcile:
    import pandas as pd

    sobject, ext, name = step["object"], step["external_id_field"], step["step"]
    df, fields = read_step_frame(run, step)
    led = L.ledger_frame(engine, run.run_id, name)
    per_record = led.drop_duplicates("external_id").set_index("external_id")
    loaded_keys = set(per_record.index[per_record["action"].isin(["created", "updated", "unchanged"])])
    org, cols = _org_records(conn, sobject, ext, fields, conn.describe(sobject))
    by_key: dict[str, list[dict]] = {}
    for r in org:
        by_key.setdefault(norm(r[ext]).lower(), []).append(r)  # Salesforce external IDs are case-insensitive
    problems, per_field = [], {f: {"source": [], "org": [], "mismatches": 0} for f in cols}
    found = dups = missing = 0
    src = df.assign(_key=df[ext].map(canonical))
    for row in src.to_dict("records"):
        key = row["_key"]
        if key not in loaded_keys:
            continue
        hits = by_key.get(norm(key).lower(), [])
        if not hits:
            missing += 1
            problems.append({"external_id": key, "kind": "missing_in_org", "field": "", "source": "", "org": "",
                             "sf_id": per_record.at[key, "sf_id"]})
            continue
        found += 1
        if len(hits) > 1:
            dups += 1
            problems.append({"external_id": key, "kind": "duplicate_in_org", "field": "", "source": "",
                             "org": ";".join(h["Id"] for h in hits), "sf_id": per_record.at[key, "sf_id"]})
        o = hits[0]
        for f in cols:
            a, b = norm(row.get(f)), norm(o.get(f))
            per_field[f]["source"].append(a)
            per_field[f]["org"].append(b)
            if a != b:
                per_field[f]["mismatches"] += 1
                problems.append({"external_id": key, "kind": "field_mismatch", "field": f, "source": a, "org": b,
                                 "sf_id": o["Id"]})
    out = run.stage_dir("reconcile") / f"{name}_mismatches.csv"
    pd.DataFrame(problems, columns=["external_id", "kind", "field", "source", "org", "sf_id"]) \
        .to_csv(out, index=False, encoding="utf-8-sig")
    fields_out = {f: {"source_checksum": _checksum(v["source"]), "org_checksum": _checksum(v["org"]),
                      "mismatches": v["mismatches"]} for f, v in per_field.items()}
    return StepReconcile(name, sobject, len(df), int(sum(len(r) for r in df["_rows"])), len(led), len(loaded_keys),
                         int((per_record["action"] == "failed").sum()), found, missing, dups,
                         sum(v["mismatches"] for v in per_field.values()), fields_out, str(out))


def run_reconcile(project, run: Run, *, connector=None) -> ReconcileResult:
    """Reconcile every step of a loaded run; records stage ``reconcile`` (ok or not, it succeeded)."""
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    start_stage(engine, run.run_id, "reconcile")
    try:
        steps = tuple(reconcile_step(engine, connector, run, s) for s in read_plan(run))
        summary = run.stage_dir("reconcile") / "summary.json"
        result = ReconcileResult(run.run_id, steps, str(summary))
        summary.write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=2, default=str), "utf-8")
    except BaseException as exc:
        finish_stage(engine, run.run_id, "reconcile", status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own:
            connector.close()
    finish_stage(engine, run.run_id, "reconcile", result.as_dict())
    return result
