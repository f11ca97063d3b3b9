"""The peak resident memory of this process, for benchmarks that run a stage in a child process.

Not ``ru_maxrss`` alone: ``subprocess`` starts a child by vfork + exec, and Linux carries the parent's
memory high-water mark across that exec into the child's ``ru_maxrss`` (a benchmark's data generator
at 1.33 GB was once read as validate's peak). ``VmHWM`` in /proc/self/status is the child's own.
"""

from __future__ import annotations

import resource
from pathlib import Path


def status_mib(field: str) -> float:
    """A memory figure of /proc/self/status (``VmHWM``, ``VmRSS``) in MiB; nan where there is no /proc."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def own_peak_mib() -> float:
    """This process's own peak RSS in MiB (``ru_maxrss`` only where /proc is missing)."""
    own = status_mib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if own != own else own


def _proc_kib(pid: int, name: str, fields: tuple[str, ...]) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
    except OSError:  # the process has just ended
        return {}
    out = {}
    for line in lines:
        key = line.split(":", 1)[0]
        if key in fields:
            out[key] = int(line.split()[1])
    return out


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes and theirs (validate's forked workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(k) for k in (t / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class TreeMemory:
    """Memory of this process and every process it starts, for a stage that forks workers: sampled every
    ``interval`` seconds on a thread, the peak of the SUM over the processes of RSS (shared pages counted
    once per process: an overstatement) and of PSS (shared pages split between their users: the honest
    figure), plus the sum of each process's own high-water mark (``VmHWM``; the peaks need not coincide,
    so an upper bound). A peak between two samples can be missed by the sums, never by ``hwm_sum``."""

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.hwm: dict[int, int] = {}
        self.processes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        import os

        me = os.getpid()
        rss = pss = 0
        for pid in [me, *descendants(me)]:
            m = _proc_kib(pid, "smaps_rollup", ("Rss", "Pss"))
            rss += m.get("Rss", 0)
            pss += m.get("Pss", 0)
            hwm = _proc_kib(pid, "status", ("VmHWM",)).get("VmHWM")
            if hwm:
                self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
                self.processes.add(pid)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def result(self) -> dict:
        return {"processes": len(self.processes), "peak_rss_sum_mib": round(self.peak_rss / 1024),
                "peak_pss_sum_mib": round(self.peak_pss / 1024), "hwm_sum_mib": round(sum(self.hwm.values()) / 1024)}
