"""What the reports of both validate engines share (``stage.ValidationReport``, ``sqlengine.SqlValidationReport``)."""

from __future__ import annotations

from typing import Any


class Verdict:
    """Mixin of a frozen report dataclass declaring ``definition_path``, ``definition_version``,
    ``definition_status``, ``blocking_failed``, ``entities`` and ``reports``."""

    @property
    def ok(self) -> bool:
        """True when no blocking rule failed (exit code 0 of ``crmbridge validate``)."""
        return not self.blocking_failed

    def verdict_dict(self) -> dict[str, Any]:
        """The shared tail of ``as_dict()``: the definition checked, and what it found."""
        return {"definition": self.definition_path, "definition_version": self.definition_version,
                "definition_status": self.definition_status, "blocking_failed": self.blocking_failed,
                "entities": self.entities, "reports": self.reports}
