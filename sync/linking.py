"""Linking records that exist on both sides but are not linked yet (``link_on``), never across companies.

An ERP row and a Salesforce record are *candidates* when one ``link_on`` rule's values are equal. The
pair is *consistent* when every rule that has a value on both sides agrees, *contradicting* when one
agrees and another differs (same credit code, other customer number: another company, or a duplicate
someone must look at). A link is made only for a consistent pair that is the only consistent candidate
of both its ERP row and its record: one ERP row <-> at most one record, both ways.

Everything else is a *link conflict*, queued per ERP row and candidate with both sides' identifying
values, and never a write: the ERP row stays unlinked (``pending``) and the record is not created in the
ERP. A steward resolves it (``--take salesforce``: link them; ``--take erp``: keep them apart); the
decision is kept and applied by the next run.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.values import canon

LINK_FIELD = "(link)"  # the conflict queue's ``field`` for link conflicts


def norm(v: Any) -> str | None:
    """A link value as compared: canonical text, NFKC (full-width digits), no outer blanks, upper case."""
    c = canon(v)
    if c is None:
        return None
    c = unicodedata.normalize("NFKC", c).strip().upper()
    return c or None


@dataclass(frozen=True)
class LinkIssue:
    """One ERP row and one candidate record that could not be linked automatically."""

    erp_key: str
    sf_id: str
    kind: str  # ambiguous, contradicting, taken
    erp_text: str  # the ERP row's identifying values
    sf_text: str  # the record's identifying values
    why: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LinkPlan:
    links: dict[str, str] = field(default_factory=dict)  # erp key -> sf id
    issues: dict[str, list[LinkIssue]] = field(default_factory=dict)  # erp key -> its conflicts
    blocked_sf: set[str] = field(default_factory=set)  # records in a conflict: never created in the ERP


def plan_links(spec: ObjectSpec, erp_rows: dict[str, dict], sf_recs: dict[str, dict], *,
               taken_sf: dict[str, str] | None = None, taken_erp: set[str] | None = None,
               decisions: dict[tuple[str, str], str] | None = None, name_field: str | None = "Name") -> LinkPlan:
    """Decide links between unlinked ERP rows and candidate records.

    ``erp_rows``: key -> raw ERP row (with the link columns); ``sf_recs``: Id -> flattened record.
    For a decision about an ERP row, ``sf_recs`` must hold every record matching it on some rule; for
    a decision about a record, ``erp_rows`` every ERP row matching it (the callers query both ways).
    ``taken_sf``: records already linked (Id -> their ERP key); ``taken_erp``: ERP rows already linked
    to some record (they compete for nothing). ``decisions``: steward decisions per (erp key, sf id),
    ``link`` or ``apart``."""
    taken_sf, taken_erp, decisions = taken_sf or {}, taken_erp or set(), decisions or {}
    rules = spec.link_on
    ev = {k: [norm(r.get(rule.erp)) for rule in rules] for k, r in erp_rows.items()}
    sv = {i: [norm(r.get(rule.salesforce)) for rule in rules] for i, r in sf_recs.items()}
    index: list[dict[str, list[str]]] = [{} for _ in rules]
    for i, vals in sv.items():
        for n, v in enumerate(vals):
            if v is not None:
                index[n].setdefault(v, []).append(i)
    consistent_e: dict[str, list[str]] = {}
    consistent_s: dict[str, list[str]] = {}
    contra: dict[str, list[str]] = {}
    for k, vals in ev.items():
        if k in taken_erp:
            continue
        cands = dict.fromkeys(i for n, v in enumerate(vals) if v is not None for i in index[n].get(v, ()))
        for i in cands:
            if decisions.get((k, i)) == "apart":
                continue
            both = [(a, b) for a, b in zip(vals, sv[i]) if a is not None and b is not None]
            if all(a == b for a, b in both):
                consistent_e.setdefault(k, []).append(i)
                consistent_s.setdefault(i, []).append(k)
            else:
                contra.setdefault(k, []).append(i)
    plan = LinkPlan()
    for (k, i), d in decisions.items():  # a steward's "link them" wins over the automatic rules
        if d == "link" and k in erp_rows and i in sf_recs and k not in taken_erp and taken_sf.get(i, k) == k:
            plan.links[k] = i
    forced_sf = set(plan.links.values())
    for k in ev:
        if k in taken_erp or k in plan.links:
            continue
        mine = [i for i in consistent_e.get(k, []) if i not in forced_sf]
        issues: list[LinkIssue] = []
        if len(mine) == 1 and len(consistent_s[mine[0]]) == 1 and taken_sf.get(mine[0], k) == k:
            plan.links[k] = mine[0]
            continue
        for i in mine:
            if taken_sf.get(i, k) != k:
                why = f"the record is already linked to ERP row {taken_sf[i]}"
                issues.append(_issue(spec, k, i, "taken", erp_rows, sf_recs, why, name_field))
            elif len(mine) > 1:
                why = f"{len(mine)} records match this ERP row: " + ", ".join(mine)
                issues.append(_issue(spec, k, i, "ambiguous", erp_rows, sf_recs, why, name_field))
            else:
                why = f"{len(consistent_s[i])} ERP rows match this record: " + ", ".join(consistent_s[i])
                issues.append(_issue(spec, k, i, "ambiguous", erp_rows, sf_recs, why, name_field))
        for i in contra.get(k, []):
            issues.append(_issue(spec, k, i, "contradicting", erp_rows, sf_recs, _disagreement(spec, ev[k], sv[i]),
                                 name_field))
        if issues:
            plan.issues[k] = issues
            plan.blocked_sf.update(x.sf_id for x in issues if x.sf_id not in taken_sf)
    plan.blocked_sf -= set(plan.links.values())
    return plan


def _disagreement(spec: ObjectSpec, e: list, s: list) -> str:
    same, differ = [], []
    for rule, a, b in zip(spec.link_on, e, s):
        if a is not None and b is not None:
            (same if a == b else differ).append(f"{rule.erp} {a} {'=' if a == b else '!='} {rule.salesforce} {b}")
    return "same " + "; ".join(same) + ", but " + "; ".join(differ)


def _issue(spec: ObjectSpec, k: str, i: str, kind: str, erp_rows: dict, sf_recs: dict, why: str,
           name_field: str | None) -> LinkIssue:
    er, sr = erp_rows[k], sf_recs[i]
    e_parts = [f"{rule.erp}={canon(er.get(rule.erp))}" for rule in spec.link_on]
    s_parts = [f"Id={i}"] + [f"{rule.salesforce}={canon(sr.get(rule.salesforce))}" for rule in spec.link_on]
    if name_field and name_field in spec.fields and spec.fields[name_field].erp:
        e_parts.append(f"{spec.fields[name_field].erp}={canon(er.get(spec.fields[name_field].erp))}")
    if name_field and name_field in sr:
        s_parts.append(f"{name_field}={canon(sr.get(name_field))}")
    return LinkIssue(k, i, kind, ", ".join(e_parts), ", ".join(s_parts), why)
