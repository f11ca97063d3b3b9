"""Map's quarantine as data stewards read it (the layout of ``crmbridge.stewardcsv``): every reason, the
blocking ones, a quarantined parent's own reason, and the source columns behind the fields a reason
names (whose legacy values are put beside them)."""

from __future__ import annotations

import re

from crmbridge.mappings.textfast import all_text

_PARENT = re.compile(r"^parent_quarantined: ([^=]+)=(.*)$")


def steward_view(s, quarantine, raw, parent_reasons: dict[str, dict[str, str]]):
    """Map's quarantine in the layout of validate's (``crmbridge.stewardcsv``): ``_reasons`` (all of them
    block the load, except rows a filter left out on purpose), the legacy value of every source column
    behind a Salesforce field a reason names, and a quarantined parent's own reason."""
    from crmbridge import stewardcsv as S

    q, named = steward_reasons(s, quarantine, parent_reasons)
    return S.ordered(S.add_legacy(q, raw, named))


def steward_reasons(s, quarantine, parent_reasons: dict[str, dict[str, str]]):
    """``steward_view`` without the legacy values: (the quarantine with its status columns, the source
    columns each row's reasons name), so the legacy values can be looked up for the rows that need them."""
    from crmbridge import stewardcsv as S
    from crmbridge.mappings.check import _used_columns

    q = quarantine.rename(columns={"_reason": "_reasons"}).copy()
    q["_stage"] = "map"
    if q.empty:
        return q.assign(_blocking=[]), []

    def with_parent(text):
        parts = []
        for p in S.split_reasons(text):
            m = _PARENT.match(p)
            why = parent_reasons.get(m.group(1), {}).get(m.group(2)) if m else None
            parts.append(p + f" [{m.group(1).split('.')[0]} {m.group(2)} is itself quarantined: {why}]" if why else p)
        return S.REASON_SEP.join(parts)

    texts = q["_reasons"].tolist()
    q["_reasons"] = [with_parent(t) if change else t for t, change in zip(texts, _may_change(texts))]
    q["_blocking"] = q["_reasons"].where(~q["_reasons"].astype(str).str.startswith("filtered: "), None)
    sources: dict[str, set[str]] = {}
    for fname, col in _used_columns(s):
        sources.setdefault(fname or "", set()).add(col)
    return q, _named_columns(q["_reasons"].tolist(), sources)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _may_change(texts: list) -> list[bool]:
    """False where ``with_parent`` gives the text back unchanged: no parent reason to complete and no empty
    reason for ``split_reasons`` to drop (a ``"; "`` at either end or two in a row)."""
    arr = all_text(texts)
    if arr is None:
        return [not (isinstance(t, str) and "parent_quarantined: " not in t and "; ; " not in t
                     and not t.startswith("; ") and not t.endswith("; ")) for t in texts]
    import pyarrow.compute as pc

    hit = pc.or_(pc.or_(pc.match_substring(arr, "parent_quarantined: "), pc.match_substring(arr, "; ; ")),
                 pc.or_(pc.starts_with(arr, "; "), pc.ends_with(arr, "; ")))
    return hit.to_numpy(zero_copy_only=False).tolist()


def _named_columns(texts: list[str], sources: dict[str, set[str]]) -> list[set[str]]:
    """Per reason text: the source columns of every field it names, i.e. every field that is one of the
    text's identifier-like words (``stewardcsv.tokens``) or such a word's part before its first dot.

    A run of the characters ``[A-Za-z0-9_.]`` holds one such word: the run without its leading digits
    and dots. So a field named like ``[A-Za-z_][A-Za-z0-9_]*`` is named exactly where it starts a run
    (after digits and dots only) and is followed by a dot, another character or the end: one RE2 pass per
    field over the whole batch. Other texts or field names: word by word, each distinct text once."""
    fields = [f for f in sources if f]
    arr = all_text(texts) if all(_WORD.fullmatch(f) for f in fields) else None
    if arr is None or len(fields) > 62:  # a bit per field in an int64
        return _named_columns_by_word(texts, sources)
    import numpy as np
    import pyarrow.compute as pc

    pattern = np.zeros(len(texts), dtype=np.int64)  # bit j: field j is named
    for j, f in enumerate(fields):
        has = pc.match_substring(arr, f).to_numpy(zero_copy_only=False)  # a plain search first: most texts lack f
        rows = np.flatnonzero(has)
        if not len(rows):
            continue
        hit = pc.match_substring_regex(arr.take(rows), f"(^|[^A-Za-z0-9_.])[0-9.]*{f}([^A-Za-z0-9_]|$)")
        pattern[rows] |= hit.to_numpy(zero_copy_only=False).astype(np.int64) << j
    sets = {int(b): set().union(*(sources[f] for j, f in enumerate(fields) if int(b) >> j & 1))
            for b in np.unique(pattern)}
    return [sets[b] for b in pattern.tolist()]


def _named_columns_by_word(texts: list, sources: dict[str, set[str]]) -> list[set[str]]:
    from crmbridge import stewardcsv as S

    seen: dict[str, set[str]] = {}
    named = []
    for text in texts:
        got = seen.get(text)
        if got is None:
            words = S.tokens(text) | {w.split(".")[0] for w in S.tokens(text)}
            got = set().union(*(cols for f, cols in sources.items() if f and f in words))
            seen[text] = got
        named.append(got)
    return named
