"""Benchmark: entity resolution on 1M customer rows with planted duplicates; prints precision, recall, rows/s.

    PYTHONPATH=.. .venv/bin/python benchmarks/match_1m.py [--rows 1000000] [--dup-share 0.04] [--truth truth.csv]

The generator makes companies the way Chinese legacy exports hold them (city + brand + trade + legal
form, an 18-character credit code, an E.164 landline, a street address; about 10 % English names) and
plants duplicate rows of a share of them, each from another department with a new customer number and
one to three variants: legal-form suffix changed (有限公司 -> 有限责任公司 ...), full-width letters and
digits, a typo in the name, the credit code missing, another phone, a branch name (…北京分公司). The
truth (row -> company) is written with ``--truth``. Precision and recall are on pairs: every two rows
put in one company by the resolver vs. by the truth. Rows/s covers the whole resolve_frame (features,
exact keys, splink scoring, clustering, golden records) on the validated-shaped frame.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
import pandas as pd

CITIES = [("上海", "021", "浦东新区"), ("北京", "010", "朝阳区"), ("深圳", "0755", "南山区"), ("广州", "020", "天河区"),
          ("杭州", "0571", "西湖区"), ("成都", "028", "武侯区"), ("武汉", "027", "江汉区"), ("南京", "025", "鼓楼区"),
          ("天津", "022", "和平区"), ("重庆", "023", "渝中区"), ("苏州", "0512", "姑苏区"), ("西安", "029", "雁塔区"),
          ("长沙", "0731", "岳麓区"), ("郑州", "0371", "金水区"), ("青岛", "0532", "市南区"), ("宁波", "0574", "鄞州区"),
          ("厦门", "0592", "思明区"), ("济南", "0531", "历下区"), ("合肥", "0551", "蜀山区"), ("福州", "0591", "鼓楼区")]
BRAND = list("明远华信恒通金桥瑞丰东方长城新锐宏达天成博雅众合汇源启航佳禾鼎盛安泰康星辰云帆嘉和普中科海隆泰昌"
             "永盛德祥福润兴业鸿运腾飞创达美诚联合力宇辉光耀正大同泽凯丰茂盈聚贤富荣旭日峰龙凤麒麟华夏神州环球"
             "万通亿立志远卓越精英优品睿智智慧蓝天绿洲阳光晨曦天地人和顺安康宁静雅致锦绣江山河湖沧浪朗月清风")
TRADES = ["贸易", "科技", "制造", "电子", "物流", "食品", "医药", "建材", "软件", "能源", "机械", "化工", "纺织",
          "服装", "家具", "印刷", "包装", "汽车配件", "信息技术", "网络科技", "生物科技", "环保科技", "文化传媒",
          "餐饮管理", "酒店管理", "房地产开发", "建筑工程", "装饰工程", "投资管理", "咨询服务"]
SUFFIXES = ["有限公司", "有限公司", "有限责任公司", "股份有限公司"]
EN_WORDS = ["Acme", "Pacific", "Golden", "Summit", "Blue", "North", "Ever", "Orion", "Harbor", "Silver", "Red",
            "Key", "Star", "Sun", "Bright", "Grand", "Prime", "Alpha", "Nova", "Apex", "Vista", "Zen", "Delta", "Omega"]
EN_KINDS = ["Industrial", "Trading", "Software", "Logistics", "Foods", "Pharma", "Energy", "Textiles", "Systems"]
STREETS = ["世纪大道", "人民路", "建国路", "深南大道", "中山路", "解放路", "科技园路", "长江路", "南京路", "淮海路",
           "和平路", "友谊路", "文化路", "新华路", "光明路", "朝阳路", "青年路", "胜利路"]
FULL = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                     "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ"
                     "ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ")
CODE_ALPHABET = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
VARIANTS = ["suffix", "width", "typo", "no_code", "phone", "branch"]


def _companies(n: int, rng: np.random.Generator) -> pd.DataFrame:
    city = rng.integers(0, len(CITIES), n)
    english = rng.random(n) < 0.10
    b1, b2, b3 = (rng.integers(0, len(BRAND), n) for _ in range(3))
    three = rng.random(n) < 0.3
    trade = rng.integers(0, len(TRADES), n)
    suffix = rng.integers(0, len(SUFFIXES), n)
    e1, e2 = rng.integers(0, len(EN_WORDS), n), rng.integers(0, len(EN_KINDS), n)
    names, shorts = [], []
    for i in range(n):
        if english[i]:
            short = f"{EN_WORDS[e1[i]]} {EN_WORDS[b1[i] % len(EN_WORDS)]} {EN_KINDS[e2[i]]}"
            names.append(short + (" Co., Ltd." if b2[i] % 2 else " Ltd."))
        else:
            short = CITIES[city[i]][0] + BRAND[b1[i]] + BRAND[b2[i]] + (BRAND[b3[i]] if three[i] else "") + \
                TRADES[trade[i]]
            names.append(short + SUFFIXES[suffix[i]])
        shorts.append(short)
    codes = CODE_ALPHABET[rng.integers(0, len(CODE_ALPHABET), (n, 16))]
    codes = ["91" + "".join(r) for r in codes]
    land = rng.integers(20000000, 89999999, n)
    area = np.array([CITIES[c][1] for c in city])
    phones = ["+86" + a[1:] + str(x) for a, x in zip(area, land)]
    streets = rng.integers(0, len(STREETS), n)
    numbers = rng.integers(1, 2000, n)
    addresses = [f"{CITIES[c][2]}{STREETS[s]}{k}号" for c, s, k in zip(city, streets, numbers)]
    has_code = rng.random(n) >= 0.07
    return pd.DataFrame({"company": np.arange(n), "name": names, "short": shorts, "english": english,
                         "credit_code": np.where(has_code, codes, None), "phone": phones, "address": addresses,
                         "city": [CITIES[c][0] for c in city], "suffix": suffix})


def _variant(row, kinds: list[str], rng: np.random.Generator) -> dict:
    name, code, phone, address = row["name"], row["credit_code"], row["phone"], row["address"]
    for k in kinds:
        if k == "suffix" and not row["english"]:
            others = [s for s in ("有限公司", "有限责任公司", "股份有限公司") if not name.endswith(s)]
            base = row["short"]
            name = base + others[int(rng.integers(0, len(others)))]
        elif k == "suffix":
            name = row["short"] + (" Limited" if name.endswith("Ltd.") else " Ltd")
        elif k == "width":
            name, address = name.translate(FULL), address.translate(FULL)
        elif k == "typo":
            chars = list(name)
            limit = len(row["short"])
            pos = int(rng.integers(2 if not row["english"] else 0, max(3, limit)))
            pos = min(pos, len(chars) - 1)
            chars[pos] = BRAND[int(rng.integers(0, len(BRAND)))] if not row["english"] else "x"
            name = "".join(chars)
        elif k == "no_code":
            code = None
        elif k == "phone":
            phone = "+861" + str(int(rng.choice([38, 39, 86, 35, 50]))) + str(int(rng.integers(10000000, 99999999)))
        elif k == "branch":
            other = CITIES[int(rng.integers(0, len(CITIES)))][0]
            name = name + other + "分公司"
    return {"name": name, "credit_code": code, "phone": phone, "address": address}


def make_rows(n_rows: int, dup_share: float, seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_comp = int(n_rows / (1 + dup_share))
    comp = _companies(n_comp, rng)
    n_dup = n_rows - n_comp
    dup_of = rng.choice(n_comp, n_dup, replace=False if n_dup <= n_comp else True)
    dups = []
    records = comp.to_dict("records")
    for c in dup_of:
        row = records[int(c)]
        kinds = list(rng.choice(VARIANTS, int(rng.integers(1, 4)), replace=False))
        if "no_code" in kinds and "phone" in kinds and "typo" in kinds:
            kinds.remove("typo")  # nothing left to tie the rows together but a fuzzy name: unrealistic
        v = _variant(row, kinds, rng)
        dups.append({"company": int(c), **v, "city": row["city"], "_variants": "+".join(sorted(kinds))})
    base = comp[["company", "name", "credit_code", "phone", "address", "city"]].assign(_variants="")
    df = pd.concat([base, pd.DataFrame(dups)], ignore_index=True)
    n = len(df)
    dept = np.where(np.arange(n) < n_comp, "sales", "finance")
    df["customer_no"] = [f"C{i:07d}" if d == "sales" else f"F{i:07d}" for i, d in enumerate(dept)]
    df["_department"] = dept
    df["_source"] = np.where(dept == "sales", "sales_customers", "finance_customers")
    df["_row_id"] = [f"{s}:{i + 2}" for s, i in zip(df["_source"], range(n))]
    df["_source_key"] = df["customer_no"]
    return df.astype({c: object for c in df.columns if c != "company"})


def pair_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, int, int, int]:
    def pairs(*cols) -> int:
        sizes = pd.DataFrame({f"c{i}": c for i, c in enumerate(cols)}).value_counts().to_numpy(dtype=np.int64)
        return int((sizes * (sizes - 1) // 2).sum())

    tp, p, t = pairs(truth, pred), pairs(pred), pairs(truth)
    return (tp / p if p else 1.0), (tp / t if t else 1.0), tp, p, t


def _false_pairs(df: pd.DataFrame, out, n: int) -> None:
    truth = df["company"].to_numpy()
    merged = out.pairs[out.pairs["outcome"] == "merged"]
    wrong = merged[truth[merged["l"].to_numpy()] != truth[merged["r"].to_numpy()]]
    print(f"merged pairs against the truth: {len(wrong)} (by kind: {wrong['kind'].value_counts().to_dict()})")
    for p in wrong.head(n).itertuples(index=False):
        print(f"  {p.score:.4f} {p.kind}: {p.evidence}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dup-share", type=float, default=0.04, help="duplicate rows per company row")
    ap.add_argument("--truth", help="write the truth file (row id, company, variants) here")
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    ap.add_argument("--false-pairs", type=int, default=0, help="print N merged pairs the truth says are wrong")
    args = ap.parse_args()
    from crmbridge.mappings.resolve import resolve_frame
    from crmbridge.validation.definition import Identity

    t0 = time.perf_counter()
    df = make_rows(args.rows, args.dup_share)
    gen = time.perf_counter() - t0
    if args.truth:
        df[["_row_id", "company", "_variants"]].to_csv(args.truth, index=False)
    ident = Identity.model_validate({"key": "customer_no", "match_on": ["credit_code", "customer_no"], "resolution": {
        "compare": {"name": "name", "address": "address", "phone": "phone", "city": "city",
                    "credit_code": "credit_code"}, "prefer": ["sales", "finance"]}})
    # the stage reads validate's Parquet: the same column types here (Arrow-backed text)
    buf = io.BytesIO()
    df.drop(columns=["company", "_variants"]).to_parquet(buf, index=False)
    frame = pd.read_parquet(buf)
    t1, c1 = time.perf_counter(), time.process_time()
    out = resolve_frame(frame, ident, entity="customers", threads=args.threads)
    secs, cpu = time.perf_counter() - t1, time.process_time() - c1
    pred = out.rowmap["_company"].to_numpy()
    precision, recall, tp, p, t = pair_scores(df["company"].to_numpy(), pred)
    load = os.getloadavg()
    print(f"rows: {len(df):,} ({df['company'].nunique():,} companies, {len(df) - df['company'].nunique():,} "
          f"planted duplicate rows); generated in {gen:.1f} s")
    print(f"resolve: {secs:.1f} s wall = {len(df) / secs:,.0f} rows/s; {cpu:.1f} s CPU (all threads of this "
          f"process) = {len(df) / cpu:,.0f} rows per CPU-second")
    print(f"{len(out.golden):,} golden records; "
          f"review queue {len(out.review):,} pairs; {out.stats}")
    print("wall seconds per phase:", out.seconds)
    print("CPU seconds per phase: ", out.cpu_seconds)
    print(f"pairs: true {t:,}, predicted {p:,}, correct {tp:,}")
    print(f"precision {precision:.4%}  recall {recall:.4%}")
    same = pd.Series(pred).groupby(df["company"].to_numpy()).transform("nunique") == 1
    miss = df.loc[~same.to_numpy() & (df["_variants"] != ""), "_variants"].value_counts().head(8)
    if len(miss):
        print("missed duplicate rows by variant (top):", ", ".join(f"{k}: {v}" for k, v in miss.items()))
    if args.false_pairs:
        _false_pairs(df, out, args.false_pairs)
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
