"""The streaming profile: exact on small columns, bounded (estimated) on large ones."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from crmbridge.migrations import profile as prof


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
