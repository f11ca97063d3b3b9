"""Validate with worker processes writes exactly what validate in one process writes: every output
file byte for byte (timestamps aside), the same counts; a worker that dies or raises fails the run
cleanly (one error, no validate/ folder, no process left behind)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal

import pytest

from crmbridge.errors import RunFailed
from crmbridge.validation import parallel

pytestmark = pytest.mark.skipif(not parallel.fork_available(), reason="validate runs serially without fork")

# What differs between any two runs of the same validation, serial or not (Data Docs pages only): GX's
# run times, its random element ids, the suite's process-wide serial number (``customers-3``).
_VOLATILE = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?|\d{8}T\d{6}\.\d+Z"
                       rb"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<=[a-z])-\d+(?=[<\s/])")


def _validate(project, run, dest, workers: int, batch_rows: int):
    from crmbridge.validation.stage import run_validate

    report = run_validate(project, run, batch_rows=batch_rows, workers=workers)
    shutil.copytree(run.dir / "validate", dest)
    return report


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _assert_identical(a, b):
    assert _files(a) == _files(b)
    for rel in _files(a):
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if rel.parts[0] == "data_docs":
            x, y = _VOLATILE.sub(b"<volatile>", x), _VOLATILE.sub(b"<volatile>", y)
        assert x == y, rel


def _serial_and_parallel(project, run, tmp_path, batch_rows: int, workers=(2,)):
    serial = _validate(project, run, tmp_path / "serial", 0, batch_rows)
    for n in workers:  # 1: one worker; 2: each worker skips the other's batches, the parent takes a third
        par = _validate(project, run, tmp_path / f"parallel{n}", n, batch_rows)
        assert par.counts() == serial.counts()
        assert par.blocking_failed == serial.blocking_failed
        _assert_identical(tmp_path / "serial", tmp_path / f"parallel{n}")
    return serial


def test_case_files_with_workers_equal_one_process(case_run, tmp_path):
    project, run = case_run
    rep = _serial_and_parallel(project, run, tmp_path, 3, workers=(1, 2))
    counts = rep.counts()
    # several entities, each in several batches, with quarantines, duplicates and references across batches
    assert len(counts) >= 3 and all(c["rows_in"] > 2 * 3 for c in counts.values())
    assert counts["customers"]["rows_quarantined"] and counts["contacts"]["rows_quarantined"]
    s = json.loads((tmp_path / "parallel2" / "summary.json").read_text("utf-8"))
    by_rule = {(e, r["rule_id"]): r for e, v in s["entities"].items() for r in v["rules"]}
    assert by_rule[("customers", "unique.customer_no")]["unexpected_count"] == 2
    assert by_rule[("contacts", "ref.customer_no")]["unexpected_count"] > 0


def test_demo_data_with_workers_equals_one_process(tmp_path, extracted_demo):
    project, run = extracted_demo(tmp_path / "demo", customers=150)
    rep = _serial_and_parallel(project, run, tmp_path, 40)
    assert sum(c["rows_quarantined"] for c in rep.counts().values()) > 0


def test_small_entities_stay_serial_by_default():
    assert parallel.worker_count(None, 1_000, 50_000) == 0
    assert parallel.worker_count(None, 150_000, 50_000) == 0  # below MIN_PARALLEL_ROWS
    assert parallel.worker_count(3, 1_000, 100) == 3
    assert parallel.worker_count(3, 100, 100) == 0  # one batch: nothing to overlap
    assert parallel.worker_count(0, 10 ** 7, 50_000) == 0


def _children() -> set[int]:
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as fh:
            return {int(p) for p in fh.read().split()}
    except OSError:
        return set()


def test_a_worker_killed_fails_the_run_cleanly(case_run, monkeypatch):
    from crmbridge.validation import normalise as N
    from crmbridge.validation.stage import run_validate

    project, run = case_run
    parent, real = os.getpid(), N.normalise

    def dying(df, *a, **kw):  # a worker killed as the kernel's OOM killer would
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(df, *a, **kw)

    monkeypatch.setattr(N, "normalise", dying)
    before = _children()
    with pytest.raises(RunFailed, match="a worker process died while normalising"):
        run_validate(project, run, batch_rows=7, workers=2)
    assert not (run.dir / "validate").exists() and not (run.dir / ".validate.tmp").exists()
    assert _children() <= before


def test_a_worker_raising_fails_the_run_with_its_error(case_run, monkeypatch):
    from crmbridge.validation import gxsuite
    from crmbridge.validation.stage import run_validate

    project, run = case_run
    parent, real = os.getpid(), gxsuite.SuiteRunner.run

    def failing(self, frame, ctx, table=None):
        if os.getpid() != parent:
            raise ValueError("broken on purpose")
        return real(self, frame, ctx, table)

    monkeypatch.setattr(gxsuite.SuiteRunner, "run", failing)
    before = _children()
    with pytest.raises(RunFailed, match="checking customers failed in a worker process.*broken on purpose"):
        run_validate(project, run, batch_rows=7, workers=2)
    assert not (run.dir / "validate").exists() and not (run.dir / ".validate.tmp").exists()
    assert _children() <= before


def test_documented_setting_loads():
    from pathlib import Path

    import yaml

    from crmbridge.config import ProjectConfig

    doc = (Path(__file__).parents[2] / "docs" / "steward.md").read_text("utf-8")
    block = re.search(r"```yaml\n(validate:\n.*?)```", doc, re.S).group(1)
    settings = ProjectConfig.model_validate(yaml.safe_load(block)).validation
    assert (settings.workers, settings.parallel_min_rows) == (1, 200_000)
    assert ProjectConfig().validation.workers == 0  # default: one process (memory, docs/performance.md)
    assert ProjectConfig.model_validate({"validate": {"workers": None}}).validation.workers is None  # by the cores
    with pytest.raises(ValueError):
        ProjectConfig.model_validate({"validate": {"workers": -1}})
