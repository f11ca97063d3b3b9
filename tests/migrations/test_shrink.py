"""The empty/shrunken source guard: a header-only export or a source far smaller than in the last
successful run stops the extract (exit 2, the source and file named, nothing written); --allow-shrink
accepts it."""

from __future__ import annotations

import pytest

from crmbridge.errors import UsageError

CONFIG = """name: shrink
sources:
  - name: sales_customers
    entity: customers
    department: sales
    type: csv
    path: data/sales.csv
    key: customer_no
    columns: {客户编号: customer_no, 客户名称: name}
"""


def _write(root, n: int) -> None:
    lines = ["客户编号,客户名称"] + [f"C{i:06d},公司{i}" for i in range(n)]
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def proj(tmp_path):
    from crmbridge.config import load_project

    (tmp_path / "crmbridge.yml").write_text(CONFIG, encoding="utf-8")
    _write(tmp_path, 100)
    yield load_project(tmp_path)
    from crmbridge.state import dispose_all

    dispose_all()


def _succeeded_rehearsal(proj):
    """An extract that a successful migrate run made (the baseline the guard compares with)."""
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state

    res = run_extract(proj, full=True)
    R.finish_run(open_state(proj.state_url), res.run_id, "succeeded")
    return res.run_id


def test_header_only_source_stops_even_without_history(proj):
    from crmbridge.migrations.extract import run_extract

    _write(proj.root, 0)
    with pytest.raises(UsageError) as err:
        run_extract(proj, full=True)
    assert "source sales_customers (data/sales.csv): 0 rows read" in str(err.value)
    assert "--allow-shrink" in str(err.value)
    assert run_extract(proj, full=True, allow_shrink=True).rows_read == 0


def test_shrunken_source_against_the_last_successful_run(proj, helpers):
    from crmbridge.migrations.extract import run_extract

    base = _succeeded_rehearsal(proj)
    _write(proj.root, 60)  # a normal change between rehearsals
    assert run_extract(proj, full=True).rows_read == 60
    _write(proj.root, 30)
    with pytest.raises(UsageError) as err:
        run_extract(proj, full=True)
    msg = str(err.value)
    assert f"source sales_customers (data/sales.csv): 30 rows read, 30% of the 100 the last successful run {base} read" \
        in msg, msg
    # through the CLI: exit 2, one clear message, no new extract written
    runs_before = sorted(p.name for p in proj.runs_dir.iterdir())
    r = helpers.cli(proj.root, "extract")
    assert r.returncode == 2, r.stderr
    assert "empty or shrunken source" in r.stderr and "30 rows read" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in proj.runs_dir.iterdir()) == runs_before  # the failed run left no folder
    ok = helpers.cli(proj.root, "extract", "--allow-shrink", "--json")
    assert ok.returncode == 0, ok.stderr
