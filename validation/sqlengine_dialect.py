"""SQL spelling of the ``normalise`` steps that have an exact SQL form, per database (``--engine sql``).

``Dialect.step`` turns one declared normalisation step into SQL over a column expression, or says it has
none on this database (the column is then normalised by Python only: ``sqlengine_python``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd


@lru_cache(maxsize=1)
def whitespace() -> str:
    """Every character Python's ``str.strip()`` removes (what the ``trim`` transform strips)."""
    return "".join(chr(i) for i in range(0x3001) if chr(i).isspace())



class Dialect:
    """SQL spelling of the normalise steps that have an exact SQL form on one database."""

    def __init__(self, engine):
        self.dialect = engine.dialect
        self.name = engine.dialect.name  # postgresql, mysql (MariaDB too), sqlite
        self.prep = engine.dialect.identifier_preparer

    @property
    def mysql(self) -> bool:
        return self.name in ("mysql", "mariadb")

    def q(self, ident: str) -> str:
        return self.prep.quote(ident)

    def lit(self, value: str) -> str:
        """A string literal; colons escaped for ``sqlalchemy.text`` (GX runs query assets through it)."""
        from sqlalchemy import String, literal

        s = str(literal(value, String()).compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        return s.replace(":", "\\:")

    def text_type(self) -> str:
        return "CHAR" if self.mysql else "TEXT"

    def raw(self, col: str, textual: bool) -> str:
        """The column as extract's text: '' is missing; MySQL/MariaDB compare it binary and without
        padding, as Python does (their default collations ignore case and trailing spaces)."""
        e = self.q(col) if textual else f"CAST({self.q(col)} AS {self.text_type()})"
        if self.mysql:
            e = f"CONVERT({e} USING utf8mb4) COLLATE utf8mb4_nopad_bin"
        return f"NULLIF({e}, '')"

    def _class(self, chars: str) -> str:
        return "[" + "".join(f"\\x{{{ord(c):x}}}" if self.mysql else (f"\\u{ord(c):04x}" if ord(c) > 0x7f
                                                                     else f"\\x{ord(c):02x}") for c in chars) + "]"

    def strip(self, e: str) -> str | None:
        ws = whitespace()
        if self.name == "postgresql":
            return f"btrim({e}, {self.lit(ws)})"
        if self.name == "sqlite":
            return f"trim({e}, {self.lit(ws)})"
        if self.mysql:
            cls = self._class(ws)
            return f"REGEXP_REPLACE({e}, {self.lit(f'^{cls}+|{cls}+$')}, '')"
        return None

    def collapse(self, e: str) -> str | None:
        cls = self._class(whitespace() + "\u3000\u00a0")
        if self.name == "postgresql":
            return f"regexp_replace({e}, {self.lit(cls + '+')}, ' ', 'g')"
        if self.mysql:
            return f"REGEXP_REPLACE({e}, {self.lit(cls + '+')}, ' ')"
        return None

    def has_control(self, e: str, key: bool) -> str:
        """True where text ``e`` holds a character ``controlchars.control_chars_check`` refuses (keys: also tab and
        line breaks). May say yes too often (MariaDB's REGEXP on a binary collation sees bytes), never too
        rarely: a yes only makes the value travel to Python, where the real check runs."""
        codes = [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)]
        if key:
            codes += [0x09, 0x0a, 0x0d]
        if self.name == "postgresql":  # a PostgreSQL text never holds NUL
            cls = "[" + "".join("\\x%02x" % c for c in codes if c) + "]"
            return f"{e} ~ {self.lit(cls)}"
        if self.mysql:
            cls = "[" + "".join("\\x{%x}" % c for c in codes) + "]"
            return f"{e} REGEXP {self.lit(cls)}"
        return "(" + " OR ".join(f"instr({e}, char({c})) > 0" for c in codes) + ")"

    def replace(self, e: str, pattern: str, replacement: str) -> str | None:
        """``re.sub(pattern, replacement, e)``, blank -> missing, as the ``replace`` transform does; only
        for patterns in the subset whose meaning the databases share with Python (no ``(?...)``
        constructs, no escapes beyond ``\\s \\d \\w`` and escaped punctuation) and literal
        replacements. Dialect differences left (what ``\\s`` covers) stop the command in the value-by-value
        check instead of passing silently."""
        if not _portable_regex(pattern) or "\\" in replacement or "$" in replacement:
            return None
        if self.name == "postgresql":
            out = f"regexp_replace({e}, {self.lit(pattern)}, {self.lit(replacement)}, 'g')"
        elif self.mysql:  # MariaDB's REGEXP_REPLACE (PCRE) replaces every match
            out = f"REGEXP_REPLACE({e}, {self.lit(pattern)}, {self.lit(replacement)})"
        else:
            return None
        blank = self.strip(out)
        return f"CASE WHEN {blank} = '' THEN NULL ELSE {out} END"

    def nfkc(self, e: str) -> str | None:
        return f"normalize({e}, NFKC)" if self.name == "postgresql" else None

    def step(self, e: str, name: str, params: dict) -> str | None:
        """``e`` after one normalise step, or None when the step has no SQL form here."""
        if name == "trim":
            s = self.strip(e)
            if s is None:
                return None
            if params.get("collapse"):
                s = self.collapse(s)
                if s is None:
                    return None
            return f"NULLIF({s}, '')"
        if name == "case" and params.get("to") in ("upper", "lower"):
            return f"{params['to'].upper()}({e})"
        if name == "nfkc":
            return self.nfkc(e)
        if name == "null_if":
            key = self.strip(e)
            if key is None:
                return None
            markers = sorted({v.strip() for v in params["values"]})
            if params.get("ignore_case", True):
                key, markers = f"LOWER({key})", sorted({m.lower() for m in markers})
            return f"CASE WHEN {key} IN ({', '.join(self.lit(m) for m in markers)}) THEN NULL ELSE {e} END"
        if name == "replace":
            return self.replace(e, params["pattern"], params.get("replacement") or "")
        if name == "value_map":
            policy = params.get("on_missing") or ("default" if params.get("default") is not None else "error")
            key = self.nfkc(e)
            key = self.strip(key) if key else None
            if key is None or policy not in ("keep", "default", "error"):
                return None
            ignore = params.get("ignore_case", True)
            if ignore:
                key = f"LOWER({key})"
            from crmbridge.mappings.transforms_text import _map_key

            table = {_map_key(k, ignore): v for k, v in params["map"].items()}
            whens = " ".join(f"WHEN {self.lit(k)} THEN {self._value(v)}" for k, v in table.items())
            other = self._value(params.get("default")) if policy == "default" else e
            return f"CASE {key} {whens} ELSE {other} END" if whens else e
        return None

    def _value(self, v: Any) -> str:
        if v is None:
            return "NULL"
        from crmbridge.mappings.transforms_base import as_text

        return self.lit(as_text(pd.Series([v])).iloc[0])


def _portable_regex(pattern: str) -> bool:
    """True for a Python pattern that PostgreSQL's AREs and MariaDB's PCRE read the same way as far as
    the syntax goes: no ``(?`` groups/flags, and backslash only before ``s S d D w W`` or punctuation
    (``\\b`` is a backspace in PostgreSQL, ``\\A``/``\\Z`` do not exist there)."""
    if "(?" in pattern:
        return False
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            nxt = pattern[i + 1:i + 2]
            if not nxt or not (nxt in "sSdDwW" or (not nxt.isalnum() and nxt.isascii() and nxt != " ")):
                return False
            i += 2
        else:
            i += 1
    return True

