"""NUL and other control characters in keys or text (issue 13 point 6): quarantined with a reason that
names the field and the character, or stripped where the definition declares ``strip_control``."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from crmbridge.csvout import read_frame
from crmbridge.mappings.transforms import apply_transform
from crmbridge.validation.controlchars import control_chars_check, control_chars_reason

NUL_KEY = "C000\x00016"  # the service department's C000016 with a NUL typed into its key


def test_strip_control_transform():
    s = pd.Series(["C000\x00009", "上海\r\n浦东\x1b", "\x00\x00", None, "ok\x85"], dtype=object)
    out = apply_transform("strip_control", s).values
    assert out.tolist() == ["C000009", "上海浦东", None, None, "ok"]
    kept = apply_transform("strip_control", s, {"keep_line_breaks": True}).values
    assert kept.tolist()[1] == "上海\r\n浦东"


def test_check_refuses_line_breaks_only_in_keys():
    df = pd.DataFrame({"customer_no": ["C1", "C\t2", "C3", "C4", "C5"],
                       "address": ["a\r\nb", "x", "y\x00", None, "z"],
                       "name": ["n", "n", "n", "n", "\x7f"], "_line": [1, 2, 3, 4, 5]})
    assert control_chars_check(df, ("customer_no",)).tolist() == [True, False, False, True, False]
    why = control_chars_reason(df.iloc[2].to_dict(), ("customer_no",))
    assert why.startswith("address 'y\\x00' holds control character U+0000 at position 2") and "strip_control" in why


@pytest.fixture
def nul_project(tmp_path):
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path / "p"
    init_project(root)
    write_demo_data(root, customers=30, erp=False)
    service = pd.read_csv(root / "data" / "service_customers.csv", dtype=str, encoding="gb18030", sep=";")
    sales = pd.read_csv(root / "data" / "sales_customers.csv", dtype=str, encoding="utf-8-sig")
    assert "C000016" in service["客户编号"].str.strip().tolist()
    assert "C000016" not in sales["客户编号"].str.strip().tolist()
    row = service[service["客户编号"].str.strip() == "C000016"].iloc[0].tolist()[:14] + ["", ""]
    row[0] = NUL_KEY
    with open(root / "data" / "sales_customers.csv", "a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow(row)

    def make(strip: bool):
        if strip:
            d = root / "definitions" / "customer.yml"
            d.write_text(d.read_text("utf-8").replace("customer_no: [nfkc,", "customer_no: [strip_control, nfkc,"),
                         "utf-8")
        return load_project(root)

    yield make
    from crmbridge.state import dispose_all

    dispose_all()


def _validate_and_map(proj):
    from crmbridge.mappings.resolve import run_resolve
    from crmbridge.mappings.stage import run_map
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate

    res = run_extract(proj)
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, res.run_id)
    report = run_validate(proj, run)
    run_resolve(proj, run)  # one golden record per company, as migrate does between validate and map
    run_map(proj, run)
    accounts = pd.read_parquet(run.dir / "map" / "Account.parquet")
    return run, report, accounts


def test_nul_in_key_is_quarantined_not_its_own_account(nul_project):
    run, report, accounts = _validate_and_map(nul_project(strip=False))
    q = read_frame(run.dir / "validate" / "quarantine" / "customers.csv")
    hit = q[q["customer_no"] == NUL_KEY]
    assert len(hit) == 1
    assert "control_chars: customer_no 'C000\\x00016' holds control character U+0000 at position 5" \
        in hit.iloc[0]["_reasons"]
    rules = {r["rule_id"]: r for r in report.entities["customers"]["rules"]}
    assert rules["control_chars"]["rows_quarantined"] == 1 and not rules["control_chars"]["passed"]
    assert not accounts["Legacy_Id__c"].str.contains("\x00", regex=False).any()
    one = accounts[accounts["Legacy_Id__c"] == "C000016"]
    assert len(one) == 1 and "sales_customers" not in str(one.iloc[0]["_merged_row_ids"])


def test_strip_control_declared_merges_the_row_into_its_company(nul_project):
    run, report, accounts = _validate_and_map(nul_project(strip=True))
    q = read_frame(run.dir / "validate" / "quarantine" / "customers.csv")
    assert not q["_reasons"].str.contains("control_chars").any()
    assert report.entities["customers"]["fixed"]["customer_no:strip_control"] == 1
    one = accounts[accounts["Legacy_Id__c"] == "C000016"]
    assert len(one) == 1
    merged = str(one.iloc[0]["_merged_row_ids"])
    assert "sales_customers:" in merged and "service_customers:" in merged


def test_check_equals_the_regexes_value_by_value():
    """The byte scan (``controlchars._control_rows``) refuses exactly the rows the Python regexes refuse: every
    character U+0000-U+0101 (C1 controls are C2 80-C2 9F in UTF-8, U+00A0 is C2 A0, U+0100 is C4 80),
    CJK, emoji, line separators, empty text, None, NaN, non-text values, Arrow-backed text, sliced arrays."""
    import random

    import numpy as np
    import pyarrow as pa

    from crmbridge.validation.controlchars import CONTROL_IN_KEY, CONTROL_IN_TEXT, _control_rows

    rnd = random.Random(3)
    alphabet = [chr(i) for i in range(0x102)] + ["上", "海", "😀", "\u2028", "\u3000", "\ufeff", "ａ"]
    safe = [c for c in alphabet if not CONTROL_IN_KEY.match(c)]

    def text():
        k = rnd.choice([0, 1, 2, 5, 12])
        chars = [rnd.choice(safe) for _ in range(k)]
        if rnd.random() < 0.3:  # one or two characters from anywhere
            for _ in range(rnd.choice([1, 2])):
                chars.insert(rnd.randint(0, len(chars)), rnd.choice(alphabet))
        return "".join(chars)

    n = 4000
    df = pd.DataFrame({"customer_no": [text() for _ in range(n)], "name": [text() for _ in range(n)],
                       "address": [rnd.choice([None, float("nan"), text(), text()]) for _ in range(n)],
                       "amount": [rnd.choice([1, 2.5, None, "x\x01", "ok"]) for _ in range(n)],
                       "city": pd.Series([text() for _ in range(n)], dtype="str"), "_line": range(n)})
    want = [not any(isinstance(v, (str, int, float)) and v == v and v is not None
                    and (CONTROL_IN_KEY if c == "customer_no" else CONTROL_IN_TEXT).search(str(v))
                    for c, v in row.items() if c != "_line")
            for row in df.to_dict("records")]
    got = control_chars_check(df, ("customer_no",)).tolist()
    assert got == want
    assert 500 < got.count(False) < n - 500
    values = [text() for _ in range(300)] + [None, "", "\x85", "\xa0", "\x9f\x9f", "a\tb", "\r"]
    arr = pa.array(values, type=pa.string())
    for key, rx in ((True, CONTROL_IN_KEY), (False, CONTROL_IN_TEXT)):
        for start in (0, 7, len(values) - 3):
            part = arr.slice(start)
            expect = np.array([v is not None and rx.search(v) is not None for v in values[start:]])
            assert (_control_rows(part, key) == expect).all(), (key, start)
