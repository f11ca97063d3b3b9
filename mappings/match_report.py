"""The match report: clusters, scores, evidence and what each department called the company.

``matches.json`` holds everything; ``report.html`` shows the review queue and the merged companies
(the first ``HTML_CLUSTERS``) for people. Rendered with Jinja2 ``autoescape=True`` and a content
security policy that allows no script and no external resource: a ``<script>`` in a legacy company
name shows as text and the page works offline.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HTML_CLUSTERS = 300
HTML_REVIEW = 1000


def _text(v) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) or pd.isna(v) else str(v)


def _member(row: dict, key: str, name: str | None) -> dict[str, Any]:
    return {"row_id": _text(row.get("_row_id")), "department": _text(row.get("_department")),
            "source": _text(row.get("_source")), "key": _text(row.get(key)),
            "name": _text(row.get(name)) if name else None}


def entity_data(frame: pd.DataFrame, out, identity) -> dict[str, Any]:
    """The JSON-ready report of one entity (``out``: resolve.Resolved)."""
    from crmbridge.validation.identity_rules import Resolution

    df = frame.reset_index(drop=True)
    key = identity.key[0]
    res = identity.resolution or Resolution()
    name = res.compare.name if res.compare.name in df.columns else None
    labels = out.rowmap["_company"].to_numpy()
    sizes = pd.Series(labels).value_counts()
    multi = set(sizes[sizes > 1].index)
    multi_golden = out.golden[out.golden["_company"].isin(multi)]
    golden = dict(zip(multi_golden["_company"].tolist(), multi_golden.to_dict("records")))
    pairs = out.pairs
    merged_pairs = pairs[pairs["outcome"].isin(["merged", "accepted"])]
    pair_by_company: dict[int, list] = {}
    for l, r, s, k, e in zip(merged_pairs["l"], merged_pairs["r"], merged_pairs["score"], merged_pairs["kind"],
                             merged_pairs["evidence"]):
        pair_by_company.setdefault(int(labels[l]), []).append(
            {"left": df.at[int(l), "_row_id"], "right": df.at[int(r), "_row_id"], "score": float(s), "kind": k,
             "evidence": e})
    members: dict[int, list] = {}
    idx = np.flatnonzero(np.isin(labels, list(multi))) if multi else np.zeros(0, dtype=int)
    for i, row in zip(idx, df.iloc[idx].to_dict("records")):
        members.setdefault(int(labels[i]), []).append(_member(row, key, name))
    clusters = []
    for c in sorted(multi, key=lambda c: (-sizes[c], c)):
        g = golden[c]
        by_dept: dict[str, list[str]] = {}
        for m in members.get(int(c), []):
            if m["name"]:
                names = by_dept.setdefault(m["department"] or "(none)", [])
                if m["name"] not in names:
                    names.append(m["name"])
        clusters.append({"company": int(c), "survivor_key": _text(g.get(key)),
                         "name": _text(g.get(name)) if name else None, "departments": _text(g.get("_departments")),
                         "legacy_keys": _text(g.get("_legacy_keys")), "rows": int(sizes[c]),
                         "names_by_department": by_dept, "members": members.get(int(c), []),
                         "pairs": sorted(pair_by_company.get(int(c), []), key=lambda p: -p["score"])})
    ids = dict(zip(zip(pairs["l"].tolist(), pairs["r"].tolist()), pairs["pair_id"]))
    review = [_pair(df, ids, r, key, name) for r in out.review.itertuples(index=False)]
    refused = pairs[pairs["outcome"].isin(["rejected"])]
    return {"rows": len(df), "companies": len(out.golden), "merged_companies": len(multi),
            "rows_merged": len(df) - len(out.golden), "stats": out.stats,
            "thresholds": {"merge": res.merge_threshold, "review": res.review_threshold},
            "clusters": clusters, "review": review,
            "rejected_by_steward": [_pair(df, ids, r, key, name) for r in refused.itertuples(index=False)]}


def _pair(df: pd.DataFrame, ids: dict, p, key: str, name: str | None) -> dict[str, Any]:
    l, r = int(p.l), int(p.r)
    return {"pair_id": ids.get((l, r)), "score": float(p.score), "kind": p.kind,
            "evidence": p.evidence, "left": _member(df.iloc[l].to_dict(), key, name),
            "right": _member(df.iloc[r].to_dict(), key, name)}


def queue_rows(frame: pd.DataFrame, out, entity: str, identity) -> list[dict[str, Any]]:
    """The open review pairs as rows of the state database's queue."""
    from crmbridge.mappings.resolve import row_refs
    from crmbridge.mappings.review import pair_id

    df = frame.reset_index(drop=True)
    pos = np.unique(np.concatenate([out.review["l"].to_numpy(np.int64), out.review["r"].to_numpy(np.int64)]))
    refs = dict(zip(pos.tolist(), row_refs(df, pos).tolist()))
    name_col = identity.resolution.compare.name if identity.resolution else "name"
    name_col = name_col if name_col in df.columns else None
    rows = []
    for p in out.review.itertuples(index=False):
        l, r = int(p.l), int(p.r)
        rows.append({"pair_id": pair_id(entity, refs[l], refs[r]), "left_ref": refs[l], "right_ref": refs[r],
                     "left_name": _text(df.at[l, name_col]) if name_col else None,
                     "right_name": _text(df.at[r, name_col]) if name_col else None,
                     "score": float(p.score), "kind": p.kind, "evidence": p.evidence})
    return rows


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(str(Path(__file__).parent)), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(data: dict[str, Any]) -> str:
    return _env().get_template("match_report.html.j2").render(
        data=data, html_clusters=HTML_CLUSTERS, html_review=HTML_REVIEW)
