"""The transform library: pure, vectorised functions from a column to an ``Applied`` result.

Used by mappings (``transforms:`` chains on a field) and by validation (declared normalisation).

    from crmbridge.mappings.transforms import TRANSFORMS, apply_transform, parse_params

    res = apply_transform("phone", df["phone"], {"region": "CN", "city_column": "city"}, frame=df)
    res.values, res.changed, res.failed

Each ``TransformSpec`` carries the function and a strict pydantic model for its parameters, so a
mapping file is checked offline before any data is touched. Parameters named ``<x>_column`` name
another column of the row; ``apply_transform`` passes that column to the function as ``<x>=``.
Frame transforms (``kind="frame"``, e.g. ``concat``) take the DataFrame instead of one column.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

import pandas as pd
from pydantic import BaseModel, ValidationError

from crmbridge.mappings import transforms_contact as _contact
from crmbridge.mappings import transforms_dates as _dates
from crmbridge.mappings import transforms_names as _names
from crmbridge.mappings import transforms_numbers as _numbers
from crmbridge.mappings import transforms_text as _text
from crmbridge.mappings.transforms_base import FAIL, Applied, Params, as_text, is_missing, map_unique

if TYPE_CHECKING:
    from crmbridge.mappings.distinct import Encoded, Step

__all__ = ["Applied", "TransformSpec", "TRANSFORMS", "TransformParamError", "apply_transform", "apply_encoded", "parse_params",
           "suggest", "column_params", "FAIL", "Params", "as_text", "is_missing", "map_unique"]


@dataclass(frozen=True)
class TransformSpec:
    """A registered transform: its function, parameter model and how the engine calls it."""

    name: str
    func: Callable[..., Applied]
    params: type[BaseModel]
    kind: Literal["series", "frame"] = "series"
    summary: str = ""
    nfkc: bool = False  # applies NFKC internally (keys/codes/phones/e-mails only)
    arrow: bool = False  # takes the values in Arrow too (``arrow=``), when the encoded column has them

    def column_params(self) -> list[str]:
        """Parameter names that refer to other columns (``city_column``, ``start_column``, ``columns``)."""
        names = [n for n in self.params.model_fields if n.endswith("_column")]
        if self.kind == "frame" and "columns" in self.params.model_fields:
            names.append("columns")
        return names


def _spec(name: str, func: Callable, params: type[BaseModel], **kw: Any) -> TransformSpec:
    summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
    return TransformSpec(name=name, func=func, params=params, summary=summary, **kw)


TRANSFORMS: dict[str, TransformSpec] = {
    s.name: s
    for s in [
        _spec("trim", _text.trim, _text.TrimParams, arrow=True),
        _spec("case", _text.case, _text.CaseParams, arrow=True),
        _spec("nfkc", _text.nfkc, _text.NoParams, nfkc=True, arrow=True),
        _spec("strip_html", _text.strip_html, _text.NoParams),
        _spec("strip_control", _text.strip_control, _text.StripControlParams),
        _spec("replace", _text.replace, _text.ReplaceParams, arrow=True),
        _spec("null_if", _text.null_if, _text.NullIfParams, arrow=True),
        _spec("value_map", _text.value_map, _text.ValueMapParams),
        _spec("truncate", _text.truncate, _text.TruncateParams),
        _spec("split", _text.split, _text.SplitParams),
        _spec("default", _text.default, _text.DefaultParams),
        _spec("required", _text.required, _text.NoParams),
        _spec("affix", _text.affix, _text.PrefixParams),
        _spec("phone", _contact.phone, _contact.PhoneParams, nfkc=True, arrow=True),
        _spec("email", _contact.email, _contact.EmailParams, nfkc=True, arrow=True),
        _spec("date", _dates.parse_date, _dates.DateParams, nfkc=True),
        _spec("datetime", _dates.parse_datetime, _dates.DatetimeParams, nfkc=True),
        _spec("months_between", _dates.months_between, _dates.MonthsParams, nfkc=True),
        _spec("number", _numbers.parse_number, _numbers.NumberParams, nfkc=True, arrow=True),
        _spec("name_part", _names.name_part, _names.NamePartParams),
        _spec("concat", _names.concat, _names.ConcatParams, kind="frame"),
    ]
}


class TransformParamError(ValueError):
    """A transform name or its parameters are invalid; ``str()`` says which and what to do."""


def suggest(name: str) -> str | None:
    """The closest registered transform name, for did-you-mean messages."""
    close = difflib.get_close_matches(name, sorted(TRANSFORMS), n=1, cutoff=0.5)
    return close[0] if close else None


def parse_params(name: str, params: dict[str, Any] | None = None) -> BaseModel:
    """Validate ``params`` for transform ``name``; raises ``TransformParamError`` with a readable message."""
    spec = TRANSFORMS.get(name)
    if spec is None:
        close = suggest(name)
        raise TransformParamError(f"unknown transform '{name}'" + (f" (did you mean '{close}'?)" if close else ""))
    try:
        return spec.params.model_validate(params or {})
    except ValidationError as exc:
        raise TransformParamError(_describe(name, spec, exc)) from None


def _describe(name: str, spec: TransformSpec, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        key = str(err["loc"][-1])
        close = difflib.get_close_matches(key, list(spec.params.model_fields), n=1, cutoff=0.5)
        return f"transform '{name}': unknown parameter '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    if err.get("type") == "missing":
        return f"transform '{name}': parameter '{where}' is required"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    return f"transform '{name}'" + (f" parameter '{where}'" if where else "") + f": {msg}"


def column_params(name: str, params: BaseModel) -> list[str]:
    """The other columns a configured transform reads (for the offline column check)."""
    spec = TRANSFORMS[name]
    cols: list[str] = []
    for p in spec.column_params():
        v = getattr(params, p)
        if isinstance(v, str):
            cols.append(v)
        elif isinstance(v, list):
            cols.extend(v)
    return cols


def apply_transform(name: str, series: pd.Series | None, params: dict[str, Any] | BaseModel | None = None, *,
                    frame: pd.DataFrame | None = None, distinct: bool = True) -> Applied:
    """Run one transform. ``frame`` supplies the columns named by ``*_column`` params and frame transforms.

    Text columns are computed once per distinct value (or value tuple with the ``*_column`` columns)
    and spread back (``crmbridge.mappings.distinct``); ``distinct=False`` runs the function on the
    whole column, the reference the distinct path is tested against.
    """
    spec, kwargs, others = _prepare(name, params, frame)
    if spec.kind == "frame":
        return spec.func(frame, **kwargs)
    if distinct:
        from crmbridge.mappings.distinct import encode, run_step

        column = encode(series)
        coded = {k: encode(v if v.index.equals(series.index) else v.reindex(series.index)) for k, v in others.items()}
        if column is not None and all(c is not None for c in coded.values()):
            return run_step(spec.func, kwargs, column, coded, spec.arrow).applied()
    return spec.func(series, **kwargs, **others)


def apply_encoded(name: str, params: dict[str, Any] | BaseModel | None, column: "Encoded",
                  lookup: Callable[[str], "Encoded | None"]) -> "Step | None":
    """One transform on an encoded column (``crmbridge.mappings.distinct``); ``lookup(name)`` gives the
    other columns its ``*_column`` parameters name, encoded. None when the transform cannot run there
    (a frame transform, or another column that is not text): use ``apply_transform`` then."""
    from crmbridge.mappings.distinct import run_step

    spec = TRANSFORMS.get(name)
    model = params if isinstance(params, BaseModel) else parse_params(name, params)
    if spec is None or spec.kind == "frame":
        return None
    kwargs = model.model_dump()
    others = {}
    for p in spec.column_params():
        col = kwargs.pop(p)
        if col is None:
            continue
        other = lookup(col)
        if other is None:
            return None
        others[p.removesuffix("_column")] = other
    return run_step(spec.func, kwargs, column, others, spec.arrow)


def _prepare(name: str, params: dict[str, Any] | BaseModel | None,
             frame: pd.DataFrame | None) -> tuple[TransformSpec, dict[str, Any], dict[str, pd.Series]]:
    """The spec, the plain keyword arguments and the other columns (``city=frame[city_column]``)."""
    spec = TRANSFORMS.get(name)
    model = params if isinstance(params, BaseModel) else parse_params(name, params)
    if spec is None:  # parse_params has already raised for unknown names given as dicts
        raise TransformParamError(f"unknown transform '{name}'")
    kwargs = model.model_dump()
    others: dict[str, pd.Series] = {}
    if spec.kind == "frame":
        if frame is None:
            raise TransformParamError(f"transform '{name}' works on several columns and needs the row frame")
        return spec, kwargs, others
    for p in spec.column_params():
        col = kwargs.pop(p)
        if col is None:
            continue
        if frame is None or col not in frame.columns:
            raise TransformParamError(f"transform '{name}': column '{col}' ({p}) is not in the data")
        others[p.removesuffix("_column")] = frame[col]
    return spec, kwargs, others
