"""crmbridge.mappings: declarative mapping of legacy entities into Salesforce objects.

- ``transforms``: the shared, pure, vectorised transform library (also used by validation).
- ``models``: mapping files (``mappings/*.yml``) as strict pydantic models; ``load_mappings``.
- ``order``: load order from lookups (parents first), cycles reported.
- ``check`` / ``check_org``: offline and org (describe) checks returning a ``CheckReport``.
- ``engine`` / ``merge``: map one step's rows (pure), quarantine with reasons, merge departments.
- ``stage``: ``run_map(project, run, ...) -> MapResult`` writing ``runs/<id>/map/``.
"""

__all__ = ["run_map", "run_check", "MapResult", "load_mappings", "check_against_org", "check_offline", "load_order"]


def __getattr__(name):
    # Lazy: pandas and friends load only when the stage is used.
    if name in ("run_map", "run_check", "MapResult"):
        from crmbridge.mappings import stage

        return getattr(stage, name)
    if name == "load_mappings":
        from crmbridge.mappings.models import load_mappings

        return load_mappings
    if name in ("check_against_org", "check_offline"):
        from crmbridge.mappings import check

        return getattr(check, name)
    if name == "load_order":
        from crmbridge.mappings.order import load_order

        return load_order
    raise AttributeError(name)
