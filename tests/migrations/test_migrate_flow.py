"""``migrate`` with extract and validate at once (``migrations.extract_flow``): the same outputs as one
after the other, extract's error and exit code as before, and a run killed during the overlap resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def _demo(root: Path, customers: int = 300) -> Path:
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    init_project(root)
    write_demo_data(root, customers=customers, erp=False)
    return root


def _normalised(path: Path, run_dir: Path, root: Path) -> bytes:
    b = path.read_bytes().replace(str(run_dir).encode(), b"<RUN_DIR>").replace(run_dir.name.encode(), b"<RUN>")
    b = b.replace(str(root).encode(), b"<ROOT>")
    b = re.sub(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", b"<UUID>", b)  # GX data docs
    b = re.sub(rb"20\d{6}T\d{6}\.\d+Z", b"<TS>", b)
    b = re.sub(rb"(customers|contacts|contracts)-\d+", rb"\1-<N>", b)  # GX suites are numbered per process
    return re.sub(rb"20\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d[.\d]*(\+00:00|Z)?", b"<TS>", b)


def test_migrate_outputs_are_the_same_with_and_without_the_overlap(tmp_path, monkeypatch):
    from crmbridge.config import load_project
    from crmbridge.migrations import extract_flow
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.state import dispose_all

    runs = {}
    shutil.copytree(_demo(tmp_path / "overlap"), tmp_path / "sequential")  # the same input bytes (xlsx has a date)
    for mode in ("overlap", "sequential"):
        root = tmp_path / mode
        with monkeypatch.context() as m:
            if mode == "sequential":
                m.setattr(extract_flow, "available", lambda: False)
            res = run_migrate(load_project(root), dry_run=True)
        assert res.stages_run == ("extract", "validate", "resolve", "map", "load") and res.balanced
        runs[mode] = (root, root / "runs" / res.run_id)
        dispose_all()
    (ra, a), (rb, b) = runs["overlap"], runs["sequential"]
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert not (a / ".extract.flow").exists() and not (a / ".validate.tmp").exists()
    for stage in ("extract", "validate", "map"):
        assert any(f.startswith(stage + "/") for f in files)
    for f in files:
        if f.endswith(".parquet"):
            assert pq.read_table(a / f).equals(pq.read_table(b / f)), f
        else:
            assert _normalised(a / f, a, ra) == _normalised(b / f, b, rb), f


def _stages(root: Path) -> dict[str, str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{root / '.crmbridge' / 'state.db'}")
    try:
        with engine.connect() as c:
            return dict(c.execute(text("SELECT stage, status FROM run_stages")).all())
    finally:
        engine.dispose()


def test_an_extract_error_through_migrate_is_extracts_error(tmp_path, helpers):
    root = _demo(tmp_path)
    service = root / "data" / "service_customers.csv"  # declared gb18030
    service.write_bytes(service.read_bytes() + "C9;甲\n".encode("gb18030") + b"C10;\xff\n")
    alone = helpers.cli(root, "extract")
    r = helpers.cli(root, "migrate")
    assert alone.returncode == r.returncode == 2, r.stderr[-2000:]
    error = alone.stderr.strip().splitlines()[0]
    assert re.search(r"data/service_customers.csv: line \d+, byte offset \d+", error)
    assert error in r.stderr
    assert _stages(root) == {"extract": "failed"}
    run = max((root / "runs").iterdir())
    assert sorted(p.name for p in run.iterdir()) == []  # nothing half-written, no scratch left


def _children(pid: int) -> list[int]:
    kids = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (t / "children").read_text().split()]
    return kids


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the overlap forks (Linux)")
def test_migrate_killed_during_the_overlap_resumes(tmp_path, helpers):
    root = _demo(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CRMBRIDGE_TEST_CRASH_AT"}
    child = subprocess.Popen([sys.executable, "-m", "crmbridge", "--project", str(root), "migrate"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    killed, extractors, deadline = False, [], time.monotonic() + 120
    try:
        while not killed and time.monotonic() < deadline and child.poll() is None:
            plans = list((root / "runs").glob("*/.extract.flow/plan.json")) if (root / "runs").exists() else []
            if plans:  # extract is writing in its own process, validate following it
                extractors = _children(child.pid)
                os.kill(child.pid, signal.SIGKILL)
                killed = True
            else:
                time.sleep(0.005)
    finally:
        child.wait(timeout=60)
    assert killed and child.returncode == -signal.SIGKILL and extractors
    deadline = time.monotonic() + 10
    while not all(map(_gone, extractors)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_gone, extractors)), "the extract process outlived migrate"
    assert _stages(root).get("extract") != "succeeded" and "validate" not in _stages(root)
    killed_run = max((root / "runs").iterdir()).name
    out = helpers.cli(root, "migrate", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["resumed"] is True and res["run_id"] == killed_run
    assert res["stages_run"] == ["extract", "validate", "resolve", "map", "load", "reconcile"]
    assert res["balanced"] and res["reconcile_ok"]
    assert not list((root / "runs").glob("*/.*"))  # no scratch (.extract.flow, .extract.tmp ...) left


def test_a_source_read_again_in_another_encoding_is_validated_from_the_finished_extract(tmp_path):
    """Extract's encoding, detected on a file's first block, fails on a later one: the file is read again
    (``extract._extract_source``), so the rows already handed to the follower are void; validate then
    reads the finished extract instead."""
    from crmbridge.config import load_project
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract_flow import ExtractJob, extract_and_validate
    from crmbridge.migrations.extracted import iter_entity_tables
    from crmbridge.state import dispose_all, open_state

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.csv").write_bytes(
        ("customer_no;name\r\n" + "".join(f"C{i:07d};Acme {i}\r\n" for i in range(1, 130_000))).encode("ascii")
        + "C9999999;明远贸易有限公司\r\n".encode("gb18030"))
    (tmp_path / "crmbridge.yml").write_text(
        "name: t\nchunk_rows: 5000\nsources:\n  - name: s\n    entity: e\n    department: d\n    type: csv\n"
        "    path: data/c.csv\n", "utf-8")
    project = load_project(tmp_path)
    run = R.create_run(open_state(project.state_url), project.runs_dir, "migrate")
    calls, between = [], []

    def validate(followed):
        calls.append("followed" if followed is not None else "finished")
        batches = followed.tables("e", 7000) if followed is not None else iter_entity_tables(run.dir, "e", 7000)
        return [len(b) for b in batches]

    try:
        got = extract_and_validate(run.dir, ExtractJob(project, run),
                                   validate, lambda: between.append(1))
    finally:
        dispose_all()
    assert calls == ["followed", "finished"] and between == [1]
    assert sum(got) == 130_000 and got[-1] == 130_000 % 7000
    assert R.stage_status(open_state(project.state_url), run.run_id, "extract") == "succeeded"
    assert not (run.dir / ".extract.flow").exists()


def test_the_extract_child_is_a_new_interpreter_not_a_fork(tmp_path, monkeypatch):
    """A fork copies the locks other threads hold at that moment (in CI the embedded sandbox's threads held
    SQLite's allocator mutex, and the forked extract waited on it for ever): the child must be started
    afresh. Here ``os.fork`` refuses; the extract still runs beside validate and hands over every row."""
    import os

    from crmbridge.config import load_project
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract_flow import ExtractJob, extract_and_validate
    from crmbridge.state import dispose_all, open_state

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.csv").write_text("customer_no;name\n" + "".join(f"C{i:05d};Acme {i}\n" for i in range(1, 2001)),
                                             "utf-8")
    (tmp_path / "crmbridge.yml").write_text(
        "name: t\nsources:\n  - name: s\n    entity: e\n    department: d\n    type: csv\n    path: data/c.csv\n", "utf-8")
    project = load_project(tmp_path)
    run = R.create_run(open_state(project.state_url), project.runs_dir, "migrate")

    def no_fork():
        raise AssertionError("the extract child was forked")

    monkeypatch.setattr(os, "fork", no_fork)
    try:
        got = extract_and_validate(run.dir, ExtractJob(project, run),
                                   lambda followed: [len(b) for b in followed.tables("e", 700)], lambda: None)
    finally:
        dispose_all()
    assert got == [700, 700, 600]
    assert R.stage_status(open_state(project.state_url), run.run_id, "extract") == "succeeded"


def test_migrate_leaving_during_the_overlap_stops_the_extract_child_at_once(tmp_path, monkeypatch):
    """A Ctrl-C (here a KeyboardInterrupt out of validate's first batch) that reached only ``migrate``: the
    extract child is stopped, not waited for until its extract ends (300,000 rows: seconds), and none is left."""
    from crmbridge.config import load_project
    from crmbridge.migrations import runs as R
    from crmbridge.migrations import extract_flow
    from crmbridge.state import dispose_all, open_state

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.csv").write_text(
        "customer_no;name\n" + "".join(f"C{i:06d};Acme {i}\n" for i in range(1, 300_001)), "utf-8")
    (tmp_path / "crmbridge.yml").write_text(
        "name: t\nsources:\n  - name: s\n    entity: e\n    department: d\n    type: csv\n    path: data/c.csv\n", "utf-8")
    project = load_project(tmp_path)
    run = R.create_run(open_state(project.state_url), project.runs_dir, "migrate")
    children = []
    real = extract_flow._Child.__init__

    def spy(self, job):
        real(self, job)
        children.append(self.proc)

    def validate(followed):
        next(iter(followed.tables("e", 1000)))
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_flow._Child, "__init__", spy)
    try:
        with pytest.raises(KeyboardInterrupt):
            extract_flow.extract_and_validate(run.dir, extract_flow.ExtractJob(project, run), validate, lambda: None)
    finally:
        status = R.stage_status(open_state(project.state_url), run.run_id, "extract")
        dispose_all()
    assert children and children[0].returncode == -signal.SIGKILL  # stopped, and waited for
    assert status != "succeeded"  # not waited for until its end
    assert not (run.dir / ".extract.flow").exists()
