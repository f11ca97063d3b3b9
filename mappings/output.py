"""Writing map artifacts: load files (Parquet), quarantine (CSV) and previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from crmbridge.cells import to_native


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed Python types become text, so pyarrow can store them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        types = {type(v) for v in out[c].array if v is not None and not (isinstance(v, float) and v != v)}
        if len(types) > 1 and not types <= {int, float}:
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    return out


def write_records(df: pd.DataFrame, path: Path) -> None:
    _parquet_safe(df).to_parquet(path, index=False)


def write_quarantine(df: pd.DataFrame, path: Path) -> None:
    """Source row + ``_reason`` (UTF-8 with BOM so Excel shows Chinese text correctly; formula-like
    cells neutralised by ``crmbridge.csvout``)."""
    from crmbridge.csvout import write_frame

    write_frame(df, path)


def preview_rows(source: pd.DataFrame, records: pd.DataFrame, n: int, raw: pd.DataFrame | None = None
                 ) -> list[dict[str, Any]]:
    """The first ``n`` mapped records next to the source row(s) they came from; with ``raw`` (the rows as
    extracted), each source row also carries ``legacy``: the extracted value of every column whose
    value validate's normalisation changed."""
    if n <= 0 or records.empty:
        return []
    by_id = source.set_index(source["_row_id"].astype(str)) if "_row_id" in source.columns else None
    raw_by_id = None
    if raw is not None and "_row_id" in raw.columns:
        raw_by_id = raw.drop_duplicates("_row_id")
        raw_by_id.index = raw_by_id["_row_id"].astype(str)
    rows = []
    for rec in records.head(n).to_dict("records"):
        src_rows = []
        if by_id is not None:
            for rid in str(rec.get("_merged_row_ids") or rec["_row_id"]).split(";"):
                if rid in by_id.index:
                    r = by_id.loc[rid]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    row = {k: to_native(v) for k, v in r.items() if not str(k).startswith("_")
                           or k in ("_department", "_row_id")}
                    if raw_by_id is not None and rid in raw_by_id.index:
                        legacy = raw_by_id.loc[rid]
                        row["legacy"] = {k: to_native(legacy[k]) for k in row if k in legacy.index
                                         and not str(k).startswith("_") and to_native(legacy[k]) != row[k]}
                    src_rows.append(row)
        rows.append({"mapped": {k: to_native(v) for k, v in rec.items()}, "source": src_rows})
    return rows




def _value_types(s: pd.Series) -> set:
    """The Python types of the present values of an object column, as ``_parquet_safe`` counts them
    (None and float NaN left out)."""
    arr = s.to_numpy(dtype=object)  # iterating a numpy array, not pandas' ExtensionArray: 20x faster
    types = set(map(type, arr))
    types.discard(type(None))
    if any(issubclass(t, float) for t in types):  # NaN floats do not count: look at the values
        types = {type(v) for v in arr if v is not None and not (isinstance(v, float) and v != v)}
    return types


def _mixed(types: set) -> bool:
    return len(types) > 1 and not types <= {int, float}


class RecordsWriter:
    """A step's records Parquet written batch by batch, equal to ``write_records`` of all batches at once:
    a column holding mixed Python types in *any* batch is text in every batch (``note`` every batch
    first), and the file has one schema, the batches' own ones promoted (a column empty in one batch
    and text in another is text)."""

    def __init__(self, path: Path, spill: Path):
        self.path, self.spill = Path(path), Path(spill)
        self.types: dict[str, set] = {}
        self.schemas: list = []
        self.tables: dict[int, Any] = {}  # batches kept in memory (a step of one batch)

    def note(self, df: pd.DataFrame) -> None:
        for c in df.columns:
            s = df[c]
            seen = self.types.setdefault(c, set())
            if s.dtype == object:
                seen.update(_value_types(s))
            elif pd.api.types.is_string_dtype(s.dtype) and s.notna().any():
                seen.add(str)

    def stage(self, i: int, df: pd.DataFrame, *, in_memory: bool = False) -> None:
        import pyarrow as pa

        out = df
        text = [c for c in df.columns if df[c].dtype == object and _mixed(self.types.get(c, set()))]
        if text:
            out = df.copy()
            for c in text:
                out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        table = pa.Table.from_pandas(out, preserve_index=False)
        self.schemas.append(table.schema)
        if in_memory:
            self.tables[i] = table
            return
        with pa.OSFile(str(self.spill / f"rec{i}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)

    def write(self, n: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        unified = pa.unify_schemas([s.remove_metadata() for s in self.schemas], promote_options="permissive")
        meta = _pandas_metadata(self.schemas, unified)
        schema = unified.with_metadata(meta) if meta else unified
        with pq.ParquetWriter(self.path, schema) as w:
            for i in range(n):
                p = self.spill / f"rec{i}.arrow"
                if i in self.tables:
                    table = self.tables.pop(i)
                else:
                    with pa.memory_map(str(p)) as src:
                        table = pa.ipc.open_file(src).read_all()
                if len(table) or n == 1:
                    w.write_table(table.select(schema.names).cast(schema))
                del table
                p.unlink(missing_ok=True)


def _pandas_metadata(schemas: list, unified) -> dict | None:
    """The pandas metadata of the batch whose column types are the file's (the largest agreement)."""
    import json

    best, score = None, -1
    for s in schemas:
        if not s.metadata or b"pandas" not in s.metadata:
            continue
        agree = sum(1 for f in s if f.name in unified.names and unified.field(f.name).type == f.type)
        if agree > score:
            best, score = s.metadata, agree
    if best is None:
        return None
    meta = json.loads(best[b"pandas"])
    return {b"pandas": json.dumps(meta).encode()}


class QuarantineWriter:
    """A step's quarantine CSV (``write_quarantine`` of the steward's view) written batch by batch: the
    ``<field> (legacy)`` columns any batch has are in every batch's lines (blank where a batch had none).

    ``note`` each batch's view first (its columns and the source columns its reasons name are kept, not
    its rows); ``write`` then knows the file's columns before the first line and writes each batch as it
    takes it, once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.shapes: dict[int, tuple[list, set, bool]] = {}

    def note(self, i: int, view: pd.DataFrame, named: list) -> None:
        self.shapes[i] = (list(view.columns), set().union(*named), view.empty)

    def _columns(self, n: int, raw: pd.DataFrame | None) -> list[str]:
        """The file's columns: the first batch's, with the legacy column of every batch beside its field.
        A batch's columns are those ``stewardcsv.add_legacy`` gives a row of it (they depend on its
        columns, the raw columns and the fields its reasons name, never on its values)."""
        from crmbridge import stewardcsv as S

        base: list[str] | None = None
        legacy: set[str] = set()
        for i in range(n):
            cols, named, empty = self.shapes[i]
            stub = pd.DataFrame({c: [] if empty else [None] for c in cols})
            full = S.ordered(S.add_legacy(stub, None if raw is None else raw.head(0), [named] * len(stub)))
            added = [c for c in full.columns if c not in cols and c not in S.STATUS_COLUMNS]
            legacy.update(added)
            if base is None:
                base = [c for c in full.columns if c not in added]
        columns: list[str] = []
        for c in base or []:
            columns.append(c)
            if S.legacy_column(c) in legacy:
                columns.append(S.legacy_column(c))
        return columns

    def write(self, n: int, raw: pd.DataFrame | None, take) -> None:
        """``take(i)``: batch ``i``'s (view, named), each called once, in order."""
        from crmbridge import stewardcsv as S
        from crmbridge.csvout import ENCODING, write_csv

        columns = self._columns(n, raw)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as fh:
            fh.write("".encode(ENCODING))  # what a text file in ``ENCODING`` starts with: the BOM
            for i in range(n):
                view, named = take(i)
                frame = S.ordered(S.add_legacy(view, raw, named))
                del view, named
                if i and frame.empty:
                    continue
                frame = frame.reindex(columns=columns) if list(frame.columns) != columns else frame
                write_csv(frame, fh, header=i == 0)  # the first batch always writes (its header at least)
