"""great-expectations Data Docs for a validate run, made safe to open.

GX 1.24.1 inserts unexpected values into its pages unescaped (its Jinja autoescape keys on ``.html``
template names; its templates are ``.j2``), so a ``<script>`` in a legacy company name would run in
the steward's browser. Two layers stop that:

1. every string GX renders from the data (unexpected values, their counts, index lists) is
   HTML-escaped in a trimmed copy of the result before rendering, so markup shows as text;
2. the rendered page is then scanned: any script, event-handler attribute or ``javascript:`` URL that
   is not part of GX's own page template makes the page refused (``RunFailed``), never written.
"""

from __future__ import annotations

import copy
import html
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from crmbridge.errors import RunFailed

PARTIAL = 20  # values per rule shown in Data Docs (the full lists are in the quarantine files)
_ROW_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list")
_DROP_KEYS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


def _escape(v: Any) -> Any:
    if isinstance(v, str):
        return html.escape(v, quote=True)
    if isinstance(v, dict):
        return {_escape(k): _escape(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_escape(x) for x in v) if isinstance(v, list) else tuple(_escape(x) for x in v)
    return v


def sanitize_result(result):
    """A copy of a suite validation result with data-derived strings escaped and long lists dropped."""
    from great_expectations.core import ExpectationSuiteValidationResult

    clean = copy.copy(result)
    items = []
    for r in result.results:
        rc = copy.copy(r)
        res = dict(r.result or {})
        for k in _DROP_KEYS:
            res.pop(k, None)
        for k in _ROW_KEYS:
            if k in res:
                res[k] = _escape(list(res[k])[:PARTIAL])
        rc.result = res
        items.append(rc)
    clean = ExpectationSuiteValidationResult(success=result.success, results=items, suite_name=result.suite_name,
                                             statistics=result.statistics, meta=result.meta)
    return clean


def render_page(result) -> str:
    """The GX validation-results page for ``result`` (already sanitized) as HTML text."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    doc = ValidationResultsPageRenderer().render(result)
    return DefaultJinjaPageView().render(doc)


class _ActiveContent(HTMLParser):
    """Collects what could execute: scripts, on* handlers, javascript: URLs, frames and objects."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.handlers.append(f"<{tag} {name}={value}>")
            if name.lower() in ("href", "src", "action", "formaction") and value and \
                    value.strip().lower().startswith("javascript:"):
                self.handlers.append(f"<{tag} {name}=javascript:...>")
        if tag in ("iframe", "object", "embed", "frame"):
            self.handlers.append(f"<{tag}>")
        if tag == "script":
            src = dict(attrs).get("src")
            if src:
                self.scripts.append("src:" + src)
            else:
                self._in_script, self._buf = True, []

    def handle_data(self, data):
        if self._in_script:
            self._buf.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script:
            self.scripts.append("inline:" + "".join(self._buf).strip())
            self._in_script = False


def active_content(page: str) -> tuple[list[str], list[str]]:
    p = _ActiveContent()
    p.feed(page)
    p.close()
    return p.scripts, p.handlers


_baseline: dict[str, set[str]] = {}


def _template_scripts() -> set[str]:
    """Scripts and handlers GX's page template carries by itself, learnt from a page rendered without data."""
    if "scripts" not in _baseline:
        from great_expectations.core import ExpectationSuiteValidationResult

        empty = ExpectationSuiteValidationResult(success=True, results=[], suite_name="baseline",
                                                 statistics={"evaluated_expectations": 0,
                                                             "successful_expectations": 0,
                                                             "unsuccessful_expectations": 0,
                                                             "success_percent": None})
        scripts, handlers = active_content(render_page(empty))
        _baseline["scripts"] = set(scripts) | set(handlers)
    return _baseline["scripts"]


def check_page(page: str, where: str) -> None:
    """Refuse a page with active content beyond GX's own template scripts."""
    scripts, handlers = active_content(page)
    foreign = [s for s in scripts + handlers if s not in _template_scripts()]
    if foreign:
        what = foreign[0][:120]
        raise RunFailed(f"validate: Data Docs page {where} would carry active content ({what}); not written")


def write_data_docs(out_dir: Path, results: dict[str, Any], index_html: str) -> dict[str, str]:
    """Write one escaped page per entity plus our own index; returns entity -> file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {}
    for entity, result in results.items():
        page = render_page(sanitize_result(result))
        name = f"{entity}.html"
        check_page(page, f"{out_dir.name}/{name}")
        (out_dir / name).write_text(page, encoding="utf-8")
        pages[entity] = name
    (out_dir / "index.html").write_text(index_html, encoding="utf-8")
    return pages
