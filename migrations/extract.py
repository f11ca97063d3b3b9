"""The extract stage: every configured legacy source into a run, losslessly, every row accounted for.

Layout of ``runs/<run_id>/extract/``::

    <entity>/<source>.parquet   all data columns as strings + lineage columns
    rejects/<source>.csv        _line, _reason, _raw for each rejected record
    manifest.json               per source and per entity counts, encoding, sha256, columns, watermark
    profile.json                per entity profile (see ``crmbridge.migrations.profile``)

Everything is written into a temporary folder next to ``extract/`` and moved into place only when all
sources succeeded, so a failed extraction leaves nothing half-written. Watermarks of incremental SQL
sources advance only after the stage has been recorded as succeeded.

Reader API used by the later stages: ``read_entity``, ``iter_entity_batches``, ``list_entities``,
``load_manifest``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from crmbridge import progress
from crmbridge.errors import RunFailed, UsageError
from crmbridge.locks import locked

STAGE = "extract"
LINEAGE = ["_row_id", "_source", "_department", "_line", "_source_key"]


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
                on_progress: Callable[[str, int], None] | None = None) -> ExtractResult:
    """Extract ``sources`` (default: all) of ``project`` into ``run`` (a new "migrate" run if None).

    ``full`` ignores stored watermarks; ``encoding`` overrides the encoding of the single selected
    file source; ``on_progress(source, rows)`` is called after each chunk. A source read in full that
    is empty or far smaller than in the last successful run stops the stage (see ``shrink``) unless
    ``allow_shrink``.
    """
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
    try:
        tmp.mkdir(parents=True)
        results, manifests, marks = [], [], {}
        from crmbridge.migrations.profile import EntityProfile, profile_result

        profiles: dict[str, EntityProfile] = {}  # fed with the row groups as they are written
        progress.current().expect(len(chosen))
        for src in chosen:
            wm = None if full or src.type != "sql" or not src.incremental else \
                get_watermark(engine, f"extract:{src.name}")
            with progress.tracked(f"{src.name} (rows read)") as task:
                counts, entry = _extract_source(project, src, tmp, wm, encoding, _rows_to(task, on_progress),
                                                profiles.setdefault(src.entity, EntityProfile()))
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


def _open_source(project, src, encoding: str | None, watermark: str | None):
    from crmbridge.connectors import files, sql

    if src.type == "csv":
        return files.read_csv(src, project.path(src.path), src.path, encoding=encoding,
                              batch_rows=project.config.chunk_rows)
    if src.type == "excel":
        return files.read_excel(src, project.path(src.path), src.path)
    return sql.read_sql(src, project.db_url(src.url, f"sources.{src.name}.url"),
                        chunk_rows=project.config.chunk_rows, watermark=watermark)


def _extract_source(project, src, tmp: Path, watermark: str | None, encoding: str | None,
                    on_progress, profile=None) -> tuple[SourceCounts, dict]:
    import pyarrow.parquet as pq

    from crmbridge.migrations import source_rows

    read = _open_source(project, src, encoding, watermark)
    try:
        rules = source_rows.for_source(project, src, read.columns)
    except BaseException:
        getattr(read.events, "close", lambda: None)()  # releases the file or the database connection
        raise
    rel_parquet = f"{src.entity}/{src.name}.parquet"
    rel_rejects = f"rejects/{src.name}.csv"
    writer = SourceWriter(src, read.columns, tmp / rel_parquet, tmp / rel_rejects, profile)
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


def _write_events(events, rules, writer: "SourceWriter", name: str, chunk: int, on_progress) -> int:
    """Per-record events (Excel, SQL) into the writer, ``chunk`` kept rows at a time; returns rows read."""
    from crmbridge.migrations import source_rows

    rows_read = 0
    lines: list[int] = []
    rows: list[list] = []
    depts: list[str] | None = [] if rules is not None else None
    for line, cells, bad in events:  # the hot loop: kept lean on purpose
        rows_read += 1
        if bad is None:
            if rules is not None:
                dept, why = rules.check(cells)
                if why is not None:
                    writer.reject(line, why, source_rows.raw_cells(cells))
                    continue
                depts.append(dept)
            lines.append(line)
            rows.append(cells)
            if len(rows) >= chunk:
                writer.write(lines, rows, depts)
                lines, rows = [], []
                depts = [] if rules is not None else None
                if on_progress:
                    on_progress(name, rows_read)
        else:
            writer.reject(line, *bad)
    writer.write(lines, rows, depts)
    return rows_read


def _write_batches(batches, rules, writer: "SourceWriter", name: str, chunk: int, on_progress) -> int:
    """Arrow batches (CSV) into the writer, the row rules applied column-wise; returns rows read.

    Rejects (the reader's and the rules') are written in line order, as the per-record path does."""
    import pyarrow as pa

    from crmbridge.migrations import source_rows

    groups = _RowGroups(writer, chunk)
    rows_read = 0
    for batch in batches:
        rows_read += batch.rows + len(batch.rejects)
        rejects = batch.rejects
        cols, lines, depts = batch.columns, batch.lines, None
        if rules is not None and batch.rows:
            keep, depts, refused = rules.check_columns(cols)
            if refused:
                at = pa.array([i for i, _ in refused], pa.int64())
                cells = [c.take(at).to_pylist() for c in cols]
                refused_lines = lines.take(at).to_pylist()
                rejects = sorted(rejects + [(refused_lines[j], why, source_rows.raw_cells([c[j] for c in cells]))
                                            for j, (_, why) in enumerate(refused)], key=lambda r: r[0])
                mask = pa.array(keep)
                cols, lines = [c.filter(mask) for c in cols], lines.filter(mask)
        for line, reason, raw in rejects:
            writer.reject(line, reason, raw)
        groups.add(lines, cols, depts)
        if on_progress:
            on_progress(name, rows_read)
    groups.flush()
    return rows_read


class _RowGroups:
    """Kept rows regrouped into Parquet row groups of exactly ``chunk`` rows (the last one shorter),
    as the per-record path writes them, whatever the size of the reader's batches."""

    def __init__(self, writer: "SourceWriter", chunk: int):
        self.writer, self.chunk = writer, chunk
        self.parts: list[tuple] = []
        self.rows = 0

    def add(self, lines, cols: list, depts) -> None:
        if len(lines):
            self.parts.append((lines, cols, depts))
            self.rows += len(lines)
        if self.rows >= self.chunk:
            self.flush(full_only=True)

    def flush(self, full_only: bool = False) -> None:
        import pyarrow as pa

        if not self.parts:
            return
        lines = pa.concat_arrays([p[0] for p in self.parts])
        cols = [pa.concat_arrays(list(c)) for c in zip(*(p[1] for p in self.parts))]
        depts = None if self.parts[0][2] is None else pa.concat_arrays([p[2] for p in self.parts])
        at, n = 0, len(lines)
        while n - at >= self.chunk or (not full_only and at < n):
            k = min(self.chunk, n - at)
            self.writer.write_arrow(lines.slice(at, k), [c.slice(at, k) for c in cols],
                                    None if depts is None else depts.slice(at, k))
            at += k
        rest = n - at
        self.parts = [(lines.slice(at), [c.slice(at) for c in cols],
                       None if depts is None else depts.slice(at))] if rest else []
        self.rows = rest


class SourceWriter:
    """Writes one source's kept rows to Parquet chunk by chunk and its rejects to a CSV file."""

    def __init__(self, src, columns: list[str], parquet: Path, rejects: Path, profile=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.columns = list(columns)
        self.profile = profile  # an EntityProfile fed with each row group, or None
        if profile is not None:
            profile.start_file(self.columns)
        self.name, self.department = src.name, src.department
        self.width = len(columns)
        self.key_idx = [columns.index(k) for k in src.key]
        self.schema = pa.schema([pa.field(c, pa.string()) for c in columns]
                                + [pa.field(c, pa.int64() if c == "_line" else pa.string()) for c in LINEAGE])
        parquet.parent.mkdir(parents=True, exist_ok=True)
        self.pq, self.parquet = pq, parquet
        self.writer = None  # opened at the first row group, which chooses the dictionary columns
        self.rejects_path = rejects
        self._rejects = None
        self.rows_kept = self.rows_rejected = 0
        self.reasons: dict[str, int] = {}
        self.departments: dict[str, int] = {}  # rows kept per department

    def reject(self, line: int, reason: str, raw: str) -> None:
        if self._rejects is None:
            from crmbridge.csvout import Writer  # a human-facing file: formula injection neutralised

            self._rejects = Writer(self.rejects_path, ["_line", "_reason", "_raw"])
        self._rejects.writerow([line, reason, raw])
        short = reason.split(" (", 1)[0]
        self.reasons[short] = self.reasons.get(short, 0) + 1
        self.rows_rejected += 1

    def _source_keys(self, cols: list, row_ids):
        pa = self.pa
        if not self.key_idx:
            return row_ids
        if len(self.key_idx) == 1:
            return cols[self.key_idx[0]]
        import pyarrow.compute as pc

        parts = [cols[k] for k in self.key_idx]
        joined = pc.binary_join_element_wise(*parts, "|", null_handling="replace", null_replacement="")
        none = parts[0].is_null()
        for p in parts[1:]:
            none = pc.and_(none, p.is_null())
        return pc.if_else(none, pa.scalar(None, pa.string()), joined)

    def write(self, lines: list[int], rows: list[list], depts: list[str] | None = None) -> None:
        """Write one chunk of kept rows (``lines`` their line numbers) as a Parquet row group;
        ``depts`` is each row's department (None: the source's department for all)."""
        pa = self.pa
        if not rows:
            return
        self.write_arrow(pa.array(lines, pa.int64()), [pa.array(c, pa.string()) for c in zip(*rows)],
                         None if depts is None else pa.array(depts, pa.string()))

    def write_arrow(self, lines, columns: list, depts=None) -> None:
        """Write kept rows given as Arrow string columns (``""`` or null for empty) and their int64
        ``lines`` as a Parquet row group; ``depts`` as in ``write``."""
        import pyarrow.compute as pc

        pa, n = self.pa, len(lines)
        if not n:
            return
        if depts is None:
            dept_arr = pa.repeat(pa.scalar(self.department, pa.string()), n)
            self.departments[self.department] = self.departments.get(self.department, 0) + n
        else:
            dept_arr = depts
            vc = pc.value_counts(depts)
            for d, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                self.departments[d] = self.departments.get(d, 0) + c
        # Connectors may hand over "" for an empty cell: it becomes null here, vectorised.
        cols = [_empty_to_null(c) for c in columns]
        if self.profile is not None:
            self.profile.add(self.columns, cols, n)
        row_ids = pc.binary_join_element_wise(f"{self.name}:", pc.cast(lines, pa.string()), "")
        keys = self._source_keys(cols, row_ids)
        cols += [row_ids, pa.repeat(pa.scalar(self.name, pa.string()), n), dept_arr, lines, keys]
        table = pa.Table.from_arrays(cols, schema=self.schema)
        if self.writer is None:
            self._open(table)
        self.writer.write_table(table)
        self.rows_kept += n

    def _open(self, first=None) -> None:
        """Dictionary encoding only for the columns whose first row group repeats values: on a column
        of (nearly) unique values it costs 40% of the write and the writer falls back to plain anyway."""
        import pyarrow.compute as pc

        dictionary = ["_source", "_department"]
        if first is not None:
            n = first.num_rows
            dictionary += [c for c in first.column_names[:self.width]
                           if pc.count_distinct(first.column(c)).as_py() <= n // 2]
        self.writer = self.pq.ParquetWriter(self.parquet, self.schema, use_dictionary=dictionary)

    def close(self) -> None:
        if self.writer is None:
            self._open()
        self.writer.close()
        if self._rejects:
            self._rejects.close()

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if self._rejects:
                self._rejects.close()


def _empty_to_null(arr):
    import pyarrow.compute as pc

    empty = pc.equal(arr, "")
    if not pc.any(empty).as_py():
        return arr
    return pc.if_else(empty, None, arr)


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


# --------------------------------------------------------------------------- reader API


def load_manifest(run_dir: Path) -> dict:
    """The extract manifest of a run; ``UsageError`` if the run has no extract stage."""
    p = Path(run_dir) / STAGE / "manifest.json"
    if not p.is_file():
        raise UsageError(f"run folder {run_dir} has no extract stage (no {STAGE}/manifest.json)",
                         hint="run `crmbridge extract` first")
    return json.loads(p.read_text("utf-8"))


def list_entities(run_dir: Path) -> list[str]:
    """Entities extracted into the run, in config order."""
    return list(load_manifest(run_dir)["entities"])


def _entity_files(run_dir: Path, entity: str) -> list[Path]:
    m = load_manifest(run_dir)
    if entity not in m["entities"]:
        raise UsageError(f"entity '{entity}' was not extracted in run {m['run_id']}; "
                         f"entities: {', '.join(m['entities']) or '(none)'}")
    return [Path(run_dir) / STAGE / s["parquet"] for s in m["sources"] if s["entity"] == entity]


def _entity_columns(files: list[Path]) -> list[str]:
    import pyarrow.parquet as pq

    cols: list[str] = []
    for f in files:
        for name in pq.read_schema(f).names:
            if name not in cols:
                cols.append(name)
    data = [c for c in cols if c not in LINEAGE]
    return data + [c for c in LINEAGE if c in cols]


def read_entity(run_dir: Path, entity: str, columns: list[str] | None = None):
    """All rows of ``entity`` (every source concatenated) as a DataFrame of strings + lineage.

    Columns a source does not have are null in its rows; ``columns`` selects (and orders) columns.
    """
    import pandas as pd

    parts = list(iter_entity_batches(run_dir, entity, batch_rows=1 << 30, columns=columns))
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def iter_entity_batches(run_dir: Path, entity: str, batch_rows: int = 50_000,
                        columns: list[str] | None = None) -> Iterator:
    """DataFrames of at most ``batch_rows`` rows of ``entity``, all with the same columns.

    An entity with no rows (a header-only file, an incremental extract with no changes) still yields
    one empty DataFrame carrying every column the extracted Parquet files declare, so later stages
    see the same columns whether or not there are rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _entity_files(Path(run_dir), entity)
    wanted = list(columns) if columns is not None else _entity_columns(files)
    yielded = False
    for f in files:
        pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)  # pre_buffer reads the whole file
        have = [c for c in wanted if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=have):
            tbl = pa.Table.from_batches([batch])
            for c in wanted:
                if c not in have:
                    tbl = tbl.append_column(c, pa.nulls(len(tbl), _column_type(c)))
            yielded = True
            yield tbl.select(wanted).to_pandas()
    if not yielded:  # iter_batches yields nothing for a file without rows: keep the columns anyway
        schema = pa.schema([pa.field(c, _column_type(c)) for c in wanted])
        yield schema.empty_table().to_pandas()


def _column_type(name: str):
    import pyarrow as pa

    return pa.int64() if name == "_line" else pa.string()
