"""Exceptions grouped by what the caller should do.

- ``UsageError``: the user must fix something (a flag, a config file, input data). Exit code 2,
  no traceback, nothing half-written.
- ``RunFailed``: the run itself failed (a stage could not finish, an invariant broke). Exit code 1.
  The message names the command that resumes or rolls back where there is one.
- ``Retriable``: a transient fault (rate limit, lock, 5xx, timeout); retried by the caller with
  backoff and only surfaced as ``RunFailed`` once retries are exhausted.

Row-level problems are data in reports, never exceptions.
"""

from __future__ import annotations


class CrmbridgeError(Exception):
    """Base of every error crmbridge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(CrmbridgeError):
    """Bad flag, config, mapping or input file: the user must fix it (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file (crmbridge.yml, a mapping, a definition ...) is invalid."""

    def __init__(self, path, message: str, *, line: int | None = None, hint: str | None = None):
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = str(path)
        self.line = line


class RunFailed(CrmbridgeError):
    """The run could not complete (exit 1)."""

    exit_code = 1


class Retriable(CrmbridgeError):
    """A transient fault worth retrying (rate limit, row lock, 5xx, timeout)."""

    exit_code = 1


class Interrupted(CrmbridgeError):
    """The user stopped the run (Ctrl-C): exit 130 like any interrupted command; the hint resumes it."""

    exit_code = 130
