"""Each transform on its own, with Chinese, full-width and Latin data."""

from __future__ import annotations

import pandas as pd
import pytest

from crmbridge.mappings.transforms import TRANSFORMS, TransformParamError, apply_transform, parse_params
from crmbridge.mappings.transforms_contact import area_code_for
from crmbridge.mappings.transforms_names import split_name


def run(name, values, params=None, frame=None):
    return apply_transform(name, pd.Series(values, dtype=object), params, frame=frame)


def test_registry_every_transform_has_params_model_and_summary():
    for name, spec in TRANSFORMS.items():
        assert spec.name == name and spec.summary, name
        assert spec.params.model_config.get("extra") == "forbid", name


def test_trim_strips_fullwidth_space_and_blanks_become_missing():
    r = run("trim", [" C000124 ", "\u3000上海\u3000", "   ", None, "ok"])
    assert list(r.values) == ["C000124", "上海", None, None, "ok"]
    assert list(r.changed) == [True, True, True, False, False]
    assert not r.failed.any()


def test_trim_collapse_inner_whitespace():
    assert list(run("trim", ["a \u3000  b"], {"collapse": True}).values) == ["a b"]


def test_case_upper_lower_title_leaves_chinese():
    assert list(run("case", ["acme 上海"], {"to": "upper"}).values) == ["ACME 上海"]
    assert list(run("case", ["ACME"], {"to": "lower"}).values) == ["acme"]
    assert list(run("case", ["acme ltd"], {"to": "title"}).values) == ["Acme Ltd"]


def test_nfkc_fullwidth_key():
    r = run("nfkc", ["Ｃ000123", "C000124"])
    assert list(r.values) == ["C000123", "C000124"]
    assert list(r.changed) == [True, False]


def test_strip_html():
    assert list(run("strip_html", ["<b>Evil</b> Corp", "A &amp; B", "<i></i>"]).values) == ["Evil Corp", "A & B", None]


def test_replace_regex_and_bad_pattern():
    assert list(run("replace", ["上海明远贸易有限公司"], {"pattern": "有限公司$", "replacement": ""}).values) == ["上海明远贸易"]
    with pytest.raises(TransformParamError, match="regular expression"):
        parse_params("replace", {"pattern": "("})


def test_null_if_markers():
    assert list(run("null_if", ["N/A", "无", "-", "x"], {"values": ["n/a", "无", "-"]}).values) == [None, None, None, "x"]


def test_value_map_requires_explicit_miss_policy():
    with pytest.raises(TransformParamError, match="default"):
        parse_params("value_map", {"map": {"潜在": "Prospect"}})


def test_value_map_error_fails_and_keeps_value():
    r = run("value_map", ["潜在", " ACTIVE ", "黑名单", None], {"map": {"潜在": "Prospect", "active": "Active"},
                                                               "on_missing": "error"})
    assert list(r.values) == ["Prospect", "Active", "黑名单", None]
    assert list(r.failed) == [False, False, True, False]


def test_value_map_default_and_keep():
    m = {"map": {"预付": "Prepaid"}}
    assert list(run("value_map", ["预付", "月结"], {**m, "default": "Net 30"}).values) == ["Prepaid", "Net 30"]
    assert list(run("value_map", ["预付", "月结"], {**m, "on_missing": "keep"}).values) == ["Prepaid", "月结"]


def test_value_map_fullwidth_key_matches():
    assert list(run("value_map", ["Ａ"], {"map": {"a": "Hot"}, "on_missing": "error"}).values) == ["Hot"]


def test_truncate_counts_every_cut():
    r = run("truncate", ["上海明远贸易有限公司", "短", None], {"length": 4})
    assert list(r.values) == ["上海明远", "短", None]
    assert r.n_changed == 1


def test_truncate_with_ellipsis():
    assert list(run("truncate", ["abcdefgh"], {"length": 5, "ellipsis": "…"}).values) == ["abcd…"]


def test_split_index_and_strict():
    assert list(run("split", ["上海;浦东", "北京"], {"sep": ";", "index": 1}).values) == ["浦东", None]
    r = run("split", ["北京"], {"sep": ";", "index": 1, "strict": True})
    assert list(r.failed) == [True]


def test_default_fills_missing_only():
    assert list(run("default", [None, " ", "x"], {"value": "Other"}).values) == ["Other", "Other", "x"]


def test_required_fails_missing():
    assert list(run("required", ["x", None, ""]).failed) == [False, True, True]


def test_affix():
    assert list(run("affix", ["C1", None], {"prefix": "LEG-"}).values) == ["LEG-C1", None]


@pytest.mark.parametrize("raw,city,expected", [
    ("021-6234 5678", None, "+862162345678"),
    ("+86 138 0013 8000", None, "+8613800138000"),
    ("13800138000", None, "+8613800138000"),
    ("（010）88886666", None, "+861088886666"),
    ("6234 5678", "上海", "+862162345678"),
    ("6234 5678", "Shenzhen", "+8675562345678"),
    ("021-62345678 转 123", None, "+862162345678 ext. 123"),
    ("021-62345678 分机 8001", None, "+862162345678 ext. 8001"),
    ("021-62345678-8001", None, "+862162345678 ext. 8001"),
    ("０２１－６２３４５６７８", None, "+862162345678"),
])
def test_phone_to_e164(raw, city, expected):
    frame = pd.DataFrame({"phone": [raw], "city": [city]})
    r = apply_transform("phone", frame["phone"], {"city_column": "city"}, frame=frame)
    assert list(r.values) == [expected] and not r.failed.any()


def test_phone_without_area_code_and_no_city_is_invalid():
    r = run("phone", ["6234 5678", "12345", "not a phone"])
    assert list(r.failed) == [True, True, True]
    assert list(r.values) == ["6234 5678", "12345", "not a phone"]


def test_phone_international_format_and_other_region():
    assert list(run("phone", ["13800138000"], {"format": "international"}).values) == ["+86 138 0013 8000"]
    assert list(run("phone", ["(650) 253-0000"], {"region": "US"}).values) == ["+16502530000"]


def test_area_code_lookup():
    assert area_code_for("上海") == "21" and area_code_for("上海市") == "21"
    assert area_code_for("北京") == "10" and area_code_for("深圳") == "755"
    assert area_code_for("0571") == "571"
    assert area_code_for("Atlantis") is None


def test_email_normalised_and_invalid_fails():
    r = run("email", ["INFO@EXAMPLE.CN ", "info＠example.cn", "bad@", "张三@例子.中国", None])
    assert list(r.values) == ["info@example.cn", "info@example.cn", "bad@", "张三@例子.中国", None]
    assert list(r.failed) == [False, False, True, False, False]


DATE_FORMATS = {"formats": ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日"], "excel_serial": True}


@pytest.mark.parametrize("raw", ["2023-01-05", "2023/1/5", "2023年1月5日", "44931", "二〇二三年一月五日",
                                 "2023年1月5号", "２０２３-０１-０５", 44931.0])
def test_date_formats(raw):
    r = run("date", [raw], DATE_FORMATS)
    assert list(r.values) == ["2023-01-05"] and not r.failed.any()


def test_date_slash_order_is_declared_not_guessed():
    assert list(run("date", ["01/02/2023"], {"formats": ["%d/%m/%Y"]}).values) == ["2023-02-01"]
    assert list(run("date", ["01/02/2023"], {"formats": ["%m/%d/%Y"]}).values) == ["2023-01-02"]
    assert list(run("date", ["01/02/2023"], {"formats": ["%Y-%m-%d"]}).failed) == [True]


def test_date_failures_keep_value_and_out_of_range_fails():
    r = run("date", ["garbage", "0203-01-05", "44931", None], {"formats": ["%Y-%m-%d"]})
    assert list(r.failed) == [True, True, True, False]
    assert list(r.values)[:3] == ["garbage", "0203-01-05", "44931"]


def test_date_format_without_directive_is_a_config_error():
    with pytest.raises(TransformParamError, match="directive"):
        parse_params("date", {"formats": ["YYYY-MM-DD"]})


def test_datetime_local_to_utc():
    r = run("datetime", ["2023-01-05 08:30:00", "2023/01/05 8:30"],
            {"formats": ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M"]})
    assert list(r.values) == ["2023-01-05T00:30:00.000+0000"] * 2


def test_datetime_unknown_timezone():
    with pytest.raises(TransformParamError, match="time zone"):
        parse_params("datetime", {"formats": ["%Y"], "timezone": "Mars/Olympus"})


def test_months_between_matches_salesforce_end_date_rule():
    frame = pd.DataFrame({"start": ["2023-01-05", "2023-01-01", "2023-03-01", "2023-05-01"],
                          "end": ["2024-01-04", "2023-12-31", "2023-03-15", "2023-04-01"]})
    r = apply_transform("months_between", frame["end"], {"start_column": "start"}, frame=frame)
    assert list(r.values) == [12, 12, 1, "2023-04-01"]
    assert list(r.failed) == [False, False, False, True]


@pytest.mark.parametrize("raw,expected", [
    ("¥1,234,500.00", 1234500.0), ("1234500", 1234500.0), ("１２３４５００", 1234500.0), ("￥1,234.50", 1234.5),
    ("RMB 2,000", 2000.0), ("(1,234)", -1234.0), ("-5.5元", -5.5), (" 12 ", 12.0),
])
def test_number_parsing(raw, expected):
    r = run("number", [raw])
    assert list(r.values) == [expected] and not r.failed.any()


def test_number_units_percent_decimal_comma_integer():
    assert list(run("number", ["12.5万", "1亿"], {"cn_units": True}).values) == [125000.0, 1e8]
    assert list(run("number", ["12%"], {"percent": True}).values) == [0.12]
    assert list(run("number", ["1.234,50"], {"decimal": ",", "thousands": "."}).values) == [1234.5]
    r = run("number", ["3", "3.5"], {"integer": True})
    assert list(r.values) == [3, "3.5"] and list(r.failed) == [False, True]


def test_number_garbage_fails():
    r = run("number", ["abc", "1,2,3", None])
    assert list(r.failed) == [True, True, False]


@pytest.mark.parametrize("full,last,first", [
    ("欧阳娜娜", "欧阳", "娜娜"), ("司马懿", "司马", "懿"), ("诸葛亮", "诸葛", "亮"), ("张三", "张", "三"),
    ("王小明", "王", "小明"), ("王", "王", None), ("买买提·吐尔逊", "吐尔逊", "买买提"),
    ("John Smith", "Smith", "John"), ("Smith, John", "Smith", "John"), ("Mary Ann Lee", "Lee", "Mary Ann"),
    ("  李 四 ", "李", "四"),
])
def test_split_name(full, last, first):
    assert split_name(full) == (last, first)


def test_name_part_vectorised():
    s = ["欧阳娜娜", "John Smith", None]
    assert list(run("name_part", s, {"part": "last"}).values) == ["欧阳", "Smith", None]
    assert list(run("name_part", s, {"part": "first"}).values) == ["娜娜", "John", None]


def test_concat_skips_missing_parts():
    frame = pd.DataFrame({"p": ["上海市", None, "广东省"], "c": ["上海", None, None], "a": ["世纪大道100号", None, "深南大道1号"]})
    r = apply_transform("concat", None, {"columns": ["p", "c", "a"], "sep": " "}, frame=frame)
    assert list(r.values) == ["上海市 上海 世纪大道100号", None, "广东省 深南大道1号"]


def test_unknown_transform_and_param_suggest():
    with pytest.raises(TransformParamError, match="did you mean 'phone'"):
        parse_params("phon")
    with pytest.raises(TransformParamError, match="did you mean 'region'"):
        parse_params("phone", {"regoin": "CN"})


def test_column_param_missing_from_frame():
    with pytest.raises(TransformParamError, match="not in the data"):
        apply_transform("phone", pd.Series(["1"]), {"city_column": "town"}, frame=pd.DataFrame({"city": ["x"]}))


def test_transforms_keep_index():
    s = pd.Series([" a", "b "], index=[10, 20], dtype=object)
    r = apply_transform("trim", s)
    assert list(r.values.index) == [10, 20] and list(r.failed.index) == [10, 20]
