"""Map reads only the input columns a step uses (``stage.step_columns``), and every column of the quarantined
rows (``stage.read_rows``): its files and preview equal those of reading every column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.mappings.test_stage import demo_project

TRICKY = ["", None, "ｆｕｌｌ　ｗｉｄｔｈ", "trailing\x00\x00", "名字 🙂", "=1+1", "12345678901234567890123"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extracted import read_entity
    from crmbridge.state import open_state

    proj, run_id = demo_project(tmp_path_factory.mktemp("proj"))
    run = R.open_run(open_state(proj.state_url), proj.runs_dir, run_id)
    (run.dir / "validate").mkdir()
    for e in ("customers", "contacts", "contracts"):
        df = read_entity(run.dir, e)
        n = len(df)
        # columns no mapping reads, of mixed and tricky values: the quarantine shows them
        df["unused_text"] = [TRICKY[i % len(TRICKY)] for i in range(n)]
        df["unused_float"] = [np.nan if i % 3 else 1e300 * (i % 2 or -1) for i in range(n)]
        df["unused_int"] = np.arange(n, dtype="int64") * (2**62 // max(n, 1))
        # row groups of 37 rows: batches of 50 start and end inside them
        df.to_parquet(run.dir / "validate" / f"{e}.parquet", row_group_size=37)
    return proj, run


def _map_files(proj, run, monkeypatch, narrow: bool):
    from crmbridge.mappings import stage

    if not narrow:
        monkeypatch.setattr(stage, "step_columns", lambda loaded, run, entity: None)
    res = stage.run_map(proj, run, preview=3, batch_rows=50, force=True)
    monkeypatch.undo()
    files = {p.relative_to(run.dir / "map").as_posix(): p.read_bytes()
             for p in sorted((run.dir / "map").rglob("*")) if p.is_file()}
    return res, files


def test_narrow_input_writes_the_same_files(project, monkeypatch):
    proj, run = project
    want, want_files = _map_files(proj, run, monkeypatch, narrow=False)
    got, got_files = _map_files(proj, run, monkeypatch, narrow=True)
    assert sum(s.rows_quarantined for s in want.steps) > 0  # the wide rows were read
    assert got_files.keys() == want_files.keys()
    for name in want_files:
        assert got_files[name] == want_files[name], name
    assert got.as_dict() == want.as_dict()
    assert b"unused_text" in want_files["quarantine/Account.csv"]


def test_step_columns_leave_out_only_unread_columns(project):
    import pyarrow.parquet as pq

    from crmbridge.mappings.check import _used_columns
    from crmbridge.mappings.models import load_mappings
    from crmbridge.mappings.stage import mappings_folder, step_columns

    proj, run = project
    for s in load_mappings(mappings_folder(proj)).steps:
        cols = step_columns(s, run, s.step.entity)
        assert cols is not None and not {"unused_text", "unused_float", "unused_int"} & set(cols)
        names = set(pq.read_schema(run.dir / "validate" / f"{s.step.entity}.parquet").names)
        assert {c for _, c in _used_columns(s)} & names <= set(cols) and "_row_id" in cols
        assert not {"_source", "_line"} & set(cols) and {"_source", "_line"} <= names  # lineage map does not read


@pytest.mark.parametrize("first,count", [(0, 0), (0, 1), (36, 2), (37, 37), (50, 50), (290, 1000), (0, 10_000)])
def test_read_rows_equals_the_batches(project, first, count):
    from crmbridge.mappings.stage import iter_input, read_rows

    proj, run = project
    whole = pd.concat(list(iter_input(proj, run, "customers", skip_validation=False, batch_rows=50)),
                      ignore_index=True)
    got = read_rows(run, "customers", first, count)
    want = whole.iloc[first:first + count].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(whole.dtypes)
