"""A password in a SQL URL's query string (``?password=``) is refused when written literally and never
shown in an error or stored in the state db when it comes from the environment (issue 13 point 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmbridge.config import load_project
from crmbridge.errors import ConfigError

SECRET = "Wr0ngSecret9q"


@pytest.mark.parametrize("block", [
    "sources:\n  - name: crm\n    entity: contacts\n    type: sql\n    table: contacts\n"
    "    url: postgresql+psycopg://u@localhost/crm?password={s}\n",
    "erp:\n  url: mysql+pymysql://u@localhost/erp?charset=utf8mb4&passwd={s}\n",
    "state:\n  url: postgresql+psycopg://u@localhost/state?sslmode=disable&PWD={s}\n",
])
def test_literal_query_password_is_refused_with_file_and_line(tmp_path, block):
    (tmp_path / "crmbridge.yml").write_text("name: t\n" + block.format(s=SECRET), encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_project(tmp_path)
    msg = str(ei.value)
    assert SECRET not in msg
    assert "crmbridge.yml:" in msg and "query string" in msg and "{env: NAME}" in msg


def test_literal_query_password_in_sync_yml_is_refused(tmp_path):
    from crmbridge.sync.config import load_sync_config

    tpl = Path(__file__).parents[2] / "templates" / "project" / "sync.yml"
    text = tpl.read_text("utf-8").replace("# erp: {url: {env: ERP_URL}}",
                                          f"erp: {{url: 'postgresql://u@h/erp?password={SECRET}'}}")
    (tmp_path / "sync.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_sync_config(tmp_path / "sync.yml")
    assert "sync.yml:" in str(ei.value) and "query string" in str(ei.value) and SECRET not in str(ei.value)


def _project(tmp_path, monkeypatch, url: str):
    monkeypatch.setenv("CRM_TEST_URL", url)
    (tmp_path / "crmbridge.yml").write_text(
        "name: t\nsources:\n  - name: crm\n    entity: contacts\n    type: sql\n    table: contacts\n"
        "    key: contact_no\n    url: {env: CRM_TEST_URL}\n", encoding="utf-8")
    return load_project(tmp_path)


def _state_bytes(tmp_path) -> bytes:
    from crmbridge.state import dispose_all

    dispose_all()
    return b"".join(p.read_bytes() for p in (tmp_path / ".crmbridge").glob("state.db*"))


def _extract_output(tmp_path) -> str:
    from click.testing import CliRunner

    from crmbridge.cli import cli

    res = CliRunner().invoke(cli, ["--project", str(tmp_path), "extract"])
    assert res.exit_code in (1, 2), res.output
    return res.output + str(res.exception or "")


def test_env_url_query_password_not_in_connection_error_nor_state(tmp_path, monkeypatch, mariadb_url):
    # a wrong password for MariaDB: the connection fails and the error names the URL
    url = mariadb_url.replace("?charset=utf8mb4", f"?charset=utf8mb4&password={SECRET}")
    _project(tmp_path, monkeypatch, url)
    out = _extract_output(tmp_path)
    assert "Access denied" in out
    assert SECRET not in out
    assert SECRET.encode() not in _state_bytes(tmp_path)


def test_env_url_query_password_not_in_table_error_nor_state(tmp_path, monkeypatch, pg_url):
    # PostgreSQL on loopback trusts the user, so the login works and the missing table is reported
    _project(tmp_path, monkeypatch, f"{pg_url}?password={SECRET}")
    out = _extract_output(tmp_path)
    assert "table 'contacts' not found" in out
    assert SECRET not in out
    assert SECRET.encode() not in _state_bytes(tmp_path)
