"""The hand-off of the extract stage: reading the extracted entities of a run.

Layout of ``runs/<run_id>/extract/`` (written by ``crmbridge.migrations.extract``)::

    <entity>/<source>.parquet   all data columns as strings + lineage columns
    manifest.json               per source and per entity counts, encoding, sha256, columns, watermark

Reader API used by the later stages: ``read_entity``, ``iter_entity_batches``, ``list_entities``,
``load_manifest``, ``entity_rows``; ``Extracted`` and ``FollowedExtract`` (``migrate``: validate reads the
batches while extract writes them, see ``crmbridge.migrations.extract_flow``) give the same batches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from crmbridge.errors import RunFailed, UsageError

STAGE = "extract"
LINEAGE = ["_row_id", "_source", "_department", "_line", "_source_key"]


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


def entity_rows(run_dir: Path, entity: str) -> int:
    """Rows of ``entity`` in the run's extract (Parquet footers only)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in _entity_files(Path(run_dir), entity))


def _entity_columns(files: list[Path]) -> list[str]:
    import pyarrow.parquet as pq

    return _ordered_columns(pq.read_schema(f).names for f in files)


def _ordered_columns(schemas) -> list[str]:
    """The columns of an entity's files (each a list of names): data columns in order of appearance, then lineage."""
    cols: list[str] = []
    for names in schemas:
        for name in names:
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
    return (t.to_pandas() for t in iter_entity_tables(run_dir, entity, batch_rows, columns))


def iter_entity_tables(run_dir: Path, entity: str, batch_rows: int = 50_000,
                       columns: list[str] | None = None) -> Iterator:
    """``iter_entity_batches``' batches as Arrow tables: a reader that skips some (validate's worker
    processes, each taking every other batch) does not convert those to pandas."""
    import pyarrow.parquet as pq

    files = _entity_files(Path(run_dir), entity)
    wanted = list(columns) if columns is not None else _entity_columns(files)

    def batches(f):
        pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)  # pre_buffer reads the whole file
        return pf.iter_batches(batch_size=batch_rows, columns=[c for c in wanted if c in pf.schema_arrow.names])

    yield from _shaped((batches(f) for f in files), wanted)


def _shaped(per_file, wanted: list[str]) -> Iterator:
    """Each file's record batches as tables of the ``wanted`` columns (null where a file lacks one)."""
    import pyarrow as pa

    yielded = False
    for batches in per_file:
        for batch in batches:
            tbl = pa.Table.from_batches([batch])
            for c in wanted:
                if c not in tbl.column_names:
                    tbl = tbl.append_column(c, pa.nulls(len(tbl), _column_type(c)))
            yielded = True
            yield tbl.select(wanted)
    if not yielded:  # iter_batches yields nothing for a file without rows: keep the columns anyway
        schema = pa.schema([pa.field(c, _column_type(c)) for c in wanted])
        yield schema.empty_table()


def _column_type(name: str):
    import pyarrow as pa

    return pa.int64() if name == "_line" else pa.string()


# ----------------------------------------------------------------------------- followed while written

# ``migrate`` runs validate's first pass while extract, in another process, is still writing (see
# ``crmbridge.migrations.extract_flow``). Extract then also appends each row group it writes to a side
# file per source, ``<FLOW>/<source>.arrows`` (Arrow IPC stream: one message per row group, written through),
# after a plan of its sources; the reader waits at the end of such a file for more. A file and not a pipe:
# validate goes in the definition's entity order, extract in the config's source order, so validate may
# wait on one entity's file while extract writes another's. The folder is scratch: the reader removes
# each entity's files once read, migrate the folder once the stage pair is over.
FLOW = ".extract.flow"
_PLAN = "plan.json"
_STOPPED = "STOPPED"  # extract failed, or read a source twice: what was published is void
_POLL_SECONDS = 0.02


class FollowStopped(RunFailed):
    """The followed extract stopped publishing before it finished: the rows read from it are void."""


class ExtractPublisher:
    """Extract's side: the plan of ``sources`` ((entity, source) in extract's order), then one stream each."""

    def __init__(self, run_dir: Path, sources: list[tuple[str, str]]):
        self.dir = Path(run_dir) / FLOW
        self.dir.mkdir(exist_ok=True)
        plan = self.dir / f"{_PLAN}.tmp"
        plan.write_text(json.dumps([{"entity": e, "source": s} for e, s in sources]), "utf-8")
        plan.rename(self.dir / _PLAN)  # whole or absent for the reader
        self.off = False

    def stream(self, source: str, schema) -> "_Stream | None":
        return None if self.off else _Stream(self.dir / f"{source}.arrows", schema)

    def stop(self, why: str) -> None:
        """Nothing more is published; a reader waiting for more raises ``FollowStopped(why)``."""
        self.off = True
        (self.dir / _STOPPED).write_text(why, "utf-8")


class _Stream:
    def __init__(self, path: Path, schema):
        import pyarrow as pa

        self.sink = pa.OSFile(str(path), "wb")  # unbuffered: each message is in the file once written
        self.writer = pa.ipc.new_stream(self.sink, schema)

    def write(self, table) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        """The source is complete: the end-of-stream marker tells the reader so."""
        self.writer.close()
        self.sink.close()

    def abandon(self) -> None:
        """Closed without the end-of-stream marker: the reader waits until told why (``stop``)."""
        self.sink.close()


class Extracted:
    """A finished extract as validate reads it: its entities, rows and batches (``iter_entity_tables``)."""

    following = False

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def entities(self) -> list[str]:
        return list_entities(self.run_dir)

    def rows(self, entity: str) -> int | None:
        return entity_rows(self.run_dir, entity)

    def tables(self, entity: str, batch_rows: int) -> Iterator:
        return iter_entity_tables(self.run_dir, entity, batch_rows)

    def release(self, entity: str) -> None:
        """The reader is done with ``entity``'s batches."""

    def finished(self) -> None:
        """Returns once the extract succeeded (raises its error if it failed)."""


class FollowedExtract(Extracted):
    """An extract under way in another process: ``tables`` yields exactly ``iter_entity_tables``' batches
    (``batch_rows`` per source file, the last one shorter) as soon as extract has written them, and
    raises ``FollowStopped`` if extract stops first. ``finished`` waits for the extract's outcome;
    ``alive`` tells whether its process still runs (one killed leaves no word)."""

    following = True

    def __init__(self, run_dir: Path, finished: Callable[[], Any], alive: Callable[[], bool]):
        super().__init__(run_dir)
        self.dir = self.run_dir / FLOW
        self._finished, self._alive = finished, alive

    def _stopped(self) -> str | None:
        marker = self.dir / _STOPPED
        if marker.exists():
            return marker.read_text("utf-8")
        return None if self._alive() else "the extract process ended"

    def _plan(self) -> list[dict]:
        path = self.dir / _PLAN
        _Waiting(path, self._stopped).wait_exists()
        return json.loads(path.read_text("utf-8"))

    def entities(self) -> list[str]:
        return list(dict.fromkeys(x["entity"] for x in self._plan()))

    def rows(self, entity: str) -> int | None:
        return None  # not known before extract ends

    def _paths(self, entity: str) -> list[Path]:
        return [self.dir / f"{x['source']}.arrows" for x in self._plan() if x["entity"] == entity]

    def tables(self, entity: str, batch_rows: int) -> Iterator:
        import pyarrow as pa

        files = [_Waiting(p, self._stopped) for p in self._paths(entity)]
        try:
            # every source's columns first, as iter_entity_tables reads every file's schema first
            readers = [pa.ipc.open_stream(pa.PythonFile(f, mode="r")) for f in files]
            wanted = _ordered_columns(r.schema.names for r in readers)
            yield from _shaped((_rebatched(r, batch_rows) for r in readers), wanted)
        finally:
            for f in files:
                f.close()

    def release(self, entity: str) -> None:
        for p in self._paths(entity):
            p.unlink(missing_ok=True)

    def finished(self) -> None:
        self._finished()


def _rebatched(reader, batch_rows: int) -> Iterator:
    """A stream's record batches (extract's row groups) cut into ``batch_rows`` rows, the last one shorter:
    what ``ParquetFile.iter_batches`` makes of the same rows, whatever the row groups."""
    import pyarrow as pa

    parts, held = [], 0
    for batch in reader:
        parts.append(batch)
        held += batch.num_rows
        while held >= batch_rows:
            whole = pa.concat_batches(parts) if len(parts) > 1 else parts[0]
            yield whole.slice(0, batch_rows)
            held -= batch_rows
            parts = [whole.slice(batch_rows)] if held else []  # no empty part: it would cost a copy
    if held:
        yield pa.concat_batches(parts) if len(parts) > 1 else parts[0]


class _Waiting:
    """A file read while it is written: a read returns the bytes asked for, waiting for them until
    ``stopped()`` gives a reason (then ``FollowStopped``)."""

    closed = False

    def __init__(self, path: Path, stopped: Callable[[], str | None]):
        self.path, self.stopped, self.f = path, stopped, None

    def _idle(self) -> None:
        why = self.stopped()
        if why is not None and not self._more():  # look once more: the writer may have ended after writing
            raise FollowStopped(f"extract stopped before {self.path.name} was complete: {why}",
                                hint="the rows read from it are void")
        time.sleep(_POLL_SECONDS)

    def _more(self) -> bool:
        return self.path.exists() and (self.f is None or self.f.tell() < self.path.stat().st_size)

    def wait_exists(self) -> None:
        while not self.path.exists():
            self._idle()

    def read(self, n: int = -1) -> bytes:
        if self.f is None:
            self.wait_exists()
            self.f = open(self.path, "rb")
        if n < 0:
            raise ValueError("a followed stream is read in sized parts")
        first = self.f.read(n)
        if len(first) == n:  # the bytes are there (nearly always): no copy into a buffer
            return first
        out = bytearray(first)
        while len(out) < n:
            chunk = self.f.read(n - len(out))
            if chunk:
                out += chunk
            else:
                self._idle()
        return bytes(out)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
        self.closed = True


def clear_flow(run_dir: Path) -> None:
    """Remove the follow scratch of ``run_dir`` (one left by a killed ``migrate`` too)."""
    import shutil

    shutil.rmtree(Path(run_dir) / FLOW, ignore_errors=True)
