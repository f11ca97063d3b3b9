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
            out[c] = out[c].map(_text_or_none)
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


def _text_or_none(v):
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


def _value_types(s: pd.Series) -> set:
    """The Python types of the present values of an object column, as ``_parquet_safe`` counts them
    (None and float NaN left out)."""
    arr = s.to_numpy(dtype=object)  # iterating a numpy array, not pandas' ExtensionArray: 20x faster
    types = set(map(type, arr))
    types.discard(type(None))
    if types == {float}:  # Python floats and None only: pd.isna tells exactly None and NaN apart from the rest
        return types if not pd.isna(arr).all() else set()
    if any(issubclass(t, float) for t in types):  # NaN floats do not count: look at the values
        types = {type(v) for v in arr if v is not None and not (isinstance(v, float) and v != v)}
    return types


def _mixed(types: set) -> bool:
    return len(types) > 1 and not types <= {int, float}


class RecordsWriter:
    """A step's records Parquet written batch by batch, equal to ``write_records`` of all batches at once:
    a column holding mixed Python types in *any* batch is text in every batch, and the file has one
    schema, the batches' own ones promoted (a column empty in one batch and text in another is text).

    ``add`` converts each batch to Arrow as it comes (spilled as Arrow IPC, not pickled): a column that a
    later batch turns into text is converted again in ``write``, from the pandas values kept aside for
    the object columns holding non-text values (few), from the Arrow values for the others (text or
    missing only, or the floats of a float64 twin, so their values are the same)."""

    def __init__(self, path: Path, spill: Path):
        self.path, self.spill = Path(path), Path(spill)
        self.batch_types: dict[int, dict[str, set]] = {}  # batch -> column -> its values' types
        # batch -> (Arrow schema or None, object columns kept aside as pandas, the other object columns)
        self.held: dict[int, tuple] = {}
        self.memory: dict[int, tuple] = {}  # batches kept in memory (a step of one batch)

    @property
    def types(self) -> dict[str, set]:
        """Column -> the types of its values in every batch added."""
        out: dict[str, set] = {}
        for batch in self.batch_types.values():
            for c, t in batch.items():
                out.setdefault(c, set()).update(t)
        return out

    def add(self, i: int, df: pd.DataFrame, *, in_memory: bool = False, twins: dict | None = None) -> None:
        """Batch ``i``'s records; a batch added again replaces what it was (the map stream finishes a
        batch ahead of time and again in the rare case where that was early, see stream.py). ``twins``:
        Arrow twins of some text columns (mappings/twins.py), taken instead of converting them."""
        import pyarrow as pa

        from crmbridge.mappings.twins import twin_table

        # a twin holds a str (a float for a float64 twin) per present value: the column's types are {str}
        # ({float}; none when all missing: Arrow's null type then, which from_pandas gives)
        twins = {c: a for c, a in (twins or {}).items()
                 if df[c].dtype == object and len(a) == len(df) and a.null_count < len(a)}
        batch: dict[str, set] = {}
        for c in df.columns:
            s = df[c]
            if c in twins:
                batch[c] = {str} if pa.types.is_string(twins[c].type) else {float}
            elif s.dtype == object:
                batch[c] = _value_types(s)
            elif pd.api.types.is_string_dtype(s.dtype) and s.notna().any():
                batch[c] = {str}
        self.batch_types[i] = {c: batch.get(c, set()) for c in df.columns}
        self.memory.pop(i, None)
        for stale in (self.spill / f"rec{i}.arrow", self.spill / f"rec{i}.pkl"):
            stale.unlink(missing_ok=True)
        objects = [c for c in df.columns if df[c].dtype == object]
        text = [c for c in objects if _mixed(batch[c])]  # text in every batch whatever the others hold
        # a column of text (or with a twin: its floats read back from Arrow are the same floats) is taken
        # from the Arrow table if a later batch makes it text; the others' Python values are kept aside
        aside = [c for c in objects if c not in text and not batch[c] <= {str} and c not in twins]
        plain = [c for c in objects if c not in text and (batch[c] <= {str} or c in twins)]
        out = df
        if text:
            out = df.copy()
            for c in text:
                out[c] = out[c].map(_text_or_none)
        try:
            table = twin_table(out, twins) if twins else pa.Table.from_pandas(out, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # Arrow cannot take a column as it is: the whole batch waits (only text in it can make it pass)
            table, aside, plain = None, [c for c in objects if c not in text], []
        self.held[i] = (None if table is None else table.schema, aside, plain)
        kept = (out if table is None else out[aside]) if aside else None
        if in_memory:
            self.memory[i] = (table, kept)
            return
        if table is not None:
            with pa.OSFile(str(self.spill / f"rec{i}.arrow"), "wb") as sink, \
                    pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
        if kept is not None:
            kept.to_pickle(self.spill / f"rec{i}.pkl")
        del table
        pa.default_memory_pool().release_unused()  # the batch's Arrow copy back to the system before the next batch

    def _take(self, i: int, keep: bool = False) -> tuple:
        """Batch ``i``'s (Arrow table or None, the pandas columns kept aside or None); ``keep``: leave them."""
        import pyarrow as pa

        if i in self.memory:
            return self.memory[i] if keep else self.memory.pop(i)
        p, q = self.spill / f"rec{i}.arrow", self.spill / f"rec{i}.pkl"
        kept = pd.read_pickle(q) if q.exists() else None
        table = None
        if p.exists():
            with pa.memory_map(str(p)) as src:
                table = pa.ipc.open_file(src).read_all()
        if not keep:
            p.unlink(missing_ok=True)
            q.unlink(missing_ok=True)
        return table, kept

    def _later_text(self, i: int) -> list[str]:
        """The columns of batch ``i`` that other batches made text (converted again at the end)."""
        _, aside, plain = self.held[i]
        types = self.types
        return [c for c in [*aside, *plain] if _mixed(types.get(c, set()))]

    def _text_part(self, i: int, table, kept):
        """Batch ``i``'s columns that other batches made text, as an Arrow table (the whole batch when
        Arrow could not take it as it was), each converted from the values ``add`` had."""
        import pyarrow as pa

        schema, aside, _ = self.held[i]
        text = self._later_text(i)
        if schema is None:
            sub = kept.copy()
        else:
            sub = pd.DataFrame({c: pd.Series(kept[c].to_numpy(dtype=object) if c in aside else
                                             table.column(c).to_pylist(), dtype=object) for c in text})
        for c in text:
            sub[c] = sub[c].map(_text_or_none)
        return pa.Table.from_pandas(sub, preserve_index=False)

    def _final(self, i: int, table, kept):
        """Batch ``i``'s table as written: the columns other batches made text replaced, with their
        entries in the pandas metadata (as ``from_pandas`` of the converted frame gives them)."""
        import json

        text = self._later_text(i)
        if self.held[i][0] is not None and not text:
            return table
        part = self._text_part(i, table, kept)
        if table is None:
            return part
        meta = json.loads(table.schema.metadata[b"pandas"])
        entries = {e["name"]: e for e in json.loads(part.schema.metadata[b"pandas"])["columns"]}
        meta["columns"] = [entries.get(e["name"], e) for e in meta["columns"]]
        for c in text:
            table = table.set_column(table.schema.get_field_index(c), part.schema.field(c), part.column(c))
        return table.replace_schema_metadata({**table.schema.metadata, b"pandas": json.dumps(meta).encode()})

    def write(self, n: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from crmbridge.parquetopts import writer_options

        schemas = [self.held[i][0] if self.held[i][0] is not None and not self._later_text(i)
                   else self._final(i, *self._take(i, keep=True)).schema for i in range(n)]
        unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
        meta = _pandas_metadata(schemas, unified)
        schema = unified.with_metadata(meta) if meta else unified
        w = None  # opened at the first table written: its rows choose the dictionary columns (writer_options)
        try:
            for i in range(n):
                table = self._final(i, *self._take(i))
                if len(table) or n == 1:
                    table = table.select(schema.names).cast(schema)
                    if w is None:
                        w = pq.ParquetWriter(self.path, schema, **writer_options(table))
                    w.write_table(table)
                del table
            if w is None:  # no rows in any of several batches: the schema alone, as before
                w = pq.ParquetWriter(self.path, schema, **writer_options(schema.empty_table()))
        finally:
            if w is not None:
                w.close()


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
        shapes = set()
        for i in range(n):
            cols, named, empty = self.shapes[i]
            shape = (tuple(cols), frozenset(named), empty)
            if shape in shapes:  # the columns of a batch like one before (most batches): nothing new
                continue
            shapes.add(shape)
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
                if i and view.empty:  # no line to write
                    continue
                frame = S.ordered(S.add_legacy(view, raw, named))
                del view, named
                frame = frame.reindex(columns=columns) if list(frame.columns) != columns else frame
                write_csv(frame, fh, header=i == 0)  # the first batch always writes (its header at least)
