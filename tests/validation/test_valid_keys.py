"""validation.outcome.valid_keys: a parent's valid keys collected from the batch's Arrow table give the key index
the frame's values gave (``KeyCollector.add(frame[key].to_numpy(dtype=object)[valid_rows])``).

Tricky keys: missing ones (None in object columns, NaN in pandas' ``str``), non-ASCII and NUL, keys longer than
the index's fixed width (kept apart), the same key in several batches, a batch without valid rows, an
integer key column (taken from the frame).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings.keyindex import KeyCollector
from crmbridge.validation.arrowspill import ArrowSpill
from crmbridge.validation.outcome import Split, valid_keys

KEYS = np.array([None, "", "C1", "C1\0", "甲乙丙", "k" * 70, "k" * 70 + "甲", "C 2", "c1"], dtype=object)


def _frames(seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def keys(b: int, n: int) -> list:  # half of them one row's own
        return [KEYS[rng.integers(0, len(KEYS))] if rng.random() < 0.5 else f"u{b}-{i}" for i in range(n)]

    return [pd.DataFrame({"customer_no": pd.Series(keys(b, n), dtype=object), "code": pd.Series(keys(b, n), dtype="str"),
                          "_line": np.arange(n, dtype=np.int64) + 100 * b}) for b, n in enumerate((30, 12, 0, 45))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valid_keys_from_arrow_index_as_the_frame_values_did(tmp_path, seed):
    spill = ArrowSpill(tmp_path / "s.arrow")
    for df in _frames(seed):
        spill.write(df)
    rng = np.random.default_rng(seed)
    for key in ("customer_no", "code", "_line"):
        old, new = KeyCollector(), KeyCollector()
        for b, batch in enumerate(spill.lazy_batches()):
            frame = batch.frame()
            rows = np.flatnonzero(rng.random(len(frame)) < (0 if b == 1 else 0.8))
            split = Split(quarantine=frame.iloc[:0], rows_warned=0, quarantined_by_rule={}, frame=frame,
                          valid_rows=rows, warnings=np.full(len(rows), None, dtype=object))
            old.add(frame[key].to_numpy(dtype=object)[rows])
            new.add(valid_keys(split, batch, key))
        a, b = old.freeze(), new.freeze()
        assert a.keys.tolist() == b.keys.tolist() and a.long == b.long, key
        assert len(a.keys) > 2 and (key == "_line" or a.long), key
