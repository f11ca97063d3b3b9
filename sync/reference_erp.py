"""A reference ERP schema with sample data, so the sync can be tried at once (SQLite, PostgreSQL, MariaDB).

Tables: ``items`` and ``inventory`` (stock per warehouse), ``customers`` (carrying the legacy
``customer_no`` and ``credit_code`` so that they line up with Accounts migrated with ``Legacy_Id__c`` /
``Credit_Code__c``), ``receivables`` (open invoices) and ``contracts`` (filled from Salesforce).
The sync.yml template maps exactly these tables.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

erp_metadata = MetaData()

items = Table(
    "items", erp_metadata,
    Column("item_code", String(40), primary_key=True),
    Column("item_name", String(200), nullable=False),
    Column("family", String(40)),
    Column("unit", String(20)),
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", DateTime, nullable=False, index=True),
)

inventory = Table(
    "inventory", erp_metadata,
    Column("item_code", String(40), nullable=False),
    Column("warehouse", String(40), nullable=False),
    Column("on_hand", Numeric(18, 2), nullable=False),
    Column("reserved", Numeric(18, 2), nullable=False),
    Column("available", Numeric(18, 2), nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
    PrimaryKeyConstraint("item_code", "warehouse"),
)

customers = Table(
    "customers", erp_metadata,
    Column("customer_code", String(40), primary_key=True),
    Column("customer_no", String(40), index=True),
    Column("credit_code", String(18), index=True),
    Column("name", String(255), nullable=False),
    Column("phone", String(40)),
    Column("billing_street", String(255)),
    Column("billing_city", String(40)),
    Column("billing_state", String(80)),
    Column("billing_postal_code", String(20)),
    Column("credit_limit", Numeric(18, 2)),
    Column("status", String(20)),
    Column("crm_account_id", String(18)),  # written by the sync: which customers Salesforce knows
    Column("updated_at", DateTime, nullable=False, index=True),
)

receivables = Table(
    "receivables", erp_metadata,
    Column("invoice_no", String(40), primary_key=True),
    Column("customer_code", String(40), nullable=False, index=True),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("paid_amount", Numeric(18, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

contracts = Table(
    "contracts", erp_metadata,
    Column("contract_code", String(40), primary_key=True),
    Column("crm_contract_no", String(80)),
    Column("customer_code", String(40)),
    Column("start_date", Date),
    Column("term_months", Integer),
    Column("amount", Numeric(18, 2)),
    Column("payment_terms", String(40)),
    Column("status", String(40)),
    Column("updated_at", DateTime, nullable=False, server_default=func.current_timestamp()),
)

WAREHOUSES = ["WH-SH", "WH-BJ", "WH-SZ"]
FAMILIES = ["Hardware", "Software", "Service", "Spare Parts"]
STAMP0 = datetime(2026, 1, 1, 8, 0, 0)


def _clean(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    s = unicodedata.normalize("NFKC", str(v)).strip()
    return s or None


def _customer_rows(df, rng: random.Random) -> list[dict]:
    """ERP customers from the legacy customers (one per customer_no), or a synthetic list."""
    src: list[dict] = []
    if df is not None:
        seen = set()
        for rec in df.to_dict("records"):
            no = _clean(rec.get("customer_no"))
            if not no or no in seen:
                continue
            seen.add(no)
            src.append({"customer_no": no, "name": _clean(rec.get("name")) or no,
                        "credit_code": _clean(rec.get("credit_code")), "phone": _clean(rec.get("phone")),
                        "billing_street": _clean(rec.get("address")), "billing_city": _clean(rec.get("city")),
                        "billing_state": _clean(rec.get("province")),
                        "billing_postal_code": _clean(rec.get("postal_code"))})
    else:
        cities = [("上海", "上海市", "200120"), ("北京", "北京市", "100020"), ("深圳", "广东省", "518000")]
        for i in range(1, 41):
            city, prov, pc = cities[i % 3]
            src.append({"customer_no": f"C{i:06d}", "name": f"示例客户{i:03d}有限公司", "credit_code": None,
                        "phone": f"021-6{i:03d} 5678", "billing_street": f"世纪大道{i}号", "billing_city": city,
                        "billing_state": prov, "billing_postal_code": pc})
    rows = []
    for i, c in enumerate(src, 1):
        rows.append({**c, "customer_code": f"K{i:07d}", "status": "Active",
                     "credit_limit": Decimal(rng.choice([50_000, 100_000, 200_000, 500_000])),
                     "updated_at": STAMP0 + timedelta(minutes=i)})
    return rows


def _receivable_rows(custs: list[dict], rng: random.Random, today: date) -> list[dict]:
    rows, n = [], 0
    for c in custs:
        for _ in range(rng.randint(0, 4)):
            n += 1
            inv = today - timedelta(days=rng.randint(5, 150))
            amount = Decimal(rng.randint(1_000, 200_000)) + Decimal(rng.randint(0, 99)) / 100
            paid = rng.choice([Decimal(0), amount, (amount / 2).quantize(Decimal("0.01"))])
            status = "Paid" if paid == amount else "Open" if paid == 0 else "Partially Paid"
            rows.append({"invoice_no": f"INV{n:07d}", "customer_code": c["customer_code"], "invoice_date": inv,
                         "due_date": inv + timedelta(days=rng.choice([30, 60, 90])), "amount": amount,
                         "paid_amount": paid, "status": status, "updated_at": STAMP0 + timedelta(minutes=n)})
    return rows


def inventory_rows(start: int, count: int, rng: random.Random) -> list[dict]:
    """``count`` inventory rows for items numbered from ``start`` (one row per item and warehouse)."""
    out = []
    for i in range(start, start + count):
        on_hand = Decimal(rng.randint(0, 5_000))
        reserved = Decimal(rng.randint(0, int(on_hand))) if on_hand else Decimal(0)
        out.append({"item_code": f"ITEM{i // len(WAREHOUSES):07d}", "warehouse": WAREHOUSES[i % len(WAREHOUSES)],
                    "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved,
                    "updated_at": STAMP0 + timedelta(seconds=i % 86_400)})
    return out


def item_rows(count: int, rng: random.Random) -> list[dict]:
    return [{"item_code": f"ITEM{i:07d}", "item_name": f"Item {i:07d}", "family": rng.choice(FAMILIES),
             "unit": "Each", "active": True, "updated_at": STAMP0 + timedelta(seconds=i)} for i in range(count)]


def create_reference_erp(url: str, *, customers=None, items: int = 200, seed: int = 7,
                         today: date | None = None) -> dict:
    """Create the reference ERP tables at ``url`` and fill them with sample data; returns row counts.

    ``customers``: a DataFrame of legacy customers (docs/demo-data.md columns; ``customer_no``,
    ``credit_code``, ``name`` ...) so ERP customers line up with migrated Accounts. Refuses to touch a
    database that already has the tables (nothing is dropped)."""
    from crmbridge.errors import UsageError

    rng = random.Random(seed)
    eng = create_engine(url, future=True)
    try:
        from sqlalchemy import inspect

        existing = set(inspect(eng).get_table_names()) & set(erp_metadata.tables)
        if existing:
            raise UsageError(f"the ERP database already has table(s) {', '.join(sorted(existing))}",
                             hint="point erp.url at an empty database")
        if eng.dialect.name == "sqlite":
            with eng.begin() as c:
                c.exec_driver_sql("PRAGMA journal_mode=WAL")
        erp_metadata.create_all(eng)
        custs = _customer_rows(customers, rng)
        recv = _receivable_rows(custs, rng, today or date.today())
        item_list = item_rows(items, rng)
        inv = inventory_rows(0, items * len(WAREHOUSES), rng)
        with eng.begin() as c:
            for table, rows in ((globals()["items"], item_list), (inventory, inv), (globals()["customers"], custs),
                                (receivables, recv)):
                for i in range(0, len(rows), 5_000):
                    c.execute(insert(table), rows[i:i + 5_000])
        with eng.connect() as c:
            counts = {t.name: c.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in erp_metadata.sorted_tables}
    finally:
        eng.dispose()
    return {"url": eng.url.render_as_string(hide_password=True), "tables": counts}
