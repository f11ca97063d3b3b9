"""Area codes for cities that share one code with others in phonenumbers' geocoder (issue 16 point 6).

The geocoder describes e.g. +86 28 as ``四川省成都市、资阳市、眉山市``; every city named there must find
the code, and a local number written without it must be repaired, not quarantined.
"""

import phonenumbers
import pytest
from phonenumbers import geocoder

from crmbridge.mappings.transforms_contact import _PROBES, area_code_for, geocoder_cities, normalize_phone


def _geocoder_places():
    """(area code, place) for every place every valid Chinese area code's description names."""
    out = []
    for code in [str(c) for c in range(10, 30)] + [str(c) for c in range(310, 1000)]:
        for sub in _PROBES:
            num = phonenumbers.parse(f"+86{code}{sub}")
            if phonenumbers.is_valid_number(num):
                zh = geocoder.description_for_number(num, "zh")
                if zh and zh != "中国":
                    out += [(code, place) for place in geocoder_cities(zh)]
                break
    return out


PLACES = _geocoder_places()


def test_the_geocoder_scan_sees_the_multi_city_codes():
    codes = {c for c, _ in PLACES}
    assert len(codes) > 300  # three-digit codes with 7-digit numbers included
    assert {("28", "成都市"), ("28", "资阳市"), ("28", "眉山市"), ("29", "西安市"), ("24", "沈阳市"),
            ("731", "长沙市"), ("851", "贵阳市"), ("898", "海口市")} <= set(PLACES)


def test_every_city_the_geocoder_names_gets_an_area_code_that_geocodes_back_to_it():
    wrong = []
    for code, place in PLACES:
        got = area_code_for(place)
        if got is None:
            wrong.append((place, code, None))
            continue
        # A name shared by two codes may resolve to the other one; it must still name this place.
        num = next(n for n in (phonenumbers.parse(f"+86{got}{s}") for s in _PROBES) if phonenumbers.is_valid_number(n))
        if place not in geocoder_cities(geocoder.description_for_number(num, "zh")):
            wrong.append((place, code, got))
    assert wrong == []


@pytest.mark.parametrize("city,code", [("成都", "28"), ("资阳", "28"), ("眉山市", "28"), ("西安", "29"), ("咸阳", "29"),
                                       ("沈阳", "24"), ("铁岭", "24"), ("长沙", "731"), ("湘潭", "731"),
                                       ("贵阳", "851"), ("遵义", "851"), ("海口", "898"), ("三亚", "898"),
                                       ("Chengdu", "28"), ("Xi'an", "29"), ("延边", "433"), ("恩施", "718")])
def test_multi_city_area_codes(city, code):
    assert area_code_for(city) == code


def test_autonomous_prefecture_never_takes_a_province_name():
    # 青海省海南藏族自治州 is not Hainan province.
    assert area_code_for("海南") is None
    assert area_code_for("海南藏族自治州") == "974"


@pytest.mark.parametrize("raw,city,expected", [("8765 4321", "成都", "+862887654321"),
                                               ("8765 4321", "西安市", "+862987654321"),
                                               ("8765 4321", "沈阳", "+862487654321"),
                                               ("8765 4321", "长沙", "+8673187654321"),
                                               ("6234 5678", "海口", "+8689862345678"),
                                               ("623 4567", "贵阳", "+868516234567")])
def test_local_number_in_a_multi_city_area_is_repaired(raw, city, expected):
    assert normalize_phone(raw, city=city) == expected


def test_probing_all_codes_in_one_pass_finds_what_parse_finds():
    """``_probe_all`` (metadata in one pass) gives, code by code, the number ``_probe`` (parse and
    is_valid_number per probe) gives, so the city table is unchanged."""
    from crmbridge.mappings.transforms_contact import _probe, _probe_all

    codes = [str(c) for c in range(10, 30)] + [str(c) for c in range(310, 1000)] + ["1", "0", "179", "1000"]
    for code, got in zip(codes, _probe_all(codes)):
        want = _probe(code)
        if want is None:
            assert got is None, code
        else:
            assert (got.country_code, got.national_number) == (want.country_code, want.national_number), code
            assert geocoder.description_for_number(got, "zh") == geocoder.description_for_number(want, "zh"), code
