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
    """Every quarantined row: its key first, then ``_reasons``, the data and the lineage columns.

    UTF-8 with BOM so Excel on a Chinese Windows opens the Chinese text correctly; formula-like cells
    neutralised (``crmbridge.csvout``).
    """
    from crmbridge.csvout import write_frame

    first = [c for c in key if c in quarantine.columns] + ["_reasons"]
    lineage = [c for c in quarantine.columns if c.startswith("_") and c not in first]
    rest = [c for c in quarantine.columns if c not in first and c not in lineage]
    write_frame(quarantine, path, first + rest + lineage)


def quarantine_samples(quarantine: pd.DataFrame, key: list[str], n: int = SAMPLE_ROWS) -> list[dict[str, Any]]:
    head = quarantine.head(n)
    keys = head[[k for k in key if k in head.columns]].astype(object).fillna("").astype(str)
    return [{"key": "/".join(k), "source": s, "line": ln, "reasons": r}
            for k, s, ln, r in zip(keys.itertuples(index=False), head.get("_source", [""] * len(head)),
                                   head.get("_line", [""] * len(head)), head["_reasons"])]


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
