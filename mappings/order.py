"""Load order from lookups: parents before children, cycles reported with their path."""

from __future__ import annotations

from crmbridge.errors import ConfigError
from crmbridge.mappings.models import LoadedStep, Mappings


class CycleError(ConfigError):
    """Steps reference each other in a loop, so no parent-first order exists."""

    def __init__(self, cycle: list[str], files: list[str]):
        path = " -> ".join(cycle)
        super().__init__(", ".join(sorted(set(files))), f"lookup cycle between steps: {path}",
                         hint="break the loop: load one side without the lookup, then update it in a second step")
        self.cycle = cycle


def parents_of(step: LoadedStep, mappings: Mappings) -> list[str]:
    """Names of the steps that create the objects this step looks up (self-lookups excluded)."""
    out: list[str] = []
    for lk in step.step.lookups.values():
        for parent in mappings.for_object(lk.object):
            if parent.name != step.name and parent.name not in out:
                out.append(parent.name)
    return out


def self_lookups(step: LoadedStep) -> list[str]:
    """Lookup fields that point at the step's own object (e.g. Account.ParentId)."""
    return [f for f, lk in step.step.lookups.items() if lk.object.lower() == step.step.object.lower()]


def load_order(mappings: Mappings) -> list[LoadedStep]:
    """Steps in dependency order (parents first); ties keep file/declaration order. Raises ``CycleError``."""
    deps = {s.name: parents_of(s, mappings) for s in mappings.steps}
    by_name = {s.name: s for s in mappings.steps}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise CycleError(cycle, [by_name[n].file for n in cycle])
        state[name] = 1
        for parent in deps[name]:
            visit(parent, path + [name])
        state[name] = 2
        order.append(name)

    for s in mappings.steps:
        visit(s.name, [])
    return [by_name[n] for n in order]
