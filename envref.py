"""``{env: NAME}`` references in YAML: a secret (or any value) read from the environment at run time.

Kept apart from ``secretref`` so that importing the redaction helpers does not import pydantic.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from crmbridge.secretref import register


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
