"""Fixtures for the validation tests: a project over the defect case files, extracted for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"
TEMPLATE_DEFINITION = Path(__file__).parents[2] / "templates" / "project" / "definitions" / "customer.yml"

HEADERS_CN = """      客户编号: customer_no
      客户名称: name
      统一社会信用代码: credit_code
      电话: phone
      邮箱: email
      地址: address
      城市: city
      省份: province
      邮编: postal_code
      国家: country
      行业: industry
      状态: status
      销售代表: sales_rep
      创建日期: created_on
"""

PROJECT_YML = f"""name: validation-cases
sources:
  - name: sales_customers
    entity: customers
    department: sales
    type: csv
    path: data/customers_sales__messy_values.csv
    key: customer_no
    columns:
{HEADERS_CN}      年营业额: annual_revenue
      商机数: open_opportunities
  - name: service_customers
    entity: customers
    department: service
    type: csv
    path: data/customers_service__gb18030_semicolon.csv
    encoding: gb18030
    delimiter: ";"
    key: customer_no
    columns:
{HEADERS_CN}      服务合同数: service_contracts
  - name: crm_contacts
    entity: contacts
    department: sales
    type: csv
    path: data/contacts__orphans_and_duplicates.csv
    key: contact_no
  - name: contracts
    entity: contracts
    department: finance
    type: csv
    path: data/contracts__bad_dates_amounts_statuses.csv
    key: contract_no
"""


def make_project(root: Path, definition: Path = TEMPLATE_DEFINITION):
    """A project folder with the case files as sources and ``definition`` as its customer definition."""
    from crmbridge.config import load_project

    (root / "data").mkdir(parents=True, exist_ok=True)
    for f in CASES.glob("*.csv"):
        shutil.copyfile(f, root / "data" / f.name)
    (root / "definitions").mkdir(exist_ok=True)
    shutil.copyfile(definition, root / "definitions" / "customer.yml")
    (root / "crmbridge.yml").write_text(PROJECT_YML, encoding="utf-8")
    return load_project(root)


def extract(project):
    """Run the real extract stage; returns the run."""
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state

    res = run_extract(project)
    return open_run(open_state(project.state_url), project.runs_dir, res.run_id)


def _extracted_demo(root: Path, customers: int):
    """(project, run): a project from the template with ``customers`` demo customers (no ERP), extracted."""
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(root)
    write_demo_data(root, customers=customers, erp=False)
    project = load_project(root)
    return project, extract(project)


@pytest.fixture
def extracted_demo():
    """``extracted_demo(root, customers) -> (project, run)``: the template project with demo data, extracted."""
    return _extracted_demo


@pytest.fixture
def case_run(tmp_path):
    """(project, run) with the case files extracted."""
    project = make_project(tmp_path / "proj")
    return project, extract(project)


@pytest.fixture
def project_factory():
    """``make(root, definition=...) -> project`` and ``extract(project) -> run`` for custom cases."""
    return make_project, extract


@pytest.fixture
def template_definition():
    return TEMPLATE_DEFINITION
