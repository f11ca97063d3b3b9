"""Load YAML config files into strict pydantic models, with file and line in every error.

Every config crmbridge reads (crmbridge.yml, definitions, mappings, sync, readiness, KPIs) goes
through ``load_model`` so that a user always sees ``path:line: field.path: what is wrong``.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from crmbridge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Dates stay strings: pydantic parses them and reports an impossible date (2026-02-30) with its line,
# where PyYAML's own timestamp constructor would raise a bare ValueError without one.
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def read_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return (data, node tree). Errors name the file and line."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(p, "file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(p, f"not UTF-8 text (byte offset {exc.start})", hint="save the file as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise ConfigError(p, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(p, f"invalid YAML: {exc}") from None
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest node reachable along ``loc``."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    cur = node
    for part in loc:
        nxt = None
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    nxt = v
                    best = k.start_mark.line + 1
                    break
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(cur.value):
            nxt = cur.value[part]
            best = nxt.start_mark.line + 1
        if nxt is None:
            continue  # union tags and the like appear in loc but not in the file
        cur = nxt
    return best


def _field_names(model: Any, seen: set | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    names: set[str] = set()
    if isinstance(model, type) and issubclass(model, BaseModel):
        if model in seen:
            return names
        seen.add(model)
        for name, f in model.model_fields.items():
            names.add(f.alias or name)
            names |= _field_names(f.annotation, seen)
    else:
        for arg in typing.get_args(model):
            names |= _field_names(arg, seen)
    return names


def user_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop pydantic's union/discriminator tags from ``loc``: keep the parts present in the data.

    The last part is kept even when absent (a missing or unknown field names itself)."""
    out: list[Any] = []
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif last and isinstance(cur, dict) and isinstance(part, str):
            out.append(part)
    return tuple(out)


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_error(path: str | Path, exc: ValidationError, node: yaml.Node | None, model: type | None = None,
                     prefix: str = "", data: Any = None) -> ConfigError:
    """Turn the most telling pydantic error into a ConfigError with line and a did-you-mean hint.

    An unknown key is reported before the "missing" error it usually causes (a typo'd name)."""
    order = {"extra_forbidden": 0, "missing": 2}
    errors = sorted(exc.errors(), key=lambda e: order.get(e.get("type"), 1))
    err = errors[0]
    loc = tuple(err.get("loc", ()))
    if data is not None:
        loc = user_loc(loc, data)
    line = line_of(node, loc)
    msg = err.get("msg", "invalid value")
    hint = None
    if err.get("type") == "extra_forbidden" and loc and model is not None:
        close = difflib.get_close_matches(str(loc[-1]), sorted(_field_names(model)), n=1, cutoff=0.6)
        msg = f"unknown field '{loc[-1]}'"
        if close:
            msg += f" (did you mean '{close[0]}'?)"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigError(path, f"{prefix}{format_loc(loc)}: {msg}{more}", line=line, hint=hint)


def load_model(path: str | Path, model: type[M], *, default: dict | None = None, context: dict | None = None) -> M:
    """Read ``path`` and validate it as ``model``; errors carry file, line and field."""
    data, node = read_yaml(path)
    if data is None:
        data = default if default is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a mapping of keys to values at the top level", line=1)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(path, exc, node, model, data=data) from None
