"""Describe metadata is cached per connector; unknown objects are usage errors."""

import pytest

from crmbridge.errors import UsageError


def test_describe_is_cached(conn):
    d = conn.describe("Account")
    assert d["name"] == "Account"
    calls = conn.api_calls
    assert conn.describe("Account") is d
    fields = conn.field_map("Account")
    assert conn.api_calls == calls
    assert fields["Legacy_Id__c"]["externalId"] is True
    assert fields["Name"]["nillable"] is False


def test_describe_global_lists_custom_objects(conn):
    names = {o["name"] for o in conn.describe_global()["sobjects"]}
    assert {"Account", "Contact", "Inventory__c"} <= names


def test_unknown_object_suggests_the_close_name(conn):
    with pytest.raises(UsageError) as err:
        conn.describe("Acount")
    assert "'Acount' does not exist" in str(err.value)
    assert "did you mean 'Account'" in str(err.value)
