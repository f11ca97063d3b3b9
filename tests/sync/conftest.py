"""Fixtures shared by the sync tests: a project wired to a sandbox org and an ERP database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "project" / "sync.yml"


class Kit:
    """Helpers (tests import nothing from each other in importlib mode, so they come as a fixture)."""

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
