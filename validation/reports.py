"""The stewards' outputs of a validate run: summary JSON, quarantine files, HTML reports (Jinja2
with ``autoescape=True``: legacy values always render as text) and the one-screen terminal summary.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

SAMPLE_ROWS = 25


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # autoescape=True for every template, whatever its file name (GX's own docs key it on ".html").
    return Environment(loader=FileSystemLoader(str(Path(__file__).parent)), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **ctx: Any) -> str:
    """Render one of this package's ``*.html.j2`` templates with autoescaping."""
    return _env().get_template(template).render(**ctx)


def write_quarantine(path: Path, quarantine: pd.DataFrame, key: list[str]) -> None:
    """Every quarantined row in the layout shared with map's quarantine files (``crmbridge.stewardcsv``):
    key, ``_stage``, ``_reasons``, ``_blocking``, ``_warnings``, the data with each named field's legacy
    value beside it, then the lineage columns.

    UTF-8 with BOM so Excel on a Chinese Windows opens the Chinese text correctly; formula-like cells
    neutralised (``crmbridge.csvout``).
    """
    from crmbridge import stewardcsv
    from crmbridge.csvout import write_frame

    q = stewardcsv.ordered(quarantine, key)
    write_frame(q, path, list(q.columns))


# What a steward does about a failing rule, by its kind; {fields} is filled in.
WHAT_TO_DO = {
    "required": "fix in source: fill {fields} in the legacy system",
    "format": "add a normalise step for {fields} to the definition if the values are recognisable "
              "(phone, date, full-width text ...), otherwise fix in source",
    "allowed": "add the legacy values to the value_map of {fields} in the definition, or fix in source",
    "unique": "merge or correct the duplicate {fields} in source",
    "cross_field": "fix in source: {fields} contradict each other",
    "reference": "fix the parent row first (its own reason is shown in brackets), or correct {fields} in source",
}
WARNING_TO_DO = "accept as a warning (the rows still load), or fix {fields} in source when convenient"


def what_to_do(kind: str, severity: str, fields: list[str]) -> str:
    names = ", ".join(fields) or "the fields"
    tpl = WARNING_TO_DO if severity != "blocking" else WHAT_TO_DO.get(kind, "fix in source")
    return tpl.format(fields=names)


def quarantine_samples(quarantine: pd.DataFrame, key: list[str], rules: list[dict[str, Any]] = (),
                       n: int = SAMPLE_ROWS, owners: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The quarantine grouped by rule, worst first: what to do, who owns the rows, and up to ``n``
    example rows per rule (each with the normalised and the legacy value of the rule's fields)."""
    samples = Samples(key, rules, n)
    samples.add(quarantine)
    return samples.result(owners)


class Samples:
    """``quarantine_samples`` built batch by batch: ``add`` each batch's quarantine in row order, then
    ``result``; the same groups, counts and first ``n`` examples as on the whole quarantine at once."""

    def __init__(self, key: list[str], rules: list[dict[str, Any]] = (), n: int = SAMPLE_ROWS):
        self.key, self.n = list(key), n
        self.info = {r["rule_id"]: r for r in rules}
        self.groups: dict[str, dict[str, Any]] = {}

    def add(self, quarantine: pd.DataFrame) -> None:
        from crmbridge import stewardcsv as S

        if quarantine.empty:
            return
        n, info, groups = self.n, self.info, self.groups
        keys = quarantine[[k for k in self.key if k in quarantine.columns]].astype(object).fillna("").astype(str)
        key_text = ["/".join(k) for k in keys.itertuples(index=False)]
        deps = quarantine["_department"].to_numpy(dtype=object) if "_department" in quarantine.columns else None
        for i, text in enumerate(quarantine["_reasons"].to_numpy()):
            dep = str(deps[i] or "") if deps is not None else ""
            for part in S.split_reasons(text):
                rid = part.split(":", 1)[0].strip()
                g = groups.get(rid)
                if g is None:
                    r = info.get(rid, {})
                    fields = list(r.get("fields") or [])
                    g = groups[rid] = {"rule_id": rid, "severity": r.get("severity", "blocking"),
                                       "kind": r.get("kind", ""), "description": r.get("description", ""),
                                       "fields": fields,
                                       "what_to_do": what_to_do(r.get("kind", ""), r.get("severity", "blocking"), fields),
                                       "rows": 0, "departments": {}, "examples": []}
                g["rows"] += 1
                g["departments"][dep] = g["departments"].get(dep, 0) + 1
                if len(g["examples"]) < n:  # the row itself only for the few shown
                    row = quarantine.iloc[i]
                    vals = {f: [_text(row.get(f)), _text(row.get(S.legacy_column(f)))] for f in g["fields"]
                            if f in quarantine.columns}
                    g["examples"].append({"key": key_text[i], "source": _text(row.get("_source")),
                                          "line": _text(row.get("_line")), "department": dep, "reason": part,
                                          "values": vals})

    def result(self, owners: dict[str, str] | None = None) -> list[dict[str, Any]]:
        import copy

        out = sorted(copy.deepcopy(list(self.groups.values())), key=lambda g: (g["severity"] != "blocking", -g["rows"]))
        for g in out:
            g["owners"] = [{"department": d or "(unknown)", "person": (owners or {}).get(d, ""), "rows": c}
                           for d, c in sorted(g.pop("departments").items(), key=lambda x: -x[1])]
        return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def print_summary(summary: dict[str, Any], console=None) -> None:
    """The one-screen human summary (rich): sign-off state, counts per entity, failing rules, paths."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console(highlight=False)
    d = summary["definition"]
    if d["status"] != "signed":
        missing = ", ".join(f"{o['department']} ({o['person']})" for o in d["owners"] if not o["signed_on"])
        con.print(f"[bold yellow]DRAFT definition v{d['version']}[/]: not signed by {missing}", soft_wrap=True)
    else:
        con.print(f"definition v{d['version']} signed by every owner")
    con.print(f"validate run {summary['run_id']}", soft_wrap=True)
    t = Table()
    for col in ("entity", "rows in", "valid", "quarantined", "warned", "fixed"):
        t.add_column(col, justify="left" if col == "entity" else "right")
    for name, e in summary["entities"].items():
        t.add_row(name, str(e["rows_in"]), str(e["rows_valid"]), str(e["rows_quarantined"]), str(e["rows_warned"]),
                  str(sum(e["fixed"].values())))
    con.print(t)
    failing = [(name, r) for name, e in summary["entities"].items() for r in e["rules"] if not r["passed"]]
    failing.sort(key=lambda x: (x[1]["severity"] != "blocking", -x[1]["unexpected_count"]))
    if failing:
        ft = Table(title="failing rules (worst first)", title_justify="left")
        for col in ("entity", "rule", "severity", "rows", "%"):
            ft.add_column(col, justify="right" if col in ("rows", "%") else "left")
        for name, r in failing[:10]:
            ft.add_row(name, r["rule_id"], r["severity"], str(r["unexpected_count"]), f"{r['unexpected_percent']:.2f}")
        con.print(ft)
        if len(failing) > 10:
            con.print(f"... and {len(failing) - 10} more failing rule(s): see the report")
    verdict = "[bold red]BLOCKING failures[/]" if summary["blocking_failed"] else "[green]no blocking failures[/]"
    con.print(f"result: {verdict}", markup=True)
    for label, p in summary["reports"].items():
        con.print(f"{label}: {p}", markup=False, soft_wrap=True)  # paths must stay copyable: never wrapped
