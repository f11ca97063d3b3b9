"""The failing rows of ``--engine sql``, spilled to disk: one line per (failing row, rule) in a SQLite file
(the standard library's ``sqlite3``), so crmbridge's memory does not grow with the number of failing rows.

A row is identified by ``(department, *key)`` (rows have no ``_row_id`` in the database). What the report
needs is read back with SQL, one identity at a time: its distinct reasons in the order they were found and
how many rows failed each rule (``groups``); for a parent entity, its quarantined keys as a compact
``mappings.keyindex.KeyIndex`` (``blocked_keys``) and the reason a child's reference names (``QuarantinedReasons``).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

_FLUSH = 20_000  # lines buffered before an INSERT (a few MB at most)


class Failures:
    """Failing rows by identity ``(department, *key)``: per rule how many rows, and the reasons
    (0 blocking | 1 warning, text), kept in ``path`` (a SQLite file the caller deletes)."""

    def __init__(self, path: Path, n_key: int):
        self.n_key = n_key
        self._db = sqlite3.connect(str(path))
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -32000", "temp_store = FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._keys = [f"k{i}" for i in range(n_key)]
        cols = ", ".join(f"{k} TEXT" for k in self._keys)
        self._db.execute(f"CREATE TABLE ev (seq INTEGER PRIMARY KEY, dept TEXT, {cols}, rule_id TEXT, b INTEGER, "
                         "text TEXT)")
        self._insert = (f"INSERT INTO ev (dept, {', '.join(self._keys)}, rule_id, b, text) "
                        f"VALUES ({', '.join('?' * (n_key + 4))})")
        self._buf: list[tuple] = []
        self.lines = 0

    def add_many(self, idents: Iterable[tuple], rule, texts: Iterable[str]) -> None:
        b = 0 if (rule.blocking and rule.level == "row") else 1
        for ident, text in zip(idents, texts):
            self._buf.append((*ident, rule.rule_id, b, text))
        if len(self._buf) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._db.executemany(self._insert, self._buf)
            self.lines += len(self._buf)
            self._buf = []

    def _ident_cols(self) -> str:
        return ", ".join(["dept", *self._keys])

    def groups(self, by_key: bool = True) -> Iterator[tuple[tuple, list[tuple[int, str]], dict[str, int]]]:
        """``(ident, reasons, rows per rule)`` per identity, ordered by its values as text (None as '')
        when ``by_key``, else in the order identities were first found (ties: that order too)."""
        self._flush()
        ident = self._ident_cols()
        order = ", ".join(f"COALESCE({c}, '')" for c in ["dept", *self._keys]) + ", " if by_key else ""
        cur = self._db.execute(f"SELECT {ident}, rule_id, b, text, MIN(seq) OVER (PARTITION BY {ident}) AS first "
                               f"FROM ev ORDER BY {order}first, seq")
        n = self.n_key + 1
        for _, lines in itertools.groupby(cur, key=lambda r: r[-1]):
            reasons: list[tuple[int, str]] = []
            per_rule: dict[str, int] = {}
            for line in lines:
                ident_values = line[:n]
                per_rule[line[n]] = per_rule.get(line[n], 0) + 1
                entry = (line[n + 1], line[n + 2])
                if entry not in reasons:
                    reasons.append(entry)
            yield tuple(ident_values), reasons, per_rule

    def blocked_keys(self, department: str | None = None, exclude: frozenset = frozenset()):
        """The (first) key values of identities a blocking rule failed (in ``department`` only if given),
        but those in ``exclude``, as a compact ``mappings.keyindex.KeyIndex``."""
        from crmbridge.mappings.keyindex import KeyCollector

        self._flush()
        where, args = ("AND dept = ?", (department,)) if department is not None else ("", ())
        cur = self._db.execute(f"SELECT DISTINCT k0 FROM ev WHERE b = 0 AND k0 IS NOT NULL {where}", args)
        index = KeyCollector()
        for chunk in iter(lambda: cur.fetchmany(_FLUSH), []):
            index.add([k for (k,) in chunk if k not in exclude])
        return index.freeze()

    def blocked_departments(self, key: str) -> set[str]:
        """The departments where an identity with this (first) key failed a blocking rule."""
        self._flush()
        self._db.execute("CREATE INDEX IF NOT EXISTS ev_k0 ON ev (k0, b)")
        return {d for (d,) in self._db.execute("SELECT DISTINCT dept FROM ev WHERE k0 = ? AND b = 0", (key,))}

    def quarantined_reasons(self) -> QuarantinedReasons:
        """Key -> the reasons of the first identity quarantined under it (what ``_reference_messages``
        names for a child of a quarantined parent), kept in the same file."""
        self._db.execute("CREATE TABLE IF NOT EXISTS why (k TEXT PRIMARY KEY, reasons TEXT)")
        rows = ((ident[1], "; ".join(t for _, t in sorted(rs, key=lambda x: x[0])))
                for ident, rs, _ in self.groups(by_key=False) if ident[1] is not None and any(b == 0 for b, _ in rs))
        cur = self._db.cursor()  # groups() keeps reading on its own cursor while this one writes
        for chunk in iter(lambda: list(itertools.islice(rows, _FLUSH)), []):
            cur.executemany("INSERT OR IGNORE INTO why VALUES (?, ?)", chunk)
        return QuarantinedReasons(self._db)

    def close(self) -> None:
        self._db.close()


class QuarantinedReasons:
    """``get(key)`` like the dict of ``RuleContext.quarantined``, read from the failures' file."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def get(self, key: str, default=None):
        row = self._db.execute("SELECT reasons FROM why WHERE k = ?", (key,)).fetchone()
        return default if row is None else row[0]
