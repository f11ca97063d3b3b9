"""crmbridge.sync: the nightly two-way sync between the ERP and Salesforce.

Public API:

- ``run_sync(project, *, direction="both", dry_run=False, objects=None, sf=None) -> SyncResult``
  (``crmbridge.sync.engine``)
- ``load_sync_config(path) -> SyncConfig`` (``crmbridge.sync.config``)
- ``create_reference_erp(url, *, customers=None, items=200, seed=7) -> dict``
  (``crmbridge.sync.reference_erp``)
- ``list_conflicts`` / ``resolve`` (``crmbridge.sync.conflicts``), ``write_schedule``
  (``crmbridge.sync.schedule``), ``RunLock`` (``crmbridge.sync.lock``)

The ERP side is ``crmbridge.connectors.erp.ErpConnector``. See docs/sync.md.
"""
