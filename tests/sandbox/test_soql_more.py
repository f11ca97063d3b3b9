"""Issue 15 point 7: parent-to-child sub-queries, semi/anti-joins, GROUP BY with aggregates and HAVING,
FIELDS(); run on the same small org as test_soql.py (deleted rows included, so they must stay out)."""

from __future__ import annotations

import pytest

from crmbridge.sandbox.soql import execute
from tests.sandbox.test_soql import (A_ACME, A_GLOBEX, A_INITECH, C_ETIENNE, C_LI, C_ORPHAN, C_WANG, C_ZHANG,
                                     org)  # noqa: F401 - the same small org, as a fixture of this module



def q(org, soql: str, **kw):
    return execute(org[0], org[1], soql, **kw)


def test_child_subquery_nests_children_per_parent(org):
    res = q(org, "SELECT Name, (SELECT LastName FROM Contacts WHERE LastName != 'Wang' ORDER BY LastName) "
                 "FROM Account ORDER BY Name")
    by_name = {r["Name"]: r["Contacts"] for r in res.records}
    assert by_name["Acme Corp"]["totalSize"] == 1 and by_name["Acme Corp"]["done"] is True
    assert [c["LastName"] for c in by_name["Acme Corp"]["records"]] == ["zhang"]  # Gone is deleted, Wang filtered
    assert by_name["Acme Corp"]["records"][0]["attributes"]["type"] == "Contact"
    assert [c["LastName"] for c in by_name["Globex 50% Off_Sale"]["records"]] == ["Li"]
    assert res.total_size == 3 and "Deleted Ltd" not in by_name


def test_child_subquery_limit_is_per_parent_and_empty_is_null(org):
    res = q(org, "SELECT Id, (SELECT Id FROM Contacts ORDER BY LastName DESC LIMIT 1) FROM Account "
                 "WHERE Name = 'Acme Corp'")
    assert res.records[0]["Contacts"]["records"][0]["Id"] == C_ZHANG  # zhang > Wang case-insensitively
    none = q(org, "SELECT Id, (SELECT Id FROM Contacts WHERE LastName = 'nobody') FROM Account WHERE Id = "
                  f"'{A_ACME}'")
    assert none.records[0]["Contacts"] is None


def test_semi_join_and_anti_join(org):
    with_buyers = q(org, "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Title = 'Buyer')")
    assert [r["Id"] for r in with_buyers.records] == [A_ACME]
    without = q(org, "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact WHERE Title != null)")
    assert {r["Id"] for r in without.records} == {A_GLOBEX, A_INITECH}
    # anti-join on a reference keeps rows whose reference is null (SOQL's NOT IN keeps nulls)
    contacts = q(org, "SELECT Id FROM Contact WHERE AccountId NOT IN (SELECT Id FROM Account WHERE "
                      "Industry = 'Manufacturing')")
    assert {r["Id"] for r in contacts.records} == {C_LI, C_ORPHAN, C_ETIENNE}
    combined = q(org, "SELECT Id FROM Contact WHERE LastName LIKE '%a%' AND AccountId IN (SELECT Id FROM Account "
                      "WHERE NumberOfEmployees > 100)")
    assert {r["Id"] for r in combined.records} == {C_WANG, C_ZHANG}


def test_group_by_with_aggregates_and_having(org):
    res = q(org, "SELECT Account.Name, COUNT(Id), COUNT(Title) titled, MAX(Birthdate) latest FROM Contact "
                 "WHERE AccountId != null GROUP BY Account.Name ORDER BY COUNT(Id) DESC, Account.Name")
    assert res.records[0] == {"attributes": {"type": "AggregateResult"}, "Name": "Acme Corp", "expr0": 2,
                              "titled": 2, "latest": "1990-03-15"}
    assert [r["Name"] for r in res.records] == ["Acme Corp", "Globex 50% Off_Sale", "initech"]
    having = q(org, "SELECT AccountId, COUNT(Id) n FROM Contact GROUP BY AccountId HAVING COUNT(Id) > 1")
    assert [(r["AccountId"], r["n"]) for r in having.records] == [(A_ACME, 2)]
    nested = q(org, "SELECT AccountId, COUNT(Id) n FROM Contact GROUP BY AccountId HAVING (COUNT(Id) = 1 AND "
                    "(MAX(LastName) = 'Li' OR MAX(LastName) = 'Orphan'))")
    assert sorted(r["n"] for r in nested.records) == [1, 1] and {r["AccountId"] for r in nested.records} == {
        A_GLOBEX, None}
    sums = q(org, "SELECT Industry, SUM(AnnualRevenue) total, AVG(NumberOfEmployees) avg_emp, MIN(Name) lowest "
                  "FROM Account GROUP BY Industry HAVING Industry != null ORDER BY Industry")
    assert [(r["Industry"], r["total"], r["avg_emp"], r["lowest"]) for r in sums.records] == [
        ("Banking", None, None, "initech"), ("Manufacturing", 1234.5, 120.0, "Acme Corp")]


def test_group_by_ignores_case_and_counts_distinct(org):
    conn, _ = org
    res = q(org, "SELECT COUNT_DISTINCT(OwnerId) owners, COUNT(Id) FROM Contact")
    assert (res.records[0]["owners"], res.records[0]["expr0"]) == (2, 5)
    grouped = q(org, "SELECT OwnerId, COUNT(Id) FROM Contact GROUP BY OwnerId")
    assert sorted(r["expr0"] for r in grouped.records) == [2, 3] and grouped.total_size == 2


def test_fields_standard_custom_all(org):
    std = q(org, f"SELECT FIELDS(STANDARD) FROM Account WHERE Id = '{A_ACME}'")
    rec = std.records[0]
    assert rec["Name"] == "Acme Corp" and "Legacy_Id__c" not in rec and "OwnerId" in rec
    custom = q(org, f"SELECT FIELDS(CUSTOM) FROM Account WHERE Id = '{A_ACME}' LIMIT 1").records[0]
    assert custom["Legacy_Id__c"] == "L-001" and "Name" not in custom
    every = q(org, f"SELECT Id, FIELDS(ALL) FROM Account WHERE Id = '{A_ACME}' LIMIT 200").records[0]
    assert every["Legacy_Id__c"] == "L-001" and every["Name"] == "Acme Corp"


def test_typeof_on_a_relationship(org):
    from tests.sandbox.test_soql import U1, U2

    res = q(org, "SELECT Name, TYPEOF Owner WHEN User THEN Username, IsActive ELSE Id END FROM Account "
                 "ORDER BY Name")
    owners = {r["Name"]: r["Owner"] for r in res.records}
    assert owners["Acme Corp"] == {"attributes": {"type": "User", "url": f"/services/data/v62.0/sobjects/User/{U1}"},
                                   "Username": "boss@example.com", "IsActive": True}
    assert owners["Globex 50% Off_Sale"]["Username"] == "rep@example.com"
    assert owners["Globex 50% Off_Sale"]["attributes"]["url"].endswith(U2)
