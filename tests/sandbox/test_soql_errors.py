"""Queries Salesforce refuses, and queries outside the sandbox's subset, fail with Salesforce's error codes.

Each case is named after the defect in the query. Runs against a real SQLite database in the storage
layout (empty tables are enough: every check happens before or instead of a wrong answer).
"""

from __future__ import annotations

import sqlite3

import pytest

from crmbridge.sandbox.schema import load_schema
from crmbridge.sandbox.soql import SoqlError, execute

MALFORMED, FIELD, TYPE = "MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"
FILTER, RANGE = "INVALID_QUERY_FILTER_OPERATOR", "NUMBER_OUTSIDE_VALID_RANGE"


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    schema = load_schema()
    conn = sqlite3.connect(tmp_path_factory.mktemp("soql_err") / "org.sqlite")
    for obj in schema.objects.values():
        cols = ", ".join(f'"{f.name}" {f.sql_type}' for f in obj.fields.values())
        conn.execute(f'CREATE TABLE "{obj.name}" ({cols})')
    yield conn, schema
    conn.close()


def error(org, soql: str) -> SoqlError:
    conn, schema = org
    with pytest.raises(SoqlError) as info:
        execute(conn, schema, soql)
    return info.value


CASES = {
    # names Salesforce does not know
    "unknown_object": ("SELECT Id FROM Foo", TYPE, "sObject type 'Foo' is not supported. If you are attempting to "
                       "use a custom object, be sure to append the '__c' after the entity name."),
    "unknown_field": ("SELECT Id, Foo FROM Account", FIELD, "No such column 'Foo' on entity 'Account'. If you are "
                      "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
                      "Please reference your WSDL or the describe call for the appropriate names."),
    "custom_field_without_suffix": ("SELECT Legacy_Id FROM Account", FIELD, "No such column 'Legacy_Id'"),
    "unknown_field_in_where": ("SELECT Id FROM Account WHERE Foo = 1", FIELD, "No such column 'Foo'"),
    "unknown_field_in_order_by": ("SELECT Id FROM Account ORDER BY Foo", FIELD, "No such column 'Foo'"),
    "unknown_parent_field": ("SELECT Account.Foo FROM Contact", FIELD, "No such column 'Foo' on entity 'Account'"),
    "unknown_relationship": ("SELECT Foo.Name FROM Contact", FIELD, "Didn't understand relationship 'Foo' in field "
                             "path. If you are attempting to use a custom relationship, be sure to append the '__r'"),
    "custom_relationship_without_r": ("SELECT Product__c.Name FROM Inventory__c", FIELD,
                                      "Didn't understand relationship 'Product__c'"),
    "field_used_as_relationship": ("SELECT LastName.Name FROM Contact", FIELD, "Didn't understand relationship"),
    "relationship_selected_as_field": ("SELECT Account FROM Contact", FIELD,
                                       "No such column 'Account' on entity 'Contact'"),
    "duplicate_field": ("SELECT Id, Name, id FROM Account", FIELD, "duplicate field selected: id"),
    "duplicate_parent_field": ("SELECT Account.Name, account.name FROM Contact", FIELD, "duplicate field selected"),
    # literals of the wrong type
    "int_field_vs_string": ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", FIELD,
                            "value of filter criterion for field 'NumberOfEmployees' must be of type integer and "
                            "should not be enclosed in quotes"),
    "currency_field_vs_string": ("SELECT Id FROM Account WHERE AnnualRevenue > '5'", FIELD,
                                 "must be of type currency and should not be enclosed in quotes"),
    "double_field_in_list_vs_string": ("SELECT Id FROM Product2 WHERE Quantity_On_Hand__c IN (1, '2')", FIELD,
                                       "must be of type double"),
    "string_field_vs_number": ("SELECT Id FROM Account WHERE Name = 5", FIELD,
                               "field 'Name' must be of type string and should be enclosed in quotes"),
    "string_field_vs_boolean": ("SELECT Id FROM Account WHERE Name = true", FIELD, "must be of type string"),
    "boolean_field_vs_string": ("SELECT Id FROM User WHERE IsActive = 'true'", FIELD,
                                "field 'IsActive' must be of type boolean and should not be enclosed in quotes"),
    "date_field_vs_datetime": ("SELECT Id FROM Contact WHERE Birthdate = 2020-01-01T00:00:00Z", FIELD,
                               "field 'Birthdate' must be of type date and should not be enclosed in quotes"),
    "date_field_vs_string": ("SELECT Id FROM Contact WHERE Birthdate = '2020-01-01'", FIELD, "must be of type date"),
    "datetime_field_vs_date": ("SELECT Id FROM Account WHERE CreatedDate > 2020-01-01", FIELD,
                               "field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes"),
    "id_field_vs_number": ("SELECT Id FROM Account WHERE Id = 5", FIELD, "must be of type id"),
    "malformed_id": ("SELECT Id FROM Account WHERE Id = 'abc'", FILTER, "invalid ID field: abc"),
    "malformed_id_in_list": ("SELECT Id FROM Contact WHERE AccountId IN ('001Sb0000000001AAA', 'x')", FILTER,
                             "invalid ID field: x"),
    "id_suffix_not_a_suffix": ("SELECT Id FROM Account WHERE Id = '001Sb0000000001999'", FILTER, "invalid ID"),
    "like_on_number": ("SELECT Id FROM Account WHERE NumberOfEmployees LIKE '1%'", FIELD, "must be of type integer"),
    "like_on_id": ("SELECT Id FROM Contact WHERE AccountId LIKE '001%'", FILTER, "invalid operator on reference field"),
    "like_with_number": ("SELECT Id FROM Account WHERE Name LIKE 5", MALFORMED, "LIKE needs a string literal"),
    "range_on_boolean": ("SELECT Id FROM User WHERE IsActive > false", FILTER, "invalid operator on boolean field"),
    "range_with_null": ("SELECT Id FROM Account WHERE NumberOfEmployees > null", MALFORMED, "invalid operator >"),
    "long_textarea_filter": ("SELECT Id FROM Account WHERE Description = 'x'", FIELD,
                             "field 'Description' can not be filtered in a query call"),
    "long_textarea_order": ("SELECT Id FROM Account ORDER BY Description", FIELD,
                            "field 'Description' can not be sorted in a query call"),
    # outside the supported subset
    "having_without_group_by": ("SELECT COUNT(Id) FROM Account HAVING COUNT(Id) > 1", MALFORMED,
                                "HAVING needs a GROUP BY clause"),
    "group_by_rollup": ("SELECT Industry, COUNT(Id) FROM Account GROUP BY ROLLUP(Industry)", MALFORMED,
                        "GROUP BY ROLLUP is not supported"),
    "ungrouped_field": ("SELECT Industry, Rating FROM Account GROUP BY Industry", MALFORMED,
                        "Field must be grouped or aggregated: Rating"),
    "ungrouped_order": ("SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry ORDER BY Rating", MALFORMED,
                        "Ordered field must be grouped or aggregated: Rating"),
    "sum_of_text": ("SELECT SUM(Name) FROM Account", FIELD, "field Name does not support aggregate operator SUM"),
    "group_by_currency": ("SELECT AnnualRevenue FROM Account GROUP BY AnnualRevenue", MALFORMED,
                          "can not be grouped"),
    "aggregate_in_where": ("SELECT Industry FROM Account WHERE COUNT(Id) > 1 GROUP BY Industry", MALFORMED,
                           "COUNT() can be filtered in HAVING, not in WHERE"),
    "nested_child_subquery": ("SELECT Id, (SELECT Id, (SELECT Id FROM Contacts) FROM Contacts) FROM Account",
                              MALFORMED, "or nest another sub-query"),
    "unknown_child_relationship": ("SELECT Id, (SELECT Id FROM Nopes) FROM Account", TYPE,
                                   "Didn't understand relationship 'Nopes'"),
    "semi_join_on_text": ("SELECT Id FROM Account WHERE Name IN (SELECT AccountId FROM Contact)", FIELD,
                          "only allowed on Id or reference fields"),
    "semi_join_selects_text": ("SELECT Id FROM Account WHERE Id IN (SELECT LastName FROM Contact)", FIELD,
                               "can only select Id or reference fields"),
    "semi_join_with_limit": ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact LIMIT 5)", MALFORMED,
                             "not allowed in a semi-join"),
    "nested_semi_join": ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE AccountId IN "
                         "(SELECT Id FROM Account))", MALFORMED, "cannot contain another one"),
    "fields_all_without_limit": ("SELECT FIELDS(ALL) FROM Account", MALFORMED,
                                 "The SOQL FIELDS function must have a LIMIT of at most 200"),
    "fields_bad_kind": ("SELECT FIELDS(SOME) FROM Account", MALFORMED, "FIELDS() takes STANDARD, CUSTOM or ALL"),
    "typeof_wrong_type": ("SELECT TYPEOF Owner WHEN Account THEN Name END FROM Account", MALFORMED,
                          "Account is not a type Owner can refer to (User)"),
    "typeof_without_end": ("SELECT TYPEOF Owner WHEN User THEN Username FROM Account", MALFORMED,
                           "unexpected token: 'FROM'"),
    "typeof_else_field": ("SELECT TYPEOF Owner WHEN User THEN Username ELSE Name END FROM Account", MALFORMED,
                          "knows only Id and Type"),
    "typeof_in_aggregate": ("SELECT COUNT(Id), TYPEOF Owner WHEN User THEN Username END FROM Account", MALFORMED,
                            "TYPEOF and sub-queries cannot be used in an aggregate query"),
    "to_label": ("SELECT toLabel(Industry) FROM Account", MALFORMED,
                 "TOLABEL() is a date or conversion function the sandbox org does not evaluate"),
    "calendar_year_in_select": ("SELECT CALENDAR_YEAR(CreatedDate), COUNT(Id) FROM Account GROUP BY "
                                "CALENDAR_YEAR(CreatedDate)", MALFORMED,
                                "CALENDAR_YEAR() is a date or conversion function the sandbox org does not evaluate"),
    "date_function_in_where": ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2020", MALFORMED,
                               "CALENDAR_YEAR() in WHERE is a function the sandbox org does not evaluate"),
    "function_in_order_by": ("SELECT Id FROM Account ORDER BY MAX(Name)", MALFORMED,
                             "MAX() in ORDER BY needs an aggregate query"),
    "for_update": ("SELECT Id FROM Account FOR UPDATE", MALFORMED, "FOR UPDATE is not supported"),
    "with_security_enforced": ("SELECT Id FROM Account WITH SECURITY_ENFORCED", MALFORMED, "WITH clauses"),
    "using_scope": ("SELECT Id FROM Account USING SCOPE Mine", MALFORMED, "USING SCOPE"),
    "includes": ("SELECT Id FROM Account WHERE Industry INCLUDES ('Banking')", MALFORMED, "INCLUDES"),
    "fiscal_date_literal": ("SELECT Id FROM Account WHERE CreatedDate = THIS_FISCAL_YEAR", MALFORMED,
                            "unexpected token: 'THIS_FISCAL_YEAR'"),
    "unknown_date_literal": ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_FORTNIGHTS:2", MALFORMED,
                             "LAST_N_FORTNIGHTS"),
    "bare_identifier_value": ("SELECT Id FROM Account WHERE Name = Acme", MALFORMED, "unexpected token: 'Acme'"),
    # syntax
    "mixed_and_or_without_parentheses": ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
                                         MALFORMED, "unexpected token: 'OR'"),
    "double_quoted_string": ('SELECT Id FROM Account WHERE Name = "Acme"', MALFORMED,
                             "line 1:37 no viable alternative at character '\"'"),
    "apex_bind_variable": ("SELECT Id FROM Account WHERE Name = :name", MALFORMED, "bind variables"),
    "trailing_tokens": ("SELECT Id FROM Account a b", MALFORMED, "unexpected token: 'b'"),
    "semicolon": ("SELECT Id FROM Account;", MALFORMED, "no viable alternative at character ';'"),
    "missing_from": ("SELECT Id, Name", MALFORMED, "unexpected token: '<EOF>'"),
    "empty_select": ("SELECT FROM Account", MALFORMED, "unexpected token: 'FROM'"),
    "trailing_comma": ("SELECT Id, FROM Account", MALFORMED, "unexpected token: 'FROM'"),
    "not_select": ("DELETE FROM Account", MALFORMED, "unexpected token: 'DELETE'"),
    "sosl": ("FIND {Acme} IN ALL FIELDS", MALFORMED, "line 1:6 no viable alternative at character '{'"),
    "unterminated_string": ("SELECT Id FROM Account WHERE Name = 'Acme", MALFORMED, "unterminated string"),
    "illegal_escape": ("SELECT Id FROM Account WHERE Name = 'a\\qb'", MALFORMED,
                       "Illegal character sequence '\\q' in string literal"),
    "datetime_without_zone": ("SELECT Id FROM Account WHERE CreatedDate > 2020-01-01T00:00:00", MALFORMED,
                              "time zone"),
    "impossible_date": ("SELECT Id FROM Contact WHERE Birthdate = 2020-02-30", MALFORMED, "2020-02-30"),
    "count_with_fields": ("SELECT COUNT(), Name FROM Account", MALFORMED, "COUNT() cannot be combined"),
    "aggregate_with_field": ("SELECT COUNT(Id), Name FROM Account", MALFORMED,
                             "Field must be grouped or aggregated: Name"),
    "negative_limit": ("SELECT Id FROM Account LIMIT -1", MALFORMED, "unexpected token: '-'"),
    "limit_out_of_range": ("SELECT Id FROM Account LIMIT 2147483648", MALFORMED, "out of range"),
    "offset_before_limit": ("SELECT Id FROM Account OFFSET 1 LIMIT 1", MALFORMED, "unexpected token: 'LIMIT'"),
    "offset_over_2000": ("SELECT Id FROM Account LIMIT 10 OFFSET 2001", RANGE, "Maximum SOQL offset allowed is 2000"),
    "order_without_by": ("SELECT Id FROM Account ORDER Name", MALFORMED, "unexpected token: 'Name'"),
    "nulls_without_position": ("SELECT Id FROM Account ORDER BY Name NULLS", MALFORMED, "unexpected token"),
    "empty_in_list": ("SELECT Id FROM Account WHERE Name IN ()", MALFORMED, "unexpected token: ')'"),
    "not_like": ("SELECT Id FROM Account WHERE Name NOT LIKE 'a%'", MALFORMED, "unexpected token: 'NOT'"),
    "reserved_word_as_alias": ("SELECT Id FROM Account LIKE", MALFORMED, "unexpected token: 'LIKE'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_salesforce_error_code(org, case):
    soql, code, text = CASES[case]
    err = error(org, soql)
    assert err.error_code == code, err.message
    assert text in err.message
    assert str(err).startswith(code + ": ")


def test_multi_select_picklists_accept_null_tests_only(tmp_path):
    schema = load_schema()
    schema.extend({"objects": {"Account": {"fields": {"Regions__c": {"type": "multipicklist",
                                                                      "values": ["North", "South"]}}}}})
    conn = sqlite3.connect(tmp_path / "mpl.sqlite")
    cols = ", ".join(f'"{f.name}" {f.sql_type}' for f in schema.get("Account").fields.values())
    conn.execute(f'CREATE TABLE "Account" ({cols})')
    conn.execute('INSERT INTO "Account" ("Id", "Name", "IsDeleted", "Regions__c") '
                 "VALUES ('001Sb0000000001AAA', 'A', 0, 'South;North')")
    assert execute(conn, schema, "SELECT Regions__c FROM Account WHERE Regions__c != null").records[0][
        "Regions__c"] == "South;North"
    with pytest.raises(SoqlError) as info:
        execute(conn, schema, "SELECT Id FROM Account WHERE Regions__c = 'North;South'")
    assert info.value.error_code == MALFORMED and "multi-select" in info.value.message


def test_message_points_at_row_and_column_like_salesforce(org):
    err = error(org, "SELECT Id,\n       Nmae\nFROM Account")
    assert err.message == ("\n       Nmae\n       ^\nERROR at Row:2:Column:8\nNo such column 'Nmae' on entity "
                           "'Account'. If you are attempting to use a custom field, be sure to append the '__c' "
                           "after the custom field name. Please reference your WSDL or the describe call for the "
                           "appropriate names.")


def test_message_of_a_huge_query_echoes_a_window_only(org):
    ids = ", ".join(f"'001Sb{n:010d}'" for n in range(3000))
    err = error(org, f"SELECT Id FROM Account WHERE Id IN ({ids}) AND Nmae = 'x'")
    assert err.error_code == FIELD and len(err.message) < 600
    assert "^\nERROR at Row:1:Column:" in err.message
