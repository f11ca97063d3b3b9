"""Held-back children in validate (issue 12 point 3): a child whose parent is missing or was itself
quarantined is quarantined, and its ``ref.`` reason says which, and why the parent was refused."""

from __future__ import annotations

from crmbridge.csvout import read_frame
from crmbridge.validation.stage import run_validate


def test_ref_reason_tells_missing_from_quarantined_parent(case_run):
    project, run = case_run
    run_validate(project, run)
    customers = read_frame(run.dir / "validate" / "quarantine" / "customers.csv")
    parent_reasons = customers.set_index("customer_no").loc["C000003", "_reasons"]
    assert parent_reasons  # the case file's C000003 is quarantined for its own reasons
    contacts = read_frame(run.dir / "validate" / "quarantine" / "contacts.csv").set_index("_row_id")

    missing = contacts.loc["crm_contacts:3", "_reasons"]
    assert missing == ("ref.customer_no: customer_no 'C999999' matches no valid customers row (customer_no): "
                       "parent_missing: no customers row has customer_no='C999999'")

    held = contacts.loc["crm_contacts:4", "_reasons"]
    assert held.startswith("ref.customer_no: customer_no 'C000003' matches no valid customers row (customer_no): "
                           "parent_quarantined: the customers row customer_no='C000003' was quarantined [")
    assert held.endswith("[" + parent_reasons.replace("; ", " | ") + "]")
    assert "; " not in held  # one reason of the child: the parent's own reasons are kept apart

    contracts = read_frame(run.dir / "validate" / "quarantine" / "contracts.csv").set_index("_row_id")
    assert "parent_missing: no customers row has customer_no='C999999'" in contracts.loc["contracts:6", "_reasons"]
