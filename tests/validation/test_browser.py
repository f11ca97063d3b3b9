"""Reports opened in a real headless Chromium with hostile legacy data: nothing executes, the
markup shows as text. Covers our own reports and the (escaped) great-expectations Data Docs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from crmbridge.validation.datadocs import active_content
from crmbridge.validation.stage import run_validate

pytestmark = pytest.mark.browser

HOSTILE = "customers_sales__hostile_markup.csv"
PROJECT_YML = """name: hostile
sources:
  - name: sales_customers
    entity: customers
    department: sales
    type: csv
    path: data/{file}
    key: customer_no
    columns: {{客户编号: customer_no, 客户名称: name, 统一社会信用代码: credit_code, 电话: phone, 邮箱: email,
              地址: address, 城市: city, 省份: province, 邮编: postal_code, 国家: country, 行业: industry,
              状态: status, 销售代表: sales_rep, 创建日期: created_on, 年营业额: annual_revenue,
              商机数: open_opportunities}}
"""


def dump_dom(exe: str, page: Path, profile: Path) -> str:
    """The page's DOM after its scripts (if any) ran, as Chromium serialises it."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=3000", "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    from crmbridge.config import load_project
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state

    root = tmp_path_factory.mktemp("hostile")
    cases = Path(__file__).parent / "cases"
    (root / "data").mkdir()
    shutil.copyfile(cases / HOSTILE, root / "data" / HOSTILE)
    (root / "definitions").mkdir()
    shutil.copyfile(Path(__file__).parents[2] / "templates" / "project" / "definitions" / "customer.yml",
                    root / "definitions" / "customer.yml")
    (root / "crmbridge.yml").write_text(PROJECT_YML.format(file=HOSTILE), "utf-8")
    project = load_project(root)
    run = open_run(open_state(project.state_url), project.runs_dir, run_extract(project).run_id)
    report = run_validate(project, run)
    return run.dir / "validate", report


PAGES = ["report.html", "disagreement.html", "data_docs/index.html", "data_docs/customers.html"]


@pytest.mark.parametrize("page", PAGES)
def test_hostile_values_render_as_text(chromium, hostile_run, page, tmp_path):
    exe = chromium
    vdir, _ = hostile_run
    dom = dump_dom(exe, vdir / page, tmp_path / "profile")
    assert "PWNED" not in dom.split("</title>")[0], "a script from the data ran and changed the title"
    scripts, handlers = active_content(dom)
    assert not [h for h in handlers if "PWNED" in h or "javascript:" in h]
    assert not [s for s in scripts if "PWNED" in s]
    assert "<iframe" not in dom and "<svg" not in dom


def test_markup_is_visible_text(chromium, hostile_run, tmp_path):
    exe = chromium
    vdir, _ = hostile_run
    dom = dump_dom(exe, vdir / "report.html", tmp_path / "profile")
    # Serialised text nodes escape "<": the names are there, as text.
    assert "&lt;script&gt;document.title='PWNED-SCRIPT'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=\"document.title='PWNED-IMG'\"&gt;" in dom
    docs = dump_dom(exe, vdir / "data_docs" / "customers.html", tmp_path / "profile2")
    assert "&lt;script&gt;document.title=" in docs or "&amp;lt;script&amp;gt;document.title=" in docs
    dis = dump_dom(exe, vdir / "disagreement.html", tmp_path / "profile3")
    assert "C000001" in dis


def test_unescaped_gx_page_would_have_run_the_script(chromium, hostile_run, tmp_path):
    """The control: GX's own rendering of the same data executes the planted markup, so the checks
    above are able to fail, and ``check_page`` refuses such a page."""
    from crmbridge.migrations.extracted import read_entity
    from crmbridge.validation import datadocs
    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.gxsuite import run_rules
    from crmbridge.validation.normalise import normalise
    from crmbridge.validation.rules import RuleContext, compile_rules, referenced_columns

    exe = chromium
    vdir, _ = hostile_run
    rules_def = load_definition(vdir.parents[2] / "definitions" / "customer.yml").entities["customers"]
    rules = compile_rules("customers", rules_def)
    frame = normalise(read_entity(vdir.parent, "customers"), rules_def, referenced_columns(rules)).frame
    raw_page = datadocs.render_page(run_rules("customers", frame, rules, RuleContext()).gx_result)
    raw = tmp_path / "raw.html"
    raw.write_text(raw_page, "utf-8")
    dom = dump_dom(exe, raw, tmp_path / "profile")
    assert "PWNED" in dom.split("</title>")[0]
    with pytest.raises(Exception, match="active content"):
        datadocs.check_page(raw_page, "raw.html")
