"""Map's quarantine for stewards (issue 16 point 4): the columns validate's files have, the legacy value
of the source column behind each Salesforce field a reason names, and a quarantined parent's own reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crmbridge.mappings.engine import ParentKeys, map_step
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.stage import steward_view

MAPS = load_mappings(Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings")


def test_contract_quarantine_has_shared_columns_legacy_values_and_parent_reason():
    df = pd.DataFrame({"contract_no": ["HT1", "HT2", "HT3", "HT5"], "customer_no": ["C1", "C1", "C2", "C1"],
                       "start_date": ["2023-01-05", "2023-01-05", "2023-01-05", "2023-01-05"],
                       "end_date": ["2024-01-04", "2024-01-04", "2024-01-04", "2026-01-04"],
                       "amount": ["1234.5"] * 4, "status": ["Activated", "Terminated", "Activated", "作废"],
                       "payment_terms": ["30天", "预付", "60天", "预付"],
                       "_row_id": [f"contracts:{i}" for i in (1, 2, 3, 5)]}, dtype=object)
    raw = df.copy()
    raw["status"] = ["已生效", "已终止", "已生效", "作废 "]  # as extracted, before validate normalised it
    raw["amount"] = ["¥1,234.50"] * 4
    parents = {("account", "Legacy_Id__c"): ParentKeys(frozenset({"C1"}), frozenset({"C2"}))}
    step = MAPS.by_name("Contract")
    out = map_step(step, df, parents=parents)
    q = steward_view(step, out.quarantine, raw,
                     {"Account.Legacy_Id__c": {"C2": "required_missing: Name"}}).set_index("contract_no")
    assert list(q.columns[:4]) == ["_stage", "_reasons", "_blocking", "_warnings"]
    assert "_reason" not in q.columns and set(q["_stage"]) == {"map"}
    # filtered on purpose: a reason, but nothing blocking
    assert q.loc["HT2", "_reasons"] == "filtered: terminated contracts are not migrated"
    assert pd.isna(q.loc["HT2", "_blocking"])
    # the Status field's source column gets its legacy value beside it, in the row whose reason names it
    assert q.loc["HT5", "_blocking"] == "transform_failed: Status (value_map) on '作废'"
    cols = list(q.columns)
    assert cols.index("status (legacy)") == cols.index("status") + 1
    assert q.loc["HT5", "status (legacy)"] == "作废 " and pd.isna(q.loc["HT2", "status (legacy)"])
    # a parent quarantined by map names its own reason
    assert q.loc["HT3", "_reasons"] == ("parent_quarantined: Account.Legacy_Id__c=C2 "
                                        "[Account C2 is itself quarantined: required_missing: Name]")
