"""Entities with no rows (header-only files, an incremental extract with no changes) go through
validate and map with their columns intact instead of crashing (issue 13 point 4)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest


def _header_only(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw.split(b"\n", 1)[0] + b"\n")


@pytest.fixture
def empty_project(tmp_path):
    import openpyxl

    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path / "p"
    init_project(root)
    write_demo_data(root, customers=30, erp=False)
    for name in ("sales_customers.csv", "service_customers.csv", "contracts.csv"):
        _header_only(root / "data" / name)
    wb = openpyxl.load_workbook(root / "data" / "finance_customers.xlsx")
    ws = wb.active
    ws.delete_rows(2, ws.max_row)
    wb.save(root / "data" / "finance_customers.xlsx")
    yield load_project(root)
    from crmbridge.state import dispose_all

    dispose_all()


def test_zero_row_entities_validate_and_map_with_their_columns(empty_project):
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.migrations.extracted import iter_entity_batches, read_entity
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    proj = empty_project
    run_extract(proj, allow_shrink=True)  # header-only files: deliberately empty (the guard of 13.5)
    res = run_extract(proj, allow_shrink=True)  # the SQL contacts delta finds no changes
    assert {e: v["rows_kept"] for e, v in res.entities.items()} == {"customers": 0, "contacts": 0, "contracts": 0}
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, res.run_id)

    # the Parquet files declare the columns, and reading keeps them
    contacts_file = run.dir / "extract" / "contacts" / "crm_contacts.parquet"
    assert {"contact_no", "title", "department", "_row_id"} <= set(pq.read_schema(contacts_file).names)
    customers = read_entity(run.dir, "customers")
    assert len(customers) == 0 and {"customer_no", "city", "phone", "_line"} <= set(customers.columns)
    batches = list(iter_entity_batches(run.dir, "contacts"))
    assert len(batches) == 1 and len(batches[0]) == 0 and "title" in batches[0].columns

    report = run_validate(proj, run)
    assert report.ok
    assert {e: c["rows_in"] for e, c in report.counts().items()} == {"customers": 0, "contacts": 0, "contracts": 0}

    mapped = run_map(proj, run)
    assert mapped.ok and [(s.step, s.rows_in, s.rows_out) for s in mapped.steps] == \
        [("Account", 0, 0), ("Contact", 0, 0), ("Contract", 0, 0)]
    contact_cols = pq.read_schema(run.dir / "map" / "Contact.parquet").names
    assert {"Legacy_Id__c", "Title", "Account.Legacy_Id__c"} <= set(contact_cols)


def test_skip_validation_maps_an_empty_extract(empty_project):
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state

    proj = empty_project
    run_extract(proj, allow_shrink=True)
    res = run_extract(proj, allow_shrink=True)
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, res.run_id)
    mapped = run_map(proj, run, skip_validation=True)
    assert mapped.ok and all(s.rows_in == s.rows_out == 0 for s in mapped.steps)
