"""Baseline customer KPIs declared in ``kpis.yml``: snapshot them from the legacy data or the org, compare.

The same formulas run on both sides (see :mod:`crmbridge.readiness.kpi_sources`), so the figures before
go-live and after it can be set side by side. A KPI a side cannot compute (e.g. the definition's criteria
need legacy-only columns) is ``None`` with a note, never a guess.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmbridge.errors import UsageError

KINDS = ("customers", "customers_criterion", "active_customers", "new_customers", "lost_customers",
         "contacts_per_customer", "share_with", "avg_contract_value", "receivables_per_customer")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Kpi(Strict):
    id: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    title: str | None = None
    kind: Literal["customers", "customers_criterion", "active_customers", "new_customers", "lost_customers",
                  "contacts_per_customer", "share_with", "avg_contract_value", "receivables_per_customer"]
    department: str | None = Field(None, description="customers: only those a department holds")
    criterion: str | None = Field(None, description="customers_criterion: 'agreed' or a department's criterion")
    field: Literal["phone", "email", "address", "credit_code"] | None = None

    @model_validator(mode="after")
    def _params(self):
        if self.kind == "share_with" and self.field is None:
            raise ValueError(f"kpi '{self.id}': share_with needs 'field' (phone, email, address, credit_code)")
        if self.kind == "customers_criterion" and not self.criterion:
            raise ValueError(f"kpi '{self.id}': customers_criterion needs 'criterion' (agreed or a department)")
        return self


class KpiFile(Strict):
    period_months: int = Field(12, ge=1, le=120, description="the period of active / new / lost customers")
    as_of: dt.date | None = Field(None, description="the day the figures describe; default: today")
    kpis: list[Kpi] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        ids = [k.id for k in self.kpis]
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup:
            raise ValueError(f"kpi id '{dup}' is used twice")
        return self


def load_kpis(project) -> KpiFile:
    from crmbridge.yamlconf import load_model

    path = project.path(project.config.kpis_file)
    if not path.exists():
        raise UsageError(f"no KPI file at {path}", hint="copy templates/project/kpis.yml into the project")
    return load_model(path, KpiFile)


@dataclass(frozen=True)
class KpiValue:
    id: str
    title: str
    value: float | None
    numerator: float | None = None
    denominator: float | None = None
    note: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _months_before(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    import calendar

    return dt.date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def _active(contracts, keys: set, frm: dt.date, to: dt.date) -> set:
    """Customers with a contract running at some point in [frm, to]."""
    import pandas as pd

    c = contracts[contracts["customer"].isin(keys)]
    start, end = c["start"], c["end"]
    hit = start.notna() & (start <= pd.Timestamp(to)) & (end.isna() | (end >= pd.Timestamp(frm)))
    return set(c.loc[hit, "customer"])


def _criterion(kpis: KpiFile, ds, project, name: str) -> KpiValue | tuple:
    if ds.rows is None:
        return None, None, None, "the definition's criteria need legacy columns the org does not hold"
    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.disagreement import evaluate

    d = load_definition(project.path(project.config.definitions_dir) / "customer.yml")
    if d.criteria is None:
        return None, None, None, "the definition declares no criteria"
    crit = d.criteria.agreed if name == "agreed" else d.criteria.departments.get(name)
    if crit is None:
        raise UsageError(f"{project.config.kpis_file}: no criterion '{name}' in the definition",
                         hint="use 'agreed' or one of: " + ", ".join(d.criteria.departments))
    hit = evaluate(ds.rows, crit)
    n = ds.rows.loc[hit.fillna(False).astype(bool), "customer_no"].nunique()
    return float(n), float(n), None, None


def compute(kpi: Kpi, kpis: KpiFile, ds, project, receivables: dict | None) -> KpiValue:
    """One KPI on one dataset."""
    as_of = kpis.as_of or dt.date.today()
    start = _months_before(as_of, kpis.period_months)
    cust = ds.customers
    keys = set(cust.index)
    n = float(len(keys))
    num = den = val = None
    note = None
    if kpi.kind == "customers":
        if kpi.department:
            num = float(sum(kpi.department in s for s in cust["departments"]))
        else:
            num = n
        val = num
    elif kpi.kind == "customers_criterion":
        val, num, den, note = _criterion(kpis, ds, project, kpi.criterion)
    elif kpi.kind == "active_customers":
        num, den = float(len(_active(ds.contracts, keys, start, as_of))), n
        val = num
    elif kpi.kind == "new_customers":
        first = ds.contracts[ds.contracts["customer"].isin(keys)].groupby("customer")["start"].min()
        import pandas as pd

        num = float(((first >= pd.Timestamp(start)) & (first <= pd.Timestamp(as_of))).sum())
        den = float(len(_active(ds.contracts, keys, start, as_of)))
        val = num
    elif kpi.kind == "lost_customers":
        before = _active(ds.contracts, keys, start, start)
        now = _active(ds.contracts, keys, as_of, as_of + dt.timedelta(days=36500))
        num, den = float(len(before - now)), float(len(before))
        val = num
    elif kpi.kind == "contacts_per_customer":
        num, den = float(ds.contacts["customer"].isin(keys).sum()), n
        val = num / den if den else None
    elif kpi.kind == "share_with":
        if ds.source == "org" and kpi.field == "email":
            note = "Account has no e-mail field in the org"
        else:
            num, den = float((cust[kpi.field] != "").sum()), n
            val = num / den if den else None
    elif kpi.kind == "avg_contract_value":
        c = ds.contracts[ds.contracts["customer"].isin(keys) & ds.contracts["amount"].notna()]
        num, den = float(c["amount"].sum()), float(c["customer"].nunique())
        val = num / den if den else None
    elif kpi.kind == "receivables_per_customer":
        if receivables is None:
            note = "no ERP configured (erp.url in crmbridge.yml)"
        else:
            num, den = float(sum(v for k, v in receivables.items() if k in keys)), n
            val = num / den if den else None
    return KpiValue(kpi.id, kpi.title or kpi.id, val, num, den, note)


def rate_of(v: KpiValue) -> float | None:
    """The rate a count KPI implies (new / active, lost / active at period start, active / all)."""
    return v.numerator / v.denominator if v.numerator is not None and v.denominator else None
