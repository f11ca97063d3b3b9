"""The sandbox's SOQL engine against a real SQLite database in the sandbox storage layout.

Tables are created from the default schema exactly as the storage contract says (one table per object,
one column per field, ``Id`` primary key); rows are inserted directly, so these tests exercise only
the SOQL engine: result shape, every supported construct and Salesforce's semantics where they differ
from SQL's.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from crmbridge.sandbox.schema import Schema, load_schema
from crmbridge.sandbox.soql import QueryResult, SoqlError, compile_query, execute, flatten, to18
from crmbridge.sandbox.soql_lex import date_range

STAMP = "2026-01-05T08:00:00.000+0000"


def make_id(prefix: str, n: int) -> str:
    return to18(f"{prefix}Sb0{n:09d}")


def create_db(path: Path) -> tuple[sqlite3.Connection, Schema]:
    schema = load_schema()
    conn = sqlite3.connect(path, isolation_level=None)
    for obj in schema.objects.values():
        cols = ", ".join(f'"{f.name}" {f.sql_type}' + (" PRIMARY KEY" if f.name == "Id" else "")
                         for f in obj.fields.values())
        conn.execute(f'CREATE TABLE "{obj.name}" ({cols})')
    return conn, schema


def insert(conn: sqlite3.Connection, obj: str, **values) -> str:
    row = {"IsDeleted": 0, "CreatedDate": STAMP, "LastModifiedDate": STAMP, "SystemModstamp": STAMP, **values}
    cols = ", ".join(f'"{k}"' for k in row)
    conn.execute(f'INSERT INTO "{obj}" ({cols}) VALUES ({", ".join("?" for _ in row)})', list(row.values()))
    return row["Id"]


# Users, accounts and contacts the tests below query.
U1, U2 = make_id("005", 1), make_id("005", 2)
A_ACME, A_GLOBEX, A_INITECH, A_DELETED = (make_id("001", n) for n in (1, 2, 3, 4))
C_WANG, C_LI, C_ZHANG, C_ORPHAN, C_ETIENNE, C_DELETED = (make_id("003", n) for n in (1, 2, 3, 4, 5, 6))


def fill(conn: sqlite3.Connection) -> None:
    insert(conn, "User", Id=U1, Username="boss@example.com", LastName="Boss", Email="boss@example.com",
           Alias="boss", IsActive=1)
    insert(conn, "User", Id=U2, Username="rep@example.com", LastName="Rep", Email="rep@example.com",
           Alias="rep", IsActive=0)
    insert(conn, "Account", Id=A_ACME, Name="Acme Corp", OwnerId=U1, NumberOfEmployees=120,
           AnnualRevenue=1234.5, Industry="Manufacturing", Legacy_Id__c="L-001", BillingCity="Shanghai",
           CreatedDate="2026-01-01T00:00:00.000+0000")
    insert(conn, "Account", Id=A_GLOBEX, Name="Globex 50% Off_Sale", OwnerId=U2, NumberOfEmployees=8,
           AnnualRevenue=5000.0, Industry=None, Legacy_Id__c="L-002", BillingCity="北京",
           CreatedDate="2025-12-31T15:59:59.000+0000")
    insert(conn, "Account", Id=A_INITECH, Name="initech", OwnerId=U1, NumberOfEmployees=None,
           AnnualRevenue=None, Industry="Banking", Legacy_Id__c="L-003", BillingCity="O'Hare\\Field",
           CreatedDate="2025-12-31T16:00:00.000+0000")
    insert(conn, "Account", Id=A_DELETED, Name="Deleted Ltd", OwnerId=U1, IsDeleted=1, Legacy_Id__c="L-004")
    insert(conn, "Contact", Id=C_WANG, LastName="Wang", FirstName="Wei", AccountId=A_ACME, OwnerId=U1,
           Birthdate="1990-03-15", Email="wang@acme.example", Title="Buyer")
    insert(conn, "Contact", Id=C_LI, LastName="Li", FirstName="Na", AccountId=A_GLOBEX, OwnerId=U2,
           Birthdate="1985-12-01", Title=None)
    insert(conn, "Contact", Id=C_ZHANG, LastName="zhang", FirstName=None, AccountId=A_ACME, OwnerId=U2,
           Birthdate=None, Title="CEO")
    insert(conn, "Contact", Id=C_ORPHAN, LastName="Orphan", AccountId=None, OwnerId=U1, Title="")
    insert(conn, "Contact", Id=C_ETIENNE, LastName="ÉTIENNE", AccountId=A_INITECH, OwnerId=U1)
    insert(conn, "Contact", Id=C_DELETED, LastName="Gone", AccountId=A_ACME, OwnerId=U1, IsDeleted=1)


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    conn, schema = create_db(tmp_path_factory.mktemp("soql") / "org.sqlite")
    fill(conn)
    yield conn, schema
    conn.close()


def q(org, soql: str, **kw) -> QueryResult:
    conn, schema = org
    return execute(conn, schema, soql, **kw)


def ids(org, soql: str, **kw) -> set[str]:
    return {r["Id"] for r in q(org, soql, **kw).records}


def url(obj: str, rid: str, version: str = "62.0") -> str:
    return f"/services/data/v{version}/sobjects/{obj}/{rid}"


# --------------------------------------------------------------------------------------- result shape

def test_record_shape_nests_parents_with_attributes_and_schema_casing(org):
    res = q(org, "select id, lastname, account.name, ACCOUNT.owner.USERNAME from contact where lastname = 'WANG'")
    assert res.total_size == 1 and not res.is_count
    assert res.records == [{
        "attributes": {"type": "Contact", "url": url("Contact", C_WANG)},
        "Id": C_WANG,
        "LastName": "Wang",
        "Account": {
            "attributes": {"type": "Account", "url": url("Account", A_ACME)},
            "Name": "Acme Corp",
            "Owner": {"attributes": {"type": "User", "url": url("User", U1)}, "Username": "boss@example.com"},
        },
    }]
    assert list(res.records[0]) == ["attributes", "Id", "LastName", "Account"]
    assert res.columns == ["Id", "LastName", "Account.Name", "Account.Owner.Username"]


def test_null_parent_is_null_and_keys_follow_select_order(org):
    res = q(org, "SELECT Account.Name, LastName, Account.Industry FROM Contact WHERE LastName = 'Orphan'")
    assert res.records == [{"attributes": {"type": "Contact", "url": url("Contact", C_ORPHAN)},
                            "Account": None, "LastName": "Orphan"}]
    assert flatten(res.records[0], res.columns) == [None, "Orphan", None]


def test_values_come_back_typed_like_salesforce_json(org):
    rec = q(org, "SELECT Name, NumberOfEmployees, AnnualRevenue, IsDeleted, CreatedDate, Owner.IsActive "
                 "FROM Account WHERE Name = 'Acme Corp'").records[0]
    assert rec["NumberOfEmployees"] == 120 and type(rec["NumberOfEmployees"]) is int
    assert rec["AnnualRevenue"] == 1234.5 and type(rec["AnnualRevenue"]) is float
    assert rec["IsDeleted"] is False and rec["Owner"]["IsActive"] is True
    assert rec["CreatedDate"] == "2026-01-01T00:00:00.000+0000"
    globex = q(org, "SELECT AnnualRevenue, Industry FROM Account WHERE Name LIKE 'Globex%'").records[0]
    assert type(globex["AnnualRevenue"]) is float and globex["Industry"] is None
    wang = q(org, "SELECT Birthdate, Title FROM Contact WHERE Id = '" + C_WANG + "'").records[0]
    assert wang["Birthdate"] == "1990-03-15" and wang["Title"] == "Buyer"
    orphan = q(org, f"SELECT Title FROM Contact WHERE Id = '{C_ORPHAN}'").records[0]
    assert orphan["Title"] is None  # Salesforce stores no empty strings


def test_shaping_leaves_the_garbage_collector_as_it_found_it(org):
    import gc

    assert gc.isenabled()
    q(org, "SELECT Id, Account.Name FROM Contact")
    assert gc.isenabled()
    gc.disable()
    try:
        q(org, "SELECT Id, Account.Name FROM Contact")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_api_version_goes_into_record_urls(org):
    rec = q(org, f"SELECT Id FROM Contact WHERE Id = '{C_LI}'", api_version="58.0").records[0]
    assert rec["attributes"]["url"] == url("Contact", C_LI, "58.0")


def test_flatten_gives_bulk_csv_cells(org):
    res = q(org, "SELECT Name, NumberOfEmployees, AnnualRevenue, Owner.IsActive, Industry FROM Account "
                 "ORDER BY Name")
    assert [flatten(r, res.columns) for r in res.records] == [
        ["Acme Corp", "120", "1234.5", "true", "Manufacturing"],
        ["Globex 50% Off_Sale", "8", "5000.0", "false", None],
        ["initech", None, None, "true", "Banking"],
    ]


# ------------------------------------------------------------------------------------------------ counts

def test_count_returns_size_and_no_records(org):
    res = q(org, "SELECT COUNT() FROM Contact")
    assert (res.total_size, res.records, res.is_count, res.columns) == (5, [], True, [])
    assert q(org, "SELECT COUNT() FROM Contact WHERE Account.Name = 'ACME CORP'").total_size == 2
    assert q(org, "SELECT COUNT() FROM Contact LIMIT 3").total_size == 3
    assert q(org, "SELECT COUNT() FROM Contact", include_deleted=True).total_size == 6


def test_count_of_field_is_an_aggregate_result(org):
    res = q(org, "SELECT COUNT(Id), COUNT(Title) titled, COUNT(Account.Industry) FROM Contact")
    assert not res.is_count and res.total_size == 1
    # Orphan's '' title counts as the null Salesforce would have stored.
    assert res.records == [{"attributes": {"type": "AggregateResult"}, "expr0": 5, "titled": 2, "expr1": 3}]
    assert res.columns == ["expr0", "titled", "expr1"]
    assert flatten(res.records[0], res.columns) == ["5", "2", "3"]


# ------------------------------------------------------------------------------------------------- WHERE

@pytest.mark.parametrize("where, expected", [
    ("LastName = 'ZHANG'", {C_ZHANG}),
    ("LastName = 'étienne'", {C_ETIENNE}),  # case-insensitive beyond ASCII
    ("LastName IN ('wang', 'LI', 'Nobody')", {C_WANG, C_LI}),
    ("LastName IN ('étienne', 'WANG')", {C_WANG, C_ETIENNE}),
    ("LastName LIKE 'éti%'", {C_ETIENNE}),
    ("LastName LIKE 'w_ng'", {C_WANG}),
    ("LastName LIKE 'é_ienne'", {C_ETIENNE}),  # non-ASCII case folding with a wildcard
    ("LastName LIKE 'é\\_%'", set()),
    ("LastName LIKE '%TIENNE'", {C_ETIENNE}),
    ("LastName NOT IN ('ÉTIENNE', 'wang', 'li', 'orphan')", {C_ZHANG}),
    ("LastName > 'x'", {C_ZHANG, C_ETIENNE}),
    ("Title != 'buyer'", {C_LI, C_ZHANG, C_ORPHAN, C_ETIENNE}),  # != keeps nulls, unlike SQL
    ("Title <> 'buyer'", {C_LI, C_ZHANG, C_ORPHAN, C_ETIENNE}),
    ("Title NOT IN ('Buyer', 'ceo')", {C_LI, C_ORPHAN, C_ETIENNE}),
    ("NOT Title = 'CEO'", {C_WANG, C_LI, C_ORPHAN, C_ETIENNE}),
    ("Title = null", {C_LI, C_ORPHAN, C_ETIENNE}),
    ("Title = ''", {C_LI, C_ORPHAN, C_ETIENNE}),
    ("Title != null", {C_WANG, C_ZHANG}),
    ("Title != ''", {C_WANG, C_ZHANG}),
    ("Title IN ('CEO', null)", {C_ZHANG, C_LI, C_ORPHAN, C_ETIENNE}),
    ("Birthdate > 1989-01-01", {C_WANG}),
    ("Birthdate = 1985-12-01", {C_LI}),
    ("Birthdate < 1990-03-15", {C_LI}),
    ("Birthdate <= 1990-03-15", {C_WANG, C_LI}),
    ("Birthdate IN (1985-12-01, 1990-03-15)", {C_WANG, C_LI}),
    ("Account.Name = 'acme corp'", {C_WANG, C_ZHANG}),
    ("Account.Name = null", {C_ORPHAN}),  # a missing parent reads as null (API 13.0 and later)
    ("Account.Name != 'Acme Corp'", {C_LI, C_ORPHAN, C_ETIENNE}),
    ("Account.Owner.Username = 'REP@example.com'", {C_LI}),
    ("Account.Owner.IsActive = false", {C_LI, C_ORPHAN}),  # a boolean is false, never null
    ("(LastName = 'Wang' OR LastName = 'Li') AND Account.Name LIKE 'Glob%'", {C_LI}),
    ("LastName = 'Wang' OR (LastName = 'Li' AND Title = null) OR LastName = 'Orphan'", {C_WANG, C_LI, C_ORPHAN}),
    ("NOT (Account.Name = 'Acme Corp' OR Account.Name = null)", {C_LI, C_ETIENNE}),
    ("NOT NOT LastName = 'Li'", {C_LI}),
    ("OwnerId = '" + U2 + "' AND Birthdate != null", {C_LI}),
])
def test_where_on_contacts(org, where, expected):
    assert ids(org, f"SELECT Id FROM Contact WHERE {where}") == expected


@pytest.mark.parametrize("where, expected", [
    ("NumberOfEmployees > 10", {A_ACME}),
    ("NumberOfEmployees <= 8", {A_GLOBEX}),
    ("NumberOfEmployees >= 8 AND NumberOfEmployees < 120", {A_GLOBEX}),
    ("NumberOfEmployees > -5", {A_ACME, A_GLOBEX}),
    ("NumberOfEmployees = null", {A_INITECH}),
    ("NumberOfEmployees != 8", {A_ACME, A_INITECH}),
    ("NumberOfEmployees IN (8, 120)", {A_ACME, A_GLOBEX}),
    ("NumberOfEmployees NOT IN (8)", {A_ACME, A_INITECH}),
    ("AnnualRevenue >= 1234.5", {A_ACME, A_GLOBEX}),
    ("AnnualRevenue = 5000", {A_GLOBEX}),
    ("AnnualRevenue < +1234.50", set()),
    ("Industry != 'Banking'", {A_ACME, A_GLOBEX}),
    ("Industry NOT IN ('Manufacturing')", {A_GLOBEX, A_INITECH}),
    ("Legacy_Id__c IN ('l-001', 'L-003')", {A_ACME, A_INITECH}),
    ("Name LIKE 'ACME%'", {A_ACME}),
    ("Name LIKE '%0\\%%'", {A_GLOBEX}),  # \% is a literal percent sign
    ("Name LIKE '%f\\_S%'", {A_GLOBEX}),  # \_ is a literal underscore
    ("Name LIKE '%e%'", {A_ACME, A_GLOBEX, A_INITECH}),
    ("Name LIKE 'Acme'", set()),
    ("BillingCity = 'O\\'Hare\\\\Field'", {A_INITECH}),  # SOQL escapes \' and \\
    ("BillingCity = '北京'", {A_GLOBEX}),
    ("BillingCity = '\\u5317\\u4eac'", {A_GLOBEX}),
    ("BillingCity LIKE '北%'", {A_GLOBEX}),
    ("CreatedDate >= 2026-01-01T00:00:00Z", {A_ACME}),
    ("CreatedDate >= 2026-01-01T00:00:00+08:00", {A_ACME, A_INITECH}),  # = 2025-12-31T16:00:00Z
    ("CreatedDate < 2026-01-01T00:00:00.000+08:00", {A_GLOBEX}),
    ("CreatedDate = 2025-12-31T16:00:00.000Z", {A_INITECH}),
    ("CreatedDate = 2025-12-31T11:00:00-05:00", {A_INITECH}),
    ("(Industry = 'Banking' OR NumberOfEmployees > 100) AND NOT Name LIKE 'init%'", {A_ACME}),
    ("Owner.Username LIKE 'boss@%' AND Parent.Name = null", {A_ACME, A_INITECH}),
])
def test_where_on_accounts(org, where, expected):
    assert ids(org, f"SELECT Id FROM Account WHERE {where}") == expected


@pytest.mark.parametrize("where, expected", [
    ("IsActive = true", {U1}), ("IsActive = FALSE", {U2}), ("IsActive != true", {U2}),
    ("IsActive = null", {U2}), ("IsActive != null", {U1}), ("IsActive IN (true)", {U1}),
])
def test_boolean_filters_treat_null_as_false(org, where, expected):
    assert ids(org, f"SELECT Id FROM User WHERE {where}") == expected


def test_ids_match_in_15_and_18_character_forms_whatever_the_case(org):
    assert ids(org, f"SELECT Id FROM Contact WHERE Id = '{C_WANG[:15]}'") == {C_WANG}
    assert ids(org, f"SELECT Id FROM Contact WHERE Id = '{C_WANG.lower()}'") == {C_WANG}
    assert ids(org, f"SELECT Id FROM Contact WHERE AccountId IN ('{A_ACME[:15]}', '{A_GLOBEX}')") == \
        {C_WANG, C_ZHANG, C_LI}
    assert ids(org, f"SELECT Id FROM Contact WHERE AccountId != '{A_ACME}'") == {C_LI, C_ORPHAN, C_ETIENNE}
    assert ids(org, f"SELECT Id FROM Contact WHERE Id > '{C_ORPHAN}'") == {C_ETIENNE}


def test_to18_restores_the_case_an_18_character_id_spells():
    canonical = "001Sb000000001aIAA"  # I: only the S (bit 3) of the first chunk is upper case
    assert to18("001Sb000000001a") == canonical
    assert to18("001sb000000001AIAA") == canonical
    assert to18(canonical.lower()) == canonical
    assert to18("001Sb00000000!a") is None and to18("001") is None and to18("001Sb000000001a999") is None


def test_literals_are_bound_not_interpolated(org):
    conn, _ = org
    assert ids(org, "SELECT Id FROM Contact WHERE LastName = 'x\\' OR \\'1\\'=\\'1'") == set()
    assert ids(org, "SELECT Id FROM Contact WHERE LastName = 'Li\\'); DROP TABLE \"Contact\"; --'") == set()
    assert conn.execute('SELECT COUNT(*) FROM "Contact"').fetchone()[0] == 6


def test_compiled_sql_binds_every_literal(org):
    _, schema = org
    compiled = compile_query(schema, "SELECT Id FROM Account WHERE Name = 'Robert' AND NumberOfEmployees > 5 "
                                     "AND Legacy_Id__c IN ('K1', 'K2') LIMIT 3 OFFSET 1")
    assert "Robert" not in compiled.sql and "K1" not in compiled.sql and " 5" not in compiled.sql
    assert compiled.params == ("Robert", 5, "K1", "K2", 3, 1)
    assert not compiled.is_count
    assert compile_query(schema, "SELECT COUNT() FROM Account").is_count


# ---------------------------------------------------------------------------------------- date literals

NOW = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("where, expected", [
    ("CreatedDate = TODAY", {A_ACME}),
    ("CreatedDate = YESTERDAY", {A_GLOBEX, A_INITECH}),
    ("CreatedDate > YESTERDAY", {A_ACME}),
    ("CreatedDate < TODAY", {A_GLOBEX, A_INITECH}),
    ("CreatedDate <= YESTERDAY", {A_GLOBEX, A_INITECH}),
    ("CreatedDate >= TODAY", {A_ACME}),
    ("CreatedDate != TODAY", {A_GLOBEX, A_INITECH}),
    ("CreatedDate = LAST_N_DAYS:1", {A_ACME, A_GLOBEX, A_INITECH}),
    ("CreatedDate = THIS_YEAR", {A_ACME}),
    ("CreatedDate = LAST_YEAR", {A_GLOBEX, A_INITECH}),
    ("CreatedDate = LAST_MONTH", {A_GLOBEX, A_INITECH}),
    ("CreatedDate = N_DAYS_AGO:1", {A_GLOBEX, A_INITECH}),
    ("CreatedDate = NEXT_N_DAYS:5", set()),
    ("CreatedDate IN (TODAY, TOMORROW)", {A_ACME}),
])
def test_relative_date_literals_on_datetime_fields(org, where, expected):
    assert ids(org, f"SELECT Id FROM Account WHERE {where}", now=NOW) == expected


def test_relative_date_literals_on_date_fields(org):
    march = datetime(1990, 3, 20, tzinfo=timezone.utc)
    assert ids(org, "SELECT Id FROM Contact WHERE Birthdate = THIS_MONTH", now=march) == {C_WANG}
    assert ids(org, "SELECT Id FROM Contact WHERE Birthdate = LAST_N_DAYS:5", now=march) == {C_WANG}
    assert ids(org, "SELECT Id FROM Contact WHERE Birthdate = LAST_N_DAYS:4", now=march) == set()
    assert ids(org, "SELECT Id FROM Contact WHERE Birthdate < THIS_YEAR", now=march) == {C_LI}


@pytest.mark.parametrize("literal, today, expected", [
    ("THIS_WEEK", date(2026, 1, 7), (date(2026, 1, 4), date(2026, 1, 11))),  # weeks start on Sunday
    ("LAST_WEEK", date(2026, 1, 4), (date(2025, 12, 28), date(2026, 1, 4))),
    ("NEXT_N_DAYS:3", date(2026, 1, 30), (date(2026, 1, 31), date(2026, 2, 3))),
    ("LAST_N_DAYS:2", date(2026, 3, 1), (date(2026, 2, 27), date(2026, 3, 2))),
    ("N_DAYS_AGO:2", date(2026, 3, 1), (date(2026, 2, 27), date(2026, 2, 28))),
    ("LAST_N_MONTHS:2", date(2026, 1, 15), (date(2025, 11, 1), date(2026, 1, 1))),
    ("NEXT_N_MONTHS:1", date(2026, 12, 15), (date(2027, 1, 1), date(2027, 2, 1))),
    ("THIS_QUARTER", date(2026, 5, 9), (date(2026, 4, 1), date(2026, 7, 1))),
    ("LAST_QUARTER", date(2026, 2, 9), (date(2025, 10, 1), date(2026, 1, 1))),
    ("N_QUARTERS_AGO:1", date(2026, 5, 9), (date(2026, 1, 1), date(2026, 4, 1))),
    ("LAST_N_YEARS:2", date(2026, 5, 9), (date(2024, 1, 1), date(2026, 1, 1))),
    ("N_WEEKS_AGO:1", date(2026, 1, 7), (date(2025, 12, 28), date(2026, 1, 4))),
    ("NEXT_N_WEEKS:2", date(2026, 1, 7), (date(2026, 1, 11), date(2026, 1, 25))),
    ("LAST_90_DAYS", date(2026, 4, 1), (date(2026, 1, 1), date(2026, 4, 2))),
])
def test_date_literal_ranges(literal, today, expected):
    name, _, n = literal.partition(":")
    assert date_range(name, int(n) if n else None, today) == expected


# ---------------------------------------------------------------------------------- ORDER BY, LIMIT, OFFSET

def names(res: QueryResult, key: str = "LastName") -> list:
    return [r[key] for r in res.records]


def test_order_by_text_ignores_case_and_takes_several_keys(org):
    asc = q(org, "SELECT LastName FROM Contact WHERE LastName != 'ÉTIENNE' ORDER BY LastName")
    assert names(asc) == ["Li", "Orphan", "Wang", "zhang"]
    desc = q(org, "SELECT LastName FROM Contact WHERE LastName != 'ÉTIENNE' ORDER BY LastName DESC")
    assert names(desc) == ["zhang", "Wang", "Orphan", "Li"]
    multi = q(org, "SELECT LastName FROM Contact ORDER BY Account.Name DESC NULLS LAST, LastName ASC")
    assert names(multi) == ["ÉTIENNE", "Li", "Wang", "zhang", "Orphan"]  # initech > Globex > Acme


def test_order_by_null_placement_defaults_like_salesforce(org):
    base = "SELECT Name FROM Account ORDER BY NumberOfEmployees"
    assert names(q(org, base), "Name") == ["initech", "Globex 50% Off_Sale", "Acme Corp"]  # ASC: nulls first
    assert names(q(org, base + " DESC"), "Name") == ["Acme Corp", "Globex 50% Off_Sale", "initech"]  # nulls last
    assert names(q(org, base + " ASC NULLS LAST"), "Name") == ["Globex 50% Off_Sale", "Acme Corp", "initech"]
    assert names(q(org, base + " DESC NULLS FIRST"), "Name") == ["initech", "Acme Corp", "Globex 50% Off_Sale"]
    titles = q(org, "SELECT Title FROM Contact WHERE Title != 'CEO' ORDER BY Title NULLS LAST, LastName")
    assert names(titles, "Title") == ["Buyer", None, None, None]


def test_limit_and_offset_page_through_an_ordered_result(org):
    base = "SELECT LastName FROM Contact ORDER BY LastName"
    full = names(q(org, base))
    assert names(q(org, base + " LIMIT 2")) == full[:2]
    assert names(q(org, base + " LIMIT 2 OFFSET 2")) == full[2:4]
    assert names(q(org, base + " OFFSET 3")) == full[3:]
    assert q(org, base + " LIMIT 0").records == []


# ------------------------------------------------------------------------------- deleted rows, aliases

def test_deleted_rows_only_with_query_all(org):
    assert C_DELETED not in ids(org, "SELECT Id FROM Contact")
    every = q(org, "SELECT Id, IsDeleted FROM Contact WHERE LastName = 'Gone'", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in every.records] == [(C_DELETED, True)]
    assert ids(org, "SELECT Id FROM Account WHERE Name LIKE 'Deleted%'") == set()
    # ALL ROWS is Apex-only: the API refuses it (issue 15: it used to return deleted rows through /query)
    with pytest.raises(SoqlError) as e:
        q(org, "SELECT Id FROM Account WHERE Name LIKE 'Deleted%' ALL ROWS")
    assert e.value.error_code == "MALFORMED_QUERY" and "ALL ROWS not allowed in this context" in e.value.message


def test_object_alias_prefixes_paths(org):
    res = q(org, "SELECT c.LastName, c.Account.Name FROM Contact c WHERE c.LastName = 'Li' ORDER BY c.Id")
    assert res.records[0]["Account"]["Name"] == "Globex 50% Off_Sale"
    assert res.columns == ["LastName", "Account.Name"]


def test_for_view_is_accepted_and_changes_nothing(org):
    assert ids(org, "SELECT Id FROM Contact WHERE LastName = 'Li' FOR VIEW") == {C_LI}


def test_custom_relationship_and_multiline_query(tmp_path):
    conn, schema = create_db(tmp_path / "custom.sqlite")
    prod = make_id("01t", 1)
    insert(conn, "Product2", Id=prod, Name="Widget", IsActive=1)
    insert(conn, "Inventory__c", Id=make_id("a00", 1), Name="INV-1", Product__c=prod, Warehouse__c="SH",
           On_Hand__c=3.0, Is_Active__c=1)
    res = execute(conn, schema, "SELECT Name, Product__r.Name,\n  Product__r.IsActive\nFROM Inventory__c\n"
                                "WHERE Product__r.Name = 'widget'\n  AND On_Hand__c > 2")
    assert res.records[0]["Product__r"]["Name"] == "Widget"
    assert res.columns == ["Name", "Product__r.Name", "Product__r.IsActive"]
    assert flatten(res.records[0], res.columns) == ["INV-1", "Widget", "true"]


def test_connection_with_row_factory(tmp_path):
    conn, schema = create_db(tmp_path / "rows.sqlite")
    conn.row_factory = sqlite3.Row
    fill(conn)
    assert execute(conn, schema, "SELECT COUNT() FROM Contact").total_size == 5
    res = execute(conn, schema, "SELECT LastName, Account.Name FROM Contact WHERE LastName = 'li'")
    assert res.records[0]["Account"]["Name"] == "Globex 50% Off_Sale"
    agg = execute(conn, schema, "SELECT COUNT(Id) n FROM Contact")
    assert agg.records[0]["n"] == 5
