"""``_value_types`` answers ``{str}`` in one C pass (``lib.is_string_array``) for an object column holding
only text and nothing missing, which is what mapped text columns are. Its answer must be the one the
value-by-value reading gives, and where it is not (a str subclass such as numpy's ``str_`` counts as str),
the records file must still hold what the previous writer (exact types) wrote; the table
read back is compared value by value and type by type too, on CJK, emoji, None, NaN, dates, decimals,
booleans, numpy text and empty batches."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmbridge.mappings.output import _value_types
from tests.mappings.test_records_writer import _write_both
from tests.validation.test_parquetsink import assert_same_content


def _exact(s: pd.Series) -> set:
    """The previous ``_value_types``: every present value's own type (None and float NaN left out)."""
    return {type(v) for v in s.to_numpy(dtype=object) if v is not None and not (isinstance(v, float) and v != v)}


TEXT = ["上海华信贸易有限公司", "😀 emoji", "", " x ", "C0000001", "+862155065012", "ß", "\u3000全角"]
OTHERS = {
    "none": [None, "上海"],
    "nan": [float("nan"), "a"],
    "npnan": [np.float64("nan"), "a"],
    "na": [pd.NA, "a"],
    "date": [dt.date(2024, 2, 29), "a"],
    "datetime": [dt.datetime(2024, 1, 1, 12), "a"],
    "decimal": [decimal.Decimal("1.10"), "a"],
    "bool": [True, "a"],
    "int": [7, "a"],
    "float": [1.5, "a"],
    "bytes": [b"x", "a"],
}


@pytest.mark.parametrize("n", [1, 3, 1000])
def test_text_only_columns_read_as_str(n):
    s = pd.Series((TEXT * n)[:max(n, 1)], dtype=object)
    assert _value_types(s) == _exact(s) == {str}


@pytest.mark.parametrize("kind", sorted(OTHERS))
def test_any_other_value_takes_the_value_by_value_reading(kind):
    s = pd.Series(TEXT + OTHERS[kind] * 3, dtype=object)
    assert _value_types(s) == _exact(s)


def test_numpy_text_keeps_its_own_type():
    """numpy's str_ is a str to ``isinstance`` but not to the file (see the writer test below)."""
    for values in ([np.str_("上海")] * 4, ["上海", np.str_("😀")]):
        s = pd.Series(values, dtype=object)
        assert _value_types(s) == _exact(s)


def test_empty_and_all_missing_columns():
    for values in ([], [None], [None, float("nan")]):
        s = pd.Series(values, dtype=object)
        assert _value_types(s) == _exact(s) == set()


def _frame(n: int, first: list, second: list) -> pd.DataFrame:
    return pd.DataFrame({
        "Name": pd.Series((TEXT * n)[:n], dtype=object),
        "NumpyText": pd.Series([np.str_(v) for v in (TEXT * n)[:n]], dtype=object),
        "Mixed": pd.Series((first * n)[:n], dtype=object),
        "Later": pd.Series((second * n)[:n], dtype=object),
        "Keys": pd.Series([f"k{i}" for i in range(n)], dtype="str"),
    })


@pytest.mark.parametrize("kind", sorted(OTHERS))
@pytest.mark.parametrize("in_memory", [False, True])
def test_records_file_and_table_equal_the_previous_writer(kind, in_memory, tmp_path):
    """Batch 0 all text (the fast path); batch 1 empty; batch 2 mixes in ``kind``; numpy text throughout
    (exact types: ``str_``, or ``str``+``str_`` after a batch of plain text in the same column)."""
    batches = [_frame(9, TEXT, TEXT), _frame(0, TEXT, TEXT), _frame(5, OTHERS[kind], OTHERS[kind])]
    batches[2]["NumpyText"] = pd.Series(TEXT[:5], dtype=object)  # plain str in a column numpy text had
    if in_memory:
        batches = [pd.concat(batches, ignore_index=True)]
    ref, new = _write_both(batches, tmp_path, in_memory=in_memory)
    if isinstance(ref, Exception):  # refused the same way (bytes next to text)
        assert type(new) is type(ref)
        return
    assert not isinstance(new, Exception), new
    old_t, new_t = pq.read_table(tmp_path / "old.parquet"), pq.read_table(tmp_path / "new.parquet")
    assert new_t.schema.equals(old_t.schema, check_metadata=True)
    for c in old_t.column_names:
        a, b = old_t.column(c).to_pylist(), new_t.column(c).to_pylist()
        assert [(type(v), v) for v in b] == [(type(v), v) for v in a], c
    assert_same_content(tmp_path / "new.parquet", tmp_path / "old.parquet")
