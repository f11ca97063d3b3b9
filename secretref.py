"""Secrets come from environment references and are redacted everywhere they could leak.

In YAML a secret is written ``{env: NAME}``; a literal value is refused so that nobody commits a
password into crmbridge.yml. Every resolved secret is registered here, and ``redact`` removes all
registered values from any text (log records, exception messages, reports).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_lock = threading.Lock()
_known: set[str] = set()
MASK = "********"


def __getattr__(name: str) -> Any:
    # ``EnvRef`` is a pydantic model; pydantic costs ~0.1 s to import, and every CLI call (even
    # ``crmbridge --help``) imports this module for ``redact``, so the model lives in ``envref``.
    if name == "EnvRef":
        from crmbridge.envref import EnvRef

        return EnvRef
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
