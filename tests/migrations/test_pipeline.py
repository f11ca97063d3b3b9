"""Which run ``migrate`` continues, and the balance check of a run summary."""

from __future__ import annotations

import time


def test_migrate_continues_only_the_newest_unfinished_run(project):
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.pipeline import unfinished_run
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    assert unfinished_run(engine, project.runs_dir) is None
    old = R.create_run(engine, project.runs_dir, "migrate")
    R.finish_run(engine, old.run_id, "failed")
    assert unfinished_run(engine, project.runs_dir).run_id == old.run_id
    time.sleep(0.01)
    newer = R.create_run(engine, project.runs_dir, "migrate")  # `migrate --new` gave the old one up
    R.finish_run(engine, newer.run_id, "succeeded")
    assert unfinished_run(engine, project.runs_dir) is None
    time.sleep(0.01)
    R.create_run(engine, project.runs_dir, "migrate", dry_run=True)  # dry runs are never continued
    assert unfinished_run(engine, project.runs_dir) is None
    time.sleep(0.01)
    crashed = R.create_run(engine, project.runs_dir, "migrate")  # status stays "running" after kill -9
    assert unfinished_run(engine, project.runs_dir).run_id == crashed.run_id


def test_entity_summary_balance():
    from crmbridge.migrations.pipeline import EntitySummary

    assert EntitySummary("customers", 100, 7, 90, 3).balanced
    assert not EntitySummary("customers", 100, 7, 90, 2).balanced
