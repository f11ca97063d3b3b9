"""The readiness dashboard: one self-contained HTML page for the steering committee.

Phases as checkpoints, the gate table, trend charts across rehearsals (drawn with matplotlib, embedded
as PNG data URIs so the file can be mailed) and a few quarantined legacy rows as examples. Every value
goes through Jinja2 autoescape: markup in legacy data shows as text.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from crmbridge.readiness import history as H
from crmbridge.state import utcnow

DEFAULT_OUT = "reports/readiness.html"
SAMPLE_ROWS = 5


def _chart(xs: list[str], ys: list[float | None], title: str, ylabel: str, percent: bool = False,
           limit: float | None = None) -> str | None:
    """A line chart as a PNG data URI; ``None`` when there is nothing to draw."""
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the servers that run this
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 2.8), dpi=100)
    try:
        vals = [y * 100 if percent else y for _, y in pts]
        ax.plot(range(len(pts)), vals, marker="o", color="#1f6feb", linewidth=2)
        ax.set_xticks(range(len(pts)), [x for x, _ in pts], rotation=20, fontsize=7)
        if limit is not None:
            ax.axhline(limit * 100 if percent else limit, color="#cf222e", linestyle="--", linewidth=1,
                       label="target")
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _target(ev, metric: str) -> float | None:
    for g in ev.gates:
        if g.metric == metric and g.entity is None and g.op in ("<=", "<"):
            return g.target
    return None


def trend_charts(rehearsals: list[H.Rehearsal], ev=None) -> list[dict]:
    """The four trend charts (title, data URI) across the rehearsals, oldest first."""
    done = [r for r in rehearsals if r.status == "succeeded"]
    xs = [f"{i + 1}: {r.run_id[:15]}" for i, r in enumerate(done)]
    t = (lambda m: _target(ev, m)) if ev is not None else (lambda m: None)
    specs = [
        ("Quarantine rate", "% of extracted rows", [r.rate("quarantined") for r in done], True,
         t("rehearsal_quarantine_rate")),
        ("Rejected rate", "% of extracted rows", [r.rate("rejected") for r in done], True,
         t("rehearsal_rejected_rate")),
        ("Reconcile mismatches", "mismatches",
         [float(r.reconcile_mismatches) if r.reconcile_mismatches is not None else None for r in done], False, None),
        ("Duration", "hours", [r.hours for r in done], False, None),
    ]
    out = []
    for title, ylabel, ys, pct, lim in specs:
        out.append({"title": title, "uri": _chart(xs, ys, title, ylabel, pct, lim),
                    "points": sum(y is not None for y in ys)})
    return out


def quarantine_samples(project, rehearsal: H.Rehearsal | None) -> list[dict]:
    """A few quarantined rows per entity of the last rehearsal (key, name, reasons), as legacy text."""
    if rehearsal is None:
        return []
    from crmbridge.csvout import read_frame  # quarantine files are neutralised for Excel

    qdir = project.runs_dir / rehearsal.run_id / "validate" / "quarantine"
    out = []
    for f in sorted(qdir.glob("*.csv")) if qdir.exists() else []:
        try:
            df = read_frame(f, nrows=SAMPLE_ROWS)
        except (OSError, ValueError):
            continue
        name_col = next((c for c in ("name", "full_name", "contract_no") if c in df.columns), None)
        for _, row in df.iterrows():
            out.append({"entity": f.stem, "key": row.get("_source_key", ""),
                        "name": row.get(name_col, "") if name_col else "", "reasons": row.get("_reasons", "")})
    return out


def render(project, engine, ev) -> str:
    """The dashboard HTML for evaluation ``ev``."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from crmbridge.readiness.store import snapshots

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent)),
                      autoescape=select_autoescape(["html", "j2"], default=True))
    reh = H.rehearsals(engine)
    return env.get_template("dashboard.html.j2").render(
        project=project.config.name, generated=utcnow().strftime("%Y-%m-%d %H:%M UTC"), ev=ev,
        charts=trend_charts(reh, ev), rehearsals=[r.as_dict() for r in reh],
        samples=quarantine_samples(project, reh[-1] if reh else None),
        history=snapshots(engine, limit=10), window=project.config.cutover_window_hours)


def write_dashboard(project, engine, ev, *, out: str | Path | None = None) -> Path:
    """Write the dashboard (default ``reports/readiness.html`` in the project) atomically."""
    path = Path(out) if out else project.path(DEFAULT_OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(project, engine, ev), "utf-8")
    tmp.replace(path)
    return path
