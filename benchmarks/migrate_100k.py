"""Benchmark: migrate 100k legacy customers (+ contacts) end to end into the embedded sandbox.

Generates the demo's legacy sources for N customers (three overlapping departmental exports, a
legacy CRM database with one contact per customer on average, a few contracts), then runs the whole
``migrate`` pipeline (extract -> validate -> map -> load -> reconcile) and prints the time per stage,
records/s, Salesforce API calls and peak memory. Compare with ``benchmarks/plain_bulk_load.py``,
which bulk-loads the same customers with plain simple-salesforce and no validation.

    .venv/bin/python benchmarks/migrate_100k.py [--customers 100000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="project folder to keep (default: a temporary one)")
    args = ap.parse_args()

    from sqlalchemy import select

    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.pipeline import run_migrate
    from crmbridge.state import open_state, run_stages
    from crmbridge.templates.commands import init_project

    root = args.dir or Path(tempfile.mkdtemp(prefix="migrate-100k-"))
    try:
        init_project(root, force=True)
        t = time.perf_counter()
        data = write_demo_data(root, customers=args.customers, contacts_per_customer=1.0, contract_share=0.05,
                               erp=False)
        gen = time.perf_counter() - t
        project = load_project(root)
        t0 = time.perf_counter()
        result = run_migrate(project, new=True)
        elapsed = time.perf_counter() - t0
        with open_state(project.state_url).connect() as c:
            stages = {r.stage: (r.finished_at - r.started_at).total_seconds() for r in
                      c.execute(select(run_stages).where(run_stages.c.run_id == result.run_id))}
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    rows = sum(e.extracted for e in result.entities)
    written = sum(e.created + e.updated + e.rejected for e in result.entities)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"crmbridge migrate: {args.customers} customers -> {data['rows']}")
    print(f"  generate sources: {gen:.1f} s (not counted)")
    for name, secs in stages.items():
        print(f"  {name:<10} {secs:7.1f} s")
    print(f"  total:            {elapsed:.1f} s")
    for e in result.entities:
        print(f"  {e.entity:<10} extracted {e.extracted}, quarantined {e.quarantined}, loaded {e.loaded}, "
              f"rejected {e.rejected}")
    print(f"  source rows/s (end to end):  {rows / elapsed:,.0f}")
    print(f"  source rows/s (load stage):  {written / stages.get('load', elapsed):,.0f}")
    print(f"  balanced: {result.balanced}, reconcile ok: {result.reconcile_ok}")
    print(f"  API calls:        {result.api_calls}")
    print(f"  peak memory:      {peak:,.0f} MB (this process, embedded sandbox included)")


if __name__ == "__main__":
    main()
