"""One record per external ID: the mapped rows, with duplicated external IDs quarantined.

Rows of one company from several departments are merged *before* map, by the resolve stage
(mappings/resolve.py), into one golden record that lists every source row in ``_merged_row_ids``.
Map writes one record per input row; a duplicated external-ID value left after that (e.g. the
resolve stage did not run) quarantines every row holding it (Salesforce would reject them with
DUPLICATE_EXTERNAL_ID, and picking one silently would lose data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbridge.mappings.models import Aggregate, LoadedStep
from crmbridge.mappings.textops import count_char, strip_text
from crmbridge.mappings.transforms import as_text, is_missing


def _aggregate(agg: Aggregate, values: pd.Series, groups: pd.Series) -> pd.Series:
    vals = as_text(values)
    if agg.how in ("count", "sum", "min", "max"):
        num = pd.to_numeric(vals, errors="coerce")
        g = num.groupby(groups, sort=False)
        out = getattr(g, agg.how)() if agg.how != "count" else vals.notna().groupby(groups, sort=False).sum()
        return out.astype(object).where(out.notna(), None)
    present = ~is_missing(vals)
    sub = vals[present].str.strip()
    g = sub.groupby(groups[present], sort=False)
    if agg.how == "first":
        return g.first()
    return join_groups(sub, groups[present], agg.sep, distinct=True)


def join_groups(values: pd.Series, groups: pd.Series, sep: str, *, distinct: bool = False) -> pd.Series:
    """``values.groupby(groups, sort=False).agg(sep.join)`` (with ``distinct``: each value once, in
    order) without a pandas call per group: one stable sort, then one ``str.join`` per group."""
    codes, uniques = pd.factorize(groups, use_na_sentinel=True)
    keep = codes >= 0
    codes, vals = codes[keep], values.to_numpy(dtype=object)[keep]
    order = np.argsort(codes, kind="stable")
    codes, vals = codes[order], vals[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds]) if len(codes) else np.array([], dtype=np.intp)
    ends = np.concatenate([bounds, [len(codes)]]) if len(codes) else np.array([], dtype=np.intp)
    lists = vals.tolist()
    if distinct:
        out = [sep.join(dict.fromkeys(lists[a:b])) for a, b in zip(starts, ends)]
    else:
        out = [sep.join(lists[a:b]) for a, b in zip(starts, ends)]
    # dtype inferred, as pandas' own agg does (str under pandas 3)
    return pd.Series(out, index=pd.Index(list(uniques[codes[starts]]) if len(codes) else uniques[:0], name=groups.name),
                     dtype=None if out else object)


RECORD_LINEAGE = ("_departments", "_legacy_keys")  # written by resolve; derived from one row otherwise
# the lineage columns map reads from its input besides the ones a mapping names (``_source``, ``_line``,
# ``_warnings`` ... only go to the quarantine, read with every column for its rows)
READ_LINEAGE = ("_row_id", "_merged_row_ids", "_source_key", "_department", *RECORD_LINEAGE)


def with_record_lineage(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that did not pass through resolve (one row = one record) get ``_departments`` (their own
    department) and ``_legacy_keys`` (their own source key), so mappings can use them either way."""
    if "_departments" not in df.columns:
        df["_departments"] = df["_department"] if "_department" in df.columns else None
    if "_legacy_keys" not in df.columns:
        df["_legacy_keys"] = df["_source_key"] if "_source_key" in df.columns else None
    return df


def source_rows(df: pd.DataFrame) -> pd.Series:
    """The source row ids each input row stands for (a golden record: all rows merged into it)."""
    return Lineage(df).rows()


_STR = pd.StringDtype(na_value=np.nan)  # pandas' default ``str`` dtype: what an object array of text becomes


class Lineage:
    """A batch's lineage texts, each computed once for the whole batch and taken for the rows asked
    (``as_text`` and ``source_rows`` work value by value, so the rows' values are the same either way):
    ``finish_rows`` counts the source rows of the batch and of its records, ``combine`` writes them."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self._text: dict[str, pd.Series] = {}
        self._rows: pd.Series | None = None
        self._count: int | None = None  # source rows of the whole batch

    def _at(self, s: pd.Series, index: pd.Index | None) -> pd.Series:
        return s if index is None or index.equals(self.df.index) else s.loc[index]

    def text(self, column: str, index: pd.Index | None = None) -> pd.Series:
        """``as_text(df.loc[index, column])``."""
        if column not in self._text:
            self._text[column] = as_text(self.df[column])
        return self._at(self._text[column], index)

    def values(self, column: str, index: pd.Index | None = None):
        """What ``as_text(df.loc[index, column]).values`` makes once set as a column (pandas reads a non-empty
        object array of ``str`` as its ``str`` dtype): the column's own ``str`` values when it is ``str``
        without missing values (no Python string per row), else ``text(column, index).values``."""
        if self._plain(column) and (index is None or len(index)):  # (no rows: an object array stays object)
            return self._at(self.df[column], index).values
        return self.text(column, index).values

    def _plain(self, column: str) -> bool:
        s = self.df[column]
        return isinstance(s.dtype, pd.StringDtype) and s.dtype == _STR and not s.hasnans

    def rows(self, index: pd.Index | None = None) -> pd.Series:
        """``source_rows(df.loc[index])``."""
        if self._rows is None:
            ids = self.text("_row_id")
            if "_merged_row_ids" in self.df.columns:
                merged = self.text("_merged_row_ids")
                ids = merged.where(~is_missing(merged), ids)
            self._rows = ids
        return self._at(self._rows, index)

    def count(self, index: pd.Index | None = None) -> int:
        """How many source rows the rows of ``index`` stand for (``;``-separated ids, one more than the ``;``)."""
        whole = index is None or index.equals(self.df.index)
        if whole and self._count is not None:
            return self._count
        plain = "_merged_row_ids" not in self.df.columns and self._plain("_row_id")  # then the ids are the rows'
        rows = self._at(self.df["_row_id"], index) if plain else self.rows(index)
        n = count_char(rows, ";") + len(rows)
        if whole:
            self._count = n
        return n


def combine(loaded: LoadedStep, df: pd.DataFrame, out: pd.DataFrame, reasons, duplicated=None, *,
            key: pd.Series | None = None, lineage: Lineage | None = None) -> tuple[pd.DataFrame, pd.Series, int]:
    """(records indexed like ``df``, duplicate mask, source rows represented). ``out``: rows that mapped.

    ``duplicated``: keys -> bool array, True for a key held by more than one mapping row of the whole
    step (the map stage sees one batch at a time); by default the duplicates within ``out``. ``key``:
    ``strip_text(out[ext])`` when the caller has it; ``lineage``: ``Lineage(df)``, shared with the caller."""
    step = loaded.step
    ext = step.external_id
    key = strip_text(out[ext]) if key is None else key
    lineage = Lineage(df) if lineage is None else lineage
    out = out.assign(**{ext: key})
    if duplicated is None:
        dup_mask = key.duplicated(keep=False)
    else:
        dup_mask = pd.Series(np.asarray(duplicated(key), dtype=bool), index=key.index)
    if dup_mask.any():
        full = pd.Series(False, index=df.index)
        full.loc[dup_mask[dup_mask].index] = True
        reason = pd.Series("", index=df.index, dtype=object)
        reason.loc[key.index] = f"duplicate_external_id: {ext}=" + key.fillna("")
        reasons.add(full, reason)
    records = out[~dup_mask].copy() if dup_mask.any() else out  # ``out`` is a copy already (assign)
    for fname, spec in step.fields.items():
        if spec.aggregate is not None:
            agg = _aggregate(spec.aggregate, df.loc[records.index, spec.aggregate.column],
                             pd.Series(records.index, index=records.index))
            records[fname] = agg.astype(object).where(agg.notna(), None).reindex(records.index).values
    rows_out = lineage.count(records.index) if len(records) else 0
    records["_row_id"] = lineage.values("_row_id", records.index)
    records["_merged_row_ids"] = (lineage.rows(records.index).values if "_merged_row_ids" in df.columns
                                  else lineage.values("_row_id", records.index))
    records["_entity"] = step.entity
    records["_source_key"] = (lineage.values("_source_key", records.index)
                              if "_source_key" in df.columns else records[ext].values)
    records["_step"] = loaded.name
    ordered = [c for c in _field_order(loaded) if c in records.columns]
    lineage = ["_row_id", "_merged_row_ids", "_entity", "_source_key", "_step"]
    return records[ordered + lineage], dup_mask, rows_out


def _field_order(loaded: LoadedStep) -> list[str]:
    step = loaded.step
    cols = list(step.fields)
    cols += [lk.output_column(f) for f, lk in step.lookups.items()]
    if step.owner is not None:
        cols.append("OwnerId")
    if step.record_type is not None:
        cols.append("RecordTypeId")
    return cols
