"""``arrowvals`` builds the same arrays and scalars as the pyarrow converters it replaces, value by value,
and an extract of CSV sources (department column and filters included) never imports pandas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from crmbridge import arrowvals as av

DATA = Path(__file__).parent / "data" / "extract"
TEXTS = [[], [""], ["a", None, "", "客户编号", "Ｃ000123", "x\x00y", "\u3000 ", "😀"], [None, None], ["é" * 70_000]]


@pytest.mark.parametrize("values", TEXTS)
def test_strings_and_scalars_equal_pyarrows(values):
    got, want = av.strings(values), pa.array(values, pa.string())
    assert got.equals(want) and got.to_pylist() == values and got.null_count == want.null_count
    for v in values:
        assert av.string(v).equals(pa.scalar(v, pa.string()))
    assert av.strings(tuple(values)).equals(want)  # zip(*rows) hands over tuples


@pytest.mark.parametrize("values", [[], [0], [3, -1, 2**62, -(2**63)], list(range(1000))])
def test_ints_equal_pyarrows(values):
    want = pa.array(values, pa.int64())
    assert av.ints(values).equals(want) and av.ints(np.array(values, np.int64)).equals(want)
    assert av.ints(np.array(values, np.int64)[::-1]).equals(pa.array(values[::-1], pa.int64()))  # not contiguous
    assert av.to_numpy(want).tolist() == values


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1001])
def test_bools_and_back_equal_pyarrows(n):
    mask = np.random.default_rng(n).random(n) < 0.3
    want = pa.array(mask)
    assert av.bools(mask).equals(want) and av.bools(mask.tolist()).equals(want)
    for start in (0, 1, 3):  # sliced arrays start inside a byte of the bitmap
        part = want.slice(start)
        assert av.to_numpy(part).tolist() == part.to_numpy(zero_copy_only=False).tolist()


def test_to_numpy_of_sliced_ints_and_nulls():
    arr = pa.array([5, None, 7, None, 9, 10], pa.int32()).slice(1)
    assert av.to_numpy(arr, null=-1).tolist() == arr.fill_null(-1).to_numpy().tolist() == [-1, 7, -1, 9, 10]
    assert av.to_numpy(arr.slice(1, 1)).tolist() == [7]
    with pytest.raises(ValueError):
        av.to_numpy(arr)  # nulls need a value
    hits = pc.match_substring_regex(pa.array(["a", None, "b"]), "b")
    assert av.to_numpy(hits, null=False).tolist() == [False, False, True]
    assert av.to_numpy(pa.nulls(3, pa.bool_()), null=True).tolist() == [True] * 3
    idx = pc.index_in(pa.array(["x", "y", "z"]), value_set=pa.array(["z", "x"]))
    assert av.to_numpy(idx, null=-1).tolist() == idx.fill_null(-1).to_numpy().tolist()


def test_extract_of_csv_sources_does_not_import_pandas(tmp_path):
    (tmp_path / "data").mkdir()
    names = ["csv__gb18030_semicolon.csv", "csv__ragged_rows.csv", "csv__quoted_newlines.csv", "csv__utf8_plain.csv"]
    sources = []
    for i, name in enumerate(names):
        shutil.copy(DATA / name, tmp_path / "data" / name)
        sources.append(f"  - name: s{i}\n    entity: e{i}\n    department: d\n    type: csv\n    path: data/{name}\n")
    sources.append("  - name: rules\n    entity: r\n    department: d\n    type: csv\n    path: data/csv__utf8_plain.csv\n"
                   "    key: [客户编号, 城市]\n    department_column: 城市\n    department_map: {上海: sales, 北京: finance}\n"
                   "    filters:\n      - {column: 电话, matches: '[0-9]'}\n")
    (tmp_path / "crmbridge.yml").write_text("name: t\nchunk_rows: 100\nsources:\n" + "".join(sources), "utf-8")
    code = ("import json, sys\nfrom crmbridge.config import load_project\nfrom crmbridge.migrations.extract import run_extract\n"
            f"r = run_extract(load_project({str(tmp_path)!r}))\n"
            "print(json.dumps([r.rows_read, r.rows_rejected, 'pandas' in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    rows_read, rejected, pandas = json.loads(out.strip().splitlines()[-1])
    assert rows_read > 10 and rejected > 0
    assert not pandas
