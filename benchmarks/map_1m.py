"""Benchmark: map 1M customer rows (three departments, messy values) into Account the way the map stage
does: streamed from a Parquet file in batches (crmbridge/mappings/stream.py), records Parquet and
quarantine CSV written. Prints rows per CPU-second, rows per second and peak RSS, with the load average.
Every transform runs once per distinct value of a batch (see crmbridge/mappings/distinct.py).

The rows are generated into a Parquet file first, 100k at a time, so the peak RSS printed is the
map's (check: it stays flat when ``--rows`` grows). No customer is resolved, so the two department
rows of a customer share a customer number and are quarantined as duplicates (as without ``resolve``):
every row is quarantined, the expensive case for the stream. ``--unique-keys``: one row per customer,
as after resolve, so the rows become records.

    PYTHONPATH=.. .venv/bin/python benchmarks/map_1m.py [--rows 1000000] [--batch-rows 100000] [--unique-keys] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from crmbridge.mappings.engine import OrgRefs
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.stream import DEFAULT_BATCH_ROWS, map_step_stream

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "project" / "mappings"


def make_rows(n: int, seed: int = 7, start: int = 0, rng: random.Random | None = None, per_customer: int = 2
              ) -> pd.DataFrame:
    rng = rng or random.Random(seed)
    cities = [("上海", "上海市", "021"), ("北京", "北京市", "010"), ("深圳", "广东省", "0755"), ("杭州", "浙江省", "0571")]
    depts = ["sales", "finance", "service"]
    rows = []
    for i in range(start, start + n):
        cust = i // per_customer  # about two department rows per customer (one: as after resolve)
        city, prov, area = cities[cust % 4]
        land = f"{rng.randint(2000, 8999)}{rng.randint(1000, 9999)}"
        rows.append({
            "customer_no": rng.choice([f"C{cust:07d}", f" C{cust:07d} ", f"Ｃ{cust:07d}"]),
            "name": f"上海明远{cust}贸易有限公司", "credit_code": "91310000MA1FL2XQ3A" if cust % 3 else None,
            "phone": rng.choice([f"{area}-{land}", f"+86 138{land}", land, f"（{area}）{land}"]),
            "address": "浦东新区世纪大道100号", "city": city, "province": prov, "postal_code": "２００１２０",
            "country": rng.choice(["CN", "中国", "China"]), "industry": rng.choice(["制造业", "零售", "IT"]),
            "status": rng.choice(["潜在", "活跃", "正常", "停用", "prospect"]), "sales_rep": f"R00{rng.randint(1, 6)}",
            "annual_revenue": rng.choice(["¥1,234,500.00", "1234500", "１２３４５００"]),
            "_department": depts[i % 2 + (cust % 2)], "_row_id": f"r:{i}", "_source_key": f"C{cust:07d}",
        })
    return pd.DataFrame(rows, dtype=object)


def write_rows(path: Path, n: int, chunk: int = 100_000, per_customer: int = 2) -> None:
    """``n`` rows into one Parquet file, ``chunk`` rows in memory at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(7)
    writer = None
    for start in range(0, n, chunk):
        table = pa.Table.from_pandas(make_rows(min(chunk, n - start), start=start, rng=rng,
                                                    per_customer=per_customer), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
    writer.close()


def batches(path: Path, batch_rows: int):
    import pyarrow.parquet as pq

    for b in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield b.to_pandas()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    ap.add_argument("--profile", action="store_true", help="cProfile the map, print the top 25 by own time")
    ap.add_argument("--unique-keys", action="store_true",
                    help="one row per customer (what resolve hands over): records instead of duplicates")
    args = ap.parse_args()
    n = args.rows
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores", flush=True)
    step = load_mappings(TEMPLATES).by_name("Account")
    users = {f"rep{i}@sandbox.crmbridge": f"00500000000000{i}AAA" for i in range(1, 6)}
    users["admin@sandbox.crmbridge"] = "005000000000000AAA"
    owners = {f"R00{i}": f"rep{i}@sandbox.crmbridge" for i in range(1, 6)}
    with tempfile.TemporaryDirectory(prefix="map_1m_") as d:
        d = Path(d)
        t0 = time.perf_counter()
        write_rows(d / "in.parquet", n, per_customer=1 if args.unique_keys else 2)
        t1 = time.perf_counter()
        rss_gen = rss_mib()
        print(f"generated {n:,} rows in {t1 - t0:.1f}s (peak RSS so far {rss_gen:,.0f} MiB)", flush=True)
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        c0, w0 = time.process_time(), time.perf_counter()
        out = map_step_stream(step, lambda: batches(d / "in.parquet", args.batch_rows), refs=OrgRefs(owners=owners, users=users),
                              records_path=d / "Account.parquet", quarantine_path=d / "Account.csv",
                              spill=d / "spill")
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            pstats.Stats(prof).sort_stats("cumulative").print_callers(r"_str_map|arrays/base.py.*__iter__|_isna_string|marshal")
        assert out.rows_in == out.rows_out + out.rows_quarantined == n
        print(f"mapped {n:,} rows -> {out.rows:,} Account records ({out.rows_quarantined:,} quarantined) in batches of "
              f"{args.batch_rows:,}: {cpu:.1f} CPU-s, {wall:.1f}s wall: {n / cpu:,.0f} rows/CPU-s, {n / wall:,.0f} rows/s; "
              f"peak RSS {rss_mib():,.0f} MiB; load average then {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
