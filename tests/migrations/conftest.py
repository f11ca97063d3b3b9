"""Fixtures for migration-run tests: a project on the embedded sandbox and hand-made mapped runs.

``mapped_run`` writes what the map stage hands to load (``map/plan.json`` + one parquet per step), so
the load, ledger, resume, reconcile and rollback tests exercise the real sandbox org without depending
on the extract/validate/map stages; the end-to-end tests go through ``crmbridge migrate`` instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    from crmbridge.config import load_project

    (tmp_path / "crmbridge.yml").write_text("name: migration-test\n", encoding="utf-8")
    yield load_project(tmp_path)
    from crmbridge.state import dispose_all

    dispose_all()


@pytest.fixture
def sf(project):
    """A connector to the project's embedded sandbox org."""
    from crmbridge.connectors.salesforce import connect

    conn = connect(project)
    yield conn
    conn.close()


@pytest.fixture
def org(project, sf):
    """The running embedded sandbox of the project (for fault injection)."""
    from crmbridge.connectors.salesforce.auth import embedded_sandbox

    t = project.config.salesforce
    handle = embedded_sandbox(project.path(t.db), [], t.username, t.password)
    yield handle
    handle.faults.clear()


def accounts_frame(n: int, *, start: int = 0, name_prefix: str = "公司", merged_every: int = 3):
    import pandas as pd

    ids = range(start, start + n)
    return pd.DataFrame({
        "Name": [f"{name_prefix}{i}" for i in ids],
        "Legacy_Id__c": [f"C{i:06d}" for i in ids],
        "AnnualRevenue": [str(i * 1000) for i in ids],
        "BillingCity": ["上海" if i % 2 else "Shenzhen" for i in ids],
        "_row_id": [f"sales_customers:{i + 2}" for i in ids],
        "_merged_row_ids": [f"sales_customers:{i + 2};finance_customers:{i + 2}" if merged_every and i % merged_every == 0
                            else None for i in ids],
        "_source_key": [f"C{i:06d}" for i in ids], "_entity": "customers", "_step": "Account"})


def contacts_frame(n: int, *, accounts: int):
    import pandas as pd

    return pd.DataFrame({
        "LastName": [f"欧阳{i}" for i in range(n)], "FirstName": ["娜" for _ in range(n)],
        "Legacy_Id__c": [f"P{i:07d}" for i in range(n)],
        "Account.Legacy_Id__c": [f"C{i % accounts:06d}" for i in range(n)],
        "_row_id": [f"crm_contacts:{i + 1}" for i in range(n)], "_source_key": [f"P{i:07d}" for i in range(n)],
        "_entity": "contacts", "_step": "Contact"})


def _step(name, entity, obj, df, parents):
    rows_in = sum(len(m.split(";")) if isinstance(m, str) else 1
                  for m in (df["_merged_row_ids"] if "_merged_row_ids" in df.columns else [None] * len(df)))
    return {"step": name, "entity": entity, "object": obj, "external_id_field": "Legacy_Id__c", "operation": "upsert",
            "file": f"{name}.parquet", "rows": len(df), "rows_quarantined": 0, "rows_in": rows_in,
            "fields": [c for c in df.columns if not c.startswith("_")], "parents": parents}


@pytest.fixture
def mapped_run(project):
    """``mapped_run(accounts_df, contacts_df=None) -> Run``: a migrate run whose map stage is done."""
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    def make(accounts, contacts=None):
        engine = open_state(project.state_url)
        run = R.create_run(engine, project.runs_dir, "migrate", command="test")
        m = run.stage_dir("map")
        steps = [_step("Account", "customers", "Account", accounts, [])]
        accounts.to_parquet(m / "Account.parquet")
        if contacts is not None:
            contacts.to_parquet(m / "Contact.parquet")
            steps.append(_step("Contact", "contacts", "Contact", contacts, ["Account"]))
        (m / "plan.json").write_text(json.dumps({"steps": steps}), encoding="utf-8")
        R.start_stage(engine, run.run_id, "map")
        R.finish_stage(engine, run.run_id, "map", {"steps": len(steps)})
        return run

    return make


def cli(project_dir, *args, env_extra=None, timeout=300):
    """Run ``python -m crmbridge --project DIR ARGS`` in a child process (as a user would)."""
    env = dict(os.environ)
    env.pop("CRMBRIDGE_TEST_CRASH_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "crmbridge", "--project", str(project_dir), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=str(project_dir))


@pytest.fixture
def helpers():
    """Frame builders and the CLI runner, as one object (conftest modules are not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(accounts=accounts_frame, contacts=contacts_frame, cli=cli, org_keys=org_keys)


def org_keys(conn, sobject: str) -> list[str]:
    return [r["Legacy_Id__c"] for r in conn.query(f"SELECT Legacy_Id__c FROM {sobject} WHERE Legacy_Id__c != null")]
