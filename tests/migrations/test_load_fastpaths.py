"""The load's and reconcile's column-wise fast paths give exactly what the per-cell code gave.

Each fast path (content hashes, records for the upload, reconcile's comparison form, the read-back
by CSV column position) is checked value by value against the plain per-cell definition it replaces,
on awkward values: blanks, null-like text, the hash separator, numbers as text and as floats,
booleans next to 1 and 1.0, dates, full-width spaces.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from crmbridge.cells import to_native
from crmbridge.migrations import readback
from crmbridge.migrations.hashing import canonical, canonical_column, canonical_fast, frame_hashes, record_hash
from crmbridge.migrations.reconcile import _normed, norm
from crmbridge.migrations.records import to_record, to_records

AWKWARD = ["plain", "", " ", "\u3000", "nan", "NaT", "<NA>", "None", "a\x1fb", "0012", "+86 21 6234 5678",
           "1234", "1234.0", "-0.5", ".5", "1e5", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000+0800",
           "2024-01-02", "Ölmühle GmbH", "北京市", "=1+1", None, float("nan"), 1.0, 1.5, 37505000.0, 0.1 + 0.2,
           1, 0, True, False, -7, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5),
           pd.Timestamp("2024-01-02 00:00:00"), np.float64(2.5), np.int64(3), pd.NA, pd.NaT]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def test_canonical_column_is_canonical_per_value():
    assert canonical_column(AWKWARD) == [canonical(v) for v in AWKWARD]
    assert [canonical_fast(v) for v in AWKWARD] == [canonical(v) for v in AWKWARD]


def test_frame_hashes_equal_record_hash_per_row():
    n = len(AWKWARD)
    df = pd.DataFrame({"Name": pd.Series(AWKWARD, dtype=object),
                       "Phone": pd.Series(list(reversed(AWKWARD)), dtype=object),
                       "City": pd.Series([v if isinstance(v, str) else None for v in AWKWARD], dtype="str"),
                       "AnnualRevenue": pd.Series([float(i) if i % 3 else float("nan") for i in range(n)]),
                       "Employees": pd.Series(range(n), dtype="Int64")})
    fields = ["Phone", "Name", "City", "AnnualRevenue", "Employees", "NotInFrame__c"]
    # the cells as the per-row code saw them (``to_dict`` would box numpy scalars into Python ones)
    cols = {c: df[c].astype(object).tolist() for c in df.columns}
    rows = [{c: cols[c][i] for c in cols} for i in range(n)]
    assert frame_hashes(df, fields) == [record_hash(r, fields) for r in rows]
    assert frame_hashes(df.iloc[:0], fields) == []


def test_to_record_equals_to_native_per_cell():
    fields = ["Name", "Parent.Legacy_Id__c"]
    for v in AWKWARD:
        row = {"Name": v, "Parent.Legacy_Id__c": v}
        old = {f: to_native(row.get(f)) for f in fields}
        if old["Parent.Legacy_Id__c"] is None:
            del old["Parent.Legacy_Id__c"]
        new = to_record(row, fields)
        assert list(new) == list(old) and all(_same(new[k], old[k]) for k in old), v


def test_to_records_equals_to_record_per_row():
    rows = [{"Name": v, "Parent.Legacy_Id__c": w, "AnnualRevenue": w}
            for v, w in zip(AWKWARD, AWKWARD[::-1])] + [{"Name": "only a name"}]
    for fields in (["Name", "Parent.Legacy_Id__c", "AnnualRevenue", "Missing__c"], ["Name"], [],
                   ["Parent.Legacy_Id__c", "Name", "Parent.Legacy_Id__c"]):
        new, old = to_records(rows, fields), [to_record(r, fields) for r in rows]
        assert [list(r) for r in new] == [list(r) for r in old], fields
        assert all(_same(a[k], b[k]) for a, b in zip(new, old) for k in a)
    assert to_records([], ["Name"]) == []


def test_normed_equals_norm_per_value():
    values = AWKWARD + AWKWARD[::-1] + ["1", 1, 1.0, True, "true", "1"]
    assert _normed(values) == [norm(v) for v in values]
    col = pd.Series([v if isinstance(v, str) else None for v in AWKWARD] * 2, dtype="str")
    assert _normed(col) == [norm(v) for v in col.to_numpy(dtype=object)]
    # long text columns are screened in one Arrow pass: every character Python calls whitespace, number
    # starts and the null-like texts, first and elsewhere, must come out as norm() makes them
    spaces = [c for c in map(chr, range(0x3001)) if c.isspace()] + ["\u200b", "\ufeff"]
    texts = [s for v in AWKWARD if isinstance(v, str) for s in (v, v + " x", "x" + v)]
    texts += [c + t for c in spaces + list("0123456789+-.nN<") for t in ("", "abc", "1", "an")]
    texts += [c for c in spaces] + ["nan", "NaT", "<NA>", "None", "Nancy", "x\x1fy"]
    texts += ["\uff11\uff12\uff13", "\u0663\u0664", "-\uff11.5", "123\n", "0.50\n", "12a", "1-2", "001Sb0000000001IAA",
              "91110000JYG9HRXRXK", "2024-01-02T03:04:05Z\n", "2024-01-02T03:04", "2024-01-02 03:04",
              "\uff12\uff10\uff12\uff14-\uff10\uff11-\uff10\uff12T\uff10\uff13:\uff10\uff14", "+86 21 1234", "+8621",
              "1e5", "0012", "-", ".", "+", "..", "1.2.3", "021-6234 5678", "+86-21-1234", "13812345678",
              "1.5\n", "-.5", "+.5\n", "5.", "+-5", "--5", "5-", "\u0661\u0662.\u0663", "1\n\n", "\n1", "1 ", "1.5.",
              "0.0", "-0", "+0.50"]
    big = (texts * (1 + 2000 // len(texts)))[:2500]
    assert len(big) > 1000
    for values in (big, pd.Series(big + [None], dtype="str"), np.array(big + [float("nan")], dtype=object),
                   big + [1.0], big + [b"bytes"]):
        expect = [norm(v) for v in (values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else values)]
        assert _normed(values) == expect


def test_checksum_of_a_column_equals_the_checksum_of_its_cells_listed():
    from crmbridge.migrations.reconcile import _checksum

    cells = [v for v in AWKWARD if isinstance(v, str)] * 3 + ["", "1234.5", "北京", "😀"]
    col = pd.Series(cells, index=[f"k{i}" for i in range(len(cells))], dtype=object)
    listed = np.asarray(list(col), dtype=object)  # the cells copied into a list first, as it was done
    expect = f"{int(pd.util.hash_array(listed, categorize=False).sum(dtype=np.uint64)) % (1 << 64):016x}"
    assert _checksum(col) == _checksum(cells) == expect
    assert _checksum(col[::-1]) == expect and _checksum(col[1:]) != expect
    assert _checksum(pd.Series([], dtype=object)) == _checksum([]) == f"{0:016x}"


class _Conn:
    """A connector answering Bulk queries from fixed CSV pages (with or without the raw-page method)."""

    def __init__(self, pages, raw: bool | str):
        self._pages = pages
        if raw:
            self.query_bulk_pages = lambda soql, expect_rows=None: iter(self._pages)
        if raw == "columns":  # the pages as the CSV text the org sends, read column-wise
            from crmbridge.connectors.salesforce.query import page_columns
            from crmbridge.connectors.salesforce.values import to_csv

            self.query_bulk_columns = lambda soql, names, expect_rows=None: (
                page_columns(to_csv(h, rows), names) for h, rows in self._pages)
        self.clock_skew = 0.0

    def query_bulk(self, soql, expect_rows=None):
        for header, rows in self._pages:
            for r in rows:
                yield dict(zip(header, r))

    def query(self, soql):  # REST: parents as nested dicts
        for header, rows in self._pages:
            for r in rows:
                rec = {}
                for h, v in zip(header, r):
                    head, _, tail = h.partition(".")
                    if tail:
                        rec.setdefault(head, {})[tail] = v
                    else:
                        rec[h] = v
                yield rec


def _lower(keys):
    return [k.lower() for k in keys]


@pytest.mark.parametrize("n", [3, readback.REST_KEYS + 5])
def test_read_back_by_column_position_equals_dicts(n):
    header = ["Id", "Legacy_Id__c", "Name", "Parent.Legacy_Id__c"]
    rows = [[f"001{i:015d}", f"K{i}", f"name {i}", f"P{i % 3}" if i % 4 else ""] for i in range(n)]
    rows.append(["001XXXXXXXXXXXXXXX", "OTHER", "not ours", ""])  # outside the run: dropped
    pages = [(header, rows[: n // 2]), (header[::-1], [r[::-1] for r in rows[n // 2:]])]
    keys = [f"K{i}" for i in range(n)]
    cols = ["Name", "Parent.Legacy_Id__c", "Missing__c"]
    a = readback.read_back(_Conn(pages, raw=True), "Account", "Legacy_Id__c", cols, keys, [], None, _lower)
    b = readback.read_back(_Conn(pages, raw=False), "Account", "Legacy_Id__c", cols, keys, [], None, _lower)
    c = readback.read_back(_Conn(pages, raw="columns"), "Account", "Legacy_Id__c", cols, keys, [], None, _lower)
    assert a == b == c
    assert len(a[0]) == n and a[0][1] == ("001000000000000001", "K1", "name 1", "P1", None)


def _result_files_as_they_were(out_dir, step, df, fields, per_record, ext):
    """``write_result_files`` before the column-wise keys and the one-write encoding (the reference)."""
    from crmbridge.migrations.loadfiles import STATUS

    led = per_record.set_index("external_id")
    keys = df[ext].map(canonical)
    base = df[fields].copy()
    base["_source_key"] = df["_source_key"] if "_source_key" in df.columns else None
    action = keys.map(led["action"])
    ok = action.isin(list(STATUS))
    success = pd.concat([pd.DataFrame({"ID": keys[ok].map(led["sf_id"])}), base[ok]], axis=1)
    success["STATUS"] = action[ok].map(STATUS)
    failed = action == "failed"
    error = base[failed].copy()
    code, msg = keys[failed].map(led["error_code"]), keys[failed].map(led["message"])
    error["ERROR"] = [f"{c}:{m}" if m else str(c) for c, m in zip(code, msg)]
    ok_path, err_path = out_dir / f"{step}_success.csv", out_dir / f"{step}_error.csv"
    success.to_csv(ok_path, index=False, encoding="utf-8-sig")
    error.to_csv(err_path, index=False, encoding="utf-8-sig")
    return ok_path, err_path


@pytest.mark.parametrize("outcomes", ["mixed", "all_succeeded", "some_without_ledger_entry"])
def test_result_files_equal_the_per_cell_writer(tmp_path, outcomes):
    """Same bytes as the reference whatever the outcomes: every row in the success file (the frame
    taken whole), a mix, and rows the ledger has no entry for (in neither file)."""
    from crmbridge.migrations.loadfiles import write_result_files

    texts = [v for v in AWKWARD if isinstance(v, str)] + ['say "hi", then', "two\nlines", "cr\r\nlf", "=SUM(A1)"]
    n = len(texts)
    df = pd.DataFrame({"Legacy_Id__c": pd.Series([f"K{i}" if i % 5 else f" K{i}" for i in range(n)], dtype="str"),
                       "Name": pd.Series(texts, dtype="str"),
                       "AnnualRevenue": pd.Series([float(i) / 3 if i % 4 else float("nan") for i in range(n)]),
                       "Employees": pd.Series(range(n), dtype="Int64"),
                       "_source_key": pd.Series(texts[::-1], dtype=object)})
    actions = ["created", "updated", "unchanged"] if outcomes == "all_succeeded" else ["created", "updated",
                                                                                        "unchanged", "failed"]
    per_record = pd.DataFrame({"external_id": [canonical(k) for k in df["Legacy_Id__c"]],
                               "sf_id": [f"001{i:015d}" if i % 4 != 3 else None for i in range(n)],
                               "action": [actions[i % len(actions)] for i in range(n)],
                               "error_code": ["REQUIRED_FIELD_MISSING" if i % 4 == 3 else None for i in range(n)],
                               "message": ["缺失: [Name]" if i % 8 == 3 else "" if i % 8 == 7 else None
                                           for i in range(n)]}, dtype=object)
    if outcomes == "some_without_ledger_entry":
        per_record = per_record.iloc[::3]
    fields = ["Legacy_Id__c", "Name", "AnnualRevenue", "Employees"]
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = _result_files_as_they_were(tmp_path / "old", "Account", df, fields, per_record, "Legacy_Id__c")
    new = write_result_files(tmp_path / "new", "Account", df, fields, per_record, "Legacy_Id__c")
    for a, b in zip(old, new):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    assert new[0].read_bytes().startswith(b"\xef\xbb\xbfID,") and b"Item Unchanged" in new[0].read_bytes()
    assert (b"REQUIRED_FIELD_MISSING" in new[1].read_bytes()) == (outcomes != "all_succeeded")
