"""The ``map`` stage: validated entities -> per-object load files, quarantine, plan and check report.

Reads ``runs/<id>/resolve/<entity>.parquet`` (golden records and re-pointed children, see
resolve.py), else ``runs/<id>/validate/<entity>.parquet`` (or the extract output with ``skip_validation``), checks
the mappings offline and against the org, maps every step parents-first and writes into
``runs/<id>/map/`` only when everything succeeded (a temporary folder is swapped in at the end).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge import progress
from crmbridge.errors import ConfigError, RunFailed, UsageError
from crmbridge.locks import locked
from crmbridge.mappings.check import CheckReport, check_against_org, check_offline
from crmbridge.mappings.models import Mappings, load_mappings
from crmbridge.mappings.order import CycleError, load_order, parents_of
from crmbridge.mappings.steward import steward_reasons, steward_view  # noqa: F401 (the stage's API)

STAGE = "map"


@dataclass(frozen=True)
class StepSummary:
    step: str
    entity: str
    object: str
    external_id_field: str
    file: str
    quarantine_file: str
    rows_in: int
    rows: int
    rows_out: int
    rows_quarantined: int
    filtered: dict[str, int]
    reasons: dict[str, int]
    transforms: dict[str, dict[str, dict[str, int]]]

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_quarantined

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "balanced": self.balanced}


@dataclass(frozen=True)
class MapResult:
    run_id: str
    steps: tuple[StepSummary, ...]
    check: CheckReport
    plan: str
    preview: tuple[dict, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.check.ok and all(s.balanced for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok, "plan": self.plan, "check": self.check.as_dict(),
                "steps": [s.as_dict() for s in self.steps], "preview": list(self.preview)}


def mappings_folder(project) -> Path:
    return project.path("mappings")


def read_owners(project, table: str) -> dict[str, str]:
    """``owners.csv``: ``legacy_code,username`` (UTF-8, header required) -> {code: username}."""
    import csv

    path = project.path(table)
    if not path.exists():
        raise ConfigError(table, "owner table not found", hint="create it with the header legacy_code,username")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [h.strip() for h in rows[0][:2]] != ["legacy_code", "username"]:
        raise ConfigError(table, "first line must be the header legacy_code,username", line=1)
    out: dict[str, str] = {}
    for i, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            raise ConfigError(table, "each line needs a legacy code and a username", line=i)
        if r[0].strip() in out:
            raise ConfigError(table, f"legacy code '{r[0].strip()}' appears twice", line=i)
        out[r[0].strip()] = r[1].strip()
    return out


def _input_path(run, entity: str) -> Path:
    """The resolve stage's golden records (or re-pointed children) when it ran, else validate's rows."""
    resolved = run.dir / "resolve" / f"{entity}.parquet"
    validated = run.dir / "validate" / f"{entity}.parquet"
    if resolved.exists() and validated.exists() and validated.stat().st_mtime > resolved.stat().st_mtime:
        raise UsageError(f"run {run.run_id} was validated again after its resolve stage: resolve/{entity}.parquet "
                         "is out of date", hint=f"`crmbridge resolve --run {run.run_id}`, then map again")
    return resolved if resolved.exists() else validated


def read_input(project, run, entity: str, *, skip_validation: bool):
    """The entity's resolved or validated rows, or the extracted rows when validation is skipped."""
    import pandas as pd

    p = _input_path(run, entity)
    if p.exists():
        return pd.read_parquet(p)
    if not skip_validation:
        raise UsageError(f"run {run.run_id} has no validated '{entity}' (validate/{entity}.parquet)",
                         hint="run `crmbridge validate` first, or pass --skip-validation to map the extract output")
    from crmbridge.migrations.extracted import read_entity

    return read_entity(run.dir, entity)


def _index_columns(path: Path) -> list[str]:
    """Columns pandas stored its index in (not data)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).pandas_metadata or {}
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]


def input_rows(run, entity: str, skip_validation: bool) -> int | None:
    """How many rows map reads for ``entity`` (from the Parquet footers), None when unknown."""
    import pyarrow.parquet as pq

    p = _input_path(run, entity)
    try:
        if p.exists():
            return pq.ParquetFile(p).metadata.num_rows
        if skip_validation:
            from crmbridge.migrations.extracted import _entity_files

            return sum(pq.ParquetFile(f).metadata.num_rows for f in _entity_files(run.dir, entity))
    except (OSError, UsageError):
        return None
    return None


def iter_input(project, run, entity: str, *, skip_validation: bool, batch_rows: int,
               columns: list[str] | None = None):
    """``read_input`` in DataFrames of at most ``batch_rows`` rows (at least one, empty when the entity is);
    ``columns``: only those (``step_columns``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = _input_path(run, entity)
    if not p.exists():
        if not skip_validation:
            read_input(project, run, entity, skip_validation=False)  # raises the usage error
        from crmbridge.migrations.extracted import iter_entity_batches

        yield from iter_entity_batches(run.dir, entity, batch_rows=batch_rows)
        return
    pf = pq.ParquetFile(p, pre_buffer=False, buffer_size=1 << 20)
    schema = pf.schema_arrow
    drop = set(_index_columns(p))
    columns = [c for c in schema.names if c not in drop and (columns is None or c in columns)]
    yielded = False
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        yielded = True
        yield _frame(pa.Table.from_batches([batch]), schema)
    if not yielded:
        yield _frame(pa.schema([schema.field(c) for c in columns]).empty_table(), schema)


def step_columns(loaded, run, entity: str) -> list[str] | None:
    """The input columns ``loaded`` reads: the ones its mapping names and the lineage columns map reads
    (``merge.READ_LINEAGE``). None when that is every column, or the input is not a Parquet file. Decoding
    the others (e-mail, dates ... : half the CPU of reading validate's output) is left to ``read_rows``,
    for the quarantined rows only (their every column goes to the steward)."""
    import pyarrow.parquet as pq

    from crmbridge.mappings.check import _used_columns
    from crmbridge.mappings.merge import READ_LINEAGE

    p = _input_path(run, entity)
    if not p.exists():
        return None
    names = [c for c in pq.read_schema(p).names if c not in set(_index_columns(p))]
    used = {col for _, col in _used_columns(loaded)}
    keep = [c for c in names if c in used or c in READ_LINEAGE]
    return None if len(keep) == len(names) else keep


def read_rows(run, entity: str, first: int, count: int):
    """Rows ``first`` to ``first + count`` of the resolved or validated input, every column, as
    ``iter_input`` gives them: only the row groups holding them are read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = _input_path(run, entity)
    pf = pq.ParquetFile(p)
    schema = pf.schema_arrow
    drop = set(_index_columns(p))
    columns = [c for c in schema.names if c not in drop]
    groups, start, skip = [], 0, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if count and start + n > first and start < first + count:
            skip = skip if groups else first - start
            groups.append(g)
        start += n
    table = pf.read_row_groups(groups, columns=columns) if groups else \
        pa.schema([schema.field(c) for c in columns]).empty_table()
    return _frame(table.slice(skip, count), schema)


def _frame(table, schema):
    """A batch as ``pd.read_parquet`` gives the whole file (the file's pandas metadata, index dropped)."""
    meta = dict(schema.metadata or {})
    if b"pandas" in meta:  # the index is not in the batch: tell pandas so
        pm = json.loads(meta[b"pandas"])
        pm["index_columns"] = []
        pm["columns"] = [c for c in pm.get("columns", []) if c.get("field_name") in table.schema.names]
        meta[b"pandas"] = json.dumps(pm).encode()
    return table.replace_schema_metadata(meta).to_pandas().reset_index(drop=True)


def entity_columns(run, entity: str, skip_validation: bool) -> list[str] | None:
    """Column names of the entity without reading the data (None when the run has no such data)."""
    import pyarrow.parquet as pq

    from crmbridge.mappings.merge import RECORD_LINEAGE

    p = _input_path(run, entity)
    if p.exists():
        return list(dict.fromkeys([*pq.read_schema(p).names, *RECORD_LINEAGE]))
    if skip_validation:
        from crmbridge.migrations.extracted import _entity_columns, _entity_files

        try:
            return list(dict.fromkeys([*_entity_columns(_entity_files(run.dir, entity)), *RECORD_LINEAGE]))
        except UsageError:
            return None
    return None


def run_check(project, run=None, *, connector=None, check_org: bool = True, skip_validation: bool = False,
              mappings: Mappings | None = None) -> CheckReport:
    """Both checking phases; columns are checked when ``run`` has data for the entity."""
    mappings = mappings or load_mappings(mappings_folder(project))
    columns: dict[str, list[str]] = {}
    if run is not None:
        for e in {s.step.entity for s in mappings.steps}:
            cols = entity_columns(run, e, skip_validation)
            if cols is not None:
                columns[e] = cols
    report = check_offline(mappings, columns=columns, entities=project.entities)
    for s in mappings.steps:
        if s.step.owner is not None:
            try:
                read_owners(project, s.step.owner.table)
            except ConfigError as exc:
                from crmbridge.mappings.check import Issue

                report = report + CheckReport((Issue("error", "offline", s.file, s.name, "OwnerId", "owner_table",
                                                     exc.message),))
    if check_org:
        report = report + _with_connector(project, connector, lambda c: check_against_org(mappings, c.describe))
    return report


def _with_connector(project, connector, fn):
    if connector is not None:
        return fn(connector)
    from crmbridge.connectors.salesforce import connect

    with connect(project) as c:
        return fn(c)


def org_refs(project, mappings: Mappings, connector) -> "Any":
    """User Ids, record type Ids, owner tables and describe fields for the engine."""
    from crmbridge.mappings.engine import OrgRefs

    owners: dict[str, str] = {}
    for s in mappings.steps:
        if s.step.owner is not None:
            owners.update(read_owners(project, s.step.owner.table))
    if connector is None:
        return OrgRefs(owners=owners)
    users: dict[str, str] = {}
    if owners or any(s.step.owner for s in mappings.steps):
        users = {r["Username"].lower(): r["Id"] for r in connector.query("SELECT Id, Username FROM User")}
    rts: dict[tuple[str, str], str] = {}
    if any(s.step.record_type for s in mappings.steps):
        rts = {(r["SobjectType"], r["DeveloperName"]): r["Id"]
               for r in connector.query("SELECT Id, SobjectType, DeveloperName FROM RecordType")}
    fields = {s.step.object: {f["name"]: f for f in connector.describe(s.step.object)["fields"]}
              for s in mappings.steps}
    return OrgRefs(owners=owners, users=users, record_types=rts, fields=fields)


@locked("map")
def run_map(project, run, *, connector=None, check_org: bool = True, skip_validation: bool = False,
            preview: int = 0, scratch: Path | None = None, force: bool = False,
            batch_rows: int | None = None) -> "MapResult":
    """Check and map every step of ``run``; writes ``map/`` and records the stage. See module docstring.

    ``scratch``: a look-only preview: everything is written under that folder instead, and the run's
    ``map/`` and stage record stay as they are. Re-mapping a run whose load started is refused unless
    ``force`` (its ``map/`` is what the ledger and reconcile refer to). ``batch_rows``: input rows mapped
    at a time (default ``stream.DEFAULT_BATCH_ROWS``); the results do not depend on it."""
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    mappings = load_mappings(mappings_folder(project))
    try:
        ordered = load_order(mappings)
    except CycleError as exc:
        raise UsageError(str(exc.message), hint=exc.hint) from None
    if scratch is not None:
        return _run(project, run, mappings, ordered, connector, check_org, skip_validation, preview, Path(scratch),
                    batch_rows)
    R.refuse_after_load(engine, run, STAGE, force=force)
    R.start_stage(engine, run.run_id, STAGE)
    try:
        result = _run(project, run, mappings, ordered, connector, check_org, skip_validation, preview,
                      batch_rows=batch_rows)
    except BaseException as exc:
        R.finish_stage(engine, run.run_id, STAGE, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    R.finish_stage(engine, run.run_id, STAGE, result.as_dict())
    return result


def _run(project, run, mappings, ordered, connector, check_org, skip_validation, preview,
         out_root: Path | None = None, batch_rows: int | None = None) -> MapResult:
    own = connector is None and check_org
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    try:
        report = run_check(project, run, connector=connector, check_org=check_org,
                           skip_validation=skip_validation, mappings=mappings)
        if not report.ok:
            _write_check_only(out_root or run.dir, report)
            raise RunFailed(f"mapping check found {len(report.errors)} error(s):\n" + report.render(),
                            hint=f"fix the mappings, then `crmbridge map --run {run.run_id}`")
        refs = org_refs(project, mappings, connector if check_org else None)
    finally:
        if own:
            connector.close()
    if any(s.step.owner for s in mappings.steps) and not refs.users:
        raise UsageError("owner mapping needs the org's users; run without --no-org-check")
    return _map_all(project, run, mappings, ordered, refs, report, skip_validation, preview, out_root, batch_rows)


def _write_check_only(root: Path, report: CheckReport) -> None:
    d = root / STAGE
    d.mkdir(parents=True, exist_ok=True)
    (d / "check.json").write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), "utf-8")


def _map_all(project, run, mappings, ordered, refs, report, skip_validation, preview,
             out_root: Path | None = None, batch_rows: int | None = None) -> MapResult:
    """Map every step, one batch of ``batch_rows`` input rows at a time (mappings/stream.py); memory is
    bounded by the batch plus the steps' key indexes."""
    from crmbridge.mappings.engine import ParentKeys
    from crmbridge.mappings.keyindex import KeyIndex
    from crmbridge.mappings.stream import DEFAULT_BATCH_ROWS, map_step_stream

    batch_rows = batch_rows or DEFAULT_BATCH_ROWS
    root = out_root or run.dir
    tmp = root / f"{STAGE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "quarantine").mkdir(parents=True)
    keys: dict[tuple[str, str], ParentKeys] = {}
    summaries: list[StepSummary] = []
    plan: list[dict] = []
    previews: list[dict] = []
    parent_reasons: dict[str, Any] = {}  # "Account.Legacy_Id__c" -> KeyedText {key: reason}
    progress.current().expect(len(ordered))
    for s in ordered:
        e = s.step.entity
        ext = s.step.external_id
        rel = f"{STAGE}/{s.name}.parquet"
        with progress.tracked(f"{s.name} (rows)", input_rows(run, e, skip_validation)) as task:
            cols = step_columns(s, run, e)
            out = map_step_stream(s, lambda: iter_input(project, run, e, skip_validation=skip_validation,
                                                        batch_rows=batch_rows, columns=cols),
                                  rows=None if cols is None else lambda first, n: read_rows(run, e, first, n),
                                  records_path=tmp / f"{s.name}.parquet",
                                  quarantine_path=tmp / "quarantine" / f"{s.name}.csv",
                                  spill=tmp / ".spill" / s.name, refs=refs, parents=keys,
                                  parent_reasons=parent_reasons, raw=_raw_lookup(run, e, batch_rows),
                                  preview=preview, on_rows=task.advance,
                                  finish_early=_keys_rarely_shared(run, e))
        shutil.rmtree(tmp / ".spill" / s.name, ignore_errors=True)
        k = (s.step.object.lower(), ext)
        prev = keys.get(k)
        quarantined = out.quarantined.key_index()
        keys[k] = ParentKeys(KeyIndex.union([out.mapped, prev.mapped]) if prev else out.mapped,
                             KeyIndex.union([quarantined, prev.quarantined]) if prev else quarantined)
        summaries.append(StepSummary(s.name, e, s.step.object, ext, rel, f"{STAGE}/quarantine/{s.name}.csv",
                                     out.rows_in, out.rows, out.rows_out, out.rows_quarantined, out.filtered,
                                     out.reasons, out.stats))
        plan.append({"step": s.name, "entity": e, "object": s.step.object, "external_id_field": ext,
                     "operation": s.step.operation, "file": rel, "rows": out.rows,
                     "rows_quarantined": out.rows_quarantined, "rows_in": out.rows_in,
                     "fields": [c for c in out.columns if not c.startswith("_")],
                     "parents": sorted({mappings.by_name(p).step.object for p in parents_of(s, mappings)}),
                     "lookups": [{"column": lk.output_column(f), "object": lk.object, "external_id": lk.external_id}
                                 for f, lk in s.step.lookups.items()],
                     "mapping": s.file})
        if preview:
            previews.append({"step": s.name, "rows": out.preview})
    shutil.rmtree(tmp / ".spill", ignore_errors=True)
    (tmp / "plan.json").write_text(json.dumps({"steps": plan}, ensure_ascii=False, indent=2), "utf-8")
    (tmp / "check.json").write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), "utf-8")
    final = root / STAGE
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    bad = [s for s in summaries if not s.balanced]
    if bad:
        raise RunFailed("map does not balance (a bug): " + "; ".join(
            f"{s.step}: in {s.rows_in} != out {s.rows_out} + quarantined {s.rows_quarantined}" for s in bad))
    return MapResult(run.run_id, tuple(summaries), report, str(final / "plan.json"), tuple(previews))


def _keys_rarely_shared(run, entity: str) -> bool:
    """Whether a key held by rows of two different batches is rare in ``entity``'s input: the resolve
    stage ran (one row per company), or the rows come from a single source. Then the map stream
    finishes each batch as soon as it is mapped (stream.py); rows of several sources not resolved
    share keys across batches as a rule, and would mostly be mapped twice that way."""
    from crmbridge.migrations.extracted import load_manifest

    if (run.dir / "resolve" / f"{entity}.parquet").exists():
        return True
    try:
        sources = load_manifest(run.dir)["entities"].get(entity, {}).get("sources", [])
    except (UsageError, OSError, ValueError):
        return False
    return len(sources) <= 1


def _raw_lookup(run, entity: str, batch_rows: int):
    """``stream.map_step_stream``'s ``raw``: the extracted rows of some row ids, in one pass over the extract."""
    from crmbridge.mappings.stream import scan_raw
    from crmbridge.migrations.extracted import iter_entity_batches

    def lookup(ids, columns, preview_ids):
        try:
            return scan_raw(iter_entity_batches(run.dir, entity, batch_rows=batch_rows), ids, columns, preview_ids)
        except (FileNotFoundError, KeyError, UsageError):
            return None

    return lookup


def _raw_entity(run, entity: str):
    """The entity as extracted (before validate's normalisation), or None when the run has no extract."""
    from crmbridge.migrations.extracted import read_entity

    try:
        return read_entity(run.dir, entity)
    except (FileNotFoundError, KeyError, UsageError):
        return None
