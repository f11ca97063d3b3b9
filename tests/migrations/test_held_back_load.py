"""Held-back children at load (issue 12 point 3): children of a parent Salesforce rejected in this run
are not sent; they are recorded as ``parent_rejected`` with the parent's own error, and load once the
parent does."""

from __future__ import annotations

import csv

from crmbridge.migrations import ledger as L
from crmbridge.migrations.holdback import lookup_columns
from crmbridge.migrations.load import run_load
from crmbridge.state import open_state


def _contacts_of(helpers, n_accounts: int):
    return helpers.contacts(2 * n_accounts, accounts=n_accounts)  # contact i -> account i % n


def test_children_of_a_rejected_parent_are_held_back(project, sf, mapped_run, helpers):
    accounts = helpers.accounts(6, merged_every=0)
    accounts.loc[4, "Name"] = None  # Salesforce rejects C000004: REQUIRED_FIELD_MISSING
    run = mapped_run(accounts, _contacts_of(helpers, 6))
    acc, con = run_load(project, run, connector=sf).steps
    assert (acc.created, acc.failed) == (5, 1) and acc.error_codes == {"REQUIRED_FIELD_MISSING": 1}
    assert (con.created, con.failed) == (10, 2) and con.error_codes == {"parent_rejected": 2}
    led = L.ledger_frame(open_state(project.state_url), run.run_id, "Contact")
    held = led[led["action"] == "failed"].sort_values("external_id")
    assert held["external_id"].tolist() == ["P0000004", "P0000010"]
    assert held["error_code"].unique().tolist() == ["parent_rejected"]
    assert held["message"].iloc[0].startswith("Account.Legacy_Id__c=C000004 was not loaded (REQUIRED_FIELD_MISSING")
    # never sent: the org holds exactly the contacts of the loaded accounts
    assert sorted(helpers.org_keys(sf, "Contact")) == sorted(f"P{i:07d}" for i in range(12) if i % 6 != 4)
    with open(con.error_file, encoding="utf-8-sig", newline="") as f:
        errors = list(csv.DictReader(f))
    assert sorted(e["Legacy_Id__c"] for e in errors) == ["P0000004", "P0000010"]
    assert all(e["ERROR"].startswith("parent_rejected:Account.Legacy_Id__c=C000004 was not loaded") for e in errors)

    # loading the same run again (resume) sends nothing new and keeps every source row once
    again = run_load(project, run, connector=sf).steps[1]
    assert (again.created, again.failed) == (10, 2)
    assert len(L.ledger_frame(open_state(project.state_url), run.run_id, "Contact")) == 12

    # the next run, with the parent fixed, loads the parent and then its children
    fixed = helpers.accounts(6, merged_every=0)
    run2 = mapped_run(fixed, _contacts_of(helpers, 6))
    acc2, con2 = run_load(project, run2, connector=sf).steps
    assert (acc2.created, acc2.unchanged, acc2.failed) == (1, 5, 0)
    assert (con2.created, con2.unchanged, con2.failed) == (2, 10, 0)
    assert sorted(helpers.org_keys(sf, "Contact")) == sorted(f"P{i:07d}" for i in range(12))


def test_a_parent_the_org_already_holds_does_not_hold_back(project, sf, mapped_run, helpers):
    run_load(project, mapped_run(helpers.accounts(3, merged_every=0), _contacts_of(helpers, 3)), connector=sf)
    accounts = helpers.accounts(3, merged_every=0)
    accounts.loc[1, "Name"] = None  # the update of C000001 is rejected; the record stays in the org
    contacts = _contacts_of(helpers, 3)
    contacts.loc[1, "FirstName"] = "改"  # a changed child of C000001
    acc, con = run_load(project, mapped_run(accounts, contacts), connector=sf).steps
    assert acc.failed == 1 and acc.unchanged == 2
    assert (con.updated, con.failed, con.unchanged) == (1, 0, 5)


def test_lookup_columns_from_the_plan_or_by_naming():
    step = {"parents": ["Account", "Region__c"],
            "lookups": [{"column": "Parent.Legacy_Id__c", "object": "Account", "external_id": "Legacy_Id__c"}]}
    assert lookup_columns(step, ["Name", "Parent.Legacy_Id__c"]) == [("Parent.Legacy_Id__c", "Account", "Legacy_Id__c")]
    old = {"parents": ["Account", "Region__c"]}
    assert lookup_columns(old, ["Account.Legacy_Id__c", "Region__r.Code__c", "Owner.Alias", "_row_id"]) == \
        [("Account.Legacy_Id__c", "Account", "Legacy_Id__c"), ("Region__r.Code__c", "Region__c", "Code__c")]
