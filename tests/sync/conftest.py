"""Fixtures shared by the sync tests: a project wired to a sandbox org and an ERP database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "project" / "sync.yml"


STOCK_YML = """
batch_size: BATCH
objects:
  - name: products
    salesforce: {object: Product2, external_id: ERP_Item_Code__c}
    erp: {table: items, key: item_code, changes: {column: updated_at}}
    deletes: {mode: soft, salesforce_field: IsActive, salesforce_value: false}
    fields: {Name: item_name, ProductCode: item_code, IsActive: active}
  - name: inventory
    salesforce: {object: Inventory__c, external_id: ERP_Key__c}
    erp: {table: inventory, key: [item_code, warehouse], changes: {column: updated_at, overlap_seconds: OVERLAP}}
    deletes: {mode: soft, salesforce_field: Is_Active__c, salesforce_value: false}
    fields:
      Name: {compute: "concat(item_code, warehouse)"}
      Product__r.ERP_Item_Code__c: item_code
      Warehouse__c: warehouse
      On_Hand__c: on_hand
"""


class Kit:
    """Helpers (tests import nothing from each other in importlib mode, so they come as a fixture)."""

    @staticmethod
    def stock_yml(*, batch_size: int = 10_000, overlap_seconds: float = 60) -> str:
        """sync.yml with only products and inventory (ERP -> Salesforce)."""
        return STOCK_YML.replace("BATCH", str(batch_size)).replace("OVERLAP", str(overlap_seconds))

    @staticmethod
    def make_project(root: Path, erp_url: str, handle, *, sync_yml: str | None = None) -> Path:
        """A project folder whose org is the running sandbox ``handle`` and whose ERP is ``erp_url``."""
        root.mkdir(parents=True, exist_ok=True)
        (root / "crmbridge.yml").write_text(
            "name: sync-test\n"
            f"salesforce: {{target: sandbox, instance_url: '{handle.instance_url}', ca_bundle: '{handle.ca_bundle}'}}\n"
            f"erp: {{url: '{erp_url}'}}\n", encoding="utf-8")
        for sub in ("definitions", "mappings"):  # the customer scope comes from the agreed definition
            if not (root / sub).exists():
                shutil.copytree(TEMPLATE.parent / sub, root / sub)
        if sync_yml is None:
            shutil.copyfile(TEMPLATE, root / "sync.yml")
        else:
            (root / "sync.yml").write_text(sync_yml, encoding="utf-8")
        return root

    @staticmethod
    def connector(project):
        from crmbridge.connectors.salesforce import connect

        return connect(project)

    @staticmethod
    def run(project, sf, **kw):
        from crmbridge.sync.engine import run_sync

        return run_sync(project, sf=sf, **kw)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
