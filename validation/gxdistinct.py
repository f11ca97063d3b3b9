"""great-expectations on a batch's distinct values instead of on every row.

Every expectation the rules compile to is row-local: GX judges each row (or pair of cells) on its own
values, so rows holding the same values get the same verdict. ``distinct_frame`` therefore hands GX
one row per distinct value of each group of columns that rules read together (columns read by one
rule, e.g. a column pair, are factorised jointly); ``gx_verdicts`` reads GX's verdict per distinct value
and ``expand`` carries it back to the rows by their codes. ``distinct_frame``'s ``send`` leaves out the
values whose verdicts ``gxcache`` kept from earlier batches. The per-row result GX would have given is then rebuilt with
GX's own ``_format_map_output`` from the rows: the unexpected values GX reported for each distinct
value (in row order, so the first 20 are the same rows), the row ids, and the element, missing and
unexpected counts of the rows; ``success`` with GX's formulas. ``tests/validation/test_gxdistinct.py``
compares both paths result by result.

Groups have very different numbers of distinct values (a status column 4, an amount column 50,000); GX
filters and judges every row of the frame it is given for each expectation, so groups go to one frame per
size class (``_tier``), each run with the suite of its rules: a flag column is not handed over as 50,000
rows. In its frame a group is padded to the longest with missing values (which GX skips) or, where a
missing value is judged (not-null), with the group's most frequent row; verdicts on padding rows are
ignored. A column only not-null rules read counts as two kinds of value, present or (each kind of)
missing: GX's verdict and the values it lists (the missing ones) see nothing more. GX's missing count on that frame is
checked against the rows' own missing count recomputed the way GX's pandas engine filters
(``isnull``, ``ignore_row_if``), so a difference in the two semantics stops the stage instead of
giving other counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed

# The expectations whose verdict on a row depends only on that row's cells (and the expectation's
# kwargs). Uniqueness expectations are not: a rule compiled to anything else runs on every row.
ROW_LOCAL = frozenset({
    "ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeInSet", "ExpectColumnValuesToNotBeInSet",
    "ExpectColumnValuesToMatchRegex", "ExpectColumnValuesToNotMatchRegex",
    "ExpectColumnValuesToMatchStrftimeFormat", "ExpectColumnValuesToBeBetween",
    "ExpectColumnPairValuesToBeEqual", "ExpectColumnPairValuesAToBeGreaterThanB",
})
_PAIR_FILTERS = ("both_values_are_missing", "either_value_is_missing", "neither")
ROW_ID = "_row_id"
_NOT_NULL = "ExpectColumnValuesToNotBeNull"


@dataclass
class DistinctFrame:
    """What GX sees (``frames``: per size class its groups' distinct rows, padded; ``_row_id`` = position;
    ``frame_of[group]`` the group's frame, absent where nothing of the group is sent) and how to get back to
    the rows: ``codes[group]`` per row, ``sizes[group]`` distinct values, ``group_of[column]``,
    ``counts[group]`` rows per distinct value, ``row_ids`` the rows' ``_row_id`` (object array),
    ``first[group]`` each distinct value's first row, ``sent[group]`` the distinct values (codes) in the
    group's frame, row by row (the rows after them are padding)."""

    frames: list[pd.DataFrame]
    frame_of: dict[int, int]
    codes: dict[int, np.ndarray]
    sizes: dict[int, int]
    group_of: dict[str, int]
    counts: dict[int, np.ndarray]
    row_ids: np.ndarray
    first: dict[int, np.ndarray]
    sent: dict[int, np.ndarray]


@dataclass
class Verdicts:
    """GX's verdict on each distinct value of a rule's group: failed, the value GX listed for it (where it
    listed one) and its entry in GX's index list."""

    bad: np.ndarray
    value_of: np.ndarray
    has_value: np.ndarray
    index_of: np.ndarray

    @classmethod
    def empty(cls, k: int) -> "Verdicts":
        return cls(np.zeros(k, dtype=bool), np.empty(k, dtype=object), np.zeros(k, dtype=bool),
                   np.empty(k, dtype=object))


def rule_columns(rule) -> list[str]:
    k = rule.kwargs
    return [c for c in [k.get("column"), k.get("column_A"), k.get("column_B"), *k.get("column_list", [])] if c]


def supported(rules) -> bool:
    """True when every rule is row-local and a column pair says which rows it ignores."""
    for r in rules:
        if r.expectation not in ROW_LOCAL:
            return False
        if "column_A" in r.kwargs and r.kwargs.get("ignore_row_if") not in _PAIR_FILTERS:
            return False
    return True


def _groups(data: pd.DataFrame, rules) -> list[list[str]]:
    """Columns linked by a rule that reads them together, as connected groups (union-find)."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for r in rules:
        cols = [c for c in rule_columns(r) if c in data.columns]
        for c in cols[1:]:
            parent[find(c)] = find(cols[0])
        if cols:
            find(cols[0])
    out: dict[str, list[str]] = {}
    for c in data.columns:
        if c in parent:
            out.setdefault(find(c), []).append(c)
    return list(out.values())


def column_codes(s: pd.Series) -> np.ndarray:
    """Integer codes, equal exactly where the values are the same: floats and datetimes by their bits
    (-0.0 and 0.0 differ), Python objects by value *and* type (``True``, ``1`` and ``1.0`` differ)."""
    arr = s.to_numpy()
    if arr.dtype.kind == "f":
        return pd.factorize(arr.astype("float64").view("int64"))[0]
    if arr.dtype.kind in "mM":
        return pd.factorize(arr.view("int64"))[0]
    if arr.dtype == object:
        flags = check_codes(arr)
        if flags is not None:
            return flags
        values = _object_codes(arr)
        # The usual cases, where equal values already have one type: a single type, or text or flags with
        # None (whose missing-value code nothing else shares). A set of types costs a quarter of factorising them.
        kinds = set(map(type, arr))
        if len(kinds) < 2 or (len(kinds) == 2 and type(None) in kinds and kinds - {type(None)} <= {str, bool}):
            return values
        types, kinds = pd.factorize(np.frompyfunc(type, 1, 1)(arr))
        return pd.factorize(values.astype(np.int64) * len(kinds) + types)[0]
    return pd.factorize(arr, use_na_sentinel=False)[0]


_CHECK_VALUES = (True, False, None)  # a derived check column's values (``checks.combine_verdicts``)


def check_codes(arr: np.ndarray) -> np.ndarray | None:
    """``_object_codes`` of an object array holding only ``True``, ``False`` and ``None`` (a derived check
    column), None for any other. Each of them is one object in the process, so its address is its value:
    the addresses are factorised as integers instead of hashing the objects, and no type is looked up (a
    tenth of the CPU on the seven check columns of a batch)."""
    if not len(arr) or not any(arr[0] is v for v in _CHECK_VALUES):
        return None
    addresses = np.ndarray(arr.shape, dtype=np.intp, buffer=np.ascontiguousarray(arr))
    codes, found = pd.factorize(addresses)
    if not set(found.tolist()) <= {id(v) for v in _CHECK_VALUES}:
        return None
    return codes


def _object_codes(arr: np.ndarray) -> np.ndarray:
    """``pd.factorize(arr, use_na_sentinel=False)[0]``: missing values of any kind share one code, numbered
    in order of appearance like the others. Factorised with the sentinel, then the code put in: pandas'
    own way first replaces every missing value, a pass over the array for ``isna`` and one for ``np.where``."""
    codes = pd.factorize(arr)[0]
    missing = codes < 0
    if not missing.any():
        return codes
    at = int(np.argmax(missing))
    code = int(codes[:at].max(initial=-1)) + 1  # the values seen before the first missing one
    return np.where(missing, code, codes + (codes >= code))


def first_positions(codes: np.ndarray) -> np.ndarray:
    """Each code's first row for codes numbered in order of first appearance (0, then each new code one
    more than any before it: what ``pd.factorize`` gives), without ``np.unique``'s sort: a new code is
    where the running maximum grows. Other codes take ``np.unique``'s way."""
    if not len(codes):
        return np.zeros(0, dtype=np.intp)
    top = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, top[1:] != top[:-1]])
    if codes[0] != 0 or top[-1] != len(first) - 1:
        return np.unique(codes, return_index=True)[1]
    return first


def _text_codes(table, col: str) -> np.ndarray | None:
    """``column_codes`` of the frame column read from ``table``'s text column ``col`` (None where ``table``
    has no such text column): ``text_codes``."""
    from crmbridge.validation.columntext import ARROW_TEXT

    if table is None or col not in table.column_names or table.schema.field(col).type not in ARROW_TEXT:
        return None
    return text_codes(table.column(col).combine_chunks())


def text_codes(arr) -> np.ndarray:
    """``column_codes`` of a frame column read from the Arrow text array ``arr``: Arrow's dictionary numbers
    the values in order of first appearance, missing values (None or NaN in the frame) as one more value,
    as ``column_codes`` does, hashing UTF-8 in C++ instead of Python strings (a third of the CPU)."""
    import pyarrow.compute as pc

    return pc.dictionary_encode(arr, null_encoding="encode").indices.to_numpy(zero_copy_only=False)


def _joint_codes(data: pd.DataFrame, cols: list[str], table=None) -> np.ndarray:
    def codes_of(c: str) -> np.ndarray:
        text = _text_codes(table, c)
        return (column_codes(data[c]) if text is None else text).astype(np.int64)

    codes = codes_of(cols[0])
    for c in cols[1:]:
        more = codes_of(c)
        codes = pd.factorize(codes * (int(more.max(initial=0)) + 1) + more)[0].astype(np.int64)
    return codes


def distinct_frame(data: pd.DataFrame, rules, table=None, send=None) -> DistinctFrame:
    """The frames GX validates instead of ``data`` (which must hold ``_row_id`` and have rows). ``table``: the
    Arrow table the data columns of ``data`` were read from (``gxsuite.derive_columns``), for their codes.
    ``send(group, columns, first, presence)``: the codes of the group's distinct values GX is to judge (None:
    all of them; ``gxcache`` leaves out the ones it already knows); a group with none gets no frame."""
    groups = _groups(data, rules)
    keep_nulls, presence = _null_judged(rules), _null_only(rules)
    codes, sizes, group_of, counts, firsts, sent = {}, {}, {}, {}, {}, {}
    tiers: dict[int, list[int]] = {}
    parts = []
    for g, cols in enumerate(groups):
        c = _presence_codes(data[cols[0]]) if cols[0] in presence else _joint_codes(data, cols, table)
        first = first_positions(c)  # codes are 0..k-1 in order of first appearance
        codes[g], sizes[g], counts[g], firsts[g] = c, len(first), np.bincount(c, minlength=len(first)), first
        chosen = send(g, cols, first, cols[0] in presence) if send is not None else None
        sent[g] = np.arange(len(first)) if chosen is None else chosen
        if len(sent[g]):
            tiers.setdefault(_tier(len(sent[g])), []).append(g)
        parts.append((cols, c, first[sent[g]]))
        for col in cols:
            group_of[col] = g
    frames, frame_of = [], {}
    for tier in sorted(tiers) or [0]:
        members = tiers.get(tier, [])
        n = max([1, *(len(sent[g]) for g in members)])
        cols_out = {}
        for g in members:
            cols, c, rows = parts[g]
            null_pad = not (set(cols) & keep_nulls) and all(_nullable(data[col]) for col in cols)
            pad = firsts[g][np.argmax(counts[g])] if not null_pad else rows[0]
            pos = np.concatenate([rows, np.full(n - len(rows), pad, dtype=rows.dtype)])
            for col in cols:
                cols_out[col] = _padded(data[col], pos, len(rows)) if null_pad else \
                    data[col].iloc[pos].reset_index(drop=True)
            frame_of[g] = len(frames)
        cols_out[ROW_ID] = np.arange(n, dtype=np.int64)
        frames.append(pd.DataFrame(cols_out))
    return DistinctFrame(frames=frames, frame_of=frame_of, codes=codes, sizes=sizes, group_of=group_of,
                         counts=counts, row_ids=data[ROW_ID].to_numpy(dtype=object), first=firsts, sent=sent)


def _tier(size: int) -> int:
    """The size class of a group of ``size`` distinct values: up to 16, 256, 4,096, 65,536 ... Within a class
    padding at most multiplies GX's rows by 16; a class more costs one more validator run (a few ms)."""
    return max(1, ((size - 1).bit_length() + 3) // 4)


def frames_and_rules(dframe: DistinctFrame, rules) -> list[tuple[pd.DataFrame, list]]:
    """Each frame with the rules that read its columns, in rule order (a rule reading no column of the
    data goes with the first frame, where GX reports the missing column as on every row; a rule whose group
    has no frame, nothing new to judge, with none)."""
    out: list[list] = [[] for _ in dframe.frames]
    for r in rules:
        g = dframe.group_of.get((rule_columns(r) or [None])[0])
        if g is None or g in dframe.frame_of:
            out[dframe.frame_of[g] if g is not None else 0].append(r)
    return [(f, rs) for f, rs in zip(dframe.frames, out) if rs]


def _null_only(rules) -> set[str]:
    """Columns that only not-null rules read."""
    out = {c for r in rules if r.expectation == _NOT_NULL for c in rule_columns(r)}
    return out - {c for r in rules if r.expectation != _NOT_NULL for c in rule_columns(r)}


def _presence_codes(s: pd.Series) -> np.ndarray:
    """Codes in order of first appearance where every present value is one value and each missing one
    keeps ``column_codes``' code (None, NaN and NaT differ: GX lists them as they are)."""
    missing = s.isna().to_numpy()
    codes = np.zeros(len(s), dtype=np.int64)
    if missing.any():
        codes[missing] = column_codes(s[missing]) + 1
    return pd.factorize(codes)[0].astype(np.int64)


def _null_judged(rules) -> set[str]:
    """Columns where a missing value is judged (not-null, a pair that ignores no row): padding them with
    missing values would add failures; they are padded with the group's most frequent row instead."""
    out: set[str] = set()
    for r in rules:
        if r.expectation == _NOT_NULL or r.kwargs.get("ignore_row_if", "") not in \
                ("", "either_value_is_missing", "both_values_are_missing"):
            out.update(rule_columns(r))
    return out


def _nullable(s: pd.Series) -> bool:
    return s.dtype == object or (isinstance(s.dtype, np.dtype) and s.dtype.kind in "fmM")


def _padded(s: pd.Series, pos: np.ndarray, k: int) -> pd.Series:
    """The distinct rows, then missing values: GX skips those in every row-local expectation but
    not-null, so padding costs it nothing (no strptime or regex on repeated values)."""
    arr = s.to_numpy()[pos]
    if len(arr) > k:
        arr[k:] = None if arr.dtype == object else (np.nan if arr.dtype.kind == "f" else arr.dtype.type("NaT"))
    return pd.Series(arr, name=s.name)


def _judged(frame, rule) -> np.ndarray | None:
    """Per row of ``frame`` (a frame, or column name -> Series of its rows): does GX's pandas engine judge it
    for ``rule``? (None for not-null, which has no missing count.)"""
    k = rule.kwargs
    if rule.expectation == _NOT_NULL:
        return None
    if "column_A" in k:
        a, b = frame[k["column_A"]].isnull().to_numpy(), frame[k["column_B"]].isnull().to_numpy()
        skip = {"both_values_are_missing": a & b, "either_value_is_missing": a | b,
                "neither": np.zeros(len(a), dtype=bool)}[k["ignore_row_if"]]
        return ~skip
    return frame[k["column"]].notnull().to_numpy()


def _considered_rows(data: pd.DataFrame, rule, dframe: DistinctFrame, g: int) -> int | None:
    """How many rows GX judges (``_judged`` summed over every row), from ``_judged`` on the group's distinct
    values: whether a row is judged depends on its values only (missing or not), so each distinct value
    counts once per row holding it. The values are read from the group's frame where it holds them all (in
    code order), else from their first rows in ``data``."""
    k = dframe.sizes[g]
    if len(dframe.sent[g]) == k:
        judged = _judged(dframe.frames[dframe.frame_of[g]], rule)
    else:
        # the columns alone: a frame of them cost more than the rest of the count
        judged = _judged({c: data[c].iloc[dframe.first[g]] for c in rule_columns(rule)}, rule)
    return None if judged is None else int(dframe.counts[g][judged[:k]].sum())


def _success(rule, total: int, considered: int | None, unexpected: int) -> bool:
    from great_expectations.expectations.expectation import _mostly_success

    mostly = rule.mostly if rule.mostly is not None else 1.0
    if considered is None:  # not-null: judged on every row
        return True if total == 0 else (total - unexpected) / total >= mostly
    if total == 0 or considered == 0:
        return True  # vacuously, as GX says
    return _mostly_success(considered, unexpected, mostly)


def group_of_rule(rule, dframe: DistinctFrame) -> int:
    return dframe.group_of[rule_columns(rule)[0]]


def gx_verdicts(res, rule, dframe: DistinctFrame, into: Verdicts | None = None) -> Verdicts:
    """GX's verdicts in ``res`` (its result on the rule's frame) on the distinct values sent to it, set in
    ``into`` (new where None; the values not sent are left as they are)."""
    from great_expectations.constants import MAX_RESULT_RECORDS

    r = res.result or {}
    g = group_of_rule(rule, dframe)
    sent = dframe.sent[g]
    v = into if into is not None else Verdicts.empty(dframe.sizes[g])
    listed = list(r.get("unexpected_index_list") or [])
    values = list(r.get("unexpected_list") or [])
    if len(values) != min(len(listed), MAX_RESULT_RECORDS) or len(listed) != int(r.get("unexpected_count") or 0):
        raise RunFailed(f"validate: rule '{rule.rule_id}': great-expectations listed {len(values)} values for "
                        f"{len(listed)} rows ({r.get('unexpected_count')} unexpected) on the distinct values")
    for i, entry in enumerate(listed):
        p = int(entry[ROW_ID])
        if p < len(sent):  # the rest are padding
            code = sent[p]
            v.bad[code] = True
            v.index_of[code] = entry
            if i < len(values):
                v.value_of[code], v.has_value[code] = values[i], True
    frame = dframe.frames[dframe.frame_of[g]]
    judged = _judged(frame, rule)
    considered_distinct = None if judged is None else int(judged.sum())
    if considered_distinct is not None and int(r.get("missing_count") or 0) != len(frame) - considered_distinct:
        raise RunFailed(f"validate: rule '{rule.rule_id}': great-expectations counted {r.get('missing_count')} "
                        f"missing values where {len(frame) - considered_distinct} were expected",
                        hint="this is a bug; run with gxsuite.DISTINCT_VALUES = False")
    return v


def expand(res, rule, data: pd.DataFrame, dframe: DistinctFrame, v: Verdicts, result_format: dict) -> None:
    """Set ``res``'s result and success to what GX gives on ``data``'s rows, from ``v``: the verdict on every
    distinct value of the rule's group."""
    from great_expectations.constants import MAX_RESULT_RECORDS
    from great_expectations.expectations.expectation import _format_map_output, parse_result_format

    g = group_of_rule(rule, dframe)
    codes = dframe.codes[g]
    rows = np.flatnonzero(v.bad[codes])
    row_ids = dframe.row_ids[rows]
    # GX lists every failing row's id but only the first MAX_RESULT_RECORDS values. The codes of the
    # first failing rows are the first failing distinct values (codes count in order of appearance),
    # whose values GX did list.
    shown = codes[rows[:MAX_RESULT_RECORDS]]
    if not v.has_value[shown].all():
        raise RunFailed(f"validate: rule '{rule.rule_id}': great-expectations did not list the value of a failing "
                        "row among the first ones", hint="this is a bug; run with gxsuite.DISTINCT_VALUES = False")
    total, considered = len(data), _considered_rows(data, rule, dframe, g)
    built = _format_map_output(
        result_format=parse_result_format(result_format), success=_success(rule, total, considered, len(rows)),
        element_count=total, nonnull_count=considered, unexpected_count=len(rows),
        unexpected_list=v.value_of[shown].tolist(),
        unexpected_index_list=[{**entry, ROW_ID: i} for entry, i in zip(v.index_of[codes[rows]], row_ids)],
        unexpected_index_query=None, unexpected_index_column_names=result_format.get("unexpected_index_column_names"))
    res.result, res.success = built["result"], built["success"]

