"""The extract stage: every configured legacy source into a run, losslessly, every row accounted for.

Layout of ``runs/<run_id>/extract/``::

    <entity>/<source>.parquet   all data columns as strings + lineage columns
    rejects/<source>.csv        _line, _reason, _raw for each rejected record
    manifest.json               per source and per entity counts, encoding, sha256, columns, watermark
    profile.json                per entity profile (see ``crmbridge.migrations.profile``)

Everything is written into a temporary folder next to ``extract/`` and moved into place only when all
sources succeeded, so a failed extraction leaves nothing half-written. Watermarks of incremental SQL
sources advance only after the stage has been recorded as succeeded.

The reader API used by the later stages (``read_entity``, ``iter_entity_batches``, ``list_entities``,
``load_manifest``) lives in ``crmbridge.migrations.extracted``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from crmbridge import progress
from crmbridge.errors import RunFailed, UsageError
from crmbridge.locks import locked
from crmbridge.migrations.extracted import LINEAGE, STAGE
from crmbridge.migrations.source_writer import SourceWriter, _write_batches, _write_events

# Detect a CSV file's encoding on its first block and confirm it while reading (see ``_extract_source``);
# False: on the whole file first, as before (the reference the tests compare with).
QUICK_DETECTION = True


@dataclass(frozen=True)
class SourceCounts:
    """One source's outcome."""

    source: str
    entity: str
    department: str
    type: str
    rows_read: int
    rows_kept: int
    rows_rejected: int
    reject_reasons: dict[str, int]
    encoding: str | None
    parquet: str
    reject_file: str | None
    skipped_blank: int = 0
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "notes": list(self.notes)}


@dataclass(frozen=True)
class ExtractResult:
    """What ``run_extract`` did: the run, per-source and per-entity counts, and where the files are."""

    run_id: str
    run_dir: str
    extract_dir: str
    sources: tuple[SourceCounts, ...]
    entities: dict[str, dict[str, int]] = field(default_factory=dict)
    manifest: str = ""
    profile: str = ""

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": self.run_dir, "extract_dir": self.extract_dir,
                "manifest": self.manifest, "profile": self.profile,
                "rows_read": self.rows_read, "rows_rejected": self.rows_rejected,
                "sources": [s.as_dict() for s in self.sources], "entities": self.entities}


# --------------------------------------------------------------------------- the stage


def _rows_to(task, on_progress):
    """An ``on_progress(source, rows_so_far)`` that also advances ``task`` by the rows since the last call."""
    seen = [0]

    def cb(source: str, rows: int) -> None:
        task.advance(rows - seen[0])
        seen[0] = rows
        if on_progress:
            on_progress(source, rows)

    return cb


@locked("extract")
def run_extract(project, *, run=None, sources: list[str] | None = None, full: bool = False,
                encoding: str | None = None, allow_shrink: bool = False,
                on_progress: Callable[[str, int], None] | None = None, publish: bool = False) -> ExtractResult:
    """Extract ``sources`` (default: all) of ``project`` into ``run`` (a new "migrate" run if None).

    ``full`` ignores stored watermarks; ``encoding`` overrides the encoding of the single selected
    file source; ``on_progress(source, rows)`` is called after each chunk. A source read in full that
    is empty or far smaller than in the last successful run stops the stage (see ``shrink``) unless
    ``allow_shrink``. ``publish``: each row group is also handed to a reader in another process as it is
    written (``extracted.FollowedExtract``; ``migrate``'s validate).
    """
    from crmbridge.migrations.extracted import ExtractPublisher
    from crmbridge.migrations import shrink
    from crmbridge.migrations import runs as runs_mod
    from crmbridge.secretref import redact
    from crmbridge.state import get_watermark, open_state, set_watermark

    chosen = _choose(project, sources, encoding)
    engine = open_state(project.state_url)
    created = run is None
    if created:
        run = runs_mod.create_run(engine, project.runs_dir, "migrate", command="extract")
    runs_mod.start_stage(engine, run.run_id, STAGE)
    tmp = run.dir / f".{STAGE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    publisher = None
    try:
        tmp.mkdir(parents=True)
        if publish:
            publisher = ExtractPublisher(run.dir, [(s.entity, s.name) for s in chosen])
        results, manifests, marks = [], [], {}
        from crmbridge.migrations.profile import EntityProfile, profile_result

        profiles: dict[str, EntityProfile] = {}  # fed with the row groups as they are written
        progress.current().expect(len(chosen))
        for src in chosen:
            wm = None if full or src.type != "sql" or not src.incremental else \
                get_watermark(engine, f"extract:{src.name}")
            with progress.tracked(f"{src.name} (rows read)") as task:
                counts, entry = _extract_source(project, src, tmp, wm, encoding, _rows_to(task, on_progress),
                                                profiles.setdefault(src.entity, EntityProfile()), publisher)
            entry["incremental"] = wm is not None  # a delta from the watermark, not the whole source
            results.append(counts)
            manifests.append(entry)
            stored = entry.pop("_stored", None)
            if entry["watermark"]:
                entry["watermark"].pop("stored", None)
            if stored:
                marks[src.name] = stored
        shrink.check(engine, project.runs_dir, run.run_id, results, {x.name: x for x in chosen},
                     {m["source"] for m in manifests if m.get("incremental")}, allow=allow_shrink)
        manifest = _manifest(run.run_id, manifests)
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8")
        prof = profile_result(manifest, profiles)
        (tmp / "profile.json").write_text(json.dumps(prof, ensure_ascii=False, indent=2), "utf-8")
        final = _move_into_place(tmp, run.dir / STAGE)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        error = redact(str(exc) or type(exc).__name__)
        if publisher is not None:
            publisher.stop(f"extract failed: {error}")
        runs_mod.finish_stage(engine, run.run_id, STAGE, status="failed", error=error)
        if created:
            runs_mod.finish_run(engine, run.run_id, "failed", {"error": error})
            _remove_if_empty(run.dir)
        raise
    result = ExtractResult(run_id=run.run_id, run_dir=str(run.dir), extract_dir=str(final),
                           sources=tuple(results), entities=manifest["entities"],
                           manifest=str(final / "manifest.json"), profile=str(final / "profile.json"))
    runs_mod.finish_stage(engine, run.run_id, STAGE, result.as_dict())
    for name, stored in marks.items():  # only now: the stage that holds these rows has committed
        set_watermark(engine, f"extract:{name}", stored)
    return result


def _choose(project, names: list[str] | None, encoding: str | None) -> list:
    all_sources = project.config.sources
    if not all_sources:
        raise UsageError("no sources in crmbridge.yml", hint="add a `sources:` list (see `crmbridge init`)")
    if names:
        known = {s.name: s for s in all_sources}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"unknown source(s): {', '.join(unknown)}; configured: {', '.join(known)}")
        chosen = [known[n] for n in dict.fromkeys(names)]
    else:
        chosen = list(all_sources)
    if encoding:
        if len(chosen) != 1 or chosen[0].type != "csv":
            raise UsageError("--encoding applies to one CSV/TXT source",
                             hint="pass it together with a single --source NAME of type csv")
    return chosen


def _move_into_place(tmp: Path, final: Path) -> Path:
    old = final.with_name(f".{STAGE}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass


def _open_source(project, src, encoding: str | None, watermark: str | None, tentative: bool = False):
    from crmbridge.connectors import files, sql

    if src.type == "csv":
        return files.read_csv(src, project.path(src.path), src.path, encoding=encoding,
                              batch_rows=project.config.chunk_rows, tentative=tentative)
    if src.type == "excel":
        return files.read_excel(src, project.path(src.path), src.path)
    return sql.read_sql(src, project.db_url(src.url, f"sources.{src.name}.url"),
                        chunk_rows=project.config.chunk_rows, watermark=watermark)


def _extract_source(project, src, tmp: Path, watermark: str | None, encoding: str | None,
                    on_progress, profile=None, publisher=None) -> tuple[SourceCounts, dict]:
    """One source into ``tmp``. A CSV file's detected encoding is checked on its first block and
    confirmed while the file is read (one decoding instead of two, see ``encoding.detect_encoding``);
    in the rare file where a later block does not decode, what was read is dropped and the file is
    read again with the encoding detected on the whole file, as if that had been done first."""
    import copy

    from crmbridge.connectors.encoding import NotThatEncoding

    if src.type != "csv" or not QUICK_DETECTION or encoding or src.encoding != "auto":  # declared: no detection
        return _extract_read(project, src, tmp, watermark, encoding, on_progress, profile, publisher=publisher)
    # the entity's statistics before this source (bounded: at most EXACT_DISTINCT values a column)
    before = copy.deepcopy(profile)
    try:
        return _extract_read(project, src, tmp, watermark, encoding, on_progress, profile, True, publisher)
    except NotThatEncoding:
        for rel in (f"{src.entity}/{src.name}.parquet", f"rejects/{src.name}.csv"):
            (tmp / rel).unlink(missing_ok=True)
        if profile is not None:
            profile.__dict__.update(before.__dict__)
        if publisher is not None:  # its rows already published are not the file's: the reader starts over
            publisher.stop(f"source {src.name} is read again in another encoding")
        return _extract_read(project, src, tmp, watermark, encoding, on_progress, profile)


def _extract_read(project, src, tmp: Path, watermark: str | None, encoding: str | None,
                  on_progress, profile=None, tentative: bool = False, publisher=None) -> tuple[SourceCounts, dict]:
    import pyarrow.parquet as pq

    from crmbridge.migrations import source_rows

    read = _open_source(project, src, encoding, watermark, tentative)
    try:
        rules = source_rows.for_source(project, src, read.columns)
    except BaseException:
        getattr(read.events, "close", lambda: None)()  # releases the file or the database connection
        raise
    rel_parquet = f"{src.entity}/{src.name}.parquet"
    rel_rejects = f"rejects/{src.name}.csv"
    writer = SourceWriter(src, read.columns, tmp / rel_parquet, tmp / rel_rejects, profile, publisher)
    rows_read = 0
    try:
        if read.batches is not None:
            rows_read = _write_batches(read.batches, rules, writer, src.name, project.config.chunk_rows, on_progress)
        else:
            rows_read = _write_events(read.events, rules, writer, src.name, project.config.chunk_rows, on_progress)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    # Kept rows are counted from what the Parquet file really holds, not from the writer's tally.
    kept = pq.ParquetFile(tmp / rel_parquet).metadata.num_rows
    shown_dept = f"column {src.department_column}" if src.department_column else src.department
    counts = SourceCounts(source=src.name, entity=src.entity, department=shown_dept, type=src.type,
                          rows_read=rows_read, rows_kept=kept, rows_rejected=writer.rows_rejected,
                          reject_reasons=dict(writer.reasons), encoding=read.encoding, parquet=rel_parquet,
                          reject_file=rel_rejects if writer.rows_rejected else None,
                          skipped_blank=read.skipped_blank, notes=tuple(read.notes))
    entry = {"source": src.name, "entity": src.entity, "department": src.department, "type": src.type}
    if src.type == "sql":
        entry["table" if src.table else "query"] = src.table or src.query
    else:
        entry["path"] = src.path
    entry.update({"encoding": read.encoding, "encoding_detection": read.encoding_how, "delimiter": read.delimiter,
                  "sha256": read.sha256, "rows_read": rows_read, "rows_kept": kept,
                  "rows_rejected": writer.rows_rejected, "reject_reasons": dict(writer.reasons),
                  "reject_file": counts.reject_file, "parquet": rel_parquet, "skipped_blank": read.skipped_blank,
                  "notes": read.notes, "zero_dates": dict(read.zero_dates), "columns": list(read.columns),
                  "lineage_columns": LINEAGE, "watermark": None,
                  "rows_filtered": sum(n for r, n in writer.reasons.items() if r.startswith("filtered:")),
                  "departments": dict(writer.departments)})
    if src.department_column:
        entry["department_column"] = src.department_column
    if read.watermark is not None:
        entry["watermark"] = dict(read.watermark)
        entry["_stored"] = read.watermark.get("stored")
    return counts, entry


def _manifest(run_id: str, sources: list[dict]) -> dict:
    entities: dict[str, dict[str, Any]] = {}
    for s in sources:
        if s["rows_read"] != s["rows_kept"] + s["rows_rejected"]:
            raise RunFailed(f"source {s['source']}: rows read {s['rows_read']} != kept {s['rows_kept']} + "
                            f"rejected {s['rows_rejected']}", hint="re-run `crmbridge extract`; report this as a bug")
        e = entities.setdefault(s["entity"], {"sources": [], "rows_read": 0, "rows_kept": 0, "rows_rejected": 0})
        e["sources"].append(s["source"])
        for k in ("rows_read", "rows_kept", "rows_rejected"):
            e[k] += s[k]
    return {"run_id": run_id, "stage": STAGE, "sources": sources, "entities": entities}

