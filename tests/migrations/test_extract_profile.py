"""The streaming profile: exact on small columns, bounded (estimated) on large ones; the Arrow
statistics give the same figures as the per-value Python statistics they replaced (kept below)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmbridge.migrations import profile as prof

DATA = Path(__file__).parent.parent / "data"


def write(path, columns: dict[str, list]) -> None:
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), path)


def test_exact_profile_across_files_with_different_columns(tmp_path):
    write(tmp_path / "a.parquet", {"no": ["C1", "Ｃ2", " C3", None], "status": ["活跃", "活跃", None, "<b>x</b>"]})
    write(tmp_path / "b.parquet", {"no": ["C1", "C4\x00"], "balance": ["1", "2"]})
    p = prof.profile_entity([tmp_path / "a.parquet", tmp_path / "b.parquet"], ["a", "b"], batch_rows=3)
    assert p["rows"] == 6
    no, status, balance = p["columns"]["no"], p["columns"]["status"], p["columns"]["balance"]
    assert (no["nulls"], no["distinct"], no["top"][0]) == (1, 4, ["C1", 2])
    assert no["suspicious"] == {"full_width": 1, "leading_trailing_space": 1, "html_like": 0,
                                "control_chars": 1, "replacement_char": 0}
    assert (no["min_length"], no["max_length"]) == (2, 3)
    assert status["nulls"] == 3 and status["suspicious"]["html_like"] == 1 and status["top"][0] == ["活跃", 2]
    assert balance["nulls"] == 4 and balance["null_pct"] == 66.67  # absent in a.parquet


def test_large_columns_switch_to_bounded_estimates(tmp_path, monkeypatch):
    monkeypatch.setattr(prof, "EXACT_DISTINCT", 1_000)
    monkeypatch.setattr(prof, "TOP_TRACKED", 2_000)
    n = 60_000
    values = [f"C{i:07d}" for i in range(n)] + ["HOT"] * 500
    write(tmp_path / "big.parquet", {"no": values})
    p = prof.profile_entity([tmp_path / "big.parquet"], ["big"], batch_rows=5_000)
    col = p["columns"]["no"]
    assert col["distinct_approximate"] and col["top_approximate"]
    assert abs(col["distinct"] - (n + 1)) < 0.03 * n
    assert col["top"][0] == ["HOT", 500]


# ---------------------------------------------------------------------------- the previous statistics

class OldColStats:
    """Streaming statistics of one string column; memory is bounded whatever the row count.

    Distinct values are counted exactly up to ``prof.EXACT_DISTINCT`` and estimated with HyperLogLog
    (about 1% error) above; top values are exact until ``prof.TOP_TRACKED`` different values have been
    seen, then the rarest are pruned (the result says ``approximate``).
    """

    def __init__(self, nulls: int = 0):
        import numpy as np

        self.nulls = nulls
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.patterns = {k: 0 for k in prof.PATTERNS}
        self.exact = np.empty(0, dtype=np.uint64)
        self._pending: list = []
        self._pending_n = 0
        self.hll = np.zeros(1 << prof.HLL_P, dtype=np.uint8)
        self.counts: dict[str, int] = {}
        self.approx_top = False

    def add(self, arr) -> None:
        import pyarrow.compute as pc

        self.nulls += arr.null_count
        valid = pc.drop_null(arr)
        if not len(valid):
            return
        mm = pc.min_max(pc.utf8_length(valid))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        self.min_len = lo if self.min_len is None else min(self.min_len, lo)
        self.max_len = hi if self.max_len is None else max(self.max_len, hi)
        for key, pattern in prof.PATTERNS.items():
            self.patterns[key] += int(pc.sum(pc.match_substring_regex(valid, pattern)).as_py() or 0)
        vc = pc.value_counts(valid)
        values = vc.field("values").to_pylist()
        self._count(values, vc.field("counts").to_numpy())
        self._distinct(values)

    def _count(self, values: list, counts) -> None:
        d = self.counts
        if self.approx_top:  # values seen once in a batch cannot climb into the top any more
            for i in (counts > 1).nonzero()[0].tolist():
                d[values[i]] = d.get(values[i], 0) + int(counts[i])
        else:
            for v, c in zip(values, counts.tolist()):
                d[v] = d.get(v, 0) + c
        if len(d) > prof.TOP_TRACKED:
            import heapq

            self.counts = dict(heapq.nlargest(prof.TOP_TRACKED // 10, d.items(), key=lambda kv: kv[1]))
            self.approx_top = True

    def _distinct(self, values: list) -> None:
        import numpy as np
        import pyarrow as pa

        from crmbridge.migrations.arrow_bytes import hash64

        # The one change to the previous statistics: the hash of the profile, no longer Python's (salted
        # per process); test_arrow_bytes.py checks it against a per-value version and the exact counts.
        h = hash64(pa.array(values, pa.string()))
        if self.exact is not None:
            self._pending.append(h)
            self._pending_n += len(h)
            if self._pending_n > prof.EXACT_DISTINCT:
                self._settle()
        idx = (h >> np.uint64(64 - prof.HLL_P)).astype(np.int64)
        w = (h << np.uint64(prof.HLL_P)) | np.uint64(1 << (prof.HLL_P - 1))
        rank = (64 - np.floor(np.log2(w.astype(np.float64)))).astype(np.uint8)
        np.maximum.at(self.hll, idx, rank)

    def _settle(self) -> None:
        import numpy as np

        if self.exact is None:
            return
        self.exact = np.unique(np.concatenate([self.exact, *self._pending]))
        self._pending, self._pending_n = [], 0
        if len(self.exact) > prof.EXACT_DISTINCT:
            self.exact = None

    def _estimate(self) -> int:
        import numpy as np

        m = float(len(self.hll))
        est = (0.7213 / (1 + 1.079 / m)) * m * m / float(np.sum(np.power(2.0, -self.hll.astype(np.float64))))
        zeros = int(np.count_nonzero(self.hll == 0))
        if est <= 2.5 * m and zeros:
            est = m * np.log(m / zeros)
        return int(round(est))

    def result(self, rows: int) -> dict:
        self._settle()
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:prof.TOP]
        return {"nulls": self.nulls, "null_pct": round(100.0 * self.nulls / rows, 2) if rows else 0.0,
                "distinct": len(self.exact) if self.exact is not None else self._estimate(),
                "distinct_approximate": self.exact is None,
                "top": [[prof._short(v), c] for v, c in top], "top_approximate": self.approx_top,
                "min_length": self.min_len, "max_length": self.max_len, "suspicious": dict(self.patterns)}


def profile_with(stats_class, files: list[Path], batch_rows: int) -> dict:
    """``profile_entity`` with another statistics class (the loop is the same)."""
    real = prof._ColStats
    prof._ColStats = stats_class
    try:
        return prof.profile_entity(files, ["x"], batch_rows)
    finally:
        prof._ColStats = real


def extracted_parquet(tmp_path) -> list[Path]:
    """The demo project and every CSV under tests/data, extracted."""
    import sys

    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.migrations.extract import run_extract
    from crmbridge.templates.commands import init_project

    sys.path.insert(0, str(Path(__file__).parent))
    from test_extract_arrow import every_test_csv_project

    init_project(tmp_path / "demo")
    write_demo_data(tmp_path / "demo", customers=3000, erp=False)
    (tmp_path / "tests").mkdir()
    every_test_csv_project(tmp_path / "tests")
    out = []
    for root in (tmp_path / "demo", tmp_path / "tests"):
        out += sorted(Path(run_extract(load_project(root)).extract_dir).rglob("*.parquet"))
    return out


@pytest.mark.parametrize("limits", [None, (500, 300)], ids=["exact", "estimated"])
def test_arrow_statistics_equal_the_previous_ones(tmp_path, monkeypatch, limits):
    if limits:  # small limits: the demo's columns go through the approximate top and HyperLogLog too
        monkeypatch.setattr(prof, "EXACT_DISTINCT", limits[0])
        monkeypatch.setattr(prof, "TOP_TRACKED", limits[1])
    files = extracted_parquet(tmp_path)
    assert len(files) > 15
    seen_approx = False
    for f in files:
        for batch_rows in (50_000, 700):
            new, old = profile_with(prof._ColStats, [f], batch_rows), profile_with(OldColStats, [f], batch_rows)
            assert new == old, f.name
            seen_approx |= any(c["distinct_approximate"] or c["top_approximate"] for c in new["columns"].values())
    demo = [f for f in files if "demo" in str(f)]
    both = profile_with(prof._ColStats, demo, 997), profile_with(OldColStats, demo, 997)
    assert both[0] == both[1] and both[0]["rows"] > 5000
    assert seen_approx == bool(limits)
