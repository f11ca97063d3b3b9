"""great-expectations Data Docs for a validate run, made safe to open.

GX 1.24.1 inserts unexpected values into its pages unescaped (its Jinja autoescape keys on ``.html``
template names; its templates are ``.j2``), so a ``<script>`` in a legacy company name would run in
the steward's browser. Two layers stop that:

1. every string GX renders from the data (unexpected values, their counts, index lists) is
   HTML-escaped in a trimmed copy of the result before rendering, so markup shows as text;
2. the rendered page is then scanned: any script, event-handler attribute or ``javascript:`` URL that
   is not part of GX's own page template makes the page refused (``RunFailed``), never written.

GX's template also pulls 18 scripts, stylesheets and images from CDNs (jQuery, Bootstrap, Vega,
Font Awesome ...): offline the page renders unstyled, online it runs third-party JavaScript next to
client data. ``self_contained`` strips every script and external reference, inlines our own
stylesheet (``datadocs.css``) and pins a Content-Security-Policy that allows nothing to load or run,
so the pages are inert and render the same with or without a network.
"""

from __future__ import annotations

import copy
import html
import re
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


# Nothing may load or run: styles come inline, images only as data: URIs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_IMG_REMOTE = re.compile(r"<img\b[^>]*\bsrc=[\"'](?:https?:)?//[^>]*>", re.IGNORECASE)
_A_REMOTE = re.compile(r"<a\b[^>]*\bhref=[\"'](?:https?:)?//[^\"']*[\"'][^>]*>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_A_BROKEN = re.compile(r"(<a\b[^>]*?)\shref=[\"'](?:\.\./)+[^\"']*[\"']", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import\b[^;]*;|url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_HANDLER = re.compile(r"""\s+on[a-zA-Z]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""")
_FORM = re.compile(r"<form\b[^>]*>.*?</form\s*>", re.IGNORECASE | re.DOTALL)
REMOTE_URL = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//""",
                        re.IGNORECASE)


def _stylesheet() -> str:
    return (Path(__file__).with_name("datadocs.css")).read_text(encoding="utf-8")


def self_contained(page: str) -> str:
    """GX's page without scripts or external references, with our stylesheet and a deny-all CSP inlined.

    Data-derived text is already escaped (``sanitize_result``), so the markup removed here can only be
    GX's own template: its CDN scripts and stylesheets, the remote logo, the newsletter link, links to
    Data Docs site pages this folder does not have, and the search form that needed the scripts.
    """
    page = _SCRIPT.sub("", page)
    page = _LINK.sub("", page)
    page = _IMG_REMOTE.sub("", page)
    page = _A_REMOTE.sub(lambda m: m.group(1), page)
    page = _A_BROKEN.sub(lambda m: m.group(1), page)
    page = _FORM.sub("", page)
    page = re.sub(r"<footer\b[^>]*>.*?</footer\s*>", '<footer class="crmbridge-offline-note">Rendered by '
                  "great-expectations; made self-contained by crmbridge (no scripts, nothing loaded from the "
                  "network).</footer>", page, flags=re.IGNORECASE | re.DOTALL)
    # GX's "Failed Only" toggle calls a script; datadocs.css does the same with the radio's :checked state.
    page = _TAG.sub(lambda m: _HANDLER.sub("", m.group(0)), page)
    page = re.sub(r"<style\b([^>]*)>(.*?)</style\s*>", lambda m: f"<style{m.group(1)}>{_CSS_IMPORT.sub('', m.group(2))}</style>",
                  page, flags=re.IGNORECASE | re.DOTALL)
    head = (f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="referrer" content="no-referrer">\n<style>\n{_stylesheet()}</style>\n')
    page, n = re.subn(r"(<head\b[^>]*>)", lambda m: m.group(1) + "\n" + head, page, count=1, flags=re.IGNORECASE)
    if not n:
        page = head + page
    return page


def check_self_contained(page: str, where: str) -> None:
    """Refuse a page that could still load something from outside or run a script."""
    scripts, handlers = active_content(page)
    if scripts or handlers:
        raise RunFailed(f"validate: Data Docs page {where} still carries active content ({(scripts + handlers)[0][:120]})")
    m = REMOTE_URL.search(page)
    if m:
        raise RunFailed(f"validate: Data Docs page {where} still references an external URL "
                        f"({page[m.start():m.start() + 80]!r})")


def write_data_docs(out_dir: Path, results: dict[str, Any], index_html: str) -> dict[str, str]:
    """Write one escaped, self-contained page per entity plus our own index; returns entity -> file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {}
    for entity, result in results.items():
        page = render_page(sanitize_result(result))
        name = f"{entity}.html"
        check_page(page, f"{out_dir.name}/{name}")
        page = self_contained(page)
        check_self_contained(page, f"{out_dir.name}/{name}")
        (out_dir / name).write_text(page, encoding="utf-8")
        pages[entity] = name
    (out_dir / "index.html").write_text(index_html, encoding="utf-8")
    return pages
