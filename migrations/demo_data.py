"""Sample legacy data for the demo project, following ``docs/demo-data.md`` exactly.

Three departments export overlapping customer lists (sales: UTF-8 CSV with BOM and Chinese headers;
finance: Excel with serial dates; service: GB18030 ``;`` CSV), a legacy CRM SQLite database holds the
contacts, and finance keeps contracts in a CSV. The data is messy the way real exports are (full-width
digits, padded keys, several date and amount spellings, phones without area codes) and carries a few
percent of real defects (bad credit-code check characters, broken e-mails, missing names, orphan
contacts, planted markup) so validation and the Salesforce side both have something to catch.
Everything is generated from one seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

CITIES = [  # city, province, area code, postal code, district
    ("上海", "上海市", "021", "200120", "浦东新区"), ("北京", "北京市", "010", "100020", "朝阳区"),
    ("深圳", "广东省", "0755", "518000", "南山区"), ("广州", "广东省", "020", "510000", "天河区"),
    ("杭州", "浙江省", "0571", "310000", "西湖区"), ("成都", "四川省", "028", "610000", "武侯区"),
    ("武汉", "湖北省", "027", "430000", "江汉区"), ("南京", "江苏省", "025", "210000", "鼓楼区"),
]
WORDS = ["明远", "华信", "恒通", "金桥", "瑞丰", "东方", "长城", "新锐", "宏达", "天成", "博雅", "众合",
         "汇丰源", "启航", "佳禾", "鼎盛", "远航", "安泰", "康瑞", "星辰", "云帆", "嘉和", "普华", "中科"]
TRADES = [("贸易", "零售"), ("科技", "IT"), ("制造", "制造业"), ("电子", "制造业"), ("物流", "交通运输"),
          ("食品", "食品"), ("医药", "医疗"), ("建材", "建筑"), ("软件", "IT"), ("能源", "能源")]
SUFFIXES = ["有限公司", "有限公司", "股份有限公司", "有限责任公司"]
EN_WORDS = ["Acme", "Pacific", "Golden Gate", "Summit", "Blue River", "Northstar", "Evergreen", "Orion",
            "Harbor", "Silverline", "Redwood", "Keystone"]
EN_KINDS = [("Industrial", "Manufacturing"), ("Trading", "Retail"), ("Software", "IT"),
            ("Logistics", "Transportation"), ("Foods", "Food")]
STREETS = ["世纪大道", "人民路", "建国路", "深南大道", "中山路", "解放路", "科技园路", "长江路"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高"]
COMPOUND = ["欧阳", "司马", "诸葛", "上官", "东方"]
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"]
EN_FIRST = ["John", "Mary", "David", "Linda", "Michael", "Susan", "James", "Karen"]
EN_LAST = ["Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark"]
TITLES = ["总经理", "采购经理", "财务总监", "IT经理", "销售总监", "行政主管", "Purchasing Manager", "CFO"]
CONTACT_DEPTS = ["采购部", "财务部", "信息部", "总经办", "销售部", "Procurement"]
MOBILE_PREFIX = ["138", "139", "186", "135", "150", "158", "177"]
SALES_HEADERS = ["客户编号", "客户名称", "统一社会信用代码", "电话", "邮箱", "地址", "城市", "省份", "邮编", "国家",
                 "行业", "状态", "销售代表", "创建日期", "年营业额", "商机数"]
SERVICE_HEADERS = ["客户编号", "客户名称", "统一社会信用代码", "电话", "邮箱", "地址", "城市", "省份", "邮编", "国家",
                   "行业", "状态", "销售代表", "创建日期", "服务合同数"]
FINANCE_HEADERS = ["customer_no", "name", "credit_code", "phone", "email", "address", "city", "province",
                   "postal_code", "country", "industry", "status", "sales_rep", "created_on", "annual_revenue",
                   "invoice_count", "open_balance", "credit_limit"]
CONTACT_COLUMNS = ["contact_no", "customer_no", "full_name", "title", "phone", "mobile", "email", "department",
                   "updated_at"]
CONTRACT_COLUMNS = ["contract_no", "customer_no", "start_date", "end_date", "amount", "status", "payment_terms",
                    "signed_on"]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
FULLWIDTH = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ")


@dataclass
class Company:
    """One real-world customer before the departments' exports distort it."""

    no: str
    name: str
    short_name: str
    credit_code: str
    city: tuple
    address: str
    email: str
    industry: str
    english: bool
    country: str
    sales_rep: str
    created: date
    revenue: int
    landline: str
    mobile: str
    departments: list[str] = field(default_factory=list)


def uscc(rng: random.Random, *, valid: bool = True) -> str:
    """An 18-character unified social credit code (GB 32100-2015), optionally with a wrong check char."""
    from stdnum.cn import uscc as _uscc

    body = "91" + rng.choice(["310000", "110000", "440300", "440100", "330100", "510100"]) + \
        "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    check = _uscc.calc_check_digit(body)
    if not valid:
        check = rng.choice([c for c in USCC_ALPHABET if c != check])
    return body + check


def _company(rng: random.Random, i: int) -> Company:
    city = rng.choice(CITIES)
    english = rng.random() < 0.15
    if english:
        word, (kind, industry) = rng.choice(EN_WORDS), rng.choice(EN_KINDS)
        short = f"{word} {kind}"
        name = f"{short} {'Ltd.' if rng.random() < 0.6 else 'Co., Ltd.'}"
    else:
        trade, industry = rng.choice(TRADES)
        short = f"{city[0]}{rng.choice(WORDS)}{trade}"
        name = short + rng.choice(SUFFIXES)
    us = english and rng.random() < 0.15
    r = rng.random()
    code = "" if r < 0.07 else uscc(rng, valid=r >= 0.10)
    return Company(
        no=f"C{i:06d}", name=name, short_name=short, credit_code=code, city=city,
        address=f"{city[4]}{rng.choice(STREETS)}{rng.randint(1, 999)}号", email=f"info@c{i:06d}.example.cn",
        industry=industry, english=english, country="US" if us else rng.choice(["CN", "CN", "中国", "China"]),
        sales_rep=f"R00{rng.randint(1, 5)}", created=date(2015, 1, 1) + timedelta(days=rng.randint(0, 3600)),
        revenue=rng.randint(10, 50_000) * 1000,
        landline=f"{rng.randint(2, 8)}{rng.randint(100, 999)}{rng.randint(1000, 9999)}",
        mobile=f"{rng.choice(MOBILE_PREFIX)}{rng.randint(1000, 9999)}{rng.randint(1000, 9999)}",
    )


def _messy_no(rng: random.Random, no: str) -> str:
    r = rng.random()
    return no.translate(FULLWIDTH) if r < 0.03 else f" {no} " if r < 0.06 else no


def _messy_phone(rng: random.Random, c: Company) -> str:
    area, land, mob = c.city[2], c.landline, c.mobile
    forms = [f"{area}-{land[:4]} {land[4:]}", f"+86 {mob[:3]} {mob[3:7]} {mob[7:]}", mob, f"（{area}）{land}",
             f"{area}-{land}", f"{area}-{land}转{rng.randint(100, 899)}"]
    if rng.random() < 0.02:
        return f"{land[:4]} {land[4:]}"  # no area code: only the record's city can complete it
    return rng.choice(forms)


def _messy_email(rng: random.Random, c: Company) -> str:
    r = rng.random()
    if r < 0.015:
        return "bad@"
    if r < 0.03:
        return ""
    return f"{c.email.upper()} " if r < 0.12 else c.email


def _messy_name(rng: random.Random, c: Company, dept: str) -> str:
    r = rng.random()
    if r < 0.004:
        return ""
    if r < 0.006:
        return f"<script>alert('{c.no}')</script>{c.name}"
    if r < 0.008:
        return f"<b>Evil</b> {c.short_name}"
    # other departments often drop the legal-form suffix: 华为技术有限公司 vs 华为技术
    return c.short_name if dept != "sales" and not c.english and r < 0.35 else c.name


def _messy_date(rng: random.Random, d: date) -> str:
    return rng.choice([d.isoformat(), f"{d.year}/{d.month}/{d.day}", f"{d.year}年{d.month}月{d.day}日"])


def _messy_amount(rng: random.Random, amount: float) -> str:
    return rng.choice([f"¥{amount:,.2f}", f"{amount:.0f}", f"{amount:.0f}".translate(FULLWIDTH)])


def _status(rng: random.Random, dept: str) -> str:
    if rng.random() < 0.01:
        return "黑名单"
    return rng.choice({"sales": ["潜在", "活跃", "prospect", "active", "活跃"],
                       "finance": ["正常", "正常", "停用", "活跃"],
                       "service": ["活跃", "正常", "停用"]}[dept])


def _common_cells(rng: random.Random, c: Company, dept: str) -> list:
    city = c.city
    if c.country == "US":
        city_name, province, postal = "New York", "NY", "10001"
    else:
        city_name = city[0] if not c.english or rng.random() < 0.5 else \
            {"上海": "Shanghai", "北京": "Beijing", "深圳": "Shenzhen"}.get(city[0], city[0])
        province, postal = city[1], city[3].translate(FULLWIDTH) if rng.random() < 0.05 else city[3]
    code = c.credit_code if rng.random() > 0.05 else ""  # departments do not always record the code
    return [_messy_no(rng, c.no), _messy_name(rng, c, dept), code, _messy_phone(rng, c), _messy_email(rng, c),
            c.address, city_name, province, postal, c.country, c.industry, _status(rng, dept), c.sales_rep]


def build_companies(n: int, rng: random.Random) -> list[Company]:
    """The true customers; each appears in one, two or three departments' exports."""
    out: list[Company] = []
    for i in range(1, n + 1):
        c = _company(rng, i)
        if out and rng.random() < 0.004 and c.credit_code:
            # a data-entry slip: another customer's credit code. Only the org's unique index on
            # Credit_Code__c catches it (DUPLICATE_VALUE), so the demo shows Salesforce-side rejections.
            c.credit_code = rng.choice(out).credit_code or c.credit_code
        c.departments = [d for d, p in (("sales", 0.6), ("finance", 0.45), ("service", 0.35)) if rng.random() < p]
        if not c.departments:
            c.departments = [rng.choice(["sales", "finance", "service"])]
        out.append(c)
    return out


def write_sales(path: Path, companies: list[Company], rng: random.Random) -> int:
    rows = 0
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(SALES_HEADERS)
        for c in companies:
            if "sales" in c.departments:
                w.writerow(_common_cells(rng, c, "sales") + [_messy_date(rng, c.created),
                           _messy_amount(rng, c.revenue), rng.choice([0, 0, 1, 2, 3])])
                rows += 1
    return rows


def write_service(path: Path, companies: list[Company], rng: random.Random) -> int:
    rows = 0
    with path.open("w", encoding="gb18030", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(SERVICE_HEADERS)
        for c in companies:
            if "service" in c.departments:
                w.writerow(_common_cells(rng, c, "service") + [_messy_date(rng, c.created), rng.choice([0, 1, 1, 2])])
                rows += 1
    return rows


def write_finance(path: Path, companies: list[Company], rng: random.Random) -> int:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("客户")
    ws.append(FINANCE_HEADERS)
    rows = 0
    for c in companies:
        if "finance" in c.departments:
            serial = (c.created - date(1899, 12, 30)).days  # Excel's day zero (with its 1900 leap-year bug)
            balance = round(rng.uniform(0, c.revenue / 20), 2)
            ws.append(_common_cells(rng, c, "finance") + [serial, _messy_amount(rng, c.revenue),
                      rng.choice([0, 1, 3, 8, 12]), f"¥{balance:,.2f}", rng.choice([50000, 100000, 500000])])
            rows += 1
    wb.save(path)
    return rows


def _person(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    surname = rng.choice(COMPOUND) if r < 0.25 else rng.choice(SURNAMES)
    return surname + rng.choice(GIVEN)


def write_contacts(path: Path, companies: list[Company], rng: random.Random, per_company: float) -> int:
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (contact_no TEXT PRIMARY KEY, customer_no TEXT, full_name TEXT, title TEXT,"
                " phone TEXT, mobile TEXT, email TEXT, department TEXT, updated_at TEXT)")
    rows, n = [], 0
    for c in companies:
        for _ in range(int(per_company) + (rng.random() < per_company % 1)):
            n += 1
            parent = c.no if rng.random() > 0.01 else f"C9{rng.randint(10000, 99999)}"  # orphan: parent unknown
            name = _person(rng) if rng.random() > 0.005 else ""
            mob = f"{rng.choice(MOBILE_PREFIX)}{rng.randint(1000, 9999)}{rng.randint(1000, 9999)}"
            email = f"p{n:07d}@c{c.no[1:]}.example.cn" if rng.random() > 0.02 else "bad@"
            stamp = datetime(2024, 1, 1) + timedelta(minutes=rng.randint(0, 600_000))
            rows.append((f"P{n:07d}", parent, name, rng.choice(TITLES), f"{c.city[2]}-{c.landline}",
                         mob if rng.random() > 0.1 else f"+86 {mob}", email, rng.choice(CONTACT_DEPTS),
                         stamp.strftime("%Y-%m-%d %H:%M:%S")))
    con.executemany("INSERT INTO contacts VALUES (?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    return len(rows)


def write_contracts(path: Path, companies: list[Company], rng: random.Random, share: float) -> int:
    n = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(CONTRACT_COLUMNS)
        for c in companies:
            if rng.random() >= share:
                continue
            n += 1
            start = date(2022, 1, 1) + timedelta(days=rng.randint(0, 1000))
            months = rng.choice([12, 12, 24, 36])
            end = start + timedelta(days=round(months * 30.44) - 1)
            if rng.random() < 0.01:
                end = start - timedelta(days=30)  # ends before it starts
            status = rng.choice(["草稿", "审批中", "已生效", "已生效", "已终止"]) if rng.random() > 0.005 else "作废"
            w.writerow([f"HT{start.year}-{n:06d}", c.no, start.isoformat(), end.isoformat(),
                        f"¥{rng.randint(1000, 2_000_000) + rng.randint(0, 99) / 100:,.2f}", status,
                        rng.choice(["预付", "30天", "60天", "90天"]), (start - timedelta(days=rng.randint(1, 20))).isoformat()])
    return n


def write_demo_data(target: str | Path, *, customers: int = 10_000, seed: int = 20231105,
                    contacts_per_customer: float = 1.2, contract_share: float = 0.4, erp: bool = True) -> dict:
    """Write the sample legacy sources under ``target/data`` (and the reference ERP if available).

    Returns ``{"files": {source: path}, "rows": {source: n}, "companies": n, "erp": dict | None}``.
    """
    rng = random.Random(seed)
    data = Path(target) / "data"
    data.mkdir(parents=True, exist_ok=True)
    companies = build_companies(customers, rng)
    files = {"sales_customers": data / "sales_customers.csv", "finance_customers": data / "finance_customers.xlsx",
             "service_customers": data / "service_customers.csv", "crm_contacts": data / "legacy_crm.db",
             "contracts": data / "contracts.csv"}
    rows = {
        "sales_customers": write_sales(files["sales_customers"], companies, rng),
        "finance_customers": write_finance(files["finance_customers"], companies, rng),
        "service_customers": write_service(files["service_customers"], companies, rng),
        "crm_contacts": write_contacts(files["crm_contacts"], companies, rng, contacts_per_customer),
        "contracts": write_contracts(files["contracts"], companies, rng, contract_share),
    }
    erp_info = _write_erp(data / "erp.db", companies, seed) if erp else None
    return {"files": {k: str(v) for k, v in files.items()}, "rows": rows, "companies": len(companies),
            "erp": erp_info}


def _write_erp(path: Path, companies: list[Company], seed: int) -> dict | None:
    """The sample ERP database, built by the sync part's reference ERP (absent in builds without sync)."""
    try:
        from crmbridge.sync.reference_erp import create_reference_erp
    except ImportError:
        return None
    import inspect

    import pandas as pd

    df = pd.DataFrame({"customer_no": [c.no for c in companies], "name": [c.name for c in companies],
                       "credit_code": [c.credit_code or None for c in companies]})
    if path.exists():
        path.unlink()
    params = inspect.signature(create_reference_erp).parameters
    kw = {"customers_df" if "customers_df" in params else "customers": df}
    if "seed" in params:
        kw["seed"] = seed
    info = create_reference_erp(f"sqlite:///{path.resolve()}", **kw)
    return info if isinstance(info, dict) else {"path": str(path)}
