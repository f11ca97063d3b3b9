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
    ``(view, fields named in this batch)`` then, and the caller drops the columns no batch used. ``raw``
    (the batch's extracted rows) may then be an Arrow table: its text columns are read at the quarantined
    rows only, as the frame ``to_pandas`` makes of it holds them there (a few hundred rows of 50,000)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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
    names = raw.column_names if isinstance(raw, pa.Table) else [] if raw is None else raw.columns
    if "_row_id" not in names:
        return S.ordered(q), set()
    cols = [c for c in q.columns if not str(c).startswith("_") and c in names and c in legacy]
    if not cols:
        return S.ordered(q), set()
    # as stewardcsv.add_legacy does, for every candidate field: each row's raw values by _row_id (the first
    # raw row of an id), the row positions looked up once for all fields instead of a hash table per field
    at, found = _first_raw_rows(q["_row_id"].astype(str), _raw_ids(raw))
    for f in cols:
        values = _raw_values(raw, f, at) if len(raw) else np.full(len(q), None, dtype=object)
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
        if not isinstance(raw_ids, pd.Series):
            raw_ids = pd.Series(raw_ids.to_numpy(zero_copy_only=False), dtype=object)
        first = np.flatnonzero(~raw_ids.duplicated().to_numpy())
        pos = pd.Index(raw_ids.iloc[first]).get_indexer(ids)
        return (first[np.where(pos >= 0, pos, 0)] if len(first) else pos), pos >= 0
    hit = wanted.get_indexer(raw_ids) if isinstance(raw_ids, pd.Series) else _arrow_positions(wanted, raw_ids)
    rows = np.flatnonzero(hit >= 0)
    mine, first = np.unique(hit[rows], return_index=True)  # rows ascend: the first raw row of each id
    at = np.zeros(len(wanted), dtype=np.intp)
    at[mine] = rows[first]
    found = np.zeros(len(wanted), dtype=bool)
    found[mine] = True
    return at, found


def _raw_ids(raw):
    """The raw ``_row_id``-s as text: ``astype(str)`` of a frame's, an Arrow table's text column without
    missing ids as it is (its values are those ``str``-s; a missing one stays NaN in pandas, matched as such)."""
    import pyarrow as pa

    from crmbridge.validation.columntext import ARROW_TEXT

    if not isinstance(raw, pa.Table):
        return raw["_row_id"].astype(str)
    ids = raw.column("_row_id")
    if ids.type in ARROW_TEXT and not ids.null_count:
        return ids.combine_chunks()
    return ids.to_pandas().astype(str)


def _arrow_positions(wanted, raw_ids):
    """``wanted.get_indexer(raw_ids)`` for an Arrow text array, hashed and probed in Arrow (no Python
    string made of the raw ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    at = pc.index_in(raw_ids, value_set=pa.array(wanted.to_numpy(dtype=object), type=raw_ids.type))
    return at.fill_null(-1).to_numpy(zero_copy_only=False)


def _raw_values(raw, f: str, at):
    """``raw[f].take(at)`` as objects: for an Arrow text column the taken rows alone made Python values (None
    where the frame would hold NaN: both count as missing); any other column converted whole, as the
    frame of ``raw`` converts it (an integer column with a missing value becomes floats)."""
    import pyarrow as pa

    from crmbridge.validation.columntext import ARROW_TEXT

    if not isinstance(raw, pa.Table):
        return raw[f].take(at).to_numpy(dtype=object)
    col = raw.column(f)
    if col.type in ARROW_TEXT:
        return col.take(at).to_numpy(zero_copy_only=False)
    return col.to_pandas().take(at).to_numpy(dtype=object)
