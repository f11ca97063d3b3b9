"""Profile the extracted entities of a run: counts, nulls, distinct values, lengths, suspicious patterns.

Computed batch by batch with pyarrow compute over the run's Parquet files, so memory follows the
batch size, not the size of the run. Suspicious patterns are the ones legacy Chinese exports are
known for: full-width characters (``Ｃ000123``, ``２００１２０``), leading/trailing spaces (including the
ideographic space U+3000), HTML-like content (``<b>Evil</b> Corp``), control characters (embedded NULs)
and U+FFFD replacement characters (text that was already mis-decoded before it reached us).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LINEAGE = {"_row_id", "_source", "_department", "_line", "_source_key"}
TOP = 5
MAX_SHOWN = 200  # characters of a top value kept in profile.json
EXACT_DISTINCT = 100_000  # distinct values counted exactly up to here (8 bytes each), estimated above
TOP_TRACKED = 10_000  # different values tracked for the top list before the rarest are pruned
HLL_P = 14  # HyperLogLog registers 2**14: ~0.8% standard error

PATTERNS = {
    "full_width": r"[\x{FF01}-\x{FF5E}\x{3000}]",
    "leading_trailing_space": r"^[\s\x{3000}\x{A0}]|[\s\x{3000}\x{A0}]$",
    "html_like": r"<[A-Za-z/!][^>]*>|&[A-Za-z]+;|&#[0-9]+;",
    "control_chars": r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]",
    "replacement_char": r"\x{FFFD}",
}
EDGE_SPACE = "leading_trailing_space"


def _suspicious(values) -> dict:
    """A bool array per pattern: which values of a string array (no nulls) ``PATTERNS[key]`` matches.

    The UTF-8 bytes decide most of it without a regex. RE2's ``^``/``$`` are the value's ends (not multi-
    line) and its ``\\s`` is [\\t\\n\\f\\r ]; U+00A0 is C2 A0 and U+3000 E3 80 80, so the leading or
    trailing space is a test of a value's first and last bytes. The other patterns need a control byte,
    ``<`` or ``&``, or a character starting with EF (U+FF01-FF5E, U+FFFD) or U+3000 (``_byte_patterns``).
    ``tests/migrations/test_arrow_bytes.py`` compares it with the regex."""
    import numpy as np

    from crmbridge.migrations.arrow_bytes import string_buffers, unaligned

    offsets, data = string_buffers(values)  # 8 zero bytes before and after the values
    quads = unaligned(data, "<u4")
    starts, ends = offsets[:-1], offsets[1:]
    head, tail = quads[starts], quads[ends - 4]  # a value's first 4 bytes (low first), its last 4
    # UTF-8 is self-synchronising: C2 A0 or E3 80 80 read at a value's start or end is that character.
    edge = (_re2_space(head & 0xFF) | ((head & 0xFFFF) == 0xA0C2) | ((head & 0xFFFFFF) == 0x8080E3) |
            _re2_space(tail >> 24) | ((tail >> 16) == 0xA0C2) | ((tail >> 8) == 0x8080E3))
    found = {k: np.zeros(len(values), bool) for k in PATTERNS}
    found[EDGE_SPACE] = edge & (ends > starts)
    hits = np.flatnonzero(_pattern_bytes(data[offsets[0]:offsets[-1]])) + offsets[0]
    if len(hits):
        _byte_patterns(found, values, offsets, data, hits)
    return found


def _byte_patterns(found: dict, values, offsets, data, hits) -> None:
    """``_suspicious``'s other patterns, from the bytes at ``hits`` (``_pattern_bytes``). A control
    character is its byte; U+3000 is E3 80 80; a character led by EF is U+F000 plus the low 6 bits of
    its next two bytes (U+FF01-FF5E full width, U+FFFD the replacement). Only ``html_like`` needs the
    regex, on the values holding ``<`` or ``&``."""
    import numpy as np
    import pyarrow.compute as pc

    from crmbridge import arrowvals as av

    at, b1, b2 = data[hits], data[hits + 1], data[hits + 2]  # the 8 zero bytes after the values: in range
    owner = np.searchsorted(offsets, hits, side="right") - 1
    ef = 0xF000 | ((b1.astype(np.int32) & 0x3F) << 6) | (b2 & 0x3F)
    ef[at != 0xEF] = 0
    ideographic = (at == 0xE3) & (b1 == 0x80) & (b2 == 0x80)
    found["full_width"][owner[ideographic | ((ef >= 0xFF01) & (ef <= 0xFF5E))]] = True
    found["replacement_char"][owner[ef == 0xFFFD]] = True
    control = ((at < 0x20) & (at != 0x09) & (at != 0x0A) & (at != 0x0D)) | (at == 0x7F)
    found["control_chars"][owner[control]] = True
    markup = owner[(at == 0x3C) | (at == 0x26)]  # ascending, as ``hits``
    if len(markup):
        some = markup[np.concatenate([[True], markup[1:] != markup[:-1]])]
        hit = av.to_numpy(pc.match_substring_regex(values.take(av.ints(some)), PATTERNS["html_like"]))
        found["html_like"][some[hit]] = True


def _pattern_bytes(x):
    """Which bytes of ``x`` (uint8) a pattern other than the space may need: a control character (TAB,
    LF and CR too: ``_byte_patterns`` passes over them), ``<``, ``&``, or the lead byte E3 or EF. Compared
    rather than looked up in a table of 256: numpy indexes a table through an 8-byte index made for every
    byte, three times slower."""
    found = x < 0x20
    for b in 0x7F, 0x3C, 0x26, 0xE3, 0xEF:  # DEL, <, &
        found |= x == b
    return found


def _re2_space(x):
    """Whether each byte ``x`` is one of RE2's ``\\s``: TAB, LF, FF, CR or space."""
    return (x == 0x09) | (x == 0x0A) | (x == 0x0C) | (x == 0x0D) | (x == 0x20)


def profile_dir(extract_dir: Path, manifest: dict, batch_rows: int = 50_000) -> dict:
    """The profile of every entity in ``manifest`` whose Parquet files are under ``extract_dir``."""
    profiles = {}
    for entity in manifest["entities"]:
        files = [Path(extract_dir) / s["parquet"] for s in manifest["sources"] if s["entity"] == entity]
        profiles[entity] = _read_files(EntityProfile(), files, batch_rows)
    return profile_result(manifest, profiles)


def profile_result(manifest: dict, profiles: dict[str, "EntityProfile"]) -> dict:
    """profile.json's content from each entity's ``EntityProfile`` (fed in manifest order)."""
    out: dict[str, Any] = {"run_id": manifest.get("run_id"), "entities": {}}
    for entity, totals in manifest["entities"].items():
        prof = out["entities"][entity] = profiles[entity].result(totals.get("sources", []))
        _add_zero_date_notes(prof, [s for s in manifest["sources"] if s["entity"] == entity])
    return out


def _add_zero_date_notes(prof: dict, sources: list[dict]) -> None:
    """MySQL zero dates the SQL reader turned into missing values: a note on the column and the entity,
    so the nulls they became are explained rather than mistaken for gaps in the source."""
    notes = prof.setdefault("notes", [])
    for s in sources:
        for col, n in (s.get("zero_dates") or {}).items():
            text = f"{n} MySQL zero date(s) (0000-00-00) in {s['source']} read as missing"
            if col in prof["columns"]:
                prof["columns"][col].setdefault("notes", []).append(text)
            notes.append(f"{col}: {text}")


def profile_entity(files: list[Path], sources: list[str], batch_rows: int = 50_000) -> dict:
    """Row count and per-column statistics of the Parquet ``files`` of one entity, batch by batch."""
    return _read_files(EntityProfile(), files, batch_rows).result(sources)


def _read_files(prof: "EntityProfile", files: list[Path], batch_rows: int) -> "EntityProfile":
    import pyarrow.parquet as pq

    for f in files:
        pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)  # pre_buffer reads the whole file
        names = [n for n in pf.schema_arrow.names if n not in LINEAGE]
        prof.start_file(names)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=names):
            prof.add(names, batch.columns, batch.num_rows)
    return prof


class EntityProfile:
    """The statistics of one entity, fed file by file and batch by batch: by ``profile_entity`` from
    the Parquet files, or by the extract stage with the row groups it writes (the same batches, so
    the same figures, without reading the files again)."""

    def __init__(self):
        self.stats: dict[str, _ColStats] = {}
        self.rows = 0

    def start_file(self, names: list[str]) -> None:
        for n in names:
            self.stats.setdefault(n, _ColStats(self.rows))  # rows before this file: null in this column

    def add(self, names: list[str], columns: list, num_rows: int) -> None:
        """One batch of a file: ``columns`` (string arrays) are the values of ``names``."""
        have = dict(zip(names, columns))
        for n, st in self.stats.items():
            if n in have:
                st.add(have[n])
            else:
                st.nulls += num_rows
        self.rows += num_rows

    def result(self, sources: list[str]) -> dict:
        rows = self.rows
        return {"rows": rows, "sources": sources, "columns": {n: st.result(rows) for n, st in self.stats.items()}}


class _ColStats:
    """Streaming statistics of one string column; memory is bounded whatever the row count.

    Everything is computed with pyarrow compute and numpy on each batch's distinct values (from
    ``value_counts``), weighted by how often each occurs: lengths, patterns and counts need nothing
    per row. Distinct values are counted exactly (an Arrow set) up to ``EXACT_DISTINCT`` and estimated
    with HyperLogLog (about 1% error) above; top values are exact until ``TOP_TRACKED`` different
    values have been seen, then the rarest are pruned (the result says ``approximate``). Ties in the
    top list go to the value seen first, as a Python dict in insertion order would give them.
    """

    def __init__(self, nulls: int = 0):
        import numpy as np

        from crmbridge import arrowvals as av

        self.nulls = nulls
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.patterns = {k: 0 for k in PATTERNS}
        self.uniq = av.strings([])  # None once above EXACT_DISTINCT
        self._pending: list = []
        self._pending_n = 0
        self.hll = None
        self.top_values = av.strings([])
        self.top_counts = np.empty(0, np.int64)
        self.top_order = np.empty(0, np.int64)  # insertion order, for ties
        self.next_order = 0
        self.approx_top = False

    def add(self, arr) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from crmbridge import arrowvals as av

        if arr.type != pa.string():
            arr = arr.cast(pa.string())
        self.nulls += arr.null_count
        if arr.null_count == len(arr):
            return
        if self.uniq is None and self.approx_top:
            self._add_rows(arr.drop_null() if arr.null_count else arr)
            return
        vc = pc.value_counts(arr)
        values, counts = vc.field("values"), vc.field("counts")
        if values.null_count:  # value_counts counts nulls as a value: drop it
            keep = values.is_valid()
            values, counts = values.filter(keep), counts.filter(keep)
        counts_np = av.to_numpy(counts)
        self._describe(values, counts_np)
        self._count(values, counts_np)
        self._distinct(values)

    def _describe(self, values, counts=None) -> None:
        """Lengths and patterns of ``values`` (no nulls), each occurring ``counts`` times (default once)."""
        import pyarrow.compute as pc

        mm = pc.min_max(pc.utf8_length(values))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        self.min_len = lo if self.min_len is None else min(self.min_len, lo)
        self.max_len = hi if self.max_len is None else max(self.max_len, hi)
        for key, found in _suspicious(values).items():
            if found.any():
                self.patterns[key] += int(counts[found].sum() if counts is not None else found.sum())

    def _add_rows(self, rows) -> None:
        """A batch (no nulls) once the distinct count is estimated and the top approximate: no
        ``value_counts``. Lengths, patterns and HyperLogLog give the same on the rows as on the distinct
        values weighted by their counts, and the top only takes the values seen more than once in the
        batch (``_count``): all of them are among the rows whose hash repeats, counted exactly there."""
        import numpy as np
        import pyarrow.compute as pc

        from crmbridge import arrowvals as av
        from crmbridge.migrations.arrow_bytes import hash64

        self._describe(rows)
        h = hash64(rows)
        _hll_update(self.hll, h)
        s = np.sort(h)
        again = s[1:][s[1:] == s[:-1]]
        if len(again):
            vc = pc.value_counts(rows.take(av.ints(np.flatnonzero(np.isin(h, again)))))
            self._count(vc.field("values"), av.to_numpy(vc.field("counts")))

    def _count(self, values, counts) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from crmbridge import arrowvals as av

        if self.approx_top:  # values seen once in a batch cannot climb into the top any more
            more = counts > 1
            values, counts = values.filter(av.bools(more)), counts[more]
        if len(self.top_values):
            at = av.to_numpy(pc.index_in(values, value_set=self.top_values), null=-1)
            found = at >= 0
            self.top_counts[at[found]] += counts[found]
            fresh = ~found
            values, counts = values.filter(av.bools(fresh)), counts[fresh]
        n = len(values)
        if n:
            self.top_values = pa.concat_arrays([self.top_values, values])
            self.top_counts = np.concatenate([self.top_counts, counts])
            self.top_order = np.concatenate([self.top_order, np.arange(self.next_order, self.next_order + n)])
            self.next_order += n
        if len(self.top_values) > TOP_TRACKED:
            keep = self._ranked()[:TOP_TRACKED // 10]
            self.top_values = self.top_values.take(av.ints(keep))
            self.top_counts = self.top_counts[keep]
            self.top_order = np.arange(len(keep))
            self.next_order = len(keep)
            self.approx_top = True

    def _ranked(self):
        import numpy as np

        return np.lexsort((self.top_order, -self.top_counts))  # most frequent first, ties: first seen

    def _distinct(self, values) -> None:
        if self.uniq is None:
            self._hll_add(values)
            return
        self._pending.append(values)  # merged only when the exact set could pass its limit
        self._pending_n += len(values)
        if len(self.uniq) + self._pending_n > EXACT_DISTINCT:
            self._settle()

    def _settle(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.uniq is None or not self._pending:
            return
        self.uniq = pc.unique(pa.concat_arrays([self.uniq, *self._pending]))
        self._pending, self._pending_n = [], 0
        if len(self.uniq) > EXACT_DISTINCT:  # from now on estimated: every value so far into HyperLogLog
            values, self.uniq = self.uniq, None
            self._hll_add(values)

    def _hll_add(self, values) -> None:
        if self.hll is None:
            import numpy as np

            self.hll = np.zeros(1 << HLL_P, dtype=np.uint8)
        from crmbridge.migrations.arrow_bytes import hash64

        _hll_update(self.hll, hash64(values))

    def _estimate(self) -> int:
        import numpy as np

        m = float(len(self.hll))
        est = (0.7213 / (1 + 1.079 / m)) * m * m / float(np.sum(np.power(2.0, -self.hll.astype(np.float64))))
        zeros = int(np.count_nonzero(self.hll == 0))
        if est <= 2.5 * m and zeros:
            est = m * np.log(m / zeros)
        return int(round(est))

    def result(self, rows: int) -> dict:
        from crmbridge import arrowvals as av

        self._settle()
        order = self._ranked()[:TOP]
        top = zip(self.top_values.take(av.ints(order)).to_pylist(), self.top_counts[order].tolist())
        return {"nulls": self.nulls, "null_pct": round(100.0 * self.nulls / rows, 2) if rows else 0.0,
                "distinct": len(self.uniq) if self.uniq is not None else self._estimate(),
                "distinct_approximate": self.uniq is None,
                "top": [[_short(v), c] for v, c in top], "top_approximate": self.approx_top,
                "min_length": self.min_len, "max_length": self.max_len, "suspicious": dict(self.patterns)}


def _hll_update(registers, h) -> None:
    """Add the 64-bit hashes ``h`` (``arrow_bytes.hash64``: the same in every process, unlike Python's
    salted str hash, so the same estimate in every run of the same file) to HyperLogLog ``registers``."""
    import numpy as np

    idx = (h >> np.uint64(64 - HLL_P)).astype(np.int64)
    w = (h << np.uint64(HLL_P)) | np.uint64(1 << (HLL_P - 1))
    # The register takes the position of the first 1 bit of ``w`` (1 for the top bit). Its exponent, read
    # from ``w >> 11`` (below 2**53, so exact as a float64; the guard bit keeps it above 4), is that
    # position's complement; a float of ``w`` itself could round up to 2**64.
    rank = 54 - np.frexp((w >> np.uint64(11)).astype(np.float64))[1]
    np.maximum.at(registers, idx, rank.astype(np.uint8))


def _short(v: str | None) -> str | None:
    if v is None or len(v) <= MAX_SHOWN:
        return v
    return v[:MAX_SHOWN] + "…"


def load_profile(run_dir: Path) -> dict:
    """The stored profile of a run's extract stage (recomputed if the file is missing)."""
    from crmbridge.migrations.extracted import STAGE, load_manifest

    p = Path(run_dir) / STAGE / "profile.json"
    if p.is_file():
        return json.loads(p.read_text("utf-8"))
    return profile_dir(Path(run_dir) / STAGE, load_manifest(run_dir))
