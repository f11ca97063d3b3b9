"""crmbridge.validation: the agreed customer definition, enforced with great-expectations.

``run_validate(project, run, definition_path=None) -> ValidationReport`` is the stage API;
``load_definition(path)`` reads a definition file. Only this package imports great_expectations.
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: importing crmbridge.validation must not pull in pandas or great_expectations.
    if name in ("run_validate", "ValidationReport"):
        from crmbridge.validation import stage

        return getattr(stage, name)
    if name in ("load_definition", "Definition"):
        from crmbridge.validation import definition

        return getattr(definition, name)
    raise AttributeError(name)


__all__ = ["run_validate", "ValidationReport", "load_definition", "Definition"]
