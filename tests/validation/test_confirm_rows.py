"""validation.checks.DuplicateFinder.confirm_rows: validate's confirm pass over its spill, presence told in Arrow
(``table_presence``) and only the nominated rows converted, finds what ``confirm`` of each whole frame finds.

A coarse hash (the text's length) nominates most rows, so the rows path carries the verdict. Tricky keys: missing
values (None in object columns, missing in pandas' ``str``), a compound key, a key column the spill lacks, an
empty batch, NUL and non-ASCII text, keys repeated across batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge.validation import checks
from crmbridge.validation.arrowspill import ArrowSpill
from crmbridge.validation.checks import DuplicateFinder, table_presence

KEYS = [["customer_no"], ["credit_code"], ["customer_no", "credit_code"], ["_row_id"], ["customer_no", "absent"]]


def _batches(seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    codes = np.array([None, "", "A1", "A1\0", "甲乙", "B 2", "C3"], dtype=object)
    out = []
    for b, n in enumerate((40, 0, 25, 60)):
        out.append(pd.DataFrame({
            "customer_no": pd.Series(codes[rng.integers(0, len(codes), n)], dtype=object),
            "credit_code": pd.Series([None if i % 5 == 0 else f"X{int(rng.integers(0, 30))}" for i in range(n)],
                                     dtype=object),
            "_row_id": pd.Series([None if i == 3 else f"r{int(rng.integers(0, 90))}" for i in range(n)], dtype="str"),
            "_line": np.arange(n, dtype=np.int64)}))
    return out


def _texts(f: DuplicateFinder) -> list:
    return sorted(map(repr, np.concatenate(f._texts))) if f._texts else []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confirm_rows_finds_what_confirm_of_the_frames_finds(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(checks, "_hash", lambda values: np.array([len(str(v)) for v in values], dtype=np.uint64))
    frames = _batches(seed)
    spill = ArrowSpill(tmp_path / "s.arrow")
    for df in frames:
        spill.write(df)
    for columns in KEYS:
        old, new = (DuplicateFinder(columns, hash_bits=32, same_rows=True) for _ in range(2))
        for f in (old, new):
            for df in frames:
                f.add(df)
        assert old.needs_confirm == new.needs_confirm == (columns[-1] != "absent")  # absent: no key present
        cols = [c for c in columns if c in spill.schema.names]
        for batch in spill.lazy_batches(cols):
            old.confirm(batch.frame())
            t = batch.table()
            assert spill.exact(t)
            new.confirm_rows(table_presence(t, columns), batch.rows)
        assert _texts(new) == _texts(old) and (len(_texts(old)) > 0) == (columns[-1] != "absent")
        assert list(new.index().values) == list(old.index().values), columns


def test_confirm_rows_refuses_a_finder_that_hashes_again():
    with pytest.raises(ValueError):
        DuplicateFinder(["k"]).confirm_rows(np.ones(1, dtype=bool), lambda rows: None)
