"""Fault injection for reliability tests: rate limits, 503s, row locks, session expiry, latency.

Set by ``crmbridge sandbox serve`` flags, ``SandboxHandle.faults.set(...)`` or ``POST /_sandbox/faults``.
Randomness comes from a seeded generator so a test sees the same faults on every run.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields

LIMIT_BODY = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
UNAVAILABLE_BODY = [{"message": "Service temporarily unavailable, please retry", "errorCode": "SERVER_UNAVAILABLE"}]


@dataclass
class FaultSettings:
    """What to inject. Every knob off by default."""

    request_limit_after: int | None = None  # calls answered normally before REQUEST_LIMIT_EXCEEDED starts
    request_limit_calls: int | None = None  # how many calls are refused (None: until cleared)
    error_503_rate: float = 0.0  # fraction of API calls answered 503
    lock_rate: float = 0.0  # fraction of written rows failing with UNABLE_TO_LOCK_ROW
    session_seconds: float | None = None  # sessions expire this long after login
    latency_ms: int = 0  # added to every API call
    # A slower org than this machine (a real one takes much longer over a Bulk job): each ingest job's
    # 10,000-row batch is done no sooner than at this many rows/s from the job's start (its progress
    # figure moves no faster), a query job answers no sooner than its rows at this rate; 0: off
    ingest_rows_per_s: float = 0.0
    query_rows_per_s: float = 0.0
    seed: int = 0


@dataclass
class Faults:
    """The live fault state of one sandbox server (thread-safe)."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    calls: int = 0
    refused: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, **changes) -> FaultSettings:
        """Change some settings (unknown names raise ValueError); counters and the random stream restart."""
        known = {f.name for f in fields(FaultSettings)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            for k, v in changes.items():
                setattr(self.settings, k, v)
            self._restart()
        return self.settings

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self.settings = FaultSettings()
            self._restart()

    def _restart(self) -> None:
        self.calls = self.refused = 0
        self._rng = random.Random(self.settings.seed)

    def as_dict(self) -> dict:
        return {**asdict(self.settings), "calls": self.calls, "refused": self.refused}

    def before_call(self) -> tuple[int, list] | None:
        """Called for each API call: sleeps the latency, returns (status, body) to refuse the call, or None."""
        s = self.settings
        if s.latency_ms:
            time.sleep(s.latency_ms / 1000)
        with self._lock:
            self.calls += 1
            if s.request_limit_after is not None and self.calls > s.request_limit_after:
                if s.request_limit_calls is None or self.refused < s.request_limit_calls:
                    self.refused += 1
                    return 403, LIMIT_BODY
            if s.error_503_rate and self._rng.random() < s.error_503_rate:
                return 503, UNAVAILABLE_BODY
        return None

    def bulk_pace(self, kind: str, started: float, rows: int) -> None:
        """Hold a Bulk job (``kind`` "ingest" or "query", started at ``started`` on ``time.monotonic``)
        until ``rows`` rows would be done at the rate set for its kind."""
        rate = self.settings.ingest_rows_per_s if kind == "ingest" else self.settings.query_rows_per_s
        if rate and rate > 0:
            wait = started + rows / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def lock_row(self) -> bool:
        """True when this row write should fail with UNABLE_TO_LOCK_ROW."""
        if not self.settings.lock_rate:
            return False
        with self._lock:
            return self._rng.random() < self.settings.lock_rate

    def session_expired(self, issued_at: float) -> bool:
        ttl = self.settings.session_seconds
        return ttl is not None and time.time() - issued_at > ttl
