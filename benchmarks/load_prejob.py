"""The load's client work before its Bulk job exists, in CPU seconds: the mapped frame's rows as dicts,
the upload's records, the batch plan, the Payload (CSV cells) and its upload bytes.

A frame shaped like the demo's mapped Account step (Arrow-backed text with gaps, commas, quotes,
CJK; one float column) of ``--rows`` rows. Run it against another checkout (``PYTHONPATH``) to compare:
it takes the path that checkout's ``load_step`` takes.

    PYTHONPATH=.. .venv/bin/python benchmarks/load_prejob.py --rows 100000
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time


def frame(rows: int, seed: int = 14):
    import pandas as pd

    rnd = random.Random(seed)
    words = ["北京", "上海贸易有限公司", "Ölmühle", "Road 5, Unit 2", 'the "best"', "ＡＢＣ", "😀", "plain", "12 Main St"]
    text = lambda gap: pd.Series([None if rnd.random() < gap else " ".join(rnd.sample(words, 2))  # noqa: E731
                                  for _ in range(rows)], dtype="str")
    cols = {"Legacy_Id__c": pd.Series([f"C{i:07d}" for i in range(rows)], dtype="str")}
    for i, name in enumerate(["Name", "Credit_Code__c", "Phone", "BillingStreet", "BillingCity", "BillingState",
                              "BillingPostalCode", "BillingCountry", "Industry", "Customer_Status__c",
                              "Source_Departments__c", "Legacy_Keys__c", "OwnerId"]):
        cols[name] = text(0.01 * (i % 3))
    cols["AnnualRevenue"] = pd.Series([rnd.choice([1.5e6, 2e7, float("nan"), 123456.75]) for _ in range(rows)])
    cols["_rows"] = [[f"r{i}"] for i in range(rows)]
    return pd.DataFrame(cols), [c for c in cols if not c.startswith("_")]


def measure(df, fields) -> dict[str, float]:
    from crmbridge.connectors.salesforce import bulk
    from crmbridge.migrations import records as R
    from crmbridge.migrations.load import plan_batches

    out: dict[str, float] = {}

    def timed(name, f):
        c = time.process_time()
        r = f()
        out[name] = time.process_time() - c
        return r

    gc.disable()  # as the load does (gcscope.paused)
    if hasattr(R, "record_columns"):  # this checkout: the frame's columns read once
        columns = timed("frame_columns", lambda: R.frame_columns(df))
        timed("frame_records", lambda: R.frame_records(df, columns))
        cols = timed("record_columns", lambda: R.record_columns(df, None, fields, columns))
        records = timed("records_of", lambda: R.records_of(cols, fields))
        chars = timed("cells_chars", lambda: R.cells_chars(cols))
        timed("plan_batches", lambda: plan_batches(records, None, chars=chars))
    else:  # the path before: row dicts, then records from them
        rows = timed("frame_records", lambda: R.frame_records(df))
        records = timed("to_records", lambda: R.to_records(rows, fields))
        timed("plan_batches", lambda: plan_batches(records, None))
    payload = timed("Payload", lambda: bulk.Payload("upsert", records, "Legacy_Id__c"))
    data = timed("data", payload.data)
    gc.enable()
    out["total"] = sum(out.values())
    out["bytes"] = len(data)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    df, fields = frame(args.rows)
    print(f"load average at start {os.getloadavg()[0]:.2f}, {args.rows} rows x {len(fields)} fields")
    runs = [measure(df, fields) for _ in range(args.repeat)]
    for k in runs[0]:
        if k != "bytes":
            print(f"  {k:16s} CPU-s min {min(r[k] for r in runs):.3f}")
    print(f"  upload bytes     {runs[0]['bytes']}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
