"""The validate stage's quarantine as stewards get it: each batch's view with the raw legacy values beside
the fields a reason names (``steward_view``), and the quarantine CSV written batch by batch."""

from __future__ import annotations

from pathlib import Path


def write_quarantine_csv(path: Path, batches, columns: list[str], key: list[str]) -> None:
    """The steward's quarantine file (``reports.write_quarantine``'s layout and encoding), batch by batch."""
    import csv

    import pandas as pd

    from crmbridge import stewardcsv
    from crmbridge.csvout import ENCODING, neutralise_frame

    order = list(stewardcsv.ordered(pd.DataFrame(columns=columns), key).columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=ENCODING, newline="") as fh:
        pd.DataFrame(columns=order).to_csv(fh, index=False, quoting=csv.QUOTE_ALL)
        for b in batches:
            neutralise_frame(b[order]).to_csv(fh, index=False, header=False, quoting=csv.QUOTE_ALL)


def steward_view(quarantine, raw, outcomes, legacy: set[str] | None = None):
    """The quarantine as stewards get it: the raw legacy value next to every field a reason names and the
    shared column layout (``crmbridge.stewardcsv``). A failed reference already names the parent row's
    own reasons in its message (``outcome.messages``).

    With ``legacy`` (the fields any rule names) the view has a ``<field> (legacy)`` column for each of
    them present in ``raw``, named by some row or not, so every batch has the same columns; returns
    ``(view, fields named in this batch)`` then, and the caller drops the columns no batch used."""
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
    by_id = raw[["_row_id", *cols]].drop_duplicates("_row_id")
    by_id = by_id.set_index(by_id["_row_id"].astype(str))
    ids = q["_row_id"].astype(str)
    for f in cols:  # as stewardcsv.add_legacy does, for every candidate field
        values = ids.map(by_id[f].astype(object)).astype(object)
        mask = pd.Series([f in n for n in named], index=q.index, dtype=bool)
        col = values.where(mask & values.notna(), None)
        q.insert(q.columns.get_loc(f) + 1, S.legacy_column(f), col.to_numpy())
    return S.ordered(q), used & set(cols)
