"""The extract stage with the Arrow CSV path writes exactly what the csv module path wrote: the same
Parquet files (every column, lineage included, row for row), the same rejects files byte for byte,
the same manifest and profile, on the demo project and on a project made of every CSV under tests/data
(with department columns, filters and composite keys on top)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import crmbridge.connectors.files as files
from crmbridge.config import load_project
from crmbridge.errors import UsageError
from crmbridge.migrations.extract import run_extract

DATA = Path(__file__).parent.parent / "data"
UNDECODABLE = {"csv__undecodable_byte.csv", "csv__utf8_with_one_bad_byte.csv"}


def csv_module_path(source, path, shown, *, encoding=None, batch_rows=50_000, tentative=False):
    return files.read_csv_rows(source, path, shown, encoding=encoding)  # detects on the whole file


def extract_both(project, monkeypatch):
    new = run_extract(project, full=True)
    with monkeypatch.context() as m:
        m.setattr(files, "read_csv", csv_module_path)
        old = run_extract(project, full=True)  # SQL sources read in full both times
    return new, old


def assert_same_outputs(new, old) -> None:
    nd, od = Path(new.extract_dir), Path(old.extract_dir)
    assert [s.as_dict() for s in new.sources] == [s.as_dict() for s in old.sources]
    for s in new.sources:
        a, b = pq.read_table(nd / s.parquet), pq.read_table(od / s.parquet)
        assert a.schema == b.schema and a.num_rows == s.rows_kept
        assert a.equals(b), s.source
        groups = [pq.ParquetFile(d / s.parquet).metadata for d in (nd, od)]  # the same row groups too
        assert [[m.row_group(i).num_rows for i in range(m.num_row_groups)] for m in groups] == \
            [[m.row_group(i).num_rows for i in range(m.num_row_groups)] for m in groups[1:] + groups[:1]]
        if s.reject_file:
            assert (nd / s.reject_file).read_bytes() == (od / s.reject_file).read_bytes()
    from crmbridge.migrations.profile import profile_dir

    manifest = json.loads((nd / "manifest.json").read_text("utf-8"))  # profiled while written == read back
    assert json.loads((nd / "profile.json").read_text("utf-8")) == profile_dir(nd, manifest, new_chunk_rows(nd))
    for name in ("manifest.json", "profile.json"):
        x, y = json.loads((nd / name).read_text("utf-8")), json.loads((od / name).read_text("utf-8"))
        x.pop("run_id"), y.pop("run_id")
        assert x == y


def new_chunk_rows(extract_dir: Path) -> int:
    return load_project(extract_dir.parent.parent.parent).config.chunk_rows


def test_demo_project_extracts_identically(tmp_path, monkeypatch):
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(tmp_path)
    write_demo_data(tmp_path, customers=2000, erp=False)
    cfg = tmp_path / "crmbridge.yml"  # several row groups per file
    cfg.write_text(cfg.read_text("utf-8").replace("chunk_rows: 50000", "chunk_rows: 300"), "utf-8")
    new, old = extract_both(load_project(tmp_path), monkeypatch)
    assert pq.ParquetFile(Path(new.extract_dir) / new.sources[0].parquet).metadata.num_row_groups > 2
    assert sum(s.rows_kept for s in new.sources if s.type == "csv") > 2000
    assert_same_outputs(new, old)


def every_test_csv_project(root: Path) -> None:
    (root / "data").mkdir()
    sources = []
    for i, p in enumerate(sorted(DATA.rglob("*"))):
        if p.suffix.lower() not in (".csv", ".txt") or p.name in UNDECODABLE:
            continue
        shutil.copy(p, root / "data" / p.name)
        extra = "    header_row: 3\n" if "header_row3" in p.name else ""
        sources.append(f"  - name: s{i}\n    entity: e{i}\n    department: d\n    type: csv\n"
                       f"    path: data/{p.name}\n{extra}")
    rules = ("    key: [客户编号, 城市]\n    department_column: 城市\n"
             "    department_map: {上海: sales, 北京: finance}\n"
             "    filters:\n      - {column: 电话, matches: '[0-9]'}\n")
    for name in ("csv__utf8_plain.csv", "csv__quoted_newlines.csv", "csv__ragged_rows.csv"):
        sources.append(f"  - name: rules_{name[5:-4]}\n    entity: rules\n    department: d\n    type: csv\n"
                       f"    path: data/{name}\n{rules}")
    (root / "crmbridge.yml").write_text("name: t\nchunk_rows: 100\nsources:\n" + "".join(sources), "utf-8")


def test_every_test_csv_extracts_identically(tmp_path, monkeypatch):
    every_test_csv_project(tmp_path)
    new, old = extract_both(load_project(tmp_path), monkeypatch)
    assert len(new.sources) == len(list(DATA.rglob("*.csv"))) + len(list(DATA.rglob("*.txt"))) - len(UNDECODABLE) + 3
    assert new.rows_rejected > 5
    assert_same_outputs(new, old)


@pytest.mark.parametrize("name", sorted(UNDECODABLE))
def test_undecodable_files_fail_the_same_way_and_leave_nothing(tmp_path, monkeypatch, name):
    (tmp_path / "data").mkdir()
    shutil.copy(DATA / "extract" / name, tmp_path / "data" / name)
    (tmp_path / "crmbridge.yml").write_text(
        f"name: t\nsources:\n  - name: s\n    entity: e\n    department: d\n    type: csv\n    path: data/{name}\n",
        "utf-8")
    project = load_project(tmp_path)
    errors = []
    for reader in (files.read_csv, csv_module_path):
        with monkeypatch.context() as m:
            m.setattr(files, "read_csv", reader)
            with pytest.raises(UsageError) as ei:
                run_extract(project)
        errors.append(str(ei.value))
    assert errors[0] == errors[1] and "line " in errors[0]
    assert not list(project.runs_dir.rglob("*.parquet"))
