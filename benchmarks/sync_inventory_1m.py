"""Benchmark: sync a 1M-row ERP inventory table into the sandbox org, then again after changing 1% of it.

Prints, for each run, the wall time, the rows read and written, the Salesforce API calls (as counted by
the sandbox org itself), how delete detection went (key buckets compared / read), and each incremental
run's time as a share of the full sync (target: <= 2 %), with the machine's load average.
Run 4 deletes 0.01 % of the rows, to show that only the buckets holding them are read.

    .venv/bin/python benchmarks/sync_inventory_1m.py                 # 1,000,000 rows, SQLite ERP
    .venv/bin/python benchmarks/sync_inventory_1m.py --rows 100000 --erp-url postgresql+psycopg://postgres@127.0.0.1/bench

``--reread-window`` reads the overlap window in full and compares it by content hash, as before the
memory of synced versions (sync/seen.py): run it from the same ``--snapshot`` for an A/B.

A full 1M sync takes many minutes on a loaded machine. ``--snapshot DIR`` keeps the three SQLite databases
(ERP, org, state) as they are after run 1, with run 1's time; a later call with the same ``--snapshot DIR``
starts from a copy of them and runs only the incremental runs (their share is then of the stored full
sync, measured at another time and load: the output says so; use it to iterate, not for the final figure).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import random
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

SYNC_YML = """
batch_size: {batch}
objects:
  - name: products
    salesforce: {{object: Product2, external_id: ERP_Item_Code__c}}
    erp: {{table: items, key: item_code, changes: {{column: updated_at}}}}
    deletes: {{mode: soft, salesforce_field: IsActive, salesforce_value: false}}
    fields: {{Name: item_name, ProductCode: item_code, IsActive: active}}
  - name: inventory
    salesforce: {{object: Inventory__c, external_id: ERP_Key__c}}
    erp: {{table: inventory, key: [item_code, warehouse], changes: {{column: updated_at}}}}
    deletes: {{mode: soft, salesforce_field: Is_Active__c, salesforce_value: false}}
    fields:
      Name: {{compute: "concat(item_code, warehouse)"}}
      Product__r.ERP_Item_Code__c: item_code
      Warehouse__c: warehouse
      On_Hand__c: on_hand
      Reserved__c: reserved
      Available__c: available
"""


def erp_keys(rows: int, warehouses: int) -> list[tuple[str, str]]:
    return [(f"ITEM{n // warehouses:07d}", f"WH{n % warehouses:03d}") for n in range(rows)]


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database that may be open (WAL) elsewhere."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def fill_erp(url: str, rows: int, warehouses: int, seed: int) -> list[tuple[str, str]]:
    from sqlalchemy import create_engine, insert

    from crmbridge.sync.reference_erp import erp_metadata, inventory, items

    rng = random.Random(seed)
    eng = create_engine(url)
    erp_metadata.create_all(eng, tables=[items, inventory])
    n_items = -(-rows // warehouses)
    t0 = datetime(2026, 1, 1)
    keys = []
    with eng.begin() as c:
        c.execute(insert(items), [{"item_code": f"ITEM{i:07d}", "item_name": f"Item {i}", "family": "Hardware",
                                   "unit": "Each", "active": True, "updated_at": t0} for i in range(n_items)])
        batch = []
        for n in range(rows):
            item, wh = f"ITEM{n // warehouses:07d}", f"WH{n % warehouses:03d}"
            on_hand = Decimal(rng.randint(0, 5000))
            batch.append({"item_code": item, "warehouse": wh, "on_hand": on_hand, "reserved": Decimal(0),
                          "available": on_hand, "updated_at": t0 + timedelta(seconds=n % 3600)})
            keys.append((item, wh))
            if len(batch) == 20_000:
                c.execute(insert(inventory), batch)
                batch = []
        if batch:
            c.execute(insert(inventory), batch)
    eng.dispose()
    return keys


def change_erp(url: str, keys: list[tuple[str, str]], pct: float, seed: int) -> int:
    """Change ``pct`` % of the inventory rows from outside, as the ERP would (updated_at moves)."""
    from sqlalchemy import bindparam, create_engine, func, update

    from crmbridge.sync.reference_erp import inventory

    picked = random.Random(seed + 1).sample(keys, int(len(keys) * pct / 100))
    eng = create_engine(url)
    stmt = (update(inventory).where(inventory.c.item_code == bindparam("k_item"),
                                    inventory.c.warehouse == bindparam("k_wh"))
            .values(on_hand=inventory.c.on_hand + 1, available=inventory.c.available + 1,
                    updated_at=func.current_timestamp()))
    with eng.begin() as c:
        for i in range(0, len(picked), 20_000):
            c.execute(stmt, [{"k_item": a, "k_wh": b} for a, b in picked[i:i + 20_000]])
    eng.dispose()
    return len(picked)


def delete_rows(url: str, keys: list[tuple[str, str]], count: int, seed: int) -> int:
    from sqlalchemy import bindparam, create_engine, delete

    from crmbridge.sync.reference_erp import inventory

    picked = random.Random(seed + 2).sample(keys, count)
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(delete(inventory).where(inventory.c.item_code == bindparam("k_item"),
                                          inventory.c.warehouse == bindparam("k_wh")),
                  [{"k_item": a, "k_wh": b} for a, b in picked])
    eng.dispose()
    return len(picked)


def show(label: str, r, seconds: float, calls: int, full: float | None = None, cpu: float | None = None,
         main_cpu: float | None = None) -> None:
    inv, prod = r.objects["inventory"], r.objects["products"]
    share = f"  = {100 * seconds / full:.2f}% of the full sync" if full else ""
    cpu_s = f"  CPU {cpu:.2f}s (process, org included)" if cpu is not None else ""
    if main_cpu is not None:
        cpu_s += f", {main_cpu:.2f}s in the main thread"
    print(f"{label}: {seconds:8.1f}s{share}{cpu_s}  status={r.status}  API calls (sandbox count)={calls} "
          f"(client count {r.api_calls})  load avg={os.getloadavg()[0]:.2f}")
    for name, o in (("products", prod), ("inventory", inv)):
        print(f"    {name:9s} read={o['read']:>9,} written={o['written']:>9,} unchanged={o['unchanged']:>9,} "
              f"deleted={o['deleted']} errors={o['errors']}  delete check: {o.get('delete_check')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--warehouses", type=int, default=100)
    ap.add_argument("--change-pct", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--erp-url", help="an EMPTY database (default: SQLite in a temp folder)")
    ap.add_argument("--workdir", help="folder for the project, org and ERP (default: a temp folder)")
    ap.add_argument("--snapshot", metavar="DIR", help="keep the state after run 1 in DIR, or start from it "
                    "if DIR holds one (see above)")
    ap.add_argument("--profile", metavar="FILE", help="profile run 2 (cProfile, main thread) into FILE and "
                    "print its top functions")
    ap.add_argument("--reread-window", action="store_true", help="read the overlap window in full as before "
                    "sync/seen.py (for an A/B from the same --snapshot)")
    args = ap.parse_args()

    from crmbridge.config import load_project
    from crmbridge.connectors.salesforce import connect
    from crmbridge.sandbox.server import start_sandbox
    from crmbridge.sync.engine import run_sync
    from crmbridge.sync.objectsync import ObjectSync

    ObjectSync.use_seen = not args.reread_window

    work = Path(args.workdir or tempfile.mkdtemp(prefix="crmbridge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    erp_url = args.erp_url or f"sqlite:///{work / 'erp.db'}"
    root = work / "project"
    state_db = root / ".crmbridge" / "state.db"
    snap = Path(args.snapshot) if args.snapshot else None
    meta_file = snap / "snapshot.json" if snap else None
    stored = json.loads(meta_file.read_text()) if meta_file and meta_file.exists() else None
    if stored and (stored["rows"], stored["warehouses"], stored["batch"]) != (args.rows, args.warehouses, args.batch):
        raise SystemExit(f"{meta_file} holds {stored['rows']:,} rows / {stored['warehouses']} warehouses / batch "
                         f"{stored['batch']}: use the same --rows/--warehouses/--batch or another --snapshot")
    if stored and args.erp_url:
        raise SystemExit("--snapshot works with the default SQLite ERP only")
    t = time.perf_counter()
    if stored:
        for name, dst in (("erp.db", work / "erp.db"), ("org.db", work / "org.db"), ("state.db", state_db)):
            copy_sqlite(snap / name, dst)
        keys = erp_keys(args.rows, args.warehouses)
        print(f"started from the snapshot in {snap} ({time.perf_counter() - t:.1f}s)")
    else:
        keys = fill_erp(erp_url, args.rows, args.warehouses, seed=7)
        print(f"ERP filled: {len(keys):,} inventory rows in {time.perf_counter() - t:.1f}s ({erp_url.split(':')[0]})")
    handle = start_sandbox(work / "org.db")
    root.mkdir(exist_ok=True)
    (root / "crmbridge.yml").write_text(
        f"salesforce: {{target: sandbox, instance_url: '{handle.instance_url}', ca_bundle: '{handle.ca_bundle}'}}\n"
        f"erp: {{url: '{erp_url}'}}\n")
    (root / "sync.yml").write_text(SYNC_YML.format(batch=args.batch))
    project = load_project(root)
    sf = connect(project)
    app = handle.app

    cpus: dict[str, float] = {}

    def timed(label: str, full: float | None = None, profile: str | None = None):
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
        calls, t, c0, m0 = app.api_calls, time.perf_counter(), time.process_time(), time.thread_time()
        if prof:
            prof.enable()
        r = run_sync(project, sf=sf)
        secs, cpu, main_cpu = time.perf_counter() - t, time.process_time() - c0, time.thread_time() - m0
        if prof:
            import pstats

            prof.disable()
            prof.dump_stats(profile)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        show(label, r, secs, app.api_calls - calls, full, cpu, main_cpu)
        cpus[label.split(" ")[1]] = cpu
        return secs

    try:
        print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()}")
        if stored:
            full = stored["full_seconds"]
            if "full_cpu" in stored:
                cpus['1'] = stored["full_cpu"]
            print(f"run 1 (full sync) from the snapshot: {full:.1f}s, measured {stored['measured']} at load avg "
                  f"{stored['load']:.2f} (shares below are of that figure)")
        else:
            full = timed("run 1 (full sync)")
            if snap:
                snap.mkdir(parents=True, exist_ok=True)
                for name, src in (("erp.db", work / "erp.db"), ("org.db", work / "org.db"), ("state.db", state_db)):
                    copy_sqlite(src, snap / name)
                meta_file.write_text(json.dumps({
                    "rows": args.rows, "warehouses": args.warehouses, "batch": args.batch, "full_seconds": full,
                    "full_cpu": cpus['1'],
                    "load": os.getloadavg()[0], "measured": time.strftime("%Y-%m-%d %H:%M:%S %Z")}))
                print(f"snapshot after run 1 kept in {snap}")
        changed = change_erp(erp_url, keys, args.change_pct, seed=7)
        print(f"changed {changed:,} rows ({args.change_pct}%) in the ERP")
        t2 = timed(f"run 2 (after {args.change_pct}% changed)", full, args.profile)
        t3 = timed("run 3 (nothing changed)", full)
        gone = delete_rows(erp_url, keys, max(1, len(keys) // 10_000), seed=7)
        print(f"deleted {gone:,} rows in the ERP")
        timed("run 4 (after deletes)", full)
        in_org = sf.count("SELECT COUNT() FROM Inventory__c")
        active = sf.count("SELECT COUNT() FROM Inventory__c WHERE Is_Active__c = true")
        print(f"Inventory__c records in the org: {in_org:,}, active {active:,} (ERP rows: {len(keys) - gone:,})")
        print(f"SUMMARY full={full:.1f}s incremental_1pct={t2:.1f}s ({100 * t2 / full:.2f}%) "
              f"nothing_changed={t3:.1f}s ({100 * t3 / full:.2f}%) target<=2%")
        if "1" in cpus:
            print(f"SUMMARY CPU full={cpus['1']:.1f}s incremental_1pct={cpus['2']:.2f}s "
                  f"({100 * cpus['2'] / cpus['1']:.2f}%) nothing_changed={cpus['3']:.2f}s "
                  f"({100 * cpus['3'] / cpus['1']:.2f}%)")
    finally:
        sf.close()
        handle.stop()


if __name__ == "__main__":
    main()
