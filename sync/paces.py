"""How fast the org worked through an object's earlier Bulk jobs, so the next job's waits fit it."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any

from crmbridge.state import get_watermark, set_watermark


class JobPaces:
    """How fast the org worked through this object's earlier write jobs, per kind of job.

    The connector times its first look at a Bulk job by the rate of its earlier jobs. A nightly sync's
    jobs differ from the first full sync's (updates of a few thousand linked records against inserts of
    50,000), so one shared rate puts the first look far from the job's end: at 1M rows the 1 % run's
    looks came at 3.4, 6.7 and 13.4 s (the waits double while the org reports no progress) on a job
    that was done somewhere between the last two. Each object keeps its own rate per kind of job
    (``create``, ``update``, ``delete``) in the state database (``sync:<object>:bulk_pace:<kind>``); a
    kind never seen starts from the connector's optimistic default and doubles its waits."""

    def __init__(self, state, name: str, dry_run: bool):
        self.state, self.name, self.dry_run = state, name, dry_run
        self._paces: dict[str, Any] = {}

    def _scope(self, kind: str) -> str:
        return f"sync:{self.name}:bulk_pace:{kind}"

    def get(self, kind: str):
        from crmbridge.connectors.salesforce.polling import Pace

        if kind not in self._paces:
            pace = Pace()
            raw = get_watermark(self.state, self._scope(kind))
            if raw:
                try:
                    pace.seed(json.loads(raw))
                except (ValueError, TypeError, AttributeError):
                    pass  # a damaged value only costs a few more status looks
            self._paces[kind] = pace
        return self._paces[kind]

    @contextmanager
    def used(self, sf, kind: str):
        """The connector paces its job waits by this kind's rate for the duration of one write."""
        if not hasattr(sf, "pace"):
            yield
            return
        saved, sf.pace = sf.pace, self.get(kind)
        try:
            yield
        finally:
            sf.pace = saved

    def save(self) -> None:
        if self.dry_run:
            return
        for kind, pace in self._paces.items():
            rates = pace.as_dict()
            if rates:
                set_watermark(self.state, self._scope(kind), json.dumps(rates, sort_keys=True))
