"""sync.yml is checked offline with file, line and field in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmbridge.errors import ConfigError
from crmbridge.sync.config import load_sync_config

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "project" / "sync.yml"
CASES = Path(__file__).with_name("cases")


def test_template_is_valid():
    cfg = load_sync_config(TEMPLATE)
    names = [o.name for o in cfg.objects]
    assert names == ["customers", "contracts", "products", "inventory", "receivables", "account_balances"]
    cust = cfg.object("customers")
    assert cust.owner_of("BillingCity") == "both" and cust.conflict_of("BillingCity") == "queue"
    assert cust.owner_of("Credit_Limit__c") == "erp" and cust.reads_salesforce
    assert not cfg.object("inventory").reads_salesforce


@pytest.mark.parametrize("case, line, words", [
    ("sync__both_owner_without_conflict_policy.yml", 9, ["BillingCity", "conflict"]),
    ("sync__unknown_key_typo.yml", 7, ["unknown field 'onwer'", "did you mean 'owner'"]),
    ("sync__create_erp_without_new_key.yml", 4, ["new_key"]),
    ("sync__bad_cron.yml", 2, ["not a valid 5-field cron"]),
    ("sync__soft_delete_without_field.yml", 2, ["salesforce_field"]),
    ("sync__query_with_salesforce_owned_field.yml", 7, ["read only"]),
    ("sync__erp_url_with_literal_password.yml", 2, ["{env: NAME}"]),
])
def test_bad_config_names_file_line_and_field(case, line, words):
    with pytest.raises(ConfigError) as ei:
        load_sync_config(CASES / case)
    msg = str(ei.value)
    assert msg.startswith(f"{CASES / case}:{line}:"), msg
    for w in words:
        assert w in msg, msg
    assert "s3cret" not in msg
