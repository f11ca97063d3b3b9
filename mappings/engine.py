"""Map one step: legacy entity rows (DataFrame) -> Salesforce records (DataFrame) + quarantine.

Pure: everything from the org (user Ids, record type Ids, describe) comes in as plain data through
``OrgRefs`` and ``ParentKeys``. Every input row ends in exactly one place: a mapped record (possibly
merged with rows of other departments) or the quarantine with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from crmbridge.errors import UsageError
from crmbridge.mappings.keyindex import KeyIndex, _strings, arrow_keys
from crmbridge.mappings.merge import Lineage, combine, source_rows, with_record_lineage
from crmbridge.mappings.models import FieldSpec, LoadedStep, _WithTransforms
from crmbridge.mappings.owners import owner_ids, record_type_ids
from crmbridge.mappings.textfast import all_text
from crmbridge.mappings.textops import count_char, strip_text
from crmbridge.mappings.twins import missing_twin, strip_twin, text_twin, twin_rows
from crmbridge.mappings.transforms import apply_encoded, apply_transform, as_text, column_params, is_missing

LINEAGE = ["_row_id", "_merged_row_ids", "_entity", "_source_key", "_step"]
TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "encryptedstring"}


@dataclass(frozen=True)
class OrgRefs:
    """What the engine needs from the org, as plain data."""

    owners: dict[str, str] = field(default_factory=dict)  # legacy rep code -> username (owners.csv)
    users: dict[str, str] = field(default_factory=dict)  # username (lower case) -> User Id
    record_types: dict[tuple[str, str], str] = field(default_factory=dict)  # (sobject, DeveloperName) -> Id
    fields: dict[str, dict[str, dict]] = field(default_factory=dict)  # object -> field name -> describe field


@dataclass(frozen=True)
class ParentKeys:
    """External-ID values of a parent object mapped earlier in this run (sets, or ``KeyIndex`` for the
    compact sorted arrays the map stage keeps)."""

    mapped: "frozenset | KeyIndex"
    quarantined: "frozenset | KeyIndex"


@dataclass
class StepOutput:
    records: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    rows_out: int  # source rows represented by records (merged rows counted)
    filtered: dict[str, int]
    stats: dict[str, dict[str, dict[str, int]]]  # field -> transform -> {changed, failed}
    reasons: dict[str, int]
    twins: dict = field(default_factory=dict)  # records column -> its Arrow twin (mappings/twins.py)


class _Reasons:
    """Per-row quarantine reasons, first reason per field only."""

    def __init__(self, index: pd.Index):
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, mask: pd.Series, reason: pd.Series | str | Callable[[], pd.Series]) -> None:
        """``reason``: one text, one per row, or a function giving them (called only when ``mask`` has a row)."""
        mask = mask.fillna(False).astype(bool) & True
        if not mask.any():
            return
        reason = reason() if callable(reason) else reason
        r = reason if isinstance(reason, str) else reason[mask].astype(str)
        cur = self.text[mask]
        self.text.loc[mask] = cur.where(cur == "", cur + "; ") + r

    def merge(self, other: "_Reasons") -> None:
        """Add ``other``'s reasons (of some of these rows) as if each had been added here."""
        bad = other.bad
        if not bad.any():
            return
        rows = other.text.index[bad.to_numpy()]
        mask = pd.Series(False, index=self.text.index)
        mask.loc[rows] = True
        reason = pd.Series("", index=self.text.index, dtype=object)
        reason.loc[rows] = other.text[bad].to_numpy()
        self.add(mask, reason)

    @property
    def bad(self) -> pd.Series:
        """``text != ""``: the texts are ``str`` (``add`` and ``merge`` write nothing else), and the empty one is
        the only false one (a truth test per row costs a third of a comparison)."""
        return pd.Series(self.text.to_numpy(dtype=object).astype(bool), index=self.text.index)


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _source_series(spec: FieldSpec, df: pd.DataFrame) -> pd.Series:
    if spec.column is not None:
        return df[spec.column]
    if spec.value is not None:
        return pd.Series([spec.value] * len(df), index=df.index, dtype=object)
    if spec.template is not None:
        return _template(spec.template, df)
    if spec.aggregate is not None:
        return df[spec.aggregate.column]
    return pd.Series(None, index=df.index, dtype=object)  # frame transform supplies it


def _template(template: str, df: pd.DataFrame) -> pd.Series:
    import string

    out = pd.Series("", index=df.index, dtype=object)
    any_present = pd.Series(False, index=df.index)
    for literal, name, _, _ in string.Formatter().parse(template):
        out = out + literal
        if name:
            col = as_text(df[name])
            miss = is_missing(col)
            any_present |= ~miss
            out = out + col.where(~miss, "").str.strip()
    return out.where(any_present, None)


def _chain(label: str, spec: _WithTransforms, series: pd.Series, df: pd.DataFrame, reasons: _Reasons,
           stats: dict, twins: dict | None = None) -> pd.Series:
    """Run the field's transforms in order, on the rows they may change (``mappings/unchanged.py``: the
    others are given back as they are, as text); a ``number`` chain on plain whole numbers is read in
    Arrow (``mappings/plainnumbers.py``). ``twins``: the result's Arrow twin goes there, under
    ``label``, when it has one (mappings/twins.py)."""
    from crmbridge.mappings.plainnumbers import number_chain
    from crmbridge.mappings.twins import patched_twin
    from crmbridge.mappings.unchanged import unchanged_rows

    known = number_chain(label, spec.transforms, series, stats, twins)
    if known is not None:
        return known
    skip = unchanged_rows(spec.transforms, series) if spec.transforms else None
    if skip is None or not skip[1].any():
        return _chain_rows(label, spec, series, df, reasons, stats, twins)
    values, same, arr = skip
    rest = ~same
    done = np.empty(0, dtype=object)
    if rest.any():
        cols = [c for t in spec.transforms for c in column_params(t.name, t.model) if c in df.columns]
        sub = _Reasons(df.index[rest])
        done = _chain_rows(label, spec, series[rest], df.loc[rest, cols], sub, stats).to_numpy(dtype=object)
        values = values.copy()
        values[rest] = done
        reasons.merge(sub)
    else:  # the chain's counts, none changed or failed
        for t in spec.transforms:
            stats.setdefault(label, {}).setdefault(t.name, {"changed": 0, "failed": 0})
    if twins is not None and arr is not None:
        twins[label] = patched_twin(arr, rest, done)
    return pd.Series(values, index=series.index, dtype=object)


def _chain_rows(label: str, spec: _WithTransforms, series: pd.Series, df: pd.DataFrame, reasons: _Reasons,
                stats: dict, twins: dict | None = None) -> pd.Series:
    """Run the field's transforms in order. A text column stays encoded (codes into its distinct
    values) through the chain, so every transform runs once per distinct value."""
    from crmbridge.mappings.distinct import Encoded, encode

    failed_here = np.zeros(len(df), dtype=bool)
    policy = getattr(spec, "on_failure", "quarantine")
    original = series
    current: pd.Series | Encoded = encode(series) if spec.transforms else series
    if current is None:
        current = series
    others: dict[str, Encoded | None] = {}

    def lookup(col: str) -> Encoded | None:
        if col not in df.columns:
            return None
        if col not in others:
            others[col] = encode(df[col])
        return others[col]

    for t in spec.transforms:
        step = apply_encoded(t.name, t.model, current, lookup) if isinstance(current, Encoded) else None
        if step is not None:
            n_changed, n_failed, failed = step.n_changed, step.n_failed, step.failed_rows()
            before, current = current, step.column
        else:
            before = current.series() if isinstance(current, Encoded) else current
            res = apply_transform(t.name, before, t.model, frame=df, distinct=False)
            n_changed, n_failed, failed = res.n_changed, res.n_failed, res.failed.to_numpy(dtype=bool)
            current = res.values
        st = stats.setdefault(label, {}).setdefault(t.name, {"changed": 0, "failed": 0})
        st["changed"] += n_changed
        st["failed"] += n_failed
        new_fail = failed & ~failed_here
        if new_fail.any() and policy == "quarantine":
            prev = before.series() if isinstance(before, Encoded) else before
            shown = as_text(prev)[new_fail].map(_short)
            reasons.add(pd.Series(new_fail, index=df.index), f"transform_failed: {label} ({t.name}) on '" + shown + "'")
        failed_here |= failed
    series = current.series() if isinstance(current, Encoded) else current
    if failed_here.any() and policy == "blank":
        series = series.where(~failed_here, None)
    elif failed_here.any() and policy == "keep":
        series = as_text(original).where(failed_here, series)
    elif twins is not None and isinstance(current, Encoded):
        from crmbridge.mappings.twins import encoded_twin

        twins[label] = encoded_twin(current.codes, current.uniques)
    return series


def map_step(loaded: LoadedStep, source: pd.DataFrame, *, refs: OrgRefs | None = None,
             parents: dict[tuple[str, str], ParentKeys] | None = None) -> StepOutput:
    """Map the rows of one step; see module docstring. ``parents`` keys: (object lower, external id field).

    The whole frame at once: ``map_rows`` then ``finish_rows``, with the duplicate external IDs found in
    this frame (the map stage streams batches through the same two functions, see stream.py)."""
    part = map_rows(loaded, source, refs=refs, parents=parents)
    keys = part.candidate_keys()
    return finish_rows(loaded, part, KeyIndex.of(keys[keys.duplicated(keep=False)]))


@dataclass
class Partial:
    """One batch mapped row by row: everything but the cross-row duplicate check and required fields."""

    df: pd.DataFrame  # the batch's rows with lineage, index 0..n-1
    out: pd.DataFrame  # mapped values of the rows not filtered (indexed like ``df``)
    reasons: _Reasons
    filtered: dict[str, int]
    stats: dict[str, dict[str, dict[str, int]]]
    ext: str

    _keys: pd.Series | None = field(default=None, repr=False)  # candidate_keys, until finish_rows adds reasons
    twins: dict = field(default_factory=dict, repr=False)  # column of ``out`` -> its Arrow twin (twins.py)
    key_twin: Any = field(default=None, repr=False)  # the external ID's twin (before stripping)
    _key_twin: Any = field(default=None, repr=False)  # candidate_keys' twin (stripped), reset with ``_keys``
    _key_strings: np.ndarray | None = field(default=None, repr=False)  # key_strings, reset with ``_keys``

    def candidate_keys(self) -> pd.Series:
        """The stripped external-ID value of each row still mapping (the ones the duplicate check sees)."""
        if self._keys is None:
            ok = self.reasons.text.index[~self.reasons.bad]
            keep = self.out.index.intersection(ok)
            whole = len(keep) == len(self.out)
            self._key_strings = None
            if self.key_twin is None:
                self._keys = strip_text(self.out[self.ext] if whole else self.out.loc[keep, self.ext])
            else:  # ``strip_text`` of the same values, in Arrow
                at = self.out.index if whole else keep
                twin = twin_rows({"k": self.key_twin}, self.out.index, at)["k"]
                self._key_twin = strip_twin(twin)
                # nothing to strip (the chain trimmed them): the column's own strings, not new ones
                values = ((self.out[self.ext] if whole else self.out.loc[keep, self.ext]).to_numpy(dtype=object)
                          if self._key_twin.equals(twin) else self._key_twin.to_numpy(zero_copy_only=False))
                self._keys = pd.Series(values, index=at, name=self.ext, dtype=object)
        return self._keys

    def key_strings(self) -> np.ndarray:
        """``keyindex._strings(self.candidate_keys())``."""
        keys = self.candidate_keys()
        if self._key_strings is None:
            self._key_strings = _strings(keys) if self._key_twin is None else arrow_keys(self._key_twin)
        return self._key_strings


def map_rows(loaded: LoadedStep, source: pd.DataFrame, *, refs: OrgRefs | None = None,
             parents: dict[tuple[str, str], ParentKeys] | None = None, first_row: int = 0) -> Partial:
    """Filters, field transforms, lookups (with the parent key checks), owners, record types and org
    value checks of ``source``'s rows; each row is judged on its own. ``first_row``: the position of the
    batch's first row in the entity (for the ``_row_id`` of rows that have none)."""
    step = loaded.step
    refs = refs or OrgRefs()
    parents = parents or {}
    df = prepare_rows(loaded, source, first_row)
    reasons = _Reasons(df.index)
    stats: dict = {}

    filtered = _apply_filters(loaded, df, reasons)
    live = ~reasons.bad
    work = df if live.all() else df[live]  # (read only)
    wreasons = _Reasons(work.index)

    values = {}  # the frame built once: a column inserted at a time costs a block each
    twins: dict = {}
    for fname, spec in step.fields.items():
        if spec.aggregate is not None:
            continue  # computed in combine()
        values[fname] = _chain(fname, spec, _source_series(spec, work), work, wreasons, stats, twins)
    out = pd.DataFrame(values, index=work.index)
    ext = step.external_id
    key_twin = text_twin(twins.get(ext))
    wreasons.add(is_missing(as_text(out[ext])) if key_twin is None else
                 pd.Series(missing_twin(key_twin), index=out.index), f"missing_external_id: {ext}")

    for fname, lk in step.lookups.items():
        col = lk.output_column(fname)
        key = _chain(fname, lk, work[lk.column], work, wreasons, stats)
        miss = is_missing(as_text(key))
        if lk.required:
            wreasons.add(miss, f"missing_parent: {fname}")
        pk = parents.get((lk.object.lower(), lk.external_id))
        if pk is not None and lk.on_missing_parent == "quarantine":
            ktext = as_text(key)
            in_mapped = _member(ktext, pk.mapped)
            in_q = ~miss & _member(ktext, pk.quarantined) & ~in_mapped
            wreasons.add(in_q, f"parent_quarantined: {lk.object}.{lk.external_id}=" + ktext)
            gone = ~miss & ~in_mapped & ~in_q
            wreasons.add(gone, f"parent_not_found: {lk.object}.{lk.external_id}=" + ktext)
        out[col] = key.where(~miss, None)

    if step.owner is not None:
        own = step.owner
        out["OwnerId"] = owner_ids(own, _chain("OwnerId", own, work[own.column], work, wreasons, stats), refs,
                                   wreasons)
    if step.record_type is not None:
        out["RecordTypeId"] = record_type_ids(loaded, work, refs, wreasons)
    _org_value_checks(step.object, out, refs, wreasons)

    reasons.text.loc[work.index] = wreasons.text
    # combine() strips the external ID; lookups, owner and record type columns come after the fields
    later = {ext, "OwnerId", "RecordTypeId", *(lk.output_column(f) for f, lk in step.lookups.items())}
    twins = {c: a for c, a in twins.items() if a is not None and c not in later}
    return Partial(df, out, reasons, filtered, stats, ext, twins=twins, key_twin=key_twin)


def prepare_rows(loaded: LoadedStep, source: pd.DataFrame, first_row: int = 0) -> pd.DataFrame:
    """The batch as ``map_rows`` works on it (``Partial.df``): index 0..n-1, record lineage, row ids."""
    df = with_record_lineage(source.reset_index(drop=True))
    _require_columns(loaded, df)
    if "_row_id" not in df.columns:
        df["_row_id"] = [f"{loaded.step.entity}:{first_row + i + 1}" for i in range(len(df))]
    return df


def finish_rows(loaded: LoadedStep, part: Partial, duplicates: "KeyIndex",
                rows: Callable[[pd.Series], pd.DataFrame] | None = None) -> StepOutput:
    """Records and quarantine of a mapped batch: rows whose key is in ``duplicates`` (external IDs held by
    more than one mapping row of the whole step) are quarantined, then required fields are checked.
    ``rows(bad)``: the batch's rows of the mask ``bad`` with every input column, when ``part.df`` holds
    only the columns the step reads (the quarantine keeps them all)."""
    df, out, reasons = part.df, part.out, part.reasons
    key = part.candidate_keys()  # the rows still mapping, in ``out``'s order
    strings, key_twin = part.key_strings(), part._key_twin
    part._keys = part._key_twin = part._key_strings = None  # reasons change below
    lineage = Lineage(df)
    # combine() adds duplicate_external_id reasons itself.
    records, _, rows_out = combine(loaded, df, out if len(key) == len(out) else out.loc[key.index], reasons,
                                   duplicated=(lambda k: duplicates.contains_strings(strings)) if
                                   len(strings) == len(key) else duplicates.contains, key=key, lineage=lineage)
    twins = twin_rows(part.twins, out.index, records.index) if part.twins else {}
    combined = records.index
    records, rows_out = _required(loaded, df, records, rows_out, reasons, twins)
    twins = twin_rows(twins, combined, records.index)
    if key_twin is not None:  # combine() wrote ``key`` as the external ID
        twins = {**twins, part.ext: twin_rows({"k": key_twin}, key.index, records.index)["k"]}
    records = records.reset_index(drop=True)
    bad = reasons.bad
    quarantine = _per_source_row(df[bad].copy() if rows is None else rows(bad))
    quarantine["_reason"] = reasons.text[bad].reindex(quarantine.index).values
    quarantine["_step"] = loaded.name
    rows_in = lineage.count(None) if len(df) else 0
    return StepOutput(records=records, quarantine=quarantine.reset_index(drop=True), rows_in=rows_in,
                      rows_out=rows_out, filtered=part.filtered, stats=part.stats,
                      reasons=reason_counts(quarantine["_reason"].tolist()), twins=twins)


def _member(values: pd.Series, keys) -> pd.Series:
    """``values.isin(keys)`` for a set of keys or a ``KeyIndex``."""
    if isinstance(keys, KeyIndex):
        return pd.Series(keys.contains(values), index=values.index)
    return values.isin(keys)


def _require_columns(loaded: LoadedStep, df: pd.DataFrame) -> None:
    from crmbridge.mappings.check import _used_columns

    for fname, col in _used_columns(loaded):
        if col not in df.columns:
            raise UsageError(f"mapping {loaded.file} step {loaded.name}" + (f" field {fname}" if fname else "")
                             + f": column '{col}' is not in entity '{loaded.step.entity}'",
                             hint="`crmbridge map --check` lists every such problem")


def reason_key(reason: str) -> str:
    """The countable part of a reason: ``parent_not_found: Account.Legacy_Id__c=C9`` -> without ``=C9``."""
    if reason.startswith("filtered: "):
        return reason
    return reason.split("=")[0].split(" '")[0].split(" (")[0]


def reason_counts(texts: list[str]) -> dict[str, int]:
    """How many times each ``reason_key`` occurs among the ``"; "``-separated reasons of ``texts``, in
    order of first occurrence. Arrow's string kernels cut and count every reason in C (its hash kernels
    keep first-occurrence order, as the dict below does); texts Arrow cannot hold go through Python."""
    import pyarrow.compute as pc

    arr = all_text(texts)  # None: not all text, or lone surrogates
    if arr is None:
        counts: dict[str, int] = {}
        for r in texts:
            for p in r.split("; "):
                k = reason_key(p)
                counts[k] = counts.get(k, 0) + 1
        return counts
    parts = pc.list_flatten(pc.split_pattern(arr, "; "))
    key = parts
    for sep in ("=", " '", " ("):
        key = pc.list_element(pc.split_pattern(key, sep, max_splits=1), 0)
    key = pc.if_else(pc.starts_with(parts, "filtered: "), parts, key)
    vc = pc.value_counts(key)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


def _required(loaded: LoadedStep, df: pd.DataFrame, records: pd.DataFrame, rows_out: int,
              reasons: _Reasons, twins: dict | None = None) -> tuple[pd.DataFrame, int]:
    """Required fields, judged on the final record (a golden record may take the value from another
    department's row). ``records`` is indexed like ``df``; a record missing one is quarantined.
    ``twins``: Arrow twins of some of its columns (mappings/twins.py), the text ones judged in Arrow."""
    twins = twins or {}
    bad = pd.Series(False, index=records.index)
    why = pd.Series("", index=records.index, dtype=object)
    for fname, spec in loaded.step.fields.items():
        # a record's external ID is present: map_rows quarantined the rows missing it, and a present key
        # stays present once stripped (is_missing is blank by str.strip's whitespace)
        if spec.required and fname in records.columns and fname != loaded.step.external_id:
            text = text_twin(twins.get(fname))
            miss = (pd.Series(missing_twin(text), index=records.index) if text is not None else
                    is_missing(as_text(records[fname]))) & ~bad
            why = why.where(~miss, f"required_missing: {fname}")
            bad |= miss
    if not bad.any():
        return records, rows_out
    mask = pd.Series(False, index=df.index)
    mask.loc[records.index[bad]] = True
    reason = pd.Series("", index=df.index, dtype=object)
    reason.loc[records.index[bad]] = why[bad].values
    reasons.add(mask, reason)
    gone = records.loc[bad, "_merged_row_ids"].astype(str)
    return records[~bad], rows_out - int(gone.str.count(";").sum() + len(gone))


def _per_source_row(q: pd.DataFrame) -> pd.DataFrame:
    """A quarantined golden record becomes one line per source row merged into it (same values and
    reason, each with its own ``_row_id``), so the ledger and the counts stay per source row."""
    if q.empty or "_merged_row_ids" not in q.columns:
        return q
    ids = source_rows(q).str.split(";")
    if not (ids.str.len() > 1).any():
        return q
    out = q.assign(_row_id=ids).explode("_row_id")
    return out


def _apply_filters(loaded: LoadedStep, df: pd.DataFrame, reasons: _Reasons) -> dict[str, int]:
    import re

    counts: dict[str, int] = {}
    for flt in loaded.step.filters:
        text = strip_text(df[flt.column])
        miss = is_missing(text)
        if flt.equals is not None:
            keep = text == str(flt.equals)
        elif flt.not_equals is not None:
            keep = text != str(flt.not_equals)
        elif flt.in_ is not None:
            keep = text.isin([str(v) for v in flt.in_])
        elif flt.not_in is not None:
            keep = ~text.isin([str(v) for v in flt.not_in])
        elif flt.is_null is not None:
            keep = miss if flt.is_null else ~miss
        else:
            keep = text.fillna("").str.contains(re.compile(flt.matches), regex=True)
        drop = ~keep.fillna(False).astype(bool) & ~reasons.bad
        label = flt.describe()
        counts[label] = int(drop.sum())
        reasons.add(drop, f"filtered: {label}")
    return counts


def _org_value_checks(obj: str, out: pd.DataFrame, refs: OrgRefs, reasons: _Reasons) -> None:
    """Values Salesforce would reject: too long for the field, not in a restricted picklist."""
    described = refs.fields.get(obj) or {}
    for col in out.columns:
        f = described.get(col)
        if f is None:
            continue
        vals = as_text(out[col]).where(~reasons.bad, None)  # rows already failing keep one reason
        if f.get("type") in TEXT_TYPES and f.get("length"):
            n = vals.str.len()
            long = n > f["length"]
            reasons.add(long, f"too_long: {col} (" + n.fillna(0).astype(int).astype(str) + f" > {f['length']})")
        if f.get("type") == "picklist" and f.get("restrictedPicklist"):
            allowed = {p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)}
            badv = vals.notna() & ~vals.isin(allowed)
            reasons.add(badv, f"bad_picklist_value: {col}='" + vals.fillna("") + "'")
