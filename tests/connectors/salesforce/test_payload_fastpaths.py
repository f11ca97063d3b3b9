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


def _each_by_rows(text, key_cols, *extra):
    """``bulk._each`` as it was: every row parsed by ``read_csv``, cells taken by position."""
    from crmbridge.connectors.salesforce.values import read_csv

    header, rows = read_csv(text)
    pos = {c: i for i, c in enumerate(header)}
    out = []
    for r in rows:
        r = r + [""] * (len(header) - len(r))
        out.append((tuple(r[pos[c]] if c in pos else "" for c in key_cols),
                    *(r[pos[c]] if c in pos else "" for c in extra)))
    return out


def test_results_read_column_wise_equal_the_rows_read_by_csv_reader():
    from crmbridge.connectors.salesforce.values import read_csv_columns, to_csv

    cells = [str(v) if v is not None else "" for v in VALUES] + ["公司 \"A\", 北京", "a\r\nb", "\u3000", "  x  ", "\ufeffy",
                                                                   "=1+1", "0012", "null", "NA", "N/A", "nan", "#N/A"]
    rows = [(f"001{i:015d}", "true" if i % 2 else "false", f"K{i}", c, cells[-1 - i]) for i, c in enumerate(cells)]
    header = ["sf__Id", "sf__Created", "Legacy_Id__c", "Name", "Description"]
    texts = {"plain": to_csv(header, rows), "bom": "\ufeff" + to_csv(header, rows),
             "crlf": to_csv(header, rows).replace("\n", "\r\n").replace("a\r\r\nb", "a\r\nb"),
             "blank lines": to_csv(header, rows[:3]) + "\n\n" + to_csv(header, rows[3:]).split("\n", 1)[1],
             "header only": "sf__Id,sf__Created,Legacy_Id__c\n", "empty": "", "short row": to_csv(header, rows) + "x,y\n",
             "twice named": to_csv(header + ["Name"], [r + ("n",) for r in rows]),
             "no key column": to_csv(["sf__Id", "sf__Created", "Name"], [r[:2] + r[3:4] for r in rows])}
    for what, text in texts.items():
        for key_cols, extra in ((["Legacy_Id__c"], ("sf__Id", "sf__Created")), (["Id"], ("sf__Id", "sf__Error")),
                                (["Legacy_Id__c", "Name"], ("sf__Id",))):
            assert list(bulk._each(text, key_cols, *extra)) == _each_by_rows(text, key_cols, *extra), what
    assert read_csv_columns(texts["short row"], ["sf__Id"]) is None  # Arrow declines: read_csv takes it
    assert read_csv_columns(texts["twice named"], ["sf__Id"]) is None
    assert read_csv_columns(texts["plain"], ["Name", "Missing"])[1] == [""] * len(rows)
    assert all(read_csv_columns(texts[w], ["sf__Id"]) is not None for w in ("plain", "bom", "crlf", "blank lines"))


def test_results_matched_by_unique_key_equal_the_queues():
    """A key only one input row has is matched by one look-up: the same rows as the queues alone give,
    with keys repeated, echoed normalised, echoed twice or unknown."""
    import random

    rng = random.Random(7)
    keys = [f"K{i}" for i in range(280)] + ["dup"] * 5 + ["Dup", " k7 ", "公司", "ＡＢＣ", "😀", "", "#N/A", "true",
                                                         "\u3000", "  "]
    records = [{"Legacy_Id__c": k, "Name": f"n{i}"} for i, k in enumerate(keys)]
    echoed = [(k,) for k in keys] + [(k,) for k in ("K1", "K2", "K2", "k3", "DUP", "dup", "K7", "TRUE", "K404", "")]
    for trial in range(20):
        order = rng.sample(echoed, len(echoed) - trial)
        got, ref = (bulk.Matcher(bulk.Payload("upsert", records, "Legacy_Id__c"), [str(i) for i in range(len(keys))])
                    for _ in range(2))
        ref.unique = {}  # the queues alone
        for n, key in enumerate(order):
            for m in (got, ref):
                if n % 5 == 4:
                    m.add_failure(key, None, "DUPLICATE_VALUE:dup:Legacy_Id__c --")
                else:
                    m.add_success(key, f"001{n:015d}", "true" if n % 2 else "false")
        assert got.finish("UNPROCESSED", "none") == ref.finish("UNPROCESSED", "none"), trial
    unique = bulk.Matcher(bulk.Payload("upsert", [{"Legacy_Id__c": f"C{i}"} for i in range(5)], "Legacy_Id__c"),
                          list("abcde"))
    assert unique.unique == {(f"C{i}",): i for i in range(5)}


def test_successes_matched_in_one_pass_equal_add_success_row_by_row():
    """``Matcher.add_successes`` (the results file of a job in one loop) gives what ``add_success`` gives
    row by row: keys unique or repeated, echoed normalised, twice or unknown; created true/false/odd."""
    import random

    rng = random.Random(11)
    for keys in ([f"K{i}" for i in range(300)],
                 [f"K{i}" for i in range(200)] + ["dup"] * 4 + ["Dup", " k7 ", "公司", "😀", "", "#N/A", "\u3000"]):
        records = [{"Legacy_Id__c": k, "Name": f"n{i}"} for i, k in enumerate(keys)]
        echoed = [(k,) for k in keys] + [(k,) for k in ("K1", "K2", "k3", "DUP", "dup", "K7", "K404", "")]
        for trial in range(10):
            rows = [(key, f"001{n:015d}" if n % 7 else "", ("true", "false", " TRUE ", "", "yes")[n % 5])
                    for n, key in enumerate(rng.sample(echoed, len(echoed) - 3 * trial))]
            got, ref = (bulk.Matcher(bulk.Payload("upsert", records, "Legacy_Id__c"), [str(i) for i in range(len(keys))])
                        for _ in range(2))
            assert got.add_successes(iter(rows)) == len(rows)
            for row in rows:
                ref.add_success(*row)
            assert got.results == ref.results, trial
            assert got.finish("UNPROCESSED", "none") == ref.finish("UNPROCESSED", "none"), trial


def test_query_page_columns_equal_the_rows_read_by_csv_reader():
    """Bulk query results read column-wise by Arrow (``query.page_columns``) hold the cells the ``csv``
    module's rows hold under those names (None for a name the page lacks or a short row's cell)."""
    from crmbridge.connectors.salesforce import query
    from crmbridge.connectors.salesforce.values import to_csv

    cells = [str(v) if v is not None else "" for v in VALUES] + ["公司 \"A\", 北京", "a\r\nb", "\u3000", "  x  ", "😀",
                                                                   "=1+1", "0012", "null", "nan", "#N/A", "1234.0"]
    header = ["Id", "Legacy_Id__c", "Name", "Parent.Legacy_Id__c", "AnnualRevenue"]
    rows = [(f"001{i:015d}", f"K{i}", c, cells[-1 - i], "" if i % 4 else "12.5") for i, c in enumerate(cells)]
    plain = to_csv(header, rows)
    texts = {"plain": plain, "bom": "\ufeff" + plain, "crlf": plain.replace("\n", "\r\n").replace("a\r\r\nb", "a\r\nb"),
             "blank lines": to_csv(header, rows[:3]) + "\n\n" + to_csv(header, rows[3:]).split("\n", 1)[1],
             "header only": "Id,Legacy_Id__c\n", "empty": "", "short row": plain + "x,y\n",
             "twice named": to_csv(header + ["Name"], [r + ("n",) for r in rows]),
             "no Name column": to_csv(["Id", "Legacy_Id__c"], [r[:2] for r in rows])}

    def by_rows(text, names):
        head, page = query.page_rows(text)
        recs = [dict(zip(head, r)) for r in page]
        return [[rec.get(n) for rec in recs] for n in names]

    arrow_read = 0
    for what, text in texts.items():
        for names in (["Id", "Legacy_Id__c", "Name", "Parent.Legacy_Id__c", "AnnualRevenue"], ["Name", "Id"],
                      ["Id", "Missing__c"]):
            got = query.page_columns(text, names)
            assert got == by_rows(text, names), (what, names)
            assert all(type(v) is str or v is None for col in got for v in col)
            arrow_read += what in ("plain", "crlf", "blank lines") and "Missing__c" not in names
    assert arrow_read == 6
    assert query.page_columns(texts["short row"], ["Id"])[0][-1] == "x"
