"""The stewards' quarantine from validate: each batch's quarantined rows with the raw legacy values beside the
fields their reasons name (``steward_view``), and the CSV file written from them (``write_quarantine_csv``)."""

from __future__ import annotations

from pathlib import Path


def write_quarantine_csv(path: Path, batches, columns: list[str], key: list[str]) -> None:
    """The steward's quarantine file (``reports.write_quarantine``'s layout and encoding), batch by batch
    (``parquetsink.LazyBatch``-es of the spilled views): written from Arrow where ``csvout.write_table`` can,
    without converting the rows to pandas and back to text."""
    import csv

    import pandas as pd

    from crmbridge import stewardcsv
    from crmbridge.csvout import ENCODING, neutralise_frame, write_table

    order = list(stewardcsv.ordered(pd.DataFrame(columns=columns), key).columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=ENCODING, newline="") as fh:
        pd.DataFrame(columns=order).to_csv(fh, index=False, quoting=csv.QUOTE_ALL)
        for b in batches:
            if not write_table(b.table().select(order), fh, header=False):
                neutralise_frame(b.frame()[order]).to_csv(fh, index=False, header=False, quoting=csv.QUOTE_ALL)


def steward_view(quarantine, raw, outcomes, legacy: set[str] | None = None):
    """The quarantine as stewards get it: the raw legacy value next to every field a reason names and the
    shared column layout (``crmbridge.stewardcsv``). A failed reference already names the parent row's
    own reasons in its message (``outcome.messages``).

    With ``legacy`` (the fields any rule names) the view has a ``<field> (legacy)`` column for each of
    them present in ``raw``, named by some row or not, so every batch has the same columns; returns
    ``(view, fields named in this batch)`` then, and the caller drops the columns no batch used."""
    import numpy as np
    import pandas as pd

    from crmbridge import stewardcsv as S

    if quarantine.empty:
        view = S.ordered(quarantine.assign(_stage=[]))
        return (view, set()) if legacy is not None else view
    q = quarantine.copy()
    q["_stage"] = "validate"
    fields = {o.rule.rule_id: set(o.rule.fields) for o in outcomes}
    named = [set().union(*(fields.get(p.split(":", 1)[0].strip(), set()) for p in S.split_reasons(t)))
             for t in q["_reasons"]]
    if legacy is None:
        return S.ordered(S.add_legacy(q, raw, named))
    used = set().union(*named) if named else set()
    if raw is None or "_row_id" not in raw.columns:
        return S.ordered(q), set()
    cols = [c for c in q.columns if not str(c).startswith("_") and c in raw.columns and c in legacy]
    if not cols:
        return S.ordered(q), set()
    # as stewardcsv.add_legacy does, for every candidate field: each row's raw values by _row_id (the first
    # raw row of an id), the row positions looked up once for all fields instead of a hash table per field
    at, found = _first_raw_rows(q["_row_id"].astype(str), raw["_row_id"].astype(str))
    for f in cols:
        values = raw[f].take(at).to_numpy(dtype=object) if len(raw) else np.full(len(q), None, dtype=object)
        mask = np.array([f in n for n in named], dtype=bool) & found & ~pd.isna(values)
        q.insert(q.columns.get_loc(f) + 1, S.legacy_column(f), np.where(mask, values, None))
    return S.ordered(q), used & set(cols)


def _first_raw_rows(ids, raw_ids):
    """(per id, the first raw row holding it (0 where none does), found): the few quarantined ids hashed and
    the raw ids looked up in them, not the other way round (a hash table of the whole raw batch)."""
    import numpy as np
    import pandas as pd

    wanted = pd.Index(ids)
    if not wanted.is_unique:  # ids repeat only where different ids read the same as text
        first = np.flatnonzero(~raw_ids.duplicated().to_numpy())
        pos = pd.Index(raw_ids.iloc[first]).get_indexer(ids)
        return (first[np.where(pos >= 0, pos, 0)] if len(first) else pos), pos >= 0
    hit = wanted.get_indexer(raw_ids)
    rows = np.flatnonzero(hit >= 0)
    mine, first = np.unique(hit[rows], return_index=True)  # rows ascend: the first raw row of each id
    at = np.zeros(len(wanted), dtype=np.intp)
    at[mine] = rows[first]
    found = np.zeros(len(wanted), dtype=bool)
    found[mine] = True
    return at, found
