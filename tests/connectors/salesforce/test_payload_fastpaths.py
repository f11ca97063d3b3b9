"""The Bulk upload's CSV cells and result keys, built column by column, equal the per-cell definitions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np

from crmbridge.connectors.salesforce import bulk
from crmbridge.connectors.salesforce.values import csv_header, csv_rows, csv_value

VALUES = ["text", "", " ", "#N/A", "a,b", 'say "hi"', "line\nbreak", None, float("nan"), 1.0, 2.5, 1e16, 7, True,
          False, Decimal("1.10"), dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4), np.int64(4), np.float64(0.5)]


def test_csv_rows_equal_csv_value_per_cell():
    records = [{"Name": v, "Phone": VALUES[-1 - i]} if i % 3 else {"Name": v} for i, v in enumerate(VALUES)]
    records.append({"Other__c": "x"})
    header = csv_header(records)
    assert csv_rows(records, header) == [tuple(csv_value(r[c]) if c in r else "" for c in header) for r in records]
    assert csv_rows(records, []) == [() for _ in records]
    assert csv_rows([], header) == []


def test_input_keys_equal_input_key():
    records = [{"Legacy_Id__c": f"K{i}", "Name": f"n{i}"} for i in range(5)] + [{"Name": "no key"}]
    for op, ext in (("upsert", "Legacy_Id__c"), ("insert", None), ("upsert", "Missing__c")):
        p = bulk.Payload(op, records, ext)
        assert p.input_keys() == [p.input_key(i) for i in range(len(records))]
