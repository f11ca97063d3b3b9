"""Benchmark: map 1M customer rows (three departments, messy values) into Account; prints rows/s
and peak memory. Every transform runs once per distinct value (see crmbridge/mappings/distinct.py).

    .venv/bin/python benchmarks/map_1m.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from pathlib import Path

import pandas as pd

from crmbridge.mappings.engine import OrgRefs, map_step
from crmbridge.mappings.models import load_mappings

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "project" / "mappings"


def make_rows(n: int, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    cities = [("上海", "上海市", "021"), ("北京", "北京市", "010"), ("深圳", "广东省", "0755"), ("杭州", "浙江省", "0571")]
    depts = ["sales", "finance", "service"]
    rows = []
    for i in range(n):
        cust = i // 2  # about two department rows per customer
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    n = ap.parse_args().rows
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    t0 = time.perf_counter()
    df = make_rows(n)
    t1 = time.perf_counter()
    step = load_mappings(TEMPLATES).by_name("Account")
    users = {f"rep{i}@sandbox.crmbridge": f"00500000000000{i}AAA" for i in range(1, 6)}
    users["admin@sandbox.crmbridge"] = "005000000000000AAA"
    owners = {f"R00{i}": f"rep{i}@sandbox.crmbridge" for i in range(1, 6)}
    out = map_step(step, df, refs=OrgRefs(owners=owners, users=users))
    t2 = time.perf_counter()
    assert out.rows_in == out.rows_out + len(out.quarantine)
    print(f"generated {n:,} rows in {t1 - t0:.1f}s")
    print(f"mapped {n:,} rows -> {len(out.records):,} Account records ({len(out.quarantine):,} quarantined) "
          f"in {t2 - t1:.1f}s: {n / (t2 - t1):,.0f} rows/s; peak RSS (generation included) "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
