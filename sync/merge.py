"""Per-record, per-field decisions: what flows where, what is a conflict, what the new baseline is.

Pure functions. Each side's value is compared with the baseline (what both held after the last sync):
a side that still holds the baseline did not change, so the sync's own earlier writes are never echoed
back, and a field changed on both sides to different values is a conflict, never a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmbridge.sync.config import ObjectSpec
from crmbridge.sync.values import canon

_MISSING = object()


@dataclass
class Decision:
    """What one linked record needs. ``to_sf``/``to_erp`` map Salesforce field names to raw values."""

    to_sf: dict[str, Any] = field(default_factory=dict)
    to_erp: dict[str, Any] = field(default_factory=dict)
    base: dict[str, str | None] = field(default_factory=dict)
    conflicts: list[tuple[str, Any, Any, str | None]] = field(default_factory=list)  # field, erp, sf, base
    blocked_sf: set[str] = field(default_factory=set)   # writes the chosen direction does not allow
    blocked_erp: set[str] = field(default_factory=set)


def merge(spec: ObjectSpec, base: dict, erp: dict | None, sf: dict | None, *, frozen: set[str] = frozenset(),
          forced: dict[str, Any] | None = None, to_sf_ok: bool = True, to_erp_ok: bool = True) -> Decision:
    """Decide every mapped field of one record.

    ``erp``/``sf``: the side's current raw values by Salesforce field name, or None when that side was
    not read (then it is taken to still hold the baseline). ``frozen``: fields with an open conflict
    (left alone until resolved). ``forced``: values chosen by resolving a conflict.
    """
    d = Decision()
    forced = forced or {}
    for f in spec.fields:
        b = base.get(f, _MISSING)
        bval = None if b is _MISSING else b
        e_raw = erp.get(f) if erp is not None else None
        s_raw = sf.get(f) if (sf is not None and f in sf) else None
        e = canon(e_raw) if erp is not None else bval
        s = canon(s_raw) if (sf is not None and f in sf) else bval
        if f in forced:
            v = forced[f]
            _push(d, f, v, canon(v), e, s, to_sf_ok, to_erp_ok, bval)
            continue
        if f in frozen:
            d.base[f] = bval
            continue
        owner = spec.owner_of(f)
        if owner == "erp" or (owner == "both" and s == bval and e != bval) or (owner == "both" and b is _MISSING and s is None):
            _push(d, f, e_raw if erp is not None else None, e, e, s, to_sf_ok, False, bval, erp_known=erp is not None)
        elif owner == "salesforce" or (owner == "both" and e == bval and s != bval) or (owner == "both" and b is _MISSING and e is None):
            _push(d, f, s_raw if sf is not None else None, s, e, s, False, to_erp_ok, bval, sf_known=sf is not None)
        elif e == s:
            d.base[f] = e
        else:  # both sides moved away from the baseline, to different values
            policy = spec.conflict_of(f)
            if policy == "erp_wins":
                _push(d, f, e_raw, e, e, s, to_sf_ok, False, bval, erp_known=True)
            elif policy == "salesforce_wins":
                _push(d, f, s_raw, s, e, s, False, to_erp_ok, bval, sf_known=True)
            else:
                d.conflicts.append((f, e, s, bval))
                d.base[f] = bval
    return d


def _push(d: Decision, f: str, raw: Any, want: str | None, e: str | None, s: str | None, sf_ok: bool, erp_ok: bool,
          old: str | None, *, erp_known: bool = True, sf_known: bool = True) -> None:
    """Bring both sides to ``want``; the baseline moves only when both sides really hold it.

    A side whose write is not allowed (``--direction``) or whose value is unknown keeps the old baseline,
    so the change is picked up again by a later run instead of being lost."""
    ok = True
    if s != want:
        if sf_ok and erp_known:
            d.to_sf[f] = raw
        else:
            ok = False
            d.blocked_sf.add(f)
    if e != want:
        if erp_ok and sf_known:
            d.to_erp[f] = raw
        else:
            ok = False
            d.blocked_erp.add(f)
    d.base[f] = want if ok else old


def creates_in_erp(spec: ObjectSpec, sf: dict) -> bool:
    """Whether a Salesforce record meets ``create_when`` (e.g. the agreed customer definition)."""
    for fld, allowed in spec.create_when.items():
        if canon(sf.get(fld)) not in {canon(a) for a in allowed}:
            return False
    return True
