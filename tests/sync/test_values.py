"""The short paths of ``canon`` and ``row_hash`` give exactly what the general code gives (issue 14).

Stored content hashes decide whether a re-read row is "unchanged": a fast path that canonicalised one
value differently would make rows look changed (or, worse, unchanged) after an upgrade.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from crmbridge.sync.values import canon, row_hash


def _reference_canon(v):
    """``canon`` as it was before the fast paths (the definition of the canonical text)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, Decimal)):
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            return str(v)
        if d == d.to_integral_value():
            return str(d.quantize(Decimal(1)))
        return format(d.normalize(), "f")
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="seconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    s = str(v)
    return None if s == "" else s


def _reference_hash(values):
    blob = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


class _Str(str):
    pass


def _values():
    rng = random.Random(14)
    fixed = [None, "", "x", " ", "0", "浦东新区", _Str("sub"), _Str(""), True, False, 0, -0, 1, -1, 7, 10 ** 26,
             -(10 ** 26) + 1, 10 ** 27 - 1, 12.5, 0.1, -0.0, 1e20, float("inf"), Decimal("0"), Decimal("-0"),
             Decimal("12.50"), Decimal("12.00"), Decimal("1E+3"), Decimal("1.000E-5"), Decimal("-3.1400"),
             Decimal("123456789012345678901234.5000"), Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"),
             date(2026, 12, 3), datetime(2026, 12, 3, 1, 30), datetime(2026, 12, 3, 1, 30, tzinfo=timezone.utc),
             datetime(2026, 12, 3, 9, 30, tzinfo=timezone(timedelta(hours=8))), b"\x00\xff"]
    rand = [Decimal(rng.randint(-10 ** 9, 10 ** 9)).scaleb(-rng.randint(0, 6)) for _ in range(3000)]
    rand += [rng.randint(-10 ** 18, 10 ** 18) for _ in range(2000)] + [rng.uniform(-1e6, 1e6) for _ in range(500)]
    return fixed + rand


def _outcome(fn, v):
    try:
        return fn(v)
    except InvalidOperation:  # e.g. infinity, or beyond Decimal's 28 digits: the general code raises too
        return "raised InvalidOperation"


def test_canon_fast_paths_equal_the_general_code_value_by_value():
    values = _values() + [Decimal("1E+40"), 10 ** 40, -(10 ** 30)]
    for v in values:
        assert _outcome(canon, v) == _outcome(_reference_canon, v), repr(v)
    assert sum(isinstance(_outcome(canon, v), str) and _outcome(canon, v).startswith("raised") for v in values) >= 3


def test_row_hash_equals_the_stored_definition():
    rows = [{"Name": "ITEM0000001 / WH001", "On_Hand__c": canon(Decimal("12.50")), "Warehouse__c": "WH001",
             "Empty__c": None, "城市": "上海"}, {}, {"b": "1", "a": "2"}]
    for r in rows:
        assert row_hash(r) == _reference_hash(r)


def test_the_row_hasher_gives_the_stored_hash_for_every_row():
    from crmbridge.sync.values import row_hasher

    fields = ["Name", "On_Hand__c", "Product__r.ERP_Item_Code__c", "Warehouse__c", "Z", "a", "Ä"]
    hasher = row_hasher(fields)
    rng = random.Random(5)
    odd = ['"', "\\", "\n", "\t", "\x00", "\x1f", "\u2028", "é", "上海", "😀", "", " ", "null", "a\"b\\c"]
    samples = [v for v in _values()[:60] if not str(_outcome(_reference_canon, v)).startswith("raised")] + odd
    for _ in range(3000):
        row = {f: rng.choice(samples) for f in fields}
        assert hasher(row) == _reference_hash({k: _reference_canon(v) for k, v in row.items()}), row
    other = {"Name": "x"}  # rows with other keys take the general path
    assert hasher(other) == _reference_hash({"Name": "x"})


def test_concat_short_path_gives_the_general_text():
    from crmbridge.sync.values import canon, concat

    def general(a, b=None):
        return " / ".join(str(canon(x)) for x in (a, b) if x is not None)

    for a in ("ITEM1", "", None, 5, Decimal("2.50"), "上海"):
        for b in ("WH-SH", "", None, 7, "x / y"):
            assert concat(a, b) == general(a, b), (a, b)
    assert concat("ITEM1") == general("ITEM1")
