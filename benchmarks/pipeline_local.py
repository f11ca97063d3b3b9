"""Benchmark: the local pipeline (extract -> validate -> map) on legacy customer rows; prints each
stage's rows/s and peak RSS, the combined rows/s, `crmbridge --help` timing and the machine load.

    python benchmarks/pipeline_local.py                    # 1M rows
    python benchmarks/pipeline_local.py --rows 200000      # quicker
    python benchmarks/pipeline_local.py --rows 5000000     # the memory target (peak RSS < 1 GB)
    python benchmarks/pipeline_local.py --validate-batch-rows 50000   # validate's batch size (default BATCH_ROWS)
    python benchmarks/pipeline_local.py --help-only        # only `crmbridge --help`
    python benchmarks/pipeline_local.py --keep /tmp/p --validate-workers 0,2,0,2,0,2   # validate serial and
        # with 2 worker processes, interleaved (a project already in /tmp/p is reused: not generated, extracted again)
    python benchmarks/pipeline_local.py --keep /tmp/p --flow 3   # extract + validate as `migrate` runs them:
        # one after the other, then at once (extract in a child, validate following it), interleaved 3 times each

Besides the stage-by-stage figure, the default run prints the three stages as ``migrate`` runs them:
extract in its own process beside validate's first pass, great-expectations' start-up included, then map.

The CSV is the one benchmarks/extract_csv.py writes (GB18030, ';', full-width keys, quoted newlines,
ragged rows), with the template's customer definition and Account mapping. Every stage runs in a
fresh child process through the real stage functions (``run_extract``, ``run_validate``, the map
stage's ``_map_all``), so each peak RSS is that stage's own. Map runs without an org: the owners
table's users are given as plain data, as ``crmbridge map --no-org-check`` cannot resolve them.
Rows in = rows out is asserted for every stage. Validate can fork worker processes: its CPU includes
theirs (RUSAGE_CHILDREN), and its memory is also given summed over the processes (``peakrss.TreeMemory``:
peak of the summed RSS and PSS, sampled every 0.25 s, and the sum of each process's own peak).
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from extract_csv import HEADER, customer  # noqa: E402

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

NAMES = ["customer_no", "name", "credit_code", "phone", "email", "address", "city", "province", "postal_code",
         "country", "industry", "status", "sales_rep", "created_on", "annual_revenue", "service_contracts"]


def write_project(root: Path, rows: int) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "definitions").mkdir(exist_ok=True)
    (root / "mappings").mkdir(exist_ok=True)
    tpl = ROOT / "templates" / "project"
    shutil.copyfile(tpl / "definitions" / "customer.yml", root / "definitions" / "customer.yml")
    shutil.copyfile(tpl / "mappings" / "account.yml", root / "mappings" / "account.yml")
    shutil.copyfile(tpl / "mappings" / "owners.csv", root / "mappings" / "owners.csv")
    cols = "\n".join(f"      {h}: {n}" for h, n in zip(HEADER, NAMES))
    (root / "crmbridge.yml").write_text(
        "name: bench\nsources:\n  - name: service_customers\n    entity: customers\n    department: service\n"
        f"    type: csv\n    path: data/customers.csv\n    key: customer_no\n    columns:\n{cols}\n", "utf-8")
    generate(root / "data" / "customers.csv", rows)


def credit_code(i: int) -> str:
    """A distinct unified social credit code with a correct check character for row ``i``."""
    org, n = [], i
    for _ in range(9):
        n, r = divmod(n, 31)
        org.append(USCC_ALPHABET[r])
    body = "91310000" + "".join(reversed(org))
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, WEIGHTS))
    return body + USCC_ALPHABET[(31 - total) % 31]


def generate(path: Path, rows: int) -> None:
    """extract_csv's messy rows (GB18030, ';', a ragged row now and then), with distinct valid credit
    codes: a realistic share of the rows then passes validation and reaches map."""
    import random

    rnd = random.Random(42)
    with open(path, "w", encoding="gb18030", newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        buf = []
        for i in range(1, rows + 1):
            cells = customer(i, rnd)
            cells[2] = credit_code(i) if i % 50 else cells[2]  # 2% keep a wrong check character
            buf.append(";".join(cells) + "\r\n")
            if i % 7919 == 0:
                buf.append(f"C{i:07d};坏行\r\n")  # a ragged row: rejected by extract
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))


def _peak_mib() -> float:
    from peakrss import own_peak_mib  # the child's own peak, not the generator parent's (peakrss.py)

    return own_peak_mib()


def stage_child(root: str, stage: str) -> None:
    """One stage in this (fresh) process; prints a JSON line."""
    from crmbridge.config import load_project
    from crmbridge.migrations.runs import latest_run
    from crmbridge.state import open_state

    project = load_project(root)
    if stage == "validate":
        from crmbridge.validation.gxsuite import _context

        _context()  # GX's one-off start-up (seconds) is timed separately below
    from peakrss import TreeMemory

    t0 = time.perf_counter()
    cpu0, cpu0_self = _cpu_s(), _cpu_s(children=False)  # CPU seconds: not inflated by a loaded machine
    tree = TreeMemory(0.25).__enter__()
    if stage == "extract":
        from crmbridge.migrations.extract import run_extract

        res = run_extract(project)
        out = {"rows_in": res.rows_read, "rows_out": res.rows_read - res.rows_rejected,
               "rejected": res.rows_rejected}
    else:
        run = latest_run(open_state(project.state_url), project.runs_dir)
        if stage == "validate":
            from crmbridge.validation.stage import run_validate

            batch = int(os.environ.get("CRMBRIDGE_BENCH_VALIDATE_BATCH") or 0) or None
            workers = os.environ.get("CRMBRIDGE_BENCH_VALIDATE_WORKERS")
            c = run_validate(project, run, batch_rows=batch, workers=int(workers) if workers else None
                             ).entities["customers"]
            assert c["rows_in"] == c["rows_valid"] + c["rows_quarantined"]
            out = {"rows_in": c["rows_in"], "rows_out": c["rows_valid"], "quarantined": c["rows_quarantined"]}
        else:
            out = _map(project, run)
    seconds = time.perf_counter() - t0
    tree.__exit__(None, None, None)
    out.update(seconds=seconds, peak_mib=_peak_mib(), cpu_s=round(_cpu_s() - cpu0, 1))
    if tree.result()["processes"] > 1:  # worker processes: their memory too, and the CPU of each side (on a
        # busy machine the kernel shares the CPU per session, not per process: wall time hides the overlap)
        out["tree"] = tree.result()
        out["cpu_parent_s"] = round(_cpu_s(children=False) - cpu0_self, 1)
    print(json.dumps(out))


def flow_child(root: str, mode: str) -> None:
    """Extract + validate of a new run in this (fresh) process as ``migrate`` runs them, GX's start-up
    included: ``seq`` one after the other, ``flow`` at once (``migrations.extract_flow``); then map."""
    from crmbridge.config import load_project
    from crmbridge.locks import project_lock
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state
    from crmbridge.validation.stage import run_validate
    from peakrss import TreeMemory

    project = load_project(root)
    run = R.create_run(open_state(project.state_url), project.runs_dir, "migrate", command=f"bench {mode}")
    t0 = time.perf_counter()
    cpu0, cpu0_self = _cpu_s(), _cpu_s(children=False)
    with TreeMemory(0.25) as tree, project_lock(project, "migrate"):  # held as migrate holds it: for both processes
        if mode == "seq":
            run_extract(project, run=run, full=True)
            rep = run_validate(project, run)
        else:
            from crmbridge.migrations.extract_flow import ExtractJob, extract_and_validate

            rep = extract_and_validate(run.dir, ExtractJob(project, run),
                                       lambda extract: run_validate(project, run, extract=extract), lambda: None)
    out = {"run_id": run.run_id, "seconds": time.perf_counter() - t0, "cpu_s": round(_cpu_s() - cpu0, 1),
           "cpu_self_s": round(_cpu_s(children=False) - cpu0_self, 1), "tree": tree.result(),
           "rows_in": rep.entities["customers"]["rows_in"]}
    if os.environ.get("CRMBRIDGE_BENCH_MAP") == "1":
        t0, cpu0 = time.perf_counter(), _cpu_s()
        out["map"] = {**_map(project, run), "seconds": time.perf_counter() - t0, "cpu_s": round(_cpu_s() - cpu0, 1)}
    print(json.dumps(out))


def _flow_run(root: Path, mode: str, with_map: bool) -> dict:
    """``flow_child(root, mode)`` in a fresh process; its JSON line."""
    env = {**os.environ, "CRMBRIDGE_BENCH_MAP": "1" if with_map else ""}
    out = subprocess.run([sys.executable, __file__, "--flow-child", str(root), mode], capture_output=True, text=True,
                         env=env)
    if out.returncode:
        sys.exit(f"extract + validate ({mode}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_flow(root: Path, repeat: int, with_map: bool) -> None:
    for mode in ("seq", "flow") * repeat:
        r = _flow_run(root, mode, with_map)
        t = r["tree"]
        print(f"extract+validate {mode:4}  {r['rows_in']:,} rows  wall {r['seconds']:5.1f}s  CPU {r['cpu_s']:5.1f}s "
              f"(self + children; self {r['cpu_self_s']:.1f}s)  summed peak PSS {t['peak_pss_sum_mib']} MiB, "
              f"RSS {t['peak_rss_sum_mib']} MiB, HWM sum {t['hwm_sum_mib']} MiB  run {r['run_id']}"
              + (f"  map wall {r['map']['seconds']:.1f}s CPU {r['map']['cpu_s']}s" if "map" in r else "")
              + f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def print_as_migrate(root: Path, rows: int) -> None:
    """The three stages as ``migrate`` runs them: extract in its own process beside validate's first pass
    (``migrations.extract_flow``, where available), GX's start-up included, then map; one fresh process."""
    from crmbridge.migrations.extract_flow import available

    if not available():
        return
    r = _flow_run(root, "flow", with_map=True)
    wall, cpu = r["seconds"] + r["map"]["seconds"], r["cpu_s"] + r["map"]["cpu_s"]
    print(f"as `migrate` runs them (extract beside validate, great-expectations' start-up included, then map): "
          f"{rows:,} legacy rows in {wall:.1f}s = {rows / wall:,.0f} rows/s combined; extract + validate "
          f"{r['seconds']:.1f}s, map {r['map']['seconds']:.1f}s; CPU {cpu:.1f}s; summed peak PSS "
          f"{r['tree']['peak_pss_sum_mib']} MiB, RSS {r['tree']['peak_rss_sum_mib']} MiB; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def _cpu_s(children: bool = True) -> float:
    """CPU seconds of this process and of its ended (waited-for) children: validate's workers."""
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) if children else (resource.RUSAGE_SELF,)
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, who))


def _map(project, run) -> dict:
    from crmbridge.mappings.check import check_offline
    from crmbridge.mappings.engine import OrgRefs
    from crmbridge.mappings.models import load_mappings
    from crmbridge.mappings.order import load_order
    from crmbridge.mappings.stage import _map_all, mappings_folder, read_owners
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    mappings = load_mappings(mappings_folder(project))
    owners: dict[str, str] = {}
    for s in mappings.steps:
        if s.step.owner is not None:
            owners.update(read_owners(project, s.step.owner.table))
    users = {u.lower(): f"005{i:015d}" for i, u in enumerate(sorted(set(owners.values()) | {"admin@sandbox.crmbridge"}))}
    R.start_stage(open_state(project.state_url), run.run_id, "map")
    res = _map_all(project, run, mappings, load_order(mappings), OrgRefs(owners=owners, users=users),
                   check_offline(mappings), False, 0)
    s = res.steps[0]
    assert s.balanced
    return {"rows_in": s.rows_in, "rows_out": s.rows_out, "records": s.rows, "quarantined": s.rows_quarantined}


def run_stage(root: Path, stage: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(root), stage], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{stage} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def help_timing(repeat: int = 5) -> dict:
    """Wall time of `python -m crmbridge --help` (best and median of ``repeat``), and what it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crmbridge", "--help"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    code = ("import sys; from crmbridge.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('pandas','pydantic','numpy','pyarrow','great_expectations','sqlalchemy') "
            "if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    times.sort()
    return {"best_s": times[0], "median_s": times[len(times) // 2], "heavy_imports": heavy.splitlines()[-1]}


def gx_startup() -> float:
    code = "import time; t=time.perf_counter(); from crmbridge.validation.gxsuite import _context; _context(); " \
           "print(time.perf_counter()-t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="build the project here and keep it")
    ap.add_argument("--help-only", action="store_true")
    ap.add_argument("--validate-batch-rows", type=int, default=0, help="validate's batch size (default BATCH_ROWS)")
    ap.add_argument("--validate-workers", default="",
                    help="validate's worker processes, comma-separated: validate runs once per value (0,2,0,2)")
    ap.add_argument("--no-map", action="store_true", help="extract and validate only")
    ap.add_argument("--flow", type=int, default=0, metavar="N",
                    help="extract + validate one after the other and at once, interleaved N times each")
    ap.add_argument("--child", nargs=2, metavar=("ROOT", "STAGE"), help=argparse.SUPPRESS)
    ap.add_argument("--flow-child", nargs=2, metavar=("ROOT", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        stage_child(*a.child)
        return
    if a.flow_child:
        flow_child(*a.flow_child)
        return
    if a.validate_batch_rows:
        os.environ["CRMBRIDGE_BENCH_VALIDATE_BATCH"] = str(a.validate_batch_rows)  # read by the child
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    h = help_timing()
    print(f"crmbridge --help: best {h['best_s']:.3f}s, median {h['median_s']:.3f}s, heavy modules imported: "
          f"{h['heavy_imports']}")
    if a.help_only:
        return
    root = a.keep or Path(tempfile.mkdtemp(prefix="crmbridge-pipeline-"))
    try:
        t = time.perf_counter()
        if not (root / "crmbridge.yml").exists():
            write_project(root, a.rows)
        print(f"generated {a.rows:,} rows ({(root / 'data' / 'customers.csv').stat().st_size / 1e6:.0f} MB GB18030) "
              f"in {time.perf_counter() - t:.0f}s", flush=True)
        if a.flow:
            run_flow(root, a.flow, not a.no_map)
            return
        total = cpu = 0.0
        results = {}
        workers = a.validate_workers.split(",") if a.validate_workers else [""]
        for stage in ("extract", *(f"validate:{w}" for w in workers), *(() if a.no_map else ("map",))):
            stage, _, w = stage.partition(":")
            os.environ["CRMBRIDGE_BENCH_VALIDATE_WORKERS"] = w
            r = run_stage(root, stage)
            if w:
                stage = f"validate workers={w}"
            results[stage] = r
            total += r["seconds"]
            cpu += r.get("cpu_s", 0.0)
            print(f"{stage:9} {r['rows_in']:>10,} rows in {r['seconds']:7.1f}s  {r['rows_in'] / r['seconds']:>9,.0f} rows/s  "
                  f"peak RSS {r['peak_mib']:7.0f} MiB  {json.dumps({k: v for k, v in r.items() if k not in ('seconds', 'peak_mib', 'rows_in')})}"
                  + (f"  CPU {r['cpu_s']:.1f}s = {r['rows_in'] / max(r['cpu_s'], 0.01):,.0f} rows per CPU-second" if "cpu_s" in r else "")
                  + f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                  flush=True)
        rows = results["extract"]["rows_in"]
        if len(workers) == 1 and not a.no_map:  # one validate run: a combined figure
            print(f"extract + validate + map: {rows:,} legacy rows in {total:.1f}s = {rows / total:,.0f} rows/s combined; "
                  f"peak RSS max {max(r['peak_mib'] for r in results.values()):.0f} MiB; CPU {cpu:.1f}s = "
                  f"{rows / max(cpu, 0.01):,.0f} rows per CPU-second (what one idle core would give)")
            print_as_migrate(root, rows)
        print(f"great-expectations start-up (not in the validate time): {gx_startup():.1f}s")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
