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
