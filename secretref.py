"""Secrets come from environment references and are redacted everywhere they could leak.

In YAML a secret is written ``{env: NAME}``; a literal value is refused so that nobody commits a
password into crmbridge.yml. Every resolved secret is registered here, and ``redact`` removes all
registered values from any text (log records, exception messages, reports).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict

_lock = threading.Lock()
_known: set[str] = set()
MASK = "********"


class EnvRef(BaseModel):
    """A value taken from an environment variable at run time: ``{env: NAME}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str

    def resolve(self, *, secret: bool = True, what: str = "value") -> str:
        from crmbridge.errors import UsageError

        value = os.environ.get(self.env)
        if value is None:
            raise UsageError(
                f"environment variable {self.env} is not set (needed for {what})",
                hint=f"export {self.env}=... before running crmbridge",
            )
        if secret:
            register(value)
        return value

    def __repr__(self) -> str:  # never shows the value, only where it comes from
        return f"EnvRef(env={self.env!r})"


def register(value: str | None) -> None:
    """Remember a secret value so that ``redact`` removes it from any text."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: Any) -> str:
    s = str(text)
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for v in values:
        if v in s:
            s = s.replace(v, MASK)
    return s


class RedactingFilter(logging.Filter):
    """Logging filter that masks every registered secret in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - malformed record, leave it alone
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True
