"""MySQL/MariaDB zero dates (0000-00-00) are read as missing values with a note in the profile, not as
invalid dates (issue 13 point 13). Against the real MariaDB on loopback."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import create_engine, text

from crmbridge.cli import cli


def _seed(url: str) -> None:
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("SET SESSION sql_mode = ''"))  # legacy servers accept zero dates
        c.execute(text("CREATE TABLE contacts (contact_no VARCHAR(10) PRIMARY KEY, birthday DATE, "
                       "signed_at DATETIME(6), updated_at DATETIME, note VARCHAR(20))"))
        c.execute(text("INSERT INTO contacts VALUES "
                       "('P1', '0000-00-00', '0000-00-00 00:00:00', '2024-01-02 08:00:00', '0000-00-00'),"
                       "('P2', '1990-05-06', '2023-01-01 10:00:00.5', '0000-00-00 00:00:00', 'ok'),"
                       "('P3', NULL, '0000-00-00 00:00:00', '2024-01-01 08:00:00', NULL)"))
    eng.dispose()


def test_zero_dates_read_as_missing_with_a_profile_note(tmp_path, monkeypatch, mariadb_url):
    from crmbridge.migrations.extracted import read_entity
    from crmbridge.state import dispose_all

    _seed(mariadb_url)
    monkeypatch.setenv("LEGACY_URL", mariadb_url)
    (tmp_path / "crmbridge.yml").write_text(
        "name: t\nsources:\n  - name: crm\n    entity: contacts\n    type: sql\n    table: contacts\n"
        "    key: contact_no\n    url: {env: LEGACY_URL}\n    incremental: {column: updated_at}\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli, ["--project", str(tmp_path), "--json", "extract"])
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / json.loads(res.output)["run_id"]
    df = read_entity(run_dir, "contacts").set_index("contact_no")
    assert df["birthday"].isna().tolist() == [True, False, True]          # P1 zero, P3 NULL
    assert df.loc["P2", "birthday"] == "1990-05-06"
    assert df["signed_at"].isna().tolist() == [True, False, True]
    assert df.loc["P2", "signed_at"] == "2023-01-01T10:00:00.500000"
    assert df["updated_at"].isna().tolist() == [False, True, False]       # zero date in the watermark column
    assert df.loc["P1", "note"] == "0000-00-00"                            # text that looks like one stays text

    manifest = json.loads((run_dir / "extract" / "manifest.json").read_text("utf-8"))
    src = manifest["sources"][0]
    assert src["zero_dates"] == {"birthday": 1, "signed_at": 2, "updated_at": 1}
    assert src["watermark"]["to"] == "2024-01-02T08:00:00"                 # the zero date did not disturb it
    prof = runner.invoke(cli, ["--project", str(tmp_path), "--json", "profile"])
    assert prof.exit_code == 0, prof.output
    p = json.loads(prof.output)["entities"]["contacts"]
    assert p["columns"]["signed_at"]["notes"] == ["2 MySQL zero date(s) (0000-00-00) in crm read as missing"]
    assert "note" not in p["columns"]["note"] and "notes" not in p["columns"]["note"]
    assert any(n.startswith("birthday: 1 MySQL zero date") for n in p["notes"])
    shown = runner.invoke(cli, ["--project", str(tmp_path), "profile"])
    assert "note: signed_at: 2 MySQL zero date(s)" in shown.output
    dispose_all()
