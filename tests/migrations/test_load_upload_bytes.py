"""The upload CSV the load builds from the frame's columns is byte for byte the one the previous path
built (row dicts -> ``to_record`` per row -> a tuple of cells per record -> ``csv.writer``), on the
awkward values of a migration: blanks, None, NaN, full-width, CJK, emoji, quotes, commas, line breaks,
numbers, dates, booleans, relationship references, and the records of a resumed batch."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from crmbridge.connectors.salesforce import bulk
from crmbridge.connectors.salesforce.values import csv_value
from crmbridge.migrations.load import plan_batches
from crmbridge.migrations.records import (cells_chars, frame_columns, frame_records, frame_to_records, record_columns,
                                          records_of, to_record, to_records)

TEXT = ["plain", "", " ", "\u3000", "\uff21\uff22\uff23", "北京市朝阳区", "😀 emoji", 'say "hi"', "a,b", "line\nbreak",
        "cr\rhere", "crlf\r\nend", '"', ",", "\n", "#N/A", "nan", "None", "=1+1", "  trailing  ", "Ölmühle GmbH"]
OTHER = [None, float("nan"), 1.0, 1.5, 37505000.0, 0.1 + 0.2, 1e20, -0.0, float("inf"), 1, 0, -7, True, False,
         dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5), pd.Timestamp("2024-01-02 00:00:00"), pd.NaT, pd.NA,
         np.float64(2.5), np.int64(3), np.bool_(True), Decimal("12.50"), Decimal("3")]


def _old_csv(records: list[dict]) -> bytes:
    """The previous path's upload bytes: header = the keys in first-seen order, a tuple of cells per
    record (a missing key: empty), ``csv.writer`` with minimal quoting and ``\\n`` line ends."""
    header: list[str] = []
    for r in records:
        header += [k for k in r if k not in header]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    for row in (tuple("" if c not in r else csv_value(r[c]) for c in header) for r in records):
        if any("\r" in c for c in row):  # since 5 December a bare CR is quoted too: as a CRLF writer does
            one = io.StringIO()
            csv.writer(one, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(row)
            buf.write(one.getvalue()[:-2] + "\n")
        else:
            w.writerow(row)
    return buf.getvalue().encode("utf-8")


def _frame(n: int, seed: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    text = [rnd.choice(TEXT + [None, float("nan")]) for _ in range(n)]
    ids = [f"C{i:05d}" for i in range(n)]
    return pd.DataFrame({
        "Legacy_Id__c": pd.Series(ids, dtype="str"),
        "Name": pd.Series(text, dtype="str"),  # Arrow-backed text: gaps come out as NaN
        "Phone": pd.Series([rnd.choice(TEXT + [None]) for _ in range(n)], dtype=object),
        "Mixed__c": pd.Series([rnd.choice(TEXT + OTHER) for _ in range(n)], dtype=object),
        "AnnualRevenue": pd.Series([rnd.choice([1.0, 2.5, float("nan"), 1e16, 123456789.125]) for _ in range(n)]),
        "Employees": pd.Series([rnd.choice([1, None, 30]) for _ in range(n)], dtype="Int64"),
        "Active__c": pd.Series([rnd.choice([True, False]) for _ in range(n)]),
        "Since__c": pd.Series([rnd.choice([pd.Timestamp("2020-02-03"), pd.Timestamp("2021-05-06 07:08:09"), pd.NaT])
                               for _ in range(n)]),
        "Parent.Legacy_Id__c": pd.Series([rnd.choice(["P1", None, "北", float("nan")]) for _ in range(n)], dtype=object),
        "_rows": [[f"r{i}"] for i in range(n)],
    })


FIELDS = ["Legacy_Id__c", "Name", "Parent.Legacy_Id__c", "Phone", "Mixed__c", "AnnualRevenue", "Employees",
          "Active__c", "Since__c", "NotInFrame__c"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_upload_bytes_equal_previous_path(seed):
    df = _frame(400, seed)
    rows = frame_records(df)  # the row dicts, as the ledger and a resumed batch use them
    columns = frame_columns(df)
    picks = [None, sorted(random.Random(seed).sample(range(len(df)), 57)), [5]]
    for positions in picks:
        chosen = rows if positions is None else [rows[i] for i in positions]
        old_records = [to_record(r, FIELDS) for r in chosen]
        cols = record_columns(df, positions, FIELDS, columns)
        new_records = records_of(cols, FIELDS)
        assert [list(r) for r in new_records] == [list(r) for r in old_records]
        old = _old_csv(old_records)
        assert _old_csv(frame_to_records(df, positions, FIELDS)[0]) == old
        payload = bulk.Payload("upsert", new_records, "Legacy_Id__c")
        assert payload.data() == old
        assert payload.rows == [tuple("" if c not in r else csv_value(r[c]) for c in payload.header)
                                for r in old_records]
        assert payload.input_keys() == [(r["Legacy_Id__c"],) for r in old_records]
        # a resumed batch rebuilds its records from the row dicts (``run_batch``): the same bytes
        assert bulk.Payload("upsert", to_records(chosen, FIELDS), "Legacy_Id__c").data() == old
        # the batch plan from the counted characters is the one from the records themselves
        assert cells_chars(cols) >= len("".join(str(v) for r in new_records for v in r.values()))
        for max_bytes in (None, 65_536 + 20_000, 65_536 + 2_000):
            assert plan_batches(new_records, None, max_bytes, chars=cells_chars(cols)) == \
                plan_batches(new_records, None, max_bytes)


def test_float_cells_keep_their_form():
    # the reference above writes floats through csv_value: its form pinned here on its own
    cells = [1.0, 1.5, 37505000.0, 1e16, 1e15, 0.1 + 0.2, float("nan"), float("inf"), -0.0, np.float64(2.0)]
    assert [csv_value(v) for v in cells] == ["1", "1.5", "37505000", "1e+16", "1000000000000000.0", "0.30000000000000004",
                                             "#N/A", "inf", "0", "2"]


@pytest.mark.parametrize("seed", [4, 5])
def test_payload_from_the_records_columns_equals_the_payload_read_from_each_record(seed):
    # without a lookup field the load's records carry their columns (``values.ColumnRecords``): the
    # Payload takes its cells from them instead of from every dict; it must equal the dicts' Payload
    from crmbridge.connectors.salesforce.values import ColumnRecords

    df = _frame(300, seed)
    fields = [f for f in FIELDS if "." not in f]
    picks = [None, sorted(random.Random(seed).sample(range(len(df)), 41)), [7]]
    for positions in picks:
        records, chars = frame_to_records(df, positions, fields, frame_columns(df))
        assert isinstance(records, ColumnRecords)
        plain = list(records)  # the same dicts, without their columns
        assert type(plain) is list and chars == len("".join(str(v) for r in plain for v in r.values()))
        for part, part_plain in ((records, plain), (records[3:40], plain[3:40]), (records[:0], plain[:0])):
            if part:
                assert isinstance(part, ColumnRecords) and [list(c) for c in zip(*part.columns)] == \
                    [list(r.values()) for r in part_plain]
            new, old = bulk.Payload("upsert", part, "Legacy_Id__c"), bulk.Payload("upsert", part_plain, "Legacy_Id__c")
            assert (new.header, new.columns, new.rows) == (old.header, old.columns, old.rows)
            assert new.data() == old.data() == _old_csv(part_plain)
            assert new.input_keys() == old.input_keys()
    # with a lookup field a record may lack it: plain dicts, as before
    assert type(frame_to_records(df, None, FIELDS)[0]) is list
