"""The pure parts: the API choice, Bulk error parsing and wire encoding of values."""

import datetime as dt
from decimal import Decimal

from crmbridge.connectors.salesforce import BULK_THRESHOLD, RowResult, choose_api
from crmbridge.connectors.salesforce.results import parse_bulk_error
from crmbridge.connectors.salesforce.values import csv_rows, rest_record


def test_threshold_is_salesforce_guidance():
    assert BULK_THRESHOLD == 2000
    assert choose_api(0) == "rest"
    assert choose_api(1999) == "rest"
    assert choose_api(2000) == "bulk"
    assert choose_api(250_000) == "bulk"


def test_bulk_error_split_keeps_colons_in_message():
    assert parse_bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --") == (
        "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ("Name",))
    assert parse_bulk_error("FIELD_CUSTOM_VALIDATION_EXCEPTION:bad value:A__c,B__c --") == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", "bad value", ("A__c", "B__c"))
    assert parse_bulk_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: --") == (
        "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())


def test_row_result_as_dict_is_plain():
    r = RowResult(key="C1", success=False, id=None, created=None, error_code="X", message="m", fields=("Name",))
    assert r.as_dict() == {"key": "C1", "success": False, "id": None, "created": None, "error_code": "X",
                           "message": "m", "fields": ["Name"]}


def test_rest_record_nests_relationship_and_keeps_null():
    rec = {"LastName": "王", "Account.Legacy_Id__c": "C1", "Birthdate": dt.date(1990, 5, 1),
           "Email": None, "Amount__c": Decimal("12.50")}
    assert rest_record(rec, "Contact") == {"attributes": {"type": "Contact"}, "LastName": "王",
                                           "Account": {"Legacy_Id__c": "C1"}, "Birthdate": "1990-05-01",
                                           "Email": None, "Amount__c": 12.5}
    # A null reference clears the lookup field rather than sending a null nested object.
    assert rest_record({"Account.Legacy_Id__c": None}, None, {"Account": "AccountId"}) == {"AccountId": None}


def test_csv_cells_null_boolean_datetime_and_missing():
    rows = csv_rows([{"A": None, "B": True, "C": dt.datetime(2024, 1, 2, 3, 4, 5)}, {"B": False}], ["A", "B", "C"])
    assert rows == [("#N/A", "true", "2024-01-02T03:04:05"), ("", "false", "")]
