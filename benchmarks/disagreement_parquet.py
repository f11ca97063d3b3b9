"""Benchmark: the disagreement report on its own, over a spill-like Parquet file of N customer rows;
prints the CPU seconds and the peak RSS the report adds (each run in a fresh process).

    python benchmarks/disagreement_parquet.py --rows 1000000 [--rows 5000000] [--keep DIR]

Rows of three departments (sales, finance, service) with the template's criteria fields: two rows
share each customer number, and 80% of rows carry a credit code shared by two customer numbers. The
criteria are the template's (templates/project/definitions/customer.yml). The child's DuckDB cap and
threads can be set with CRMBRIDGE_BENCH_DUCKDB_MEMORY / CRMBRIDGE_BENCH_DUCKDB_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_rows(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(14)
    with pq.ParquetWriter(path, pa.schema([(c, pa.string()) for c in (
            "_row_id", "customer_no", "credit_code", "_department", "open_opportunities", "status",
            "invoice_count", "service_contracts")])) as w:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            i = np.arange(start, start + n)
            company = i // 2  # two rows (departments) per customer number
            code = np.where(rng.random(n) < 0.8, company // 2, -1)  # two customer numbers per credit code
            w.write_table(pa.table({
                "_row_id": pa.array([f"s:{x}" for x in i]),
                "customer_no": pa.array([f"C{x:08d}" for x in company]),
                "credit_code": pa.array([None if x < 0 else f"91310000{x:010d}" for x in code]),
                "_department": pa.array(rng.choice(["sales", "finance", "service"], size=n).tolist()),
                "open_opportunities": pa.array(rng.integers(0, 3, size=n).astype(str).tolist()),
                "status": pa.array(rng.choice(["Active", "Inactive", "Prospect"], size=n).tolist()),
                "invoice_count": pa.array(rng.integers(0, 4, size=n).astype(str).tolist()),
                "service_contracts": pa.array(rng.integers(0, 2, size=n).astype(str).tolist()),
            }), row_group_size=50_000)


def child(path: str) -> None:
    import yaml

    from crmbridge.validation import disagreement
    from crmbridge.validation.definition import Criteria
    from crmbridge.validation.disagreement import disagreement_from_file

    for name in ("DUCKDB_MEMORY", "DUCKDB_THREADS"):  # e.g. CRMBRIDGE_BENCH_DUCKDB_MEMORY=128MB
        if os.environ.get(f"CRMBRIDGE_BENCH_{name}") and hasattr(disagreement, name):
            setattr(disagreement, name, os.environ[f"CRMBRIDGE_BENCH_{name}"])

    crit = Criteria.model_validate(yaml.safe_load((ROOT / "templates" / "project" / "definitions" /
                                                   "customer.yml").read_text("utf-8"))["criteria"])
    from peakrss import own_peak_mib  # the child's own peak, not the parent's (peakrss.py)

    before = resource.getrusage(resource.RUSAGE_SELF)
    rss0 = own_peak_mib()
    t = time.perf_counter()
    rep = disagreement_from_file(path, crit, ["customer_no"], ["credit_code", "customer_no"], 50_000)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - t, "cpu_s": ru.ru_utime + ru.ru_stime - before.ru_utime
                      - before.ru_stime, "peak_mib": own_peak_mib(), "start_mib": rss0,
                      "companies": rep["companies"], "report": rep}, ensure_ascii=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    for rows in a.rows or [1_000_000]:
        folder = a.keep or Path(tempfile.mkdtemp(prefix="crmbridge-disagreement-"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rows{rows}.parquet"
        if not path.exists():
            write_rows(path, rows)
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env, capture_output=True,
                             text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{rows:>10,} rows: {r['companies']:,} companies, CPU {r['cpu_s']:.1f}s, wall {r['seconds']:.1f}s, "
              f"peak RSS {r['peak_mib']:.0f} MiB (before the report {r['start_mib']:.0f} MiB), "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if a.keep:
            (folder / f"report{rows}.json").write_text(json.dumps(r["report"], ensure_ascii=False, indent=1))
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
