"""Each sync object paces the waits for its Bulk jobs by its own earlier jobs of the same kind (issue 14)."""

from __future__ import annotations

import pytest

from crmbridge.connectors.salesforce.polling import FRESH_ROWS_PER_S, Pace
from crmbridge.state import open_state
from crmbridge.sync.objectsync import JobPaces


class _Conn:
    def __init__(self):
        self.pace = Pace()
        self.pace.learn("ingest", 50_000, 5.0)  # the full sync's inserts: 10,000 rows/s


def test_a_kind_of_job_never_seen_starts_optimistic_and_learns_for_the_next_run(tmp_path):
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    sf = _Conn()
    shared = sf.pace
    paces = JobPaces(state, "inventory", dry_run=False)
    with paces.used(sf, "update"):
        assert sf.pace is not shared
        assert sf.pace.first_delay("ingest", 10_000) == pytest.approx(10_000 / FRESH_ROWS_PER_S * 1.08)
        sf.pace.learn("ingest", 10_000, 8.0)  # what the connector does when the job is done
    assert sf.pace is shared and shared.rate("ingest") == 10_000.0  # the connector's own rate is untouched
    paces.save()
    again = JobPaces(state, "inventory", dry_run=False)
    with again.used(sf, "update"):
        assert sf.pace.rate("ingest") == pytest.approx(1250.0)  # next night: the first look comes at ~8.6 s
    assert JobPaces(state, "inventory", dry_run=False).get("create").rate("ingest") is None
    assert JobPaces(state, "receivables", dry_run=False).get("update").rate("ingest") is None


def test_the_connector_gets_its_pace_back_when_the_write_fails(tmp_path):
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    sf = _Conn()
    shared = sf.pace
    with pytest.raises(RuntimeError):
        with JobPaces(state, "inventory", dry_run=True).used(sf, "create"):
            raise RuntimeError("org unreachable")
    assert sf.pace is shared
