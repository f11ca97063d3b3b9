"""The vectorised mobile fast path must give exactly what phonenumbers gives, value by value."""

import random

import pandas as pd

from crmbridge.mappings.transforms import apply_transform
from crmbridge.mappings.transforms_contact import fast_mobile_e164, normalize_phone
from crmbridge.mappings.transforms_base import FAIL


def _samples(n=3000, seed=11):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        digits = "1" + "".join(rnd.choice("0123456789") for _ in range(10))
        form = rnd.randrange(5)
        out.append([digits, f"+86{digits}", f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
                    f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", "１" + digits[1:]][form])
    # not mobiles, or not plainly written: must be left to the library
    out += ["021-6234 5678", "010 8888 6666", "6234 5678", "13800138000 转 123", "+1 650 253 0000", "bad", "",
            "1380013800", "138001380001", "+8613800138000-8001"]
    return out


def test_fast_path_agrees_with_phonenumbers_on_every_value_it_takes():
    values = _samples()
    s = pd.Series(values, dtype=object)
    fast = fast_mobile_e164(s, "CN")
    taken = fast.notna()
    assert taken.sum() > 1000  # the fast path is really used
    for raw, got in zip(s[taken], fast[taken]):
        assert normalize_phone(raw, region="CN") == got, raw
    # everything it leaves alone goes the library's way
    assert not fast[s.isin(["021-6234 5678", "13800138000 转 123", "１" + "3800138000", "+1 650 253 0000"])].notna().any()


def test_phone_transform_same_result_with_and_without_fast_path():
    s = pd.Series(_samples(800, seed=3), dtype=object)
    applied = apply_transform("phone", s, {"region": "CN"})
    for raw, val, failed in zip(s, applied.values, applied.failed):
        expected = normalize_phone(raw, region="CN") if raw and raw.strip() else None
        if expected is FAIL:
            assert failed and val == raw, raw
        elif expected is not None:
            assert not failed and val == expected, raw


def _trunk_samples(n=4000, seed=21):
    from crmbridge.mappings.transforms_contact import _geocoded_area_codes

    rnd = random.Random(seed)
    codes = sorted(set(_geocoded_area_codes().values())) + [str(rnd.randint(10, 999)) for _ in range(40)]
    out = []
    for _ in range(n):
        area = rnd.choice(codes)
        local = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([6, 7, 7, 8, 8, 8, 9])))
        out.append(rnd.choice([f"0{area}-{local}", f"0{area} {local[:4]} {local[4:]}", f"0{area}{local}",
                               f"0{area}-{local[:4]}-{local[4:]}", f"{area}-{local}", f"0{area}-{local}-801",
                               f"0{area}{local} 转 12", f"0-{area}-{local}", f"00{area}{local}", f"({area}){local}",
                               f"(0{area}){local}", f"（0{area}）{local}", f"(0{area}) {local[:4]}-{local[4:]}",
                               local, f"{local[:4]} {local[4:]}", f"{local[:3]}-{local[3:]}", f"１{local}",
                               f"+86{area}{local}", f"+86 {area} {local}", f"+86-{area}-{local}", f"+860{area}{local}"]))
    return out + ["+8617951123456789", "+861795112345678", "+8611234567890", "+8612345678901", "+8640012345678",
                  "+8695512345", "+8613800138000", "+86 21 6234 5678", "013800138000", "0138 0013 8000", "0400 123 4567", "0800-123-4567", "095512345", "01012345678",
                  "021", "0", "021-62345678-8001", "0216234-5678"]


def test_trunk_fast_path_agrees_with_phonenumbers_on_every_value_it_takes():
    from crmbridge.mappings.transforms_contact import fast_trunk_e164

    values = _trunk_samples()
    s = pd.Series(values, dtype=object)
    fast = fast_trunk_e164(s, "CN")
    taken = fast.notna()
    assert taken.sum() > 500  # the fast path is really used
    cities = ["上海", None, "北京", "nowhere"]
    for raw, got in zip(s[taken], fast[taken]):
        assert normalize_phone(raw, region="CN", city=cities[hash(raw) % 4]) == got, raw
    assert not fast_trunk_e164(s, "US").notna().any()  # only regions it is proved for
    city = pd.Series([cities[i % 4] for i in range(len(s))], dtype=object)
    fast = fast_trunk_e164(s, "CN", city, {"nowhere": "0571"})
    assert fast.notna().sum() > taken.sum() + 100  # local numbers completed by the city's area code
    for raw, c, got in zip(s[fast.notna()], city[fast.notna()], fast[fast.notna()]):
        assert normalize_phone(raw, region="CN", city=c, area_codes={"nowhere": "0571"}) == got, (raw, c)


def test_phone_transform_with_city_same_result_with_and_without_fast_paths():
    values = _trunk_samples(1500, seed=8) + _samples(500, seed=2)
    cities = pd.Series([["上海", None, "北京", "杭州"][i % 4] for i in range(len(values))], dtype=object)
    s = pd.Series(values, dtype=object)
    applied = apply_transform("phone", s, {"region": "CN", "city_column": "city"}, frame=pd.DataFrame({"city": cities}))
    for raw, city, val, failed in zip(s, cities, applied.values, applied.failed):
        if not raw.strip():
            assert not failed and (val is None or not val.strip())
            continue
        expected = normalize_phone(raw, region="CN", city=city)
        if expected is FAIL:
            assert failed and val == raw, raw
        else:
            assert not failed and val == expected, raw
