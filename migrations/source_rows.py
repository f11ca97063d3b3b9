"""Per-source row rules of the extract stage: the department from a column, and row filters.

One legacy CRM export often holds every department's customers with a department column (所属部门);
``department_column`` (with an optional ``department_map``) tags each row with its own department
instead of one per source. ``filters`` keep only the rows a source should contribute. Neither drops a
row silently: a row the rules refuse goes to the source's rejects file with its reason
(``filtered: <filter>``, ``department_missing``, ``unknown_department``), so rows read = kept + rejected.
"""

from __future__ import annotations

import json
import re
from typing import Any

from crmbridge.errors import ConfigError

FILTERED = "filtered"


def _column_index(src, columns: list[str], name: str) -> int | None:
    """Index of ``name`` given as a column name or as the legacy header renamed by ``columns:``."""
    if name in columns:
        return columns.index(name)
    renamed = src.columns.get(name)
    if renamed is not None and renamed in columns:
        return columns.index(renamed)
    return None


def _config_line(project, src, *loc: Any) -> int | None:
    from crmbridge.yamlconf import line_of, read_yaml

    try:
        index = [s.name for s in project.config.sources].index(src.name)
        _, node = read_yaml(project.config_path)
    except Exception:  # a project built in memory (tests, tools): no line to show
        return None
    return line_of(node, ("sources", index, *loc))


class RowRules:
    """The compiled rules of one source; ``check(cells)`` -> ``(department, reason)``, one of them None."""

    def __init__(self, project, src, columns: list[str]):
        self.default = src.department
        self.fallback = src.department_fallback
        self.mapping = {k.strip(): v for k, v in src.department_map.items()}
        self.dept_column = src.department_column
        self.dept_idx = None
        if src.department_column:
            self.dept_idx = self._index(project, src, columns, src.department_column, ("department_column",))
        self.tests = []
        for i, f in enumerate(src.filters):
            idx = self._index(project, src, columns, f.column, ("filters", i, "column"))
            self.tests.append((idx, _predicate(f), f"{FILTERED}: {f.describe()}"))

    @staticmethod
    def _index(project, src, columns: list[str], name: str, loc: tuple) -> int:
        idx = _column_index(src, columns, name)
        if idx is None:
            raise ConfigError(project.config_path.name, f"source {src.name}: column '{name}' is not in the "
                              f"source's columns ({', '.join(columns)})", line=_config_line(project, src, *loc),
                              hint="name a column of the file or table (its legacy header or its renamed name)")
        return idx

    def check_columns(self, columns: list) -> tuple[Any, Any, list[tuple[int, str]]]:
        """``check`` over a batch of Arrow string columns, one call per distinct value of a column.

        Returns ``(keep, departments, refused)``: a numpy mask of the rows kept, their departments
        as an Arrow array (None: the source's department for all) and ``(row index, reason)`` of the
        refused rows in row order.
        """
        import numpy as np

        from crmbridge import arrowvals as av

        n = len(columns[0]) if columns else 0
        keep = np.ones(n, bool)
        why = np.full(n, None, object)
        for idx, test, reason in self.tests:
            ok = _per_distinct(columns[idx], lambda v, test=test: bool(test(_text(v))), bool)
            failed = keep & ~ok
            why[failed] = reason
            keep &= ok
        depts = None
        if self.dept_idx is not None:
            col = columns[self.dept_idx]
            dept = _per_distinct(col, lambda v: self._department(v)[0], object)
            reason = _per_distinct(col, lambda v: self._department(v)[1], object)
            refused = keep & _per_distinct(col, lambda v: self._department(v)[1] is not None, bool)
            why[refused] = reason[refused]
            keep &= ~refused
            depts = av.strings(dept[keep].tolist())
        refused = [(i, why[i]) for i in np.flatnonzero(~keep).tolist()]
        return keep, depts, refused

    def _department(self, raw: Any) -> tuple[str | None, str | None]:
        value = _text(raw)
        if value is None:
            if self.fallback is None:
                return None, f"department_missing (column {self.dept_column} is empty)"
            return self.fallback, None
        if not self.mapping:
            return value, None
        dept = self.mapping.get(value)
        if dept is None:
            return None, f"unknown_department ('{value}' is not in department_map)"
        return dept, None

    def check(self, cells: list) -> tuple[str | None, str | None]:
        for idx, test, reason in self.tests:
            if not test(_text(cells[idx])):
                return None, reason
        if self.dept_idx is None:
            return self.default, None
        return self._department(cells[self.dept_idx])


def for_source(project, src, columns: list[str]) -> RowRules | None:
    """The source's row rules, or None when it has neither a department column nor filters."""
    if not src.department_column and not src.filters:
        return None
    return RowRules(project, src, columns)


def _per_distinct(column, fn, dtype):
    """``fn`` of every value of an Arrow column, computed once per distinct value (nulls as None)."""
    import numpy as np
    import pyarrow.compute as pc

    from crmbridge import arrowvals as av

    enc = pc.dictionary_encode(column)
    values = enc.dictionary.to_pylist()
    results = np.empty(len(values) + 1, dtype)
    for i, v in enumerate(values + [None]):
        results[i] = fn(v)
    codes = av.to_numpy(enc.indices, null=len(values))
    return results[codes]


def raw_cells(cells: list) -> str:
    """A kept-but-refused row as text for the rejects file (the parsed cells, in column order)."""
    return json.dumps(cells, ensure_ascii=False)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _predicate(f):
    if f.equals is not None:
        want = f.equals.strip()
        return lambda v: v == want
    if f.not_equals is not None:
        avoid = f.not_equals.strip()
        return lambda v: v != avoid
    if f.in_ is not None:
        allowed = {x.strip() for x in f.in_}
        return lambda v: v in allowed
    if f.not_in is not None:
        refused = {x.strip() for x in f.not_in}
        return lambda v: v not in refused
    if f.is_null is not None:
        return (lambda v: v is None) if f.is_null else (lambda v: v is not None)
    rx = re.compile(f.matches)
    return lambda v: v is not None and rx.search(v) is not None
