"""Turn GX rule outcomes into the row split: valid rows (with ``_warnings``) and quarantined rows
(with ``_reasons``), and the per-entity counts.

A row fails a rule when GX lists its ``_row_id``. Row-level blocking rules quarantine; warning
rules and dataset-level (``mostly``) rules only annotate. Every row ends in exactly one of the two
outputs, which ``split_rows`` checks before returning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed
from crmbridge.validation.gxsuite import RuleOutcome
from crmbridge.validation.rules import Rule

REASON_SEP = "; "
_MAX_SHOWN = 80


@dataclass
class Split:
    """``split_rows``' result; ``valid`` is built on first use (validate writes the valid rows from Arrow,
    ``valid_table``)."""

    quarantine: pd.DataFrame
    rows_warned: int
    quarantined_by_rule: dict[str, int]
    frame: pd.DataFrame = field(repr=False)  # the rows split
    valid_rows: np.ndarray  # the valid rows' positions in ``frame``, ascending
    warnings: np.ndarray  # their ``_warnings`` (str or None), in that order
    rows_of: Callable[[np.ndarray], pd.DataFrame] | None = field(default=None, repr=False)  # see ``split_rows``

    @cached_property
    def valid(self) -> pd.DataFrame:
        if self.rows_of is not None:
            valid = self.rows_of(self.valid_rows)
        else:
            keep = np.zeros(len(self.frame), dtype=bool)
            keep[self.valid_rows] = True
            valid = self.frame.loc[keep]  # a new frame already (copy-on-write): not copied a second time
        valid["_warnings"] = self.warnings
        return valid


def _shown(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "(empty)"
    s = str(v)
    # Quoted as-is (no repr escaping): stewards compare it with the legacy system's screen.
    return "'" + (s if len(s) <= _MAX_SHOWN else s[: _MAX_SHOWN - 1] + "…") + "'"


def _reference_messages(rule: Rule, values: np.ndarray, ctx) -> list[str]:
    """A child whose parent is not among the valid parents: either no such parent exists, or it
    exists but validation quarantined it. The child is held back either way; the reason says which,
    and for a quarantined parent why (its own reasons)."""
    entity, key = rule.target
    refused = ctx.quarantined.get((entity, key), {}) if ctx is not None else {}
    out = []
    for v in values:
        base = f"{rule.rule_id}: " + rule.message.replace("{value}", _shown(v))
        why = refused.get(str(v)) if v is not None else None
        if why is not None:
            why = why.replace(REASON_SEP, " | ")  # the parent's own reasons, kept apart from the child's
            out.append(f"{base}: parent_quarantined: the {entity} row {key}={_shown(v)} was quarantined "
                       f"[{why}]")
        else:
            out.append(f"{base}: parent_missing: no {entity} row has {key}={_shown(v)}")
    return out


def row_values(frame: pd.DataFrame, col: str, positions: np.ndarray) -> np.ndarray:
    """``col``'s values at ``positions`` as objects (None where ``frame`` has no such column): the rows
    taken first, so only they are converted."""
    if col not in frame.columns:
        return np.full(len(positions), None, dtype=object)
    return frame[col].take(positions).to_numpy(dtype=object)


def messages(rule: Rule, frame: pd.DataFrame, positions: np.ndarray, ctx=None, rows_of=None) -> list[str]:
    """``rule_id: message`` for each failing row position, with the row's own values filled in (``rows_of``:
    as ``split_rows`` takes it)."""
    def values(col: str) -> np.ndarray:
        return row_values(frame, col, positions)

    if rule.kind == "control_chars":  # names whichever column holds the character
        from crmbridge.validation.controlchars import control_chars_reason

        rows = (frame.iloc[positions] if rows_of is None else rows_of(positions)).to_dict("records")
        return [f"{rule.rule_id}: {control_chars_reason(r, rule.key_fields)}" for r in rows]
    first = values(rule.fields[0]) if rule.fields else np.full(len(positions), None, dtype=object)
    if rule.kind == "reference" and rule.target is not None:
        return _reference_messages(rule, first, ctx)
    if rule.kind == "unique" and len(rule.fields) > 1:
        parts = [values(f) for f in rule.fields]
        shown = ["/".join("" if x is None else str(x) for x in row) for row in zip(*parts)]
        first = np.array(shown, dtype=object)
    second = values(rule.fields[1]) if len(rule.fields) > 1 else first
    tpl = f"{rule.rule_id}: {rule.message}"
    out = []
    for a, b in zip(first, second):
        shown = _shown(a)  # once for {value} and {left}; {right}'s only where the text has one (a value may)
        text = tpl.replace("{value}", shown).replace("{left}", shown)
        out.append(text.replace("{right}", _shown(b)) if "{right}" in text else text)
    return out


def _joined(pos: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each distinct position, its texts joined by ``REASON_SEP`` in the order given) for ``pos`` sorted:
    one ``str.join`` per row with several reasons only, not a pandas group per row."""
    if not len(pos):
        return pos, text
    start = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
    end = np.r_[start[1:], len(pos)]
    out = text[start]  # a copy (fancy indexing): one reason is its own text
    for g in np.flatnonzero(end - start > 1):
        out[g] = REASON_SEP.join(text[start[g]:end[g]])
    return pos[start], out


def split_rows(frame: pd.DataFrame, outcomes: list[RuleOutcome], ctx=None, rows_of=None) -> Split:
    """Split ``frame`` into valid and quarantined rows; rows in == valid + quarantined or RunFailed.
    ``ctx`` (the ``RuleContext``) lets reference reasons tell a missing parent from a quarantined one.
    ``rows_of``: the rows at some positions with every column, as ``frame.iloc`` gives them,
    for a ``frame`` of only the columns the rules read (``parquetsink.LazyBatch.rows``)."""
    n = len(frame)
    ids = pd.Index(frame["_row_id"])
    if not ids.is_unique:
        dup = ids[ids.duplicated()][0]
        raise RunFailed(f"validate: _row_id {dup!r} occurs twice in one entity; the extract is inconsistent",
                        hint="re-run `crmbridge extract`")
    quarantined = np.zeros(n, dtype=bool)
    pos_parts, text_parts, block_parts = [], [], []
    by_rule: dict[str, int] = {}
    for o in outcomes:
        if not len(o.failing_row_ids):
            continue
        pos = ids.get_indexer(o.failing_row_ids)
        if (pos < 0).any():
            raise RunFailed(f"validate: rule '{o.rule.rule_id}' reported rows that are not in the data")
        blocks = o.rule.blocking and o.rule.level == "row"
        if blocks:
            quarantined[pos] = True
        by_rule[o.rule.rule_id] = len(pos) if blocks else 0
        pos_parts.append(pos)
        text_parts.append(np.array(messages(o.rule, frame, pos, ctx, rows_of), dtype=object))
        block_parts.append(np.full(len(pos), 0 if blocks else 1))
    reasons = np.full(n, None, dtype=object)
    # the same reasons split by severity, for the quarantine file (blocking: kept the row out)
    by_kind = {0: np.full(n, None, dtype=object), 1: np.full(n, None, dtype=object)}
    if pos_parts:
        pos, text, kind = np.concatenate(pos_parts), np.concatenate(text_parts), np.concatenate(block_parts)
        # per row: blocking reasons first, each kind in rule order (lexsort is stable)
        order = np.lexsort((kind, pos))
        pos, text, kind = pos[order], text[order], kind[order]
        at, joined = _joined(pos, text)
        reasons[at] = joined
        for k, out in by_kind.items():
            mine = kind == k
            at, joined = _joined(pos[mine], text[mine])
            out[at] = joined
    valid_rows, warnings = np.flatnonzero(~quarantined), reasons[~quarantined]
    quarantine = frame.loc[quarantined] if rows_of is None else rows_of(np.flatnonzero(quarantined))
    quarantine.insert(0, "_reasons", reasons[quarantined])
    quarantine.insert(1, "_blocking", by_kind[0][quarantined])
    quarantine.insert(2, "_warnings", by_kind[1][quarantined])
    if len(valid_rows) + len(quarantine) != n:
        raise RunFailed(f"validate: {n} rows in but {len(valid_rows)} valid + {len(quarantine)} quarantined")
    return Split(quarantine=quarantine, rows_warned=int(pd.notna(warnings).sum()), quarantined_by_rule=by_rule,
                 frame=frame, valid_rows=valid_rows, warnings=warnings, rows_of=rows_of)


def valid_table(split: Split, batch, schema=None):
    """``split.valid`` in Arrow as ``Table.from_pandas`` converts it (with ``schema``, the valid file's, once
    known), taken from the Arrow table of ``batch`` (the ``parquetsink.LazyBatch`` split): its valid rows and
    ``_warnings`` converted alone. None where the result could differ: the batch's frame does not convert
    back to its table (``ParquetSink.exact``), or the file's schema is another."""
    import pyarrow as pa

    table = batch.table()
    if not batch.sink.exact(table):
        return None
    t = table.take(split.valid_rows)
    # the column as ``split.valid`` holds it (pandas infers ``str`` where any row has a warning), converted
    warnings = pa.array(pd.Series(split.warnings), type=schema.field("_warnings").type if schema is not None else None,
                        from_pandas=True)
    names = t.column_names
    t = t.set_column(names.index("_warnings"), "_warnings", warnings) if "_warnings" in names \
        else t.append_column("_warnings", warnings)
    return t if schema is None or t.schema == schema else None


def valid_keys(split: Split, batch, key: str):
    """The valid rows' ``key`` values for a ``mappings.keyindex.KeyCollector``: a text column as the UTF-8 slots
    ``keyindex.arrow_keys`` makes of the Arrow table of ``batch`` (the ``parquetsink.LazyBatch`` split, whose
    frame holds the same texts, missing ones as None or NaN, which the index leaves out), without a Python
    string per row; any other column from ``split.frame``."""
    import pyarrow as pa

    from crmbridge.mappings.keyindex import arrow_keys
    from crmbridge.validation.columntext import ARROW_TEXT

    table = batch.table()
    if key in table.column_names and table.schema.field(key).type in ARROW_TEXT:
        return arrow_keys(table.column(key).take(split.valid_rows).combine_chunks().cast(pa.string()))
    return split.frame[key].to_numpy(dtype=object)[split.valid_rows]
