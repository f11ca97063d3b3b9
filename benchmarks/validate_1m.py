"""Benchmark: validate 1M customer rows (three departments) against the template definition's 20
customer rules; prints rows/s, rows per CPU-second, peak memory and the load average.

    python benchmarks/validate_1m.py [--rows 1000000] [--batch-rows 100000] [--keep DIR]
    python benchmarks/validate_1m.py --rows 200000 --rows 1000000    # peak RSS must not grow with rows
    python benchmarks/validate_1m.py --rows 200000 --profile /tmp/validate.prof   # where the CPU goes

Data is generated in the extract layout (``runs/<id>/extract/customers/<source>.parquet`` plus a
manifest), messy the way the demo data is (full-width digits, padded keys, three date spellings,
currency amounts, +86 phones) with ~2% planted defects. The validation itself runs in a fresh child
process so that its peak RSS (its own VmHWM: ``_own_peak_mib``) is the validate stage's alone.
"""

from __future__ import annotations

import argparse
import os
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "templates" / "project" / "definitions" / "customer.yml"
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CHUNK = 500_000
FW = str.maketrans("0123456789C", "０１２３４５６７８９Ｃ")


def _credit_codes(rng, n: int) -> list[str]:
    from stdnum.cn import uscc

    letters = rng.integers(0, len(ALPHABET), size=(n, 9))
    bodies = ["91310000" + "".join(ALPHABET[i] for i in row) for row in letters]
    return [b + uscc.calc_check_digit(b) for b in bodies]


def make_frame(n: int, seed: int = 7, start: int = 0):
    """``n`` customer rows as extract writes them: strings, nulls for empty, lineage columns; customer
    numbers from ``start`` (the generator writes big runs chunk by chunk)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    idx = np.arange(start, start + n)
    dept = rng.choice(["sales", "finance", "service"], size=n, p=[0.5, 0.3, 0.2])
    no = pd.Series([f"C{i:07d}" for i in idx], dtype=object)
    messy = rng.random(n)
    no = no.where(messy > 0.03, no.str.translate(FW)).where((messy < 0.03) | (messy > 0.06), " " + no + " ")
    codes = pd.Series(_credit_codes(rng, n), dtype=object)
    bad = rng.random(n) < 0.02
    codes[bad] = codes[bad].str.slice(0, 17) + "0"
    codes[rng.random(n) < 0.05] = None
    mob = pd.Series(rng.integers(13000000000, 13999999999, size=n).astype(str), dtype=object)
    form = rng.integers(0, 4, size=n)
    phone = np.select([form == 0, form == 1, form == 2], ["+86 " + mob, mob, "021-" + mob.str.slice(3, 11)], mob)
    emails = "info@c" + pd.Series(idx.astype(str), dtype=object) + ".example.cn"
    emails[rng.random(n) < 0.01] = "bad@"
    d = pd.to_datetime("2015-01-01") + pd.to_timedelta(rng.integers(0, 3600, size=n), unit="D")
    y, m, dd = d.year.astype(str), d.month.astype(str), d.day.astype(str)
    dform = rng.integers(0, 3, size=n)
    created = np.select([dform == 0, dform == 1], [d.strftime("%Y-%m-%d"), y + "/" + m + "/" + dd],
                        y + "年" + m + "月" + dd + "日")
    rev = rng.integers(10, 50_000, size=n) * 1000
    revenue = np.where(rng.random(n) < 0.5, pd.Series(rev).map("¥{:,.2f}".format), rev.astype(str))
    df = pd.DataFrame({
        "customer_no": no, "name": rng.choice(["上海明远贸易有限公司", "Acme Industrial Ltd.", "北京华信科技有限公司",
                                                "<b>Evil</b> Corp", None], size=n, p=[0.4, 0.3, 0.295, 0.002, 0.003]),
        "credit_code": codes, "phone": phone, "email": emails, "address": "浦东新区世纪大道100号",
        "city": rng.choice(["上海", "北京", "深圳"], size=n), "province": "上海市",
        "postal_code": rng.choice(["200120", "２００１２０", "100020"], size=n),
        "country": rng.choice(["CN", "中国", "China", "US"], size=n, p=[0.5, 0.3, 0.15, 0.05]),
        "industry": "零售", "status": rng.choice(["潜在", "活跃", "正常", "停用", "黑名单", "active", "作废"], size=n,
                                              p=[0.2, 0.3, 0.2, 0.15, 0.05, 0.095, 0.005]),
        "sales_rep": "R001", "created_on": created, "annual_revenue": revenue,
        "open_opportunities": np.where(dept == "sales", rng.integers(0, 4, size=n).astype(str), None),
        "invoice_count": np.where(dept == "finance", rng.integers(0, 9, size=n).astype(str), None),
        "open_balance": np.where(dept == "finance", "¥1,000.00", None),
        "credit_limit": np.where(dept == "finance", "100000", None),
        "service_contracts": np.where(dept == "service", rng.integers(0, 3, size=n).astype(str), None),
    })
    df.loc[df["country"] == "US", "postal_code"] = "10001"
    df["_department"] = dept
    return df


def write_project(root: Path, n: int) -> str:
    """A project whose newest run holds ``n`` extracted customer rows; returns the run id."""
    from crmbridge.config import load_project
    from crmbridge.migrations.runs import create_run, finish_stage, start_stage
    from crmbridge.state import open_state
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "definitions").mkdir(parents=True)
    shutil.copyfile(DEFINITION, root / "definitions" / "customer.yml")
    (root / "crmbridge.yml").write_text("name: bench\n", "utf-8")
    project = load_project(root)
    engine = open_state(project.state_url)
    run = create_run(engine, project.runs_dir, "migrate", command="benchmark")
    ext = run.dir / "extract" / "customers"
    ext.mkdir(parents=True)
    writers: dict = {}
    counts: dict[str, int] = {}
    for chunk, start in enumerate(range(0, n, CHUNK)):  # chunk by chunk: 5M rows do not fit a frame
        df = make_frame(min(CHUNK, n - start), seed=7 + chunk, start=start)
        for dept, part in df.groupby("_department", sort=False):
            name = f"{dept}_customers"
            seen = counts.get(name, 0)
            part = part.reset_index(drop=True)
            part["_row_id"] = [f"{name}:{i + 2}" for i in range(seen, seen + len(part))]
            part["_source"], part["_line"], part["_source_key"] = name, range(seen + 2, seen + len(part) + 2), \
                part["customer_no"]
            table = pa.Table.from_pandas(part, preserve_index=False)
            if name not in writers:
                schema = pa.schema([pa.field(f.name, pa.int64() if f.name == "_line" else pa.string())
                                    for f in table.schema])
                writers[name] = (pq.ParquetWriter(ext / f"{name}.parquet", schema), schema)
            w, schema = writers[name]
            w.write_table(table.cast(schema))
            counts[name] = seen + len(part)
    for w, _ in writers.values():
        w.close()
    sources = [{"source": name, "entity": "customers", "parquet": f"customers/{name}.parquet",
                "rows_read": c, "rows_kept": c, "rows_rejected": 0} for name, c in counts.items()]
    manifest = {"run_id": run.run_id, "stage": "extract", "sources": sources,
                "entities": {"customers": {"sources": [s["source"] for s in sources], "rows_read": n,
                                           "rows_kept": n, "rows_rejected": 0}}}
    (run.dir / "extract" / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    start_stage(engine, run.run_id, "extract")
    finish_stage(engine, run.run_id, "extract", {"rows": n})
    return run.run_id


def child(root: str, run_id: str, batch_rows: str, profile: str = "") -> None:
    from crmbridge.config import load_project
    from crmbridge.migrations.runs import open_run
    from crmbridge.state import open_state
    from crmbridge.validation.gxsuite import _context

    _context()  # GX's one-off start-up (seconds) is not per-row work
    project = load_project(root)
    run = open_run(open_state(project.state_url), project.runs_dir, run_id)
    from crmbridge.validation.stage import run_validate

    t = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    if profile:
        import cProfile

        prof = cProfile.Profile(time.process_time)  # CPU time: wall time here mostly measures the load
        rep = prof.runcall(run_validate, project, run, batch_rows=int(batch_rows) or None)
        prof.dump_stats(profile)
    else:
        rep = run_validate(project, run, batch_rows=int(batch_rows) or None)
    secs = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    c = rep.entities["customers"]
    peak = _own_peak_mib(ru)
    print(json.dumps({"rows": c["rows_in"], "valid": c["rows_valid"], "quarantined": c["rows_quarantined"],
                      "rules": len(c["rules"]), "seconds": round(secs, 1), "rows_per_s": round(c["rows_in"] / secs),
                      "cpu_s": round(cpu, 1), "rows_per_cpu_s": round(c["rows_in"] / max(cpu, 0.01)),
                      "peak_rss_mib": round(peak)}))


def _own_peak_mib(ru) -> float:
    """This process's own peak RSS. Not ``ru_maxrss`` alone: subprocess starts the child by vfork + exec,
    and Linux carries the parent's high-water mark across exec into the child's ``ru_maxrss`` (the
    generator's 1.33 GB at 1M rows was read as validate's). ``VmHWM`` is the child's own memory's."""
    from peakrss import own_peak_mib  # benchmarks/ is on sys.path: this file runs as a script

    return own_peak_mib()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeat for several runs; default 1000000)")
    ap.add_argument("--batch-rows", type=int, default=0, help="validate's batch size (default: BATCH_ROWS)")
    ap.add_argument("--keep", type=Path, help="build the project here and keep it (one --rows only)")
    ap.add_argument("--profile", type=Path, help="write cProfile statistics of the validate stage here and print "
                    "the top functions (the profiler itself adds CPU time)")
    ap.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    print(f"load average {_load()} on {os.cpu_count()} cores", flush=True)
    for rows in a.rows or [1_000_000]:
        root = a.keep or Path(tempfile.mkdtemp(prefix="crmbridge-bench-"))
        try:
            t = time.perf_counter()
            run_id = write_project(root, rows)
            print(f"generated {rows} rows in {time.perf_counter() - t:.1f}s", flush=True)
            cmd = [sys.executable, __file__, "--child", str(root), run_id, str(a.batch_rows)]
            out = subprocess.run(cmd + ([str(a.profile)] if a.profile else []), capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["rows"] == r["valid"] + r["quarantined"]
            print(f"validate: {r['rows']} rows, {r['rules']} rules, {r['seconds']}s, {r['rows_per_s']} rows/s, "
                  f"CPU {r['cpu_s']}s = {r['rows_per_cpu_s']} rows per CPU-second, peak memory {r['peak_rss_mib']} MiB, "
                  f"valid {r['valid']}, quarantined {r['quarantined']}, batch rows {a.batch_rows or 'default'}; "
                  f"load average {_load()}", flush=True)
            if a.profile:
                import pstats

                pstats.Stats(str(a.profile)).sort_stats("cumulative").print_stats(45)
                pstats.Stats(str(a.profile)).sort_stats("tottime").print_stats(35)
        finally:
            if not a.keep:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
