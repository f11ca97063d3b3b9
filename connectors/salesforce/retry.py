"""Bounded retries with exponential backoff and jitter for transient Salesforce faults.

Retried: REQUEST_LIMIT_EXCEEDED (HTTP 403), HTTP 5xx (503 SERVER_UNAVAILABLE ...), timeouts and
connection errors. An expired session (401 INVALID_SESSION_ID) triggers one re-login and a retry.
Everything else is the caller's to turn into per-row results or a usage error.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from crmbridge.secretref import redact

log = logging.getLogger("crmbridge.salesforce")

RETRY = "retry"
RELOGIN = "relogin"
FATAL = "fatal"


class GaveUp(Exception):
    """A transient fault outlasted the retry budget (carries the Salesforce error code)."""

    def __init__(self, code: str, message: str, attempts: int):
        super().__init__(f"{code}: {message} (gave up after {attempts} attempts)")
        self.code = code
        self.message = message
        self.attempts = attempts


class SessionLost(Exception):
    """The session expired and could not be renewed (e.g. a fixed access token)."""


def error_code(exc: BaseException) -> str:
    """The Salesforce errorCode carried by a simple-salesforce exception, or a transport label."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode") or content[0].get("statusCode") or "UNKNOWN_EXCEPTION")
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error") or "UNKNOWN_EXCEPTION")
    if isinstance(exc, requests.Timeout):
        return "TIMEOUT"
    if isinstance(exc, requests.ConnectionError):
        return "CONNECTION_ERROR"
    status = getattr(exc, "status", None)
    return f"HTTP_{status}" if status else type(exc).__name__


def error_message(exc: BaseException) -> str:
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return redact(content[0].get("message", ""))
    if isinstance(content, dict):
        return redact(content.get("message") or content.get("error_description") or content)
    if isinstance(content, (bytes, str)) and content:
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        return redact(text[:500])
    return redact(str(exc)[:500])


def classify(exc: BaseException, *, idempotent: bool = True) -> str:
    """RETRY, RELOGIN or FATAL for an exception raised by a Salesforce call."""
    from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

    if isinstance(exc, SalesforceExpiredSession):
        return RELOGIN
    if isinstance(exc, SalesforceRefusedRequest):
        return RETRY if error_code(exc) == "REQUEST_LIMIT_EXCEEDED" else FATAL
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status >= 500:
        return RETRY
    if isinstance(exc, requests.ReadTimeout) and not idempotent:
        # The request reached Salesforce and may have been applied: sending an insert again could
        # create duplicates, so the outcome is reported instead of guessed.
        return FATAL
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return RETRY
    return FATAL


@dataclass
class RetryPolicy:
    """How often and how long to back off. ``sleep`` is swappable only to keep tests quick."""

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        # "Full jitter" halves the expected wait while spreading clients that failed together.
        return random.uniform(0.5, 1.0) * min(self.max_delay, self.base_delay * (2 ** attempt))

    def run(self, fn: Callable[[], Any], *, what: str, relogin: Callable[[], bool] | None = None,
            idempotent: bool = True) -> Any:
        """Call ``fn`` until it succeeds, retrying transient faults; raise GaveUp/SessionLost/the error."""
        attempt = 0
        relogged = False
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised when fatal
                kind = classify(exc, idempotent=idempotent)
                if kind == FATAL:
                    raise
                code = error_code(exc)
                if kind == RELOGIN:
                    if relogged or relogin is None or not relogin():
                        raise SessionLost(f"{what}: session expired or invalid ({code})") from None
                    relogged = True
                    log.warning("salesforce %s: session expired, logged in again", what)
                    continue
                if attempt >= self.max_retries:
                    raise GaveUp(code, error_message(exc), attempt + 1) from None
                wait = self.delay(attempt)
                attempt += 1
                log.warning("salesforce %s: %s, retry %d/%d in %.2fs", what, redact(code), attempt,
                            self.max_retries, wait)
                self.sleep(wait)
