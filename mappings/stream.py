"""Map one step in batches, with memory bounded by the batch size plus compact key indexes.

Every rule of a step judges a row on its own (engine.map_rows) except one: an external-ID value held
by more than one mapping row quarantines all of them, wherever they are in the entity. So a step
runs in passes over its batches:

1. map every batch row by row and keep the external-ID value of each row still mapping. When the
   batches can be read again (a callable: the map stage), each batch is also finished at once (below)
   as if the only duplicates were the keys it repeats itself. Otherwise the mapped batch is spilled to
   the step's scratch folder (pickles: they keep every Python value exactly as mapped) for pass 2;
2. the keys seen more than once (a sorted ``KeyIndex``) quarantine their rows: a batch finished early
   holding a key that another batch holds too (rare: resolve merged such rows) is read, mapped and
   finished again; spilled batches are finished now. Finishing a batch: duplicates and required fields;
   its records and quarantine are final (the step's own parent keys and quarantined keys are collected
   for the children), and so is the steward's view of its quarantine, unless a reason names a parent
   key of the step's own object (a self-lookup: then in pass 3). The records go to Arrow here
   (``output.RecordsWriter``), not through a pickle;
3. the steward's view of the quarantine left for now;
4. write the records Parquet (one row group per batch, one schema for the file) and the steward's
   quarantine CSV (the legacy values of the quarantined rows looked up in one pass over the extract),
   each batch's quarantine read back once.

The outputs are those of ``engine.map_step`` on the whole entity, in the same order:
tests/mappings/test_stream.py maps the same runs with one batch and with batches of 5 rows;
tests/mappings/test_stream_early_finish.py compares the early finish with finishing after all keys.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from crmbridge.mappings.engine import (OrgRefs, ParentKeys, Partial, StepOutput, _Reasons, finish_rows,
                                       map_rows, prepare_rows)
from crmbridge.mappings.keyindex import KeyedText, KeyIndex, _strings
from crmbridge.mappings.models import LoadedStep

DEFAULT_BATCH_ROWS = 100_000


@dataclass
class StreamedStep:
    """What a streamed step produced (its files are written); the counts of ``map_step``'s output."""

    rows_in: int = 0
    rows: int = 0  # records written
    rows_out: int = 0  # source rows the records stand for
    rows_quarantined: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # of the records
    mapped: KeyIndex | None = None  # external-ID values written
    quarantined: KeyedText = field(default_factory=KeyedText)  # raw key value -> reason, for children
    preview: list[dict] = field(default_factory=list)


@dataclass
class _Finished:
    """What one finished batch hands to the step's totals (its files are written or spilled)."""

    rows_in: int
    rows_out: int
    rows: int
    rows_quarantined: int
    reasons: dict[str, int]
    columns: list[str]
    mapped: np.ndarray  # external-ID values of its records
    qreasons: tuple  # (quarantined keys, their reasons)
    head: pd.DataFrame | None = None  # its first records and their source rows, for the preview
    src: pd.DataFrame | None = None
    late: bool = False  # its steward's view waits for pass 3
    need: tuple | None = None  # (row ids, source columns) whose legacy values its steward's view needs


class _Spill:
    """Objects handed from one pass to the next: pickled into the step's scratch folder (they keep every
    Python value exactly as mapped), or kept in memory when the step has a single batch."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.memory: dict[str, Any] = {}

    def put(self, name: str, obj: Any, *, in_memory: bool = False) -> None:
        if in_memory:
            self.memory[name] = obj
            return
        with open(self.folder / f"{name}.pkl", "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def drop(self, name: str) -> None:
        self.memory.pop(name, None)
        (self.folder / f"{name}.pkl").unlink(missing_ok=True)

    def take(self, name: str) -> Any:
        if name in self.memory:
            return self.memory.pop(name)
        path = self.folder / f"{name}.pkl"
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
        path.unlink()
        return obj


def _same_or(values: np.ndarray, same: np.ndarray | None) -> np.ndarray:
    """``same`` when it holds exactly ``values`` (one array kept instead of two equal ones), else ``values``."""
    if same is not None and same.dtype == values.dtype and np.array_equal(same, values):
        return same
    return values


def _add(total: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, dict):
            _add(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


def quarantined_keys(loaded: LoadedStep, quarantine: pd.DataFrame) -> dict[str, str]:
    """External-ID value (as the raw key column) -> reason, of quarantined rows, for child parent checks."""
    spec = loaded.step.fields[loaded.step.external_id]
    if quarantine.empty:
        return {}
    from crmbridge.mappings.engine import _chain, _source_series

    q = quarantine
    vals = _chain("key", spec, _source_series(spec, q), q, _Reasons(q.index), {})
    return {str(v).strip(): str(r) for v, r in zip(vals.tolist(), q["_reason"].tolist()) if v is not None}


def quarantined_key_texts(loaded: LoadedStep, part: Partial, quarantine: pd.DataFrame) -> tuple[list, list]:
    """``quarantined_keys(loaded, quarantine)`` of a batch ``finish_rows`` made from ``part``, as (keys, reasons)
    in quarantine order (a repeated key: the later reason wins, as in the dict). A row that mapped already
    has its key in ``part.out`` (the same transform chain, value by value, on the same values): only the
    rows a filter left out run the chain again. A key read from ``_row_id`` differs between the lines of
    a golden record's quarantine: then the quarantine itself is read."""
    spec = loaded.step.fields[loaded.step.external_id]
    if "_row_id" in spec.columns():
        qk = quarantined_keys(loaded, quarantine)
        return list(qk), list(qk.values())
    from crmbridge.mappings.engine import _chain, _source_series

    bad = part.reasons.bad.to_numpy(dtype=bool)
    idx = part.df.index[bad]
    texts = part.reasons.text.to_numpy(dtype=object)[bad].tolist()
    mapped = idx.isin(part.out.index)
    vals = np.empty(len(idx), dtype=object)
    vals[mapped] = part.out[part.ext].reindex(idx[mapped]).to_numpy(dtype=object)
    if not mapped.all():
        rest = part.df.loc[idx[~mapped]]
        vals[~mapped] = _chain("key", spec, _source_series(spec, rest), rest, _Reasons(rest.index), {}).tolist()
    keys, out_texts = [], []
    for v, r in zip(vals.tolist(), texts):
        if v is not None:
            keys.append(str(v).strip())
            out_texts.append(str(r))
    return keys, out_texts


Batches = Iterable[pd.DataFrame]


def map_step_stream(loaded: LoadedStep, batches: Batches | Callable[[], Batches], *, records_path: Path,
                    quarantine_path: Path, spill: Path, refs: OrgRefs | None = None,
                    parents: dict[tuple[str, str], ParentKeys] | None = None,
                    parent_reasons: dict[str, Any] | None = None,
                    raw: Callable[[KeyIndex, list[str], set[str]], tuple | None] | None = None,
                    preview: int = 0, on_rows: Callable[[int], None] | None = None,
                    finish_early: bool = True, rows: Callable[[int, int], pd.DataFrame] | None = None
                    ) -> StreamedStep:
    """Map ``batches`` (the entity's rows, in order, at least one batch; or a function giving them anew
    each call) into ``records_path`` (Parquet) and ``quarantine_path`` (the steward's CSV); see module
    docstring.

    ``parent_reasons``: "Object.Field" -> {key: reason} (a dict or ``KeyedText``) of the steps before;
    this step's quarantined keys are added to it (as the whole-frame stage did) before its quarantine
    is written. ``raw(ids, columns,
    preview_ids)``: the extracted rows of those ``_row_id`` values (``columns`` only; all columns for
    ``preview_ids``), or None when the run has no extract. ``finish_early``: finish each batch as soon as
    it is mapped when the batches can be read again (pass False when keys shared across batches are the
    rule, as in departments' rows not resolved: most batches would be mapped twice). ``rows(first, n)``:
    the entity's rows ``first`` to ``first + n`` with every column, when the batches hold only the columns
    the step reads (the quarantine and the preview show them all)."""
    import pyarrow as pa

    from crmbridge.mappings.output import QuarantineWriter, RecordsWriter

    spill.mkdir(parents=True, exist_ok=True)
    store = _Spill(spill)
    res = StreamedStep()
    ext = loaded.step.external_id
    parent_reasons = parent_reasons if parent_reasons is not None else {}

    # pass 1: row by row. When ``batches`` can be read again (a callable: the map stage), each batch is
    # finished at once as if only its own repeated keys were duplicates; after the pass, the rare batch
    # holding a key that another batch holds too is read and mapped again and finished anew (pass 2).
    # Otherwise the batch is spilled (pickled) for pass 2, as the whole-entity check needs every key first
    from crmbridge.mappings.steward import steward_reasons

    records = RecordsWriter(records_path, spill)
    qout = QuarantineWriter(quarantine_path)
    own_key = f"{loaded.step.object}.{ext}"
    own_tag = f"parent_quarantined: {own_key}="
    done_by: dict[int, _Finished] = {}
    firsts: list[int] = []  # per batch: the position of its first row in the entity

    no_rows: list[pd.DataFrame] = []  # ``full(i, 0)``, the same for every batch: read once

    def full(i: int, n: int) -> pd.DataFrame:
        """The first ``n`` rows of batch ``i`` with every column, prepared as ``map_rows`` prepares them."""
        if n:
            return prepare_rows(loaded, rows(firsts[i], n), firsts[i])
        if not no_rows:
            no_rows.append(prepare_rows(loaded, rows(firsts[i], 0), firsts[i]))
        return no_rows[0].copy()  # (the caller adds columns to it)

    def steward(i: int, quarantine: pd.DataFrame, in_memory: bool) -> tuple | None:
        view, named = steward_reasons(loaded, quarantine, parent_reasons)
        need = None
        if len(view):
            has = np.fromiter((bool(x) for x in named), dtype=bool, count=len(named))
            need = (_strings(view["_row_id"].astype(str)[has]), set().union(*named))
        qout.note(i, view, named)
        store.put(f"q{i}", (view, named), in_memory=in_memory)
        return need

    def finish(i: int, part: Partial, duplicates: KeyIndex, in_memory: bool, keys: np.ndarray | None = None
               ) -> None:
        """Batch ``i``'s records and quarantine final for ``duplicates``: counts, keys, records (to the
        writer) and the steward's view (or the quarantine kept for pass 3) in ``done_by[i]``. ``keys``:
        the batch's candidate keys, kept for its mapped keys when they are the same (every row mapped)."""
        for stale in (f"q{i}", f"late{i}"):  # a batch finished again
            store.drop(stale)
        df = part.df
        candidates = len(part.candidate_keys())
        done: StepOutput = finish_rows(loaded, part, duplicates, None if rows is None else
                                       lambda bad: full(i, len(bad))[bad] if bad.any() else full(i, 0))
        # the records are candidate rows, in order: as many of them means all, and their keys are ``keys``
        mapped = keys if keys is not None and len(done.records) == candidates == len(keys) else \
            _same_or(_strings(done.records[ext].astype(str)), keys)
        qkeys, qtexts = quarantined_key_texts(loaded, part, done.quarantine)
        f = _Finished(done.rows_in, done.rows_out, len(done.records), len(done.quarantine), done.reasons,
                      list(done.records.columns), mapped,
                      # the reasons kept as Arrow text, not as Python strings that would outlive the batch's
                      # other objects (scattered among freed ones, they kept the allocator's memory from
                      # being reused)
                      (_strings(qkeys), pa.array(qtexts, type=pa.large_string())))
        del qkeys, qtexts, part
        if preview:
            f.head = done.records.head(preview)
            ids = {rid for m, r in zip(f.head["_merged_row_ids"], f.head["_row_id"]) for rid in str(m or r).split(";")}
            src = df if rows is None else full(i, len(df))
            f.src = src[src["_row_id"].astype(str).isin(ids)]
        del df  # the batch's frames freed before its records' Arrow copy and the steward's
        records.add(i, done.records, in_memory=in_memory, twins=done.twins)
        f.late = any(own_tag in t for t in done.quarantine["_reason"].tolist() if isinstance(t, str))
        if f.late:
            store.put(f"late{i}", done.quarantine, in_memory=in_memory)
        else:
            f.need = steward(i, done.quarantine, in_memory)
        done_by[i] = f

    again = callable(batches)
    early_finish = again and finish_early
    keys: list[np.ndarray] = []
    early: list[KeyIndex] = []  # per batch: the duplicates it was finished with (its own repeated keys)
    n = offset = 0
    it = iter(batches() if again else batches)
    batch = next(it, None)
    if batch is None:
        raise ValueError("map_step_stream needs at least one batch (an empty one for an empty entity)")
    while batch is not None:
        firsts.append(offset)
        part = map_rows(loaded, batch, refs=refs, parents=parents, first_row=offset)
        offset += len(batch)
        _add(res.filtered, part.filtered)
        _add(res.stats, part.stats)
        keys.append(part.key_strings())
        if on_rows:
            on_rows(len(batch))
        if early_finish:
            del batch
            early.append(KeyIndex.duplicates([keys[-1]]))
            finish(n, part, early[-1], in_memory=False, keys=keys[-1])
            del part
            batch = next(it, None)
        else:  # spilled; a batch that can be read again without its rows (Parquet reads faster)
            batch = next(it, None)
            single = n == 0 and batch is None
            store.put(f"rows{n}", (None if again and not single else part.df, part.out, part.reasons.text),
                      in_memory=single)
            del part
        n += 1
    duplicates, seen = KeyIndex.tally(keys)

    # pass 2: the batches whose duplicates were not all their own (or every batch not finished yet)
    if early_finish:
        redo = [i for i in range(n) if len(duplicates) and
                (duplicates.contains_strings(keys[i]) & ~early[i].contains_strings(keys[i])).any()]
    else:
        redo = list(range(n))
    # every batch finished once, its candidate keys kept as its mapped keys: the written keys are ``seen``
    if not (early_finish and not redo and all(done_by[i].mapped is keys[i] for i in range(n))):
        seen = None
    del keys, early
    reread = iter(batches()) if again and redo and (early_finish or n > 1) else None
    offset = 0
    for i in range(redo[-1] + 1 if redo else 0):
        source = next(reread) if reread is not None else None
        if i in redo:
            if early_finish:
                part = map_rows(loaded, source, refs=refs, parents=parents, first_row=offset)
            else:
                df, out, text = store.take(f"rows{i}")
                if df is None:
                    df = prepare_rows(loaded, source, offset)
                reasons = _Reasons(df.index)
                reasons.text = text
                part = Partial(df, out, reasons, {}, {}, ext)
                del df, out, text, reasons
            finish(i, part, duplicates, in_memory=n == 1)
            del part
        offset += 0 if source is None else len(source)
        del source
    del duplicates

    mapped: list[np.ndarray] = []
    qreasons: list[tuple[np.ndarray, Any]] = []  # per batch: quarantined keys, their reasons
    need: list[tuple] = []
    late: list[int] = []  # batches whose steward's view waits for pass 3
    prev_recs: list[pd.DataFrame] = []
    prev_src: list[pd.DataFrame] = []
    for i in range(n):
        f = done_by.pop(i)
        res.rows_in += f.rows_in
        res.rows_out += f.rows_out
        res.rows += f.rows
        res.rows_quarantined += f.rows_quarantined
        _add(res.reasons, f.reasons)
        if i == 0:
            res.columns = f.columns
        mapped.append(f.mapped)
        qreasons.append(f.qreasons)
        if f.late:
            late.append(i)
        elif f.need is not None:
            need.append(f.need)
        if preview and sum(map(len, prev_recs)) < preview:
            head = f.head.head(preview - sum(map(len, prev_recs)))
            prev_recs.append(head)
            ids = {rid for m, r in zip(head["_merged_row_ids"], head["_row_id"]) for rid in str(m or r).split(";")}
            prev_src.append(f.src[f.src["_row_id"].astype(str).isin(ids)])
        del f
    res.mapped = seen if seen is not None else KeyIndex.union(mapped)
    del seen
    del mapped
    res.quarantined = KeyedText.build(qreasons)
    del qreasons
    own = parent_reasons.get(own_key)
    if not isinstance(own, KeyedText):
        own, before = KeyedText(), own
        if before:
            own.update(before)
    own.update(res.quarantined)
    parent_reasons[own_key] = own

    # pass 3: the steward's view of the batches left for now (this step's own quarantined keys known)
    for i in late:
        got = steward(i, store.take(f"late{i}"), n == 1)
        if got is not None:
            need.append(got)
    need_ids = [ids for ids, _ in need]
    need_cols = set().union(*(cols for _, cols in need))
    rows_raw = raw_preview = None
    preview_src = pd.concat(prev_src, ignore_index=True) if prev_src else None
    preview_ids = (set(preview_src["_row_id"].astype(str))
                   if preview_src is not None and "_row_id" in preview_src else set())
    if raw is not None and (need_ids or preview_ids):
        got = raw(KeyIndex.union(need_ids), sorted(need_cols), preview_ids)
        if got is not None:
            rows_raw, raw_preview = got
    del need_ids

    # pass 4: the files
    records.write(n)
    qout.write(n, rows_raw, lambda i: store.take(f"q{i}"))
    if preview:
        from crmbridge.mappings.output import preview_rows

        recs = pd.concat(prev_recs, ignore_index=True) if prev_recs else pd.DataFrame()
        res.preview = preview_rows(preview_src if preview_src is not None else pd.DataFrame(), recs, preview,
                                   raw=raw_preview)
    return res


def scan_raw(batches: Iterable[pd.DataFrame], ids: KeyIndex, columns: list[str], preview_ids: set[str]
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One pass over the extracted rows: (the rows of ``ids`` with ``_row_id`` + ``columns``, the rows
    of ``preview_ids`` with every column), in extract order."""
    keep, full = [], []
    for b in batches:
        if "_row_id" not in b.columns:
            return None
        rid = b["_row_id"].astype(str)
        cols = ["_row_id", *[c for c in columns if c in b.columns]]
        keep.append(b.loc[ids.contains(rid), cols])
        if preview_ids:
            full.append(b[rid.isin(preview_ids)])
    rows = pd.concat(keep, ignore_index=True) if keep else None
    prev = pd.concat(full, ignore_index=True) if full else None
    return rows, prev
