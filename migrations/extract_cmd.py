"""``crmbridge extract`` and ``crmbridge profile``: thin click commands over the extract stage."""

from __future__ import annotations

import click

from crmbridge.clikit import app, console, emit, json_option, show_progress


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Extract only this source (repeatable). Default: every source in crmbridge.yml.")
@click.option("--encoding", default=None, metavar="ENC",
              help="Decode the one selected CSV/TXT source with ENC (utf-8, gb18030, big5, utf-16 ...).")
@click.option("--full", is_flag=True, help="Ignore stored watermarks: extract incremental SQL sources in full.")
@click.option("--allow-shrink", is_flag=True,
              help="Accept a source that reads 0 rows or under half of the last successful run.")
@json_option
def extract(sources: tuple[str, ...], encoding: str | None, full: bool, allow_shrink: bool) -> None:
    """Extract the configured legacy sources into a new run.

    Every row read is kept (Parquet under runs/<run_id>/extract/) or rejected with its line
    number and reason (runs/<run_id>/extract/rejects/): rows read = kept + rejected.

    \b
    Example:
      crmbridge extract
      crmbridge extract --source service_customers --encoding gb18030
    """
    from crmbridge.migrations.extract import run_extract

    project = app().project()
    with _progress() as tick:
        result = run_extract(project, sources=list(sources) or None, full=full, encoding=encoding,
                             allow_shrink=allow_shrink, on_progress=tick)
    emit(result, _render_extract)


class _progress:
    """A rich status line with the running row count; silent under --json or without a TTY."""

    def __enter__(self):
        self.status = None
        if show_progress():
            from rich.console import Console

            self.status = Console(stderr=True).status("extracting ...", spinner="line")
            self.status.__enter__()
        return self.tick

    def tick(self, source: str, rows: int) -> None:
        if self.status is not None:
            self.status.update(f"extracting {source}: {rows:,} rows")

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.__exit__(*exc)
        return False


def _render_extract(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"run {result.run_id}: extract")
    for col, just in [("source", "left"), ("entity", "left"), ("department", "left"), ("read", "right"),
                      ("kept", "right"), ("rejected", "right"), ("encoding", "left")]:
        t.add_column(col, justify=just)
    for s in result.sources:
        t.add_row(s.source, s.entity, s.department, f"{s.rows_read:,}", f"{s.rows_kept:,}",
                  f"{s.rows_rejected:,}", s.encoding or "-")
    out = console()
    out.print(t)
    for s in result.sources:
        if s.rows_rejected:
            reasons = ", ".join(f"{k}: {v}" for k, v in s.reject_reasons.items())
            out.print(f"{s.source}: {s.rows_rejected} rejected ({reasons}) -> {result.run_dir}/extract/{s.reject_file}")
    for s in result.sources:
        for note in s.notes:
            out.print(f"[yellow]{s.source}: {escape(note)}[/]")
    out.print(f"run id: {result.run_id}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="Run to profile (default: the latest run with an extract).")
@click.option("--entity", default=None, help="Only this entity.")
@json_option
def profile(run_id: str | None, entity: str | None) -> None:
    """Profile the extracted entities of a run.

    Per column: nulls, distinct values, top values, min/max length and suspicious patterns
    (full-width characters, leading/trailing spaces, HTML-like content, control characters).

    \b
    Example:
      crmbridge profile
      crmbridge profile --run 20260101-120000-ab12 --entity customers --json
    """
    from crmbridge.errors import UsageError
    from crmbridge.migrations.profile import load_profile
    from crmbridge.migrations.runs import latest_run, open_run
    from crmbridge.state import open_state

    project = app().project()
    engine = open_state(project.state_url)
    if run_id:
        run = open_run(engine, project.runs_dir, run_id)
    else:
        run = latest_run(engine, project.runs_dir, with_stage="extract")
        if run is None:
            raise UsageError("no run with a finished extract", hint="run `crmbridge extract` first")
    prof = load_profile(run.dir)
    if entity:
        if entity not in prof["entities"]:
            raise UsageError(f"entity '{entity}' not in run {run.run_id}; entities: {', '.join(prof['entities'])}")
        prof = {**prof, "entities": {entity: prof["entities"][entity]}}
    prof["run_id"] = run.run_id
    emit(prof, _render_profile)


def _render_profile(prof: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    for entity, p in prof["entities"].items():
        t = Table(title=f"{entity}: {p['rows']:,} rows from {', '.join(p['sources'])} (run {prof['run_id']})")
        for col, just in [("column", "left"), ("nulls", "right"), ("distinct", "right"), ("len", "right"),
                          ("top values", "left"), ("suspicious", "left")]:
            t.add_column(col, justify=just, overflow="fold")
        for name, c in p["columns"].items():
            length = "-" if c["min_length"] is None else f"{c['min_length']}-{c['max_length']}"
            top = ", ".join(f"{_clip(v)} ({n})" for v, n in c["top"][:3])
            sus = ", ".join(f"{k} {v}" for k, v in c["suspicious"].items() if v)
            t.add_row(escape(name), f"{c['nulls']:,} ({c['null_pct']}%)", f"{c['distinct']:,}", length, top,
                      f"[yellow]{sus}[/]" if sus else "")
        out.print(t)
        for note in p.get("notes", []):
            out.print(f"  note: {escape(note)}")


def _clip(v: str | None, n: int = 24) -> str:
    from rich.markup import escape

    s = repr(v) if v is None or v != v.strip() or not v.isprintable() else v
    return escape(s if len(s) <= n else s[: n - 1] + "…")
