"""DML over REST sObject Collections and Bulk API 2.0: one result per input row, in order."""

from __future__ import annotations

import pytest

APIS = ["rest", "bulk"]


def _accounts(tag, n, start=0):
    return [{"Name": f"{tag} 公司 {i}", "Legacy_Id__c": f"{tag}-{i}", "NumberOfEmployees": i}
            for i in range(start, start + n)]


def _by_legacy(conn, tag):
    return {r["Legacy_Id__c"]: r for r in conn.query(
        f"SELECT Id, Name, Legacy_Id__c, NumberOfEmployees, Phone FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'")}


@pytest.mark.parametrize("api", APIS)
def test_insert_update_upsert_delete_roundtrip(conn, tag, api):
    rows = _accounts(tag, 5)
    keys = [r["Legacy_Id__c"] for r in rows]
    ins = conn.dml("insert", "Account", rows, keys=keys, api=api)
    assert [r.key for r in ins] == keys
    assert all(r.success and r.created and r.id.startswith("001") and len(r.id) == 18 for r in ins), ins
    stored = _by_legacy(conn, tag)
    assert {k: stored[k]["Id"] for k in keys} == {r.key: r.id for r in ins}

    upd = conn.dml("update", "Account", [{"Id": r.id, "Phone": f"021-{i}"} for i, r in enumerate(ins)],
                   keys=keys, api=api)
    assert all(r.success for r in upd), upd
    assert _by_legacy(conn, tag)[keys[3]]["Phone"] == "021-3"

    ups = conn.dml("upsert", "Account", [{"Legacy_Id__c": f"{tag}-4", "Name": "renamed"},
                                         {"Legacy_Id__c": f"{tag}-new", "Name": "fresh"}],
                   external_id_field="Legacy_Id__c", api=api)
    assert [(r.success, r.created) for r in ups] == [(True, False), (True, True)], ups
    assert ups[0].id == ins[4].id
    assert _by_legacy(conn, tag)[f"{tag}-4"]["Name"] == "renamed"

    dels = conn.dml("delete", "Account", [{"Id": r.id} for r in ins], keys=keys, api=api)
    assert all(r.success for r in dels), dels
    assert set(_by_legacy(conn, tag)) == {f"{tag}-new"}


@pytest.mark.parametrize("api", APIS)
def test_row_errors_are_results_in_input_order(conn, tag, api):
    conn.dml("insert", "Account", [{"Name": "existing", "Legacy_Id__c": f"{tag}-dup"}], api="rest")
    rows = [
        {"Name": "ok 1", "Legacy_Id__c": f"{tag}-1"},
        {"Legacy_Id__c": f"{tag}-2"},                                   # Name missing
        {"Name": "dup", "Legacy_Id__c": f"{tag}-dup"},                  # unique external id taken
        {"Name": "ok 2", "Legacy_Id__c": f"{tag}-3"},
    ]
    res = conn.dml("insert", "Account", rows, keys=["a", "b", "c", "d"], api=api)
    assert [r.key for r in res] == ["a", "b", "c", "d"]
    assert [r.success for r in res] == [True, False, False, True]
    assert res[1].error_code == "REQUIRED_FIELD_MISSING" and "Name" in res[1].fields
    assert res[2].error_code == "DUPLICATE_VALUE"
    assert res[0].id != res[3].id


@pytest.mark.parametrize("api", APIS)
def test_parent_by_external_id_and_bad_reference(conn, tag, api):
    conn.dml("insert", "Account", [{"Name": "parent", "Legacy_Id__c": f"{tag}-P"}], api="rest")
    contacts = [
        {"LastName": "欧阳", "Legacy_Id__c": f"{tag}-c1", "Account.Legacy_Id__c": f"{tag}-P"},
        {"LastName": "司马", "Legacy_Id__c": f"{tag}-c2", "Account.Legacy_Id__c": f"{tag}-missing"},
    ]
    res = conn.dml("upsert", "Contact", contacts, external_id_field="Legacy_Id__c", api=api)
    assert res[0].success, res[0]
    assert not res[1].success and res[1].error_code in ("INVALID_FIELD", "INVALID_CROSS_REFERENCE_KEY"), res[1]
    got = list(conn.query(f"SELECT LastName, Account.Legacy_Id__c FROM Contact WHERE Legacy_Id__c = '{tag}-c1'"))
    assert got == [{"LastName": "欧阳", "Account": {"Legacy_Id__c": f"{tag}-P"}}]


@pytest.mark.parametrize("api", APIS)
def test_null_clears_a_field(conn, tag, api):
    [r] = conn.dml("insert", "Account", [{"Name": "n", "Legacy_Id__c": f"{tag}-n", "Phone": "123"}], api="rest")
    [u] = conn.dml("update", "Account", [{"Id": r.id, "Phone": None}], api=api)
    assert u.success, u
    assert _by_legacy(conn, tag)[f"{tag}-n"]["Phone"] is None


def test_rows_without_id_or_external_id_fail_locally(conn, tag):
    res = conn.dml("update", "Account", [{"Name": "x"}, {"Id": None}])
    assert [r.error_code for r in res] == ["MISSING_ARGUMENT", "MISSING_ARGUMENT"]
    res = conn.dml("upsert", "Account", [{"Name": "x"}, {"Name": "y", "Legacy_Id__c": f"{tag}-y"}],
                   external_id_field="Legacy_Id__c")
    assert [r.success for r in res] == [False, True]


def test_identical_insert_rows_each_get_their_own_id_over_bulk(conn, tag):
    rows = [{"Name": f"{tag} twin"}] * 3 + [{"Name": f"{tag} other"}]
    res = conn.dml("insert", "Account", rows, keys=["a", "b", "c", "d"], api="bulk")
    assert all(r.success for r in res) and len({r.id for r in res}) == 4


def test_auto_picks_bulk_at_the_threshold(conn, tag):
    from crmbridge.connectors.salesforce import BULK_THRESHOLD

    jobs = []
    rows = _accounts(tag, BULK_THRESHOLD)
    res = conn.dml("insert", "Account", rows, on_job=jobs.append)
    assert len(jobs) == 1 and len(res) == BULK_THRESHOLD and all(r.success for r in res)
    assert [r.key for r in res] == [str(i) for i in range(BULK_THRESHOLD)]
    small = conn.dml("insert", "Account", _accounts(tag, 3, start=BULK_THRESHOLD), on_job=jobs.append)
    assert len(jobs) == 1 and all(r.success for r in small)


def test_bad_calls_are_usage_errors(conn):
    from crmbridge.errors import UsageError

    with pytest.raises(UsageError, match="external_id_field"):
        conn.dml("upsert", "Account", [{"Name": "x"}])
    with pytest.raises(UsageError, match="unknown DML operation"):
        conn.dml("merge", "Account", [{"Name": "x"}])
    with pytest.raises(UsageError, match="one key per record"):
        conn.dml("insert", "Account", [{"Name": "x"}], keys=["a", "b"])


def test_a_bare_carriage_return_goes_up_quoted_and_comes_back_as_sent(conn, tag):
    """Python's CSV writer with LF line ends leaves a cell holding a bare CR unquoted; the Bulk guide asks
    for quotes around anything that could read as a line ending. Rows without one stay byte-identical."""
    import csv
    import io

    from crmbridge.connectors.salesforce.values import to_csv

    header = ["Name", "Legacy_Id__c", "Description"]
    rows = [("plain", "k1", 'say "hi", then go'), ("cr", "k2", "line1\rline2"), ("both", "k3", "a\r\nb,\"c\"\rd")]
    text = to_csv(header, rows)
    assert text.splitlines(keepends=False)[1] == 'plain,k1,"say ""hi"", then go"'
    assert '"line1\rline2"' in text and "\ncr,k2,line1\r" not in text
    assert [tuple(r) for r in csv.reader(io.StringIO(text, newline=""))] == [tuple(header), *rows]
    plain = to_csv(header, rows[:1])
    ref = io.StringIO()
    csv.writer(ref, lineterminator="\n").writerows([header, rows[0]])
    assert plain == ref.getvalue()

    recs = [{"Name": f"{tag} {n}", "Legacy_Id__c": f"{tag}-{k}", "Description": d} for n, k, d in rows]
    res = conn.dml("upsert", "Account", recs, external_id_field="Legacy_Id__c", api="bulk")
    assert all(r.success for r in res), res
    back = {r["Legacy_Id__c"]: r["Description"] for r in conn.query(
        f"SELECT Legacy_Id__c, Description FROM Account WHERE Legacy_Id__c LIKE '{tag}-%'")}
    assert back == {f"{tag}-{k}": d for _, k, d in rows}
