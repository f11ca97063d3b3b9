"""Benchmark: where validate's memory goes, phase by phase, on a project built by pipeline_local.py.

    python benchmarks/pipeline_local.py --rows 5000000 --keep /tmp/p5m    # builds, extracts, validates, maps
    python benchmarks/validate_phases.py /tmp/p5m                          # validate again, phase by phase
    python benchmarks/validate_1m.py --rows 1000000 --keep /tmp/v1m        # or: three department sources
    python benchmarks/validate_phases.py /tmp/v1m --per-batch              # plus RSS after every batch

Runs the real ``run_validate`` on the project's latest run and prints, after each phase (the GX
start-up, each entity's normalise pass with its uniqueness indexes, its validate pass, the disagreement
report, the reports written), the resident memory then and the peak *within* that phase (Linux: the
high-water mark is reset between phases through /proc/self/clear_refs), with CPU seconds and the load.
``--per-batch`` also prints the resident memory after each batch of both passes (whether it grows with
the batches or stays flat).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path

from peakrss import status_mib  # benchmarks/ is on sys.path: this file runs as a script


def _status(field: str) -> float:
    return status_mib(field)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Phases:
    def __init__(self) -> None:
        self.cpu = _cpu()
        self.wall = time.perf_counter()
        self.peak = 0.0
        self.reset()

    @staticmethod
    def reset() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def mark(self, name: str) -> None:
        cpu, wall = _cpu(), time.perf_counter()
        self.peak = max(self.peak, _status("VmHWM"))
        print(f"{name:34} RSS now {_status('VmRSS'):7.0f} MiB  peak in phase {_status('VmHWM'):7.0f} MiB  "
              f"CPU {cpu - self.cpu:7.1f}s  wall {wall - self.wall:7.1f}s  load {os.getloadavg()[0]:.2f}", flush=True)
        self.cpu, self.wall = cpu, wall
        self.reset()


def _wrap(owner, attr: str, phases: Phases, label) -> None:
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapped(*a, **kw):
        out = fn(*a, **kw)
        phases.mark(label(a))
        return out

    setattr(owner, attr, wrapped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a project folder kept by pipeline_local.py --keep")
    ap.add_argument("--batch-rows", type=int, default=0, help="validate's batch size (default BATCH_ROWS)")
    ap.add_argument("--per-batch", action="store_true", help="print RSS after every batch too")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from crmbridge.config import load_project
    from crmbridge.migrations.runs import latest_run
    from crmbridge.state import open_state
    from crmbridge.validation import disagreement, stage
    from crmbridge.validation.gxsuite import _context

    phases = Phases()
    project = load_project(a.root)
    run = latest_run(open_state(project.state_url), project.runs_dir)
    _context()
    phases.mark("start-up (imports, GX context)")
    _wrap(stage._EntityValidation, "normalise_all", phases, lambda a: f"{a[0].entity}: normalise + uniqueness")
    _wrap(stage._EntityValidation, "validate_all", phases, lambda a: f"{a[0].entity}: validate batches")
    _wrap(disagreement, "disagreement_from_file", phases, lambda a: "disagreement report")
    if a.per_batch:  # validate calls _release_memory once at the end of every batch
        release, done = stage._release_memory, [0]

        def per_batch() -> None:
            release()
            done[0] += 1
            print(f"  after batch {done[0]:4}: RSS now {_status('VmRSS'):7.0f} MiB, peak so far "
                  f"{_status('VmHWM'):7.0f} MiB", flush=True)

        stage._release_memory = per_batch
    rep = stage.run_validate(project, run, batch_rows=a.batch_rows or None)
    phases.mark("reports, data docs, state")
    print(f"peak RSS of the whole process: {phases.peak:.0f} MiB; counts {rep.counts()}")


if __name__ == "__main__":
    main()
