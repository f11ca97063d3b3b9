"""The hand-off of the extract stage: reading the extracted entities of a run.

Layout of ``runs/<run_id>/extract/`` (written by ``crmbridge.migrations.extract``)::

    <entity>/<source>.parquet   all data columns as strings + lineage columns
    manifest.json               per source and per entity counts, encoding, sha256, columns, watermark

Reader API used by the later stages: ``read_entity``, ``iter_entity_batches``, ``list_entities``,
``load_manifest``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from crmbridge.errors import UsageError

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
    return (t.to_pandas() for t in iter_entity_tables(run_dir, entity, batch_rows, columns))


def iter_entity_tables(run_dir: Path, entity: str, batch_rows: int = 50_000,
                       columns: list[str] | None = None) -> Iterator:
    """``iter_entity_batches``' batches as Arrow tables: a reader that skips some (validate's worker
    processes, each taking every other batch) does not convert those to pandas."""
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
            yield tbl.select(wanted)
    if not yielded:  # iter_batches yields nothing for a file without rows: keep the columns anyway
        schema = pa.schema([pa.field(c, _column_type(c)) for c in wanted])
        yield schema.empty_table()


def _column_type(name: str):
    import pyarrow as pa

    return pa.int64() if name == "_line" else pa.string()
