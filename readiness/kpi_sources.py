"""The neutral KPI dataset from either side: the legacy run (validated rows) or the Salesforce org.

Both builders return the same three frames so one set of KPI formulas serves both, which is what makes
a before/after comparison fair:

- ``customers``: one row per customer key with ``departments`` (set) and the detail columns
  ``phone``, ``email``, ``address``, ``credit_code`` (text, "" when missing), plus any raw columns the
  agreed-definition criteria need (legacy only);
- ``contacts``: ``customer`` (the key of the customer the contact belongs to);
- ``contracts``: ``customer``, ``start`` and ``end`` (dates or NaT), ``amount`` (float or NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

from crmbridge.errors import UsageError

# neutral detail column -> Account field in the org (email has no standard Account field)
ORG_FIELDS = {"phone": "Phone", "address": "BillingStreet", "credit_code": "Credit_Code__c"}
DETAILS = ("phone", "email", "address", "credit_code")


@dataclass(frozen=True)
class Dataset:
    source: str  # legacy, org
    run_id: str | None
    customers: "object"  # pandas DataFrame
    rows: "object | None"  # legacy: every validated customer row (for the definition's criteria)
    contacts: "object"
    contracts: "object"


def _text(s):
    return s.fillna("").astype(str).str.strip()


def legacy_dataset(project) -> Dataset:
    """From the newest run whose validation succeeded: the rows that passed the agreed definition."""
    import pandas as pd

    from crmbridge.readiness.history import latest_with_stage
    from crmbridge.readiness.store import engine_for

    got = latest_with_stage(engine_for(project), "validate")
    if got is None:
        raise UsageError("no validated run to take legacy KPIs from", hint="run `crmbridge migrate` (or extract + validate) first")
    run_dir = project.runs_dir / got[0] / "validate"

    def frame(entity: str) -> pd.DataFrame:
        p = run_dir / f"{entity}.parquet"
        return pd.read_parquet(p).astype(object) if p.exists() else pd.DataFrame()

    rows = frame("customers")
    if rows.empty or "customer_no" not in rows:
        raise UsageError(f"run {got[0]} has no validated customers")
    rows = rows.assign(customer_no=_text(rows["customer_no"]))
    rows = rows[rows["customer_no"] != ""]
    for d in DETAILS:
        rows[d] = _text(rows[d]) if d in rows else ""
    g = rows.groupby("customer_no", sort=True)
    # a customer has a detail on file when any of its departmental rows holds it
    cust = pd.DataFrame({d: g[d].agg(lambda s: next((v for v in s if v), "")) for d in DETAILS})
    cust["departments"] = g["_department"].agg(lambda s: set(_text(s)) - {""}) if "_department" in rows else [set()] * len(cust)
    cust.index.name = "key"
    con = frame("contacts")
    contacts = pd.DataFrame({"customer": _text(con["customer_no"]) if "customer_no" in con else pd.Series(dtype=str)})
    ctr = frame("contracts")
    contracts = pd.DataFrame({
        "customer": _text(ctr["customer_no"]) if "customer_no" in ctr else pd.Series(dtype=str),
        "start": pd.to_datetime(ctr.get("start_date"), errors="coerce") if "start_date" in ctr else pd.Series(dtype="datetime64[ns]"),
        "end": pd.to_datetime(ctr.get("end_date"), errors="coerce") if "end_date" in ctr else pd.Series(dtype="datetime64[ns]"),
        "amount": pd.to_numeric(ctr.get("amount"), errors="coerce") if "amount" in ctr else pd.Series(dtype=float)})
    return Dataset("legacy", got[0], cust, rows, contacts, contracts)


def org_dataset(project, connector=None) -> Dataset:
    """From the org: Accounts carrying a legacy key, their Contacts and Contracts (SOQL via the connector)."""
    import pandas as pd

    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    try:
        acc = list(connector.query("SELECT Id, Legacy_Id__c, Source_Departments__c, Phone, BillingStreet, "
                                   "Credit_Code__c FROM Account WHERE Legacy_Id__c != null"))
        con = list(connector.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null"))
        ctr = list(connector.query("SELECT Id, AccountId, StartDate, EndDate, Contract_Amount__c FROM Contract"))
    finally:
        if own:
            connector.close()
    key_of = {a["Id"]: str(a["Legacy_Id__c"]).strip() for a in acc}
    cust = pd.DataFrame({
        "key": [key_of[a["Id"]] for a in acc],
        **{d: [str(a.get(f) or "").strip() for a in acc] for d, f in ORG_FIELDS.items()},
        "email": ["" for _ in acc],
        "departments": [set(x.strip() for x in str(a.get("Source_Departments__c") or "").split(";") if x.strip())
                        for a in acc]}).set_index("key").sort_index()
    contacts = pd.DataFrame({"customer": [key_of.get(c["AccountId"], "") for c in con]})
    contracts = pd.DataFrame({
        "customer": [key_of.get(c["AccountId"], "") for c in ctr],
        "start": pd.to_datetime([c.get("StartDate") for c in ctr], errors="coerce"),
        "end": pd.to_datetime([c.get("EndDate") for c in ctr], errors="coerce"),
        "amount": pd.to_numeric(pd.Series([c.get("Contract_Amount__c") for c in ctr], dtype=object), errors="coerce")})
    return Dataset("org", None, cust, None, contacts, contracts)


def erp_open_receivables(project) -> dict[str, float] | None:
    """Open receivables (amount - paid) per legacy customer number from the ERP; ``None`` without an ERP."""
    if project.config.erp is None:
        return None
    from sqlalchemy import func, select

    from crmbridge.connectors.erp import ErpConnector

    erp = ErpConnector(project.db_url(project.config.erp.url, "erp.url"))
    try:
        rec, cus = erp.table("receivables"), erp.table("customers")
        q = (select(cus.c.customer_no, func.sum(rec.c.amount - rec.c.paid_amount))
             .join(cus, cus.c.customer_code == rec.c.customer_code).group_by(cus.c.customer_no))
        with erp.engine.connect() as c:
            return {str(k).strip(): float(v or 0) for k, v in c.execute(q) if k}
    except UsageError:
        return None
    finally:
        erp.close()
