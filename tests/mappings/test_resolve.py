"""Entity resolution on frames: exact keys, scored pairs, ambiguity, survivorship and re-pointed children."""

from __future__ import annotations

import pandas as pd
import pytest

from crmbridge.mappings.matching import name_core
from crmbridge.mappings.resolve import repoint, resolve_frame, row_refs
from crmbridge.validation.definition import Identity

COLS = ["customer_no", "name", "credit_code", "phone", "address", "city", "created_on", "_department", "_row_id"]
CODE_A, CODE_B = "91310000MA1FL2XQ3A", "91440300MA5FXT7B4L"


def frame(rows):
    df = pd.DataFrame(rows, columns=COLS, dtype=object)
    df["_source"] = df["_department"] + "_customers"
    df["_source_key"] = df["customer_no"]
    return df


def identity(**resolution):
    base = {"compare": {"name": "name", "address": "address", "phone": "phone", "city": "city",
                        "credit_code": "credit_code"},
            "prefer": ["sales", "finance", "service"]}
    return Identity.model_validate({"key": "customer_no", "match_on": ["credit_code", "customer_no"],
                                    "resolution": {**base, **resolution}})


def companies(out) -> list[set[str]]:
    groups = out.rowmap.groupby("_company")["_row_id"].agg(set)
    return sorted((g for g in groups), key=lambda g: sorted(g))


def test_name_core_strips_legal_forms_width_brackets_and_branches():
    names = pd.Series(["上海明远贸易有限公司", "上海明远贸易有限责任公司", "上海明远贸易股份有限公司",
                       "上海明远贸易有限公司北京分公司", "明远贸易（上海）有限公司", "Acme Industrial Co., Ltd.",
                       "ACME INDUSTRIAL LTD", "ＡＢＣ科技有限公司", "有限公司", None])
    assert [x if isinstance(x, str) else None for x in name_core(names)] == ["上海明远贸易"] * 4 + ["明远贸易", "acmeindustrial", "acmeindustrial",
                                                            "abc科技", None, None]


def test_same_credit_code_new_customer_number_and_suffix_change_is_one_company():
    df = frame([("C001", "上海明远贸易有限公司", CODE_A, "+862162345678", "世纪大道1号", "上海", "2020-01-01", "sales", "s:1"),
                ("F901", "上海明远贸易有限责任公司", CODE_A, "+8613800138000", None, "上海", "2021-05-01", "finance", "f:1"),
                ("C002", "北京华信科技有限公司", None, "+861062345678", "建国路2号", "北京", None, "sales", "s:2")])
    out = resolve_frame(df, identity(), entity="customers")
    assert companies(out) == [{"f:1", "s:1"}, {"s:2"}]
    g = out.golden.set_index("customer_no")
    assert sorted(g.index) == ["C001", "C002"]  # the sales row survives: first in department order
    assert g.loc["C001", "_legacy_keys"] == "C001;F901" and g.loc["C001", "_departments"] == "sales;finance"
    assert g.loc["C001", "_merged_row_ids"] == "s:1;f:1"
    assert out.rowmap.set_index("_row_id").loc["f:1", "survivor_key"] == "C001"
    pair = out.pairs.iloc[0]
    assert pair["kind"] == "exact" and pair["score"] == 1.0 and "same credit_code " + CODE_A in pair["evidence"]


def test_fuzzy_match_without_shared_key_merges_and_keeps_evidence():
    df = frame([("C002", "北京华信科技有限公司", None, "+861062345678", "朝阳区建国路2号", "北京", None, "sales", "s:2"),
                ("F902", "北京华信科技股份有限公司", None, "+861062345678", "朝阳区建国路2号", "北京", None, "finance", "f:2"),
                ("F903", "北京华信物流有限公司", None, "+861099998888", "海淀区中关村1号", "北京", None, "finance", "f:3")])
    out = resolve_frame(df, identity(), entity="customers")
    assert companies(out) == [{"f:2", "s:2"}, {"f:3"}]
    fuzzy = out.pairs[(out.pairs["kind"] == "fuzzy") & (out.pairs["outcome"] == "merged")].iloc[0]
    assert fuzzy["score"] >= 0.99
    assert "name 1.00 (北京华信科技 / 北京华信科技)" in fuzzy["evidence"] and "same phone" in fuzzy["evidence"]


def test_two_credit_codes_never_merge_even_through_a_chain_of_strong_links():
    # same customer number (a recycled number) and same name, but two different credit codes
    df = frame([("C001", "上海明远贸易有限公司", CODE_A, "+862162345678", "世纪大道1号", "上海", None, "sales", "s:1"),
                ("C001", "上海明远贸易有限公司", CODE_B, "+862162345678", "世纪大道1号", "上海", None, "finance", "f:1"),
                ("C009", "上海明远贸易有限公司", None, "+862162345678", "世纪大道1号", "上海", None, "service", "v:1")])
    out = resolve_frame(df, identity(), entity="customers")
    labels = out.rowmap.set_index("_row_id")["_company"]
    assert labels["s:1"] != labels["f:1"]  # the chain s:1 - v:1 - f:1 may join one side, never both
    assert len(out.golden) == 2
    ambiguous = out.review[out.review["kind"] == "ambiguous"]
    assert len(ambiguous) == 1 and "different credit codes" in ambiguous.iloc[0]["evidence"]


def test_shared_credit_code_with_a_different_name_goes_to_review_not_merged():
    df = frame([("C004", "杭州金桥物流有限公司", CODE_A, None, None, "杭州", None, "sales", "s:4"),
                ("C006", "武汉天成医药有限公司", CODE_A, None, None, "武汉", None, "sales", "s:6")])
    out = resolve_frame(df, identity(), entity="customers")
    assert len(out.golden) == 2 and len(out.review) == 1
    r = out.review.iloc[0]
    assert r["kind"] == "ambiguous" and "names differ" in r["evidence"] and "武汉天成医药有限公司" in r["evidence"]


def test_a_renamed_company_under_the_same_customer_number_stays_one():
    df = frame([("C004", "杭州金桥物流有限公司", None, None, None, "杭州", None, "finance", "f:4"),
                ("C004", "德尔塔变更测试有限公司", None, None, None, "杭州", None, "sales", "s:4"),
                ("C005", "另一家公司", CODE_A, None, None, "杭州", None, "sales", "s:5"),
                ("F905", "完全不同的名字", CODE_A, None, None, "杭州", None, "finance", "f:5")])
    out = resolve_frame(df, identity(), entity="customers")
    assert companies(out) == [{"f:4", "s:4"}, {"f:5"}, {"s:5"}]  # the record key decides; a lone code does not
    ev = out.pairs.set_index("kind").loc["exact", "evidence"]
    assert "names differ" in ev and "the shared keys decide" in ev
    assert out.golden.set_index("customer_no").loc["C004", "name"] == "德尔塔变更测试有限公司"  # sales first


def test_review_band_pairs_are_queued_and_decisions_apply():
    # similar names in one city, nothing else in common: neither certain nor negligible
    df = frame([("C010", "上海宏达电子有限公司", None, None, "浦东新区张江路5号", "上海", None, "sales", "s:10"),
                ("F910", "上海宏达电子科技有限公司", None, None, "浦东新区张江路5号", "上海", None, "finance", "f:10")])
    ident = identity(merge_threshold=0.999999, review_threshold=0.01)
    out = resolve_frame(df, ident, entity="customers")
    assert len(out.golden) == 2 and len(out.review) == 1 and out.pairs.iloc[0]["outcome"] == "review"
    refs = row_refs(df)
    accept = {"x": {"left_ref": refs[0], "right_ref": refs[1], "decision": "accept"}}
    out2 = resolve_frame(df, ident, entity="customers", decisions=accept)
    assert len(out2.golden) == 1 and out2.stats["steward_accepted"] == 1 and out2.review.empty
    reject = {"x": {"left_ref": refs[1], "right_ref": refs[0], "decision": "reject"}}
    out3 = resolve_frame(df, identity(merge_threshold=0.01, review_threshold=0.01), entity="customers",
                         decisions=reject)
    assert len(out3.golden) == 2 and out3.review.empty  # kept apart although above the merge threshold


def test_a_rejection_also_stops_a_transitive_merge():
    df = frame([("C1", "甲", CODE_A, None, None, None, None, "sales", "s:1"),
                ("C1", "甲", None, None, None, None, None, "finance", "f:1"),
                ("C2", "甲", CODE_A, None, None, None, None, "service", "v:1")])
    refs = row_refs(df)
    out = resolve_frame(df, identity(fuzzy=False), entity="customers",
                        decisions={"x": {"left_ref": refs[1], "right_ref": refs[2], "decision": "reject"}})
    labels = out.rowmap.set_index("_row_id")["_company"]
    assert labels["f:1"] != labels["v:1"] and len(out.golden) == 2


def test_survivorship_rules_per_field():
    df = frame([("C1", "明远贸易", CODE_A, "+862100000001", "浦东", "上海", "2019-03-01", "service", "v:1"),
                ("C1", "上海明远贸易有限公司", None, "+862100000002", "上海市浦东新区世纪大道1号", "上海", "2023-07-01",
                 "finance", "f:1"),
                ("C1", None, None, "+862100000003", None, "上海", "2021-01-01", "sales", "s:1")])
    ident = identity(survivorship={"*": "department", "phone": {"rule": "newest", "by": "created_on"},
                                   "address": "most_complete", "name": {"rule": "department",
                                                                        "prefer": ["finance", "service"]}})
    out = resolve_frame(df, ident, entity="customers")
    assert len(out.golden) == 1
    g = out.golden.iloc[0]
    assert g["_row_id"] == "s:1" and g["customer_no"] == "C1"  # survivor: sales first
    assert g["name"] == "上海明远贸易有限公司"  # field's own department order
    assert g["phone"] == "+862100000002"  # newest created_on
    assert g["address"] == "上海市浦东新区世纪大道1号"  # longest
    assert g["credit_code"] == CODE_A  # first non-empty in department order (only service had it)
    assert g["_merged_row_ids"] == "s:1;f:1;v:1"


def test_every_row_in_exactly_one_golden_record():
    import random

    rng = random.Random(7)
    rows = []
    for i in range(300):
        dept = rng.choice(["sales", "finance", "service"])
        no = f"C{rng.randint(1, 120):03d}"
        rows.append((no, f"公司{no}有限公司", None, None, None, "上海", None, dept, f"{dept}:{i}"))
    df = frame(rows)
    out = resolve_frame(df, identity(fuzzy=False), entity="customers")
    ids = [x for m in out.golden["_merged_row_ids"] for x in m.split(";")]
    assert sorted(ids) == sorted(df["_row_id"]) and out.golden["customer_no"].is_unique


def test_children_are_repointed_to_the_survivor():
    rowmap = pd.DataFrame({"_row_id": ["s:1", "f:1", "s:2", "x:1", "y:1"], "key": ["C001", "F901", "C002", "K", "K"],
                           "_company": [0, 0, 2, 3, 4], "survivor_key": ["C001", "C001", "C002", "K", "Z"]})
    child = pd.DataFrame({"contact_no": ["P1", "P2", "P3", "P4", "P5"],
                          "customer_no": ["C001", "F901", "C002", "K", None]}, dtype=object)
    out, n, ambiguous = repoint(child, "customer_no", rowmap)
    assert out["customer_no"].tolist() == ["C001", "C001", "C002", "K", None]
    assert out["_repointed_from"].tolist() == [None, "F901", None, None, None]
    assert n == 1 and ambiguous == 1


@pytest.mark.parametrize("bad, message", [
    ({"merge_threshold": 0.5, "review_threshold": 0.9}, "review band runs from review_threshold"),
    ({"survivorship": {"phone": "newest"}}, "rule 'newest' needs 'by'"),
    ({"survivorship": {"phone": "oldest"}}, "Input should be 'department', 'newest' or 'most_complete'"),
])
def test_resolution_rules_are_checked(bad, message):
    with pytest.raises(Exception, match=message):
        identity(**bad)


def test_match_report_data_lists_clusters_names_per_department_and_review():
    from crmbridge.mappings.match_report import entity_data, queue_rows, render_html

    df = frame([("C001", "上海明远贸易有限公司", CODE_A, None, None, "上海", None, "sales", "s:1"),
                ("F901", "<b>上海明远贸易</b>有限责任公司", CODE_A, None, None, "上海", None, "finance", "f:1"),
                ("C004", "杭州金桥物流有限公司", CODE_B, None, None, "杭州", None, "sales", "s:4"),
                ("C006", "武汉天成医药有限公司", CODE_B, None, None, "武汉", None, "sales", "s:6")])
    ident = identity()
    out = resolve_frame(df, ident, entity="customers")
    data = entity_data(df, out, ident)
    assert data["rows"] == 4 and data["companies"] == 3 and data["merged_companies"] == 1
    (c,) = data["clusters"]
    assert c["survivor_key"] == "C001" and c["legacy_keys"] == "C001;F901" and c["rows"] == 2
    assert c["names_by_department"] == {"sales": ["上海明远贸易有限公司"], "finance": ["<b>上海明远贸易</b>有限责任公司"]}
    (r,) = data["review"]
    assert {r["left"]["key"], r["right"]["key"]} == {"C004", "C006"} and r["kind"] == "ambiguous" and r["pair_id"]
    (q,) = queue_rows(df, out, "customers", ident)
    assert q["pair_id"] == r["pair_id"] and {q["left_ref"], q["right_ref"]} == {"sales_customers/C004",
                                                                               "sales_customers/C006"}
    html = render_html({"run_id": "r1", "entities": {"customers": data}, "children": []})
    assert "&lt;b&gt;上海明远贸易&lt;/b&gt;" in html and "<b>上海" not in html


def test_map_refuses_golden_records_older_than_the_validation(tmp_path):
    import os

    from crmbridge.errors import UsageError
    from crmbridge.mappings.stage import read_input
    from crmbridge.migrations.runs import Run

    run = Run("r1", tmp_path, "migrate")
    (tmp_path / "validate").mkdir()
    (tmp_path / "resolve").mkdir()
    frame(()).to_parquet(tmp_path / "resolve" / "customers.parquet")
    frame(()).to_parquet(tmp_path / "validate" / "customers.parquet")
    old = os.stat(tmp_path / "validate" / "customers.parquet").st_mtime
    os.utime(tmp_path / "resolve" / "customers.parquet", (old - 10, old - 10))
    with pytest.raises(UsageError, match="validated again after its resolve stage") as e:
        read_input(None, run, "customers", skip_validation=False)
    assert "crmbridge resolve --run r1" in e.value.hint


def test_an_entity_without_rows_resolves_to_nothing():
    out = resolve_frame(frame(()), identity(), entity="customers")
    assert out.golden.empty and out.rowmap.empty and out.pairs.empty and out.review.empty
    assert "_merged_row_ids" in out.golden.columns and "customer_no" in out.golden.columns
