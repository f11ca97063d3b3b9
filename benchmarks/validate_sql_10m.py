"""Benchmark: a PostgreSQL source of 10M customer rows validated in the database (``validate --engine
sql``) against the pandas path (``extract`` + ``validate``); time and peak RSS of crmbridge's process
side by side, with the load average.

    python benchmarks/validate_sql_10m.py [--rows 10000000] [--pg-admin URL] [--database NAME] [--keep DIR]
                                          [--skip-pandas] [--python-keys]

The rows are generated inside PostgreSQL (``INSERT ... SELECT ... FROM generate_series``) into a fresh
database ``crmbridge_sqlval_bench`` (dropped afterwards unless ``--keep``), messy and with planted
defects of every rule kind (~1% each: missing and duplicate keys, markup, control characters, bad
phones, e-mails, countries, statuses, dates and amounts, negative amounts, bad postal codes). Each
command runs as its own ``python -m crmbridge`` process; its peak RSS and CPU time come from ``wait4``
(CPU time is the steadier figure on a shared, loaded machine).

``--python-keys`` also times ``validate --engine sql`` with ``customer_no`` normalised by a step that has no
SQL form (``strip_control``): its uniqueness then runs in Python on the hashed key index built from
batches of the key column, as nfkc keys do on MariaDB and SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB = "crmbridge_sqlval_bench"

DEFINITION = """version: "1.0"
owners: [{department: sales, person: bench, signed_on: 2026-01-01}]
entities:
  customers:
    identity: {key: customer_no, scope: department}
    required: [name]
    normalise:
      "*": [trim, {null_if: {values: [N/A, "-", 无]}}]
      customer_no: [{case: {to: upper}}]
      phone: [{phone: {region: CN}}]
      email: [email]
      created_on: [{date: {formats: ["%Y-%m-%d", "%Y/%m/%d"]}}]
      annual_revenue: [{number: {}}]
    formats:
      - {field: name, format: no_markup}
      - {field: phone, format: phone, region: CN}
      - {field: email, format: email, severity: warning}
      - {field: country, format: iso_country}
      - {field: created_on, format: date}
      - {field: annual_revenue, format: number}
      - {field: postal_code, format: regex, pattern: "^[0-9]{6}$"}
    allowed_values:
      - {field: status, values: [Prospect, Active, Inactive], map: {活跃: Active, active: Active, 潜在: Prospect}}
    cross_field:
      - {left: annual_revenue, op: ge, value: 0}
"""

GENERATE = """
CREATE TABLE customers (customer_no text, name text, phone text, email text, country text, status text,
                        annual_revenue text, created_on text, postal_code text);
INSERT INTO customers
SELECT CASE WHEN i % 1000 = 1 THEN NULL
            WHEN i % 1000 = 2 THEN 'C' || lpad((i - 2)::text, 9, '0')
            WHEN i % 50 = 3 THEN ' c' || lpad(i::text, 9, '0') || ' '
            ELSE 'C' || lpad(i::text, 9, '0') END,
       CASE WHEN i % 500 = 4 THEN '<b>Evil</b> Corp' WHEN i % 700 = 5 THEN 'Ctl' || chr(1) || 'Name'
            WHEN i % 900 = 6 THEN 'N/A'
            ELSE (ARRAY['上海明远贸易有限公司', 'Acme Industrial Ltd.', '北京华信科技有限公司'])[1 + i % 3] END,
       CASE WHEN i % 200 = 7 THEN '12345' WHEN i % 2 = 0 THEN '+86138' || lpad((i % 100000000)::text, 8, '0')
            ELSE '139' || lpad((i % 100000000)::text, 8, '0') END,
       CASE WHEN i % 100 = 8 THEN 'bad@' ELSE 'info@c' || i || '.example.cn' END,
       CASE WHEN i % 1000 = 9 THEN 'XX' ELSE (ARRAY['CN', 'CN', 'US', ' CN '])[1 + i % 4] END,
       CASE WHEN i % 1000 = 10 THEN 'weird' ELSE (ARRAY['Active', '活跃', 'active', '潜在', 'Inactive'])[1 + i % 5] END,
       CASE WHEN i % 1000 = 11 THEN '-5' WHEN i % 1000 = 12 THEN 'abc' ELSE ((i % 50000) * 1000)::text END,
       CASE WHEN i % 1000 = 13 THEN '2024-13-45'
            WHEN i % 2 = 0 THEN to_char(date '2015-01-01' + (i % 3600), 'YYYY-MM-DD')
            ELSE to_char(date '2015-01-01' + (i % 3600), 'YYYY/MM/DD') END,
       CASE WHEN i % 100 = 14 THEN 'abc' ELSE '200120' END
FROM generate_series(1, :n) AS i
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_database(admin_url: str, n: int, db: str = DB) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {db}"))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{db}"
    eng = create_engine(url)
    create, insert = GENERATE.strip().split(";\n")
    with eng.begin() as c:
        c.execute(text(create))
        c.execute(text(insert), {"n": n})
        c.execute(text("ANALYZE customers"))
    eng.dispose()
    return url


def drop_database(admin_url: str, db: str = DB) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
    admin.dispose()


PYTHON_KEYS = ("      customer_no: [{case: {to: upper}}]\n",
               "      customer_no: [strip_control, {case: {to: upper}}]\n")


def write_project(root: Path, url: str, python_keys: bool = False) -> None:
    (root / "definitions").mkdir(parents=True, exist_ok=True)
    assert DEFINITION.count(PYTHON_KEYS[0]) == 1
    text = DEFINITION.replace(*PYTHON_KEYS) if python_keys else DEFINITION
    (root / "definitions" / "customer.yml").write_text(text, "utf-8")
    (root / "crmbridge.yml").write_text(
        "name: bench\nchunk_rows: 50000\nsources:\n"
        f"  - {{name: legacy_customers, entity: customers, department: sales, type: sql, url: \"{url}\", "
        "table: customers}\n", "utf-8")


def timed(root: Path, *args: str) -> dict:
    """Run ``crmbridge --project root <args> --json`` as its own process: seconds, peak RSS, output."""
    cmd = [sys.executable, "-m", "crmbridge", "--project", str(root), *args, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # preexec_fn makes subprocess fork instead of vfork: after a vfork + exec, Linux counts this
        # parent's memory high-water mark in the child's ru_maxrss (see peakrss.py)
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=os.getpid)
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code not in (0, 1) or not stdout.strip():  # 1: blocking rules failed (expected: defects are planted)
        sys.exit(f"{' '.join(args)} failed ({code}):\n{stderr[-3000:]}")
    return {"seconds": secs, "cpu": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024,
            "out": json.loads(stdout), "load": load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--pg-admin", default=os.environ.get(
        "CRMBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", type=Path, help="build the project here and keep it (and the database)")
    ap.add_argument("--database", default=DB, help=f"the generated database's name (default {DB})")
    ap.add_argument("--skip-pandas", action="store_true", help="time only validate --engine sql")
    ap.add_argument("--python-keys", action="store_true",
                    help="also time --engine sql with a key normalisation that has no SQL form (keys in Python)")
    a = ap.parse_args()
    print(f"load average {load()} on {os.cpu_count()} cores", flush=True)
    root = a.keep or Path(tempfile.mkdtemp(prefix="crmbridge-sqlval-bench-"))
    try:
        t = time.perf_counter()
        url = make_database(a.pg_admin, a.rows, a.database)
        print(f"generated {a.rows} rows in PostgreSQL in {time.perf_counter() - t:.1f}s (load {load()})", flush=True)
        write_project(root, url)
        sql = timed(root, "validate", "--engine", "sql")
        c = sql["out"]["entities"]["customers"]
        assert c["rows_in"] == a.rows, c["rows_in"]
        rows = [("validate --engine sql", sql["seconds"], sql["cpu"], sql["peak_mib"], c["rows_quarantined"],
                 sql["load"])]
        if a.python_keys:
            root2 = root / "python-keys"
            write_project(root2, url, python_keys=True)
            pk = timed(root2, "validate", "--engine", "sql")
            pkc = pk["out"]["entities"]["customers"]
            where = {r["rule_id"]: r["where"] for r in pkc["rules"]}
            assert where["unique.customer_no"] == "python", where
            assert pkc["rows_quarantined"] == c["rows_quarantined"], (pkc["rows_quarantined"], c["rows_quarantined"])
            rows.append(("  keys in Python", pk["seconds"], pk["cpu"], pk["peak_mib"], pkc["rows_quarantined"],
                         pk["load"]))
        if not a.skip_pandas:
            ext = timed(root, "extract")
            val = timed(root, "validate")
            pc = val["out"]["entities"]["customers"]
            assert pc["rows_in"] == a.rows and pc["rows_quarantined"] == c["rows_quarantined"], \
                (pc["rows_quarantined"], c["rows_quarantined"])
            rows += [("extract", ext["seconds"], ext["cpu"], ext["peak_mib"], None, ext["load"]),
                     ("validate (pandas)", val["seconds"], val["cpu"], val["peak_mib"], pc["rows_quarantined"],
                      val["load"]),
                     ("extract + validate", ext["seconds"] + val["seconds"], ext["cpu"] + val["cpu"],
                      max(ext["peak_mib"], val["peak_mib"]), pc["rows_quarantined"], val["load"])]
        print(f"{a.rows} rows, {len(c['rules'])} rules")
        print(f"{'path':<24}{'seconds':>9}{'rows/s':>10}{'CPU s':>8}{'peak RSS MiB':>14}{'quarantined':>13}"
              "   load average after")
        for name, secs, cpu, peak, q, ld in rows:
            print(f"{name:<24}{secs:>9.1f}{a.rows / secs:>10.0f}{cpu:>8.1f}{peak:>14.0f}{'' if q is None else q:>13}"
                  f"   {ld}")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
            drop_database(a.pg_admin, a.database)


if __name__ == "__main__":
    main()
