"""Benchmark: extract realistic legacy customer CSV rows; print rows per CPU-second and peak memory.

    python benchmarks/extract_csv.py                 # 200k and 1M rows, GB18030, ';' (like service's export)
    python benchmarks/extract_csv.py --rows 200000   # one size only
    python benchmarks/extract_csv.py --scale         # 1M and 5M rows: peak memory must not grow

The file is generated first (streamed, so generation itself stays small); each extraction then runs
in a fresh child process so its peak RSS (its own VmHWM) is the extraction's own, including the
profile that ``run_extract`` writes.
"""

from __future__ import annotations

import argparse
import os
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = ["客户编号", "客户名称", "统一社会信用代码", "电话", "邮箱", "地址", "城市", "省份", "邮编", "国家",
          "行业", "状态", "销售代表", "创建日期", "年营业额", "服务合同数"]
CITIES = [("上海", "上海市", "200120"), ("北京", "北京市", "100010"), ("深圳", "广东省", "518000"),
          ("广州", "广东省", "510000"), ("杭州", "浙江省", "310000"), ("成都", "四川省", "610000")]
WORDS = ["明远", "华信", "腾达", "永兴", "金桥", "东方", "新世纪", "宏图", "天成", "瑞丰"]
KINDS = ["贸易", "科技", "电子", "制造", "物流", "咨询"]
STATUS = ["潜在", "活跃", "正常", "停用", "黑名单", "prospect", "active"]


def customer(i: int, rnd: random.Random) -> list[str]:
    city, prov, post = rnd.choice(CITIES)
    name = f"{city}{rnd.choice(WORDS)}{rnd.choice(KINDS)}有限公司"
    if i % 97 == 0:
        name = f"<b>{name}</b>"
    no = f"C{i:07d}" if i % 53 else f"Ｃ{i:07d}"  # some full-width
    phone = rnd.choice([f"021-{rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)}", f"+86 138 {rnd.randint(1000, 9999)} 8000",
                        f"1390013{rnd.randint(1000, 9999)}", f"（010）{rnd.randint(10000000, 99999999)}"])
    note_addr = f"{rnd.choice(['浦东新区', '朝阳区', '南山区'])}世纪大道{rnd.randint(1, 999)}号"
    if i % 211 == 0:
        note_addr = f'"{note_addr}\n2号楼"'  # a quoted newline now and then
    return [no, name, f"91310000MA1FL{i % 100000:05d}", phone, f"info{i}@example.cn ", note_addr, city, prov, post,
            rnd.choice(["CN", "中国", "China"]), rnd.choice(["制造业", "零售", "IT"]), rnd.choice(STATUS),
            f"R00{rnd.randint(1, 5)}", f"2023年{rnd.randint(1, 12)}月{rnd.randint(1, 28)}日",
            f"¥{rnd.randint(1, 9_999_999):,}.00", str(rnd.randint(0, 5))]


def generate(path: Path, rows: int, encoding: str) -> None:
    rnd = random.Random(42)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        buf = []
        for i in range(1, rows + 1):
            cells = customer(i, rnd)
            buf.append(";".join(cells) + "\r\n")
            if i % 7919 == 0:
                buf.append(f"C{i:07d};坏行\r\n")  # a ragged row to reject
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))


def write_project(root: Path, chunk_rows: int) -> None:
    cols = "\n".join(f"      {h}: c{k}" for k, h in enumerate(HEADER))
    (root / "crmbridge.yml").write_text(
        f"name: bench\nchunk_rows: {chunk_rows}\nsources:\n  - name: service_customers\n    entity: customers\n"
        f"    department: service\n    type: csv\n    path: data/customers.csv\n    key: c0\n    columns:\n{cols}\n",
        "utf-8")


def extract_child(root: str) -> None:
    """Run in a child process: extract and print the result as JSON."""
    from crmbridge.config import load_project
    from crmbridge.migrations.extract import run_extract

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    result = run_extract(load_project(root))
    secs, cpu_secs = time.perf_counter() - t0, cpu() - c0
    from peakrss import own_peak_mib  # the child's own peak, not the parent's (peakrss.py)

    print(json.dumps({"seconds": secs, "cpu_seconds": cpu_secs, "peak_mib": own_peak_mib(),
                      "rows_read": result.rows_read, "rows_rejected": result.rows_rejected,
                      "load": os.getloadavg()[0]}))


def bench(rows: int, encoding: str, chunk_rows: int, workdir: Path) -> dict:
    root = workdir / f"p{rows}"
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_project(root, chunk_rows)
    csv_path = root / "data" / "customers.csv"
    t0 = time.perf_counter()
    generate(csv_path, rows, encoding)
    gen = time.perf_counter() - t0
    out = subprocess.run([sys.executable, __file__, "--child", str(root)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(rows=rows, mb=csv_path.stat().st_size / 1e6, generate_seconds=gen,
             rows_per_s=r["rows_read"] / r["seconds"], rows_per_cpu_s=r["rows_read"] / r["cpu_seconds"])
    print(f"{rows:>10,} rows  {r['mb']:8.1f} MB {encoding}  extract {r['seconds']:7.1f} s wall "
          f"{r['cpu_seconds']:7.1f} s CPU  {r['rows_per_cpu_s']:>10,.0f} rows/CPU-s ({r['rows_per_s']:,.0f} rows/s wall)  "
          f"peak RSS {r['peak_mib']:7.1f} MiB  (read {r['rows_read']:,}, rejected {r['rows_rejected']:,})  "
          f"load average {r['load']:.2f}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=None, help="one size (default: 200,000 then 1,000,000)")
    ap.add_argument("--scale", action="store_true", help="run 1M and 5M rows and compare peak memory")
    ap.add_argument("--encoding", default="gb18030")
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        extract_child(args.child)
        return
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    sizes = [1_000_000, 5_000_000] if args.scale else [args.rows] if args.rows else [200_000, 1_000_000]
    with tempfile.TemporaryDirectory(prefix="crmbridge-bench-") as d:
        results = [bench(n, args.encoding, args.chunk_rows, Path(d)) for n in sizes]
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"peak memory {b['rows'] // a['rows']}x the rows: {a['peak_mib']:.1f} -> {b['peak_mib']:.1f} MiB "
              f"({b['peak_mib'] / a['peak_mib']:.2f}x)")


if __name__ == "__main__":
    main()
