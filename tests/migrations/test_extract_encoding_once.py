"""The extract stage decodes a CSV file once: its encoding is detected on the first block
(``encoding.BLOCK``) and confirmed while the file is read, where it used to be detected on the whole
file (a full decoding) before the file was decoded again to be read. Files larger than a block give
exactly what the whole-file detection gave (Parquet, rejects byte for byte, manifest, profile, the
same error), including the files where the first block decodes and a later one does not, which are
read again with the encoding the whole-file detection chooses."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import crmbridge.connectors.encoding as enc
import crmbridge.migrations.extract as ex
from crmbridge.config import load_project
from crmbridge.errors import UsageError

ROWS = 25_000  # about 1.4 MB in GB18030: more than one block


def _rows(n: int, city: str = "上海", name: str = "明远贸易有限公司") -> list[str]:
    out = []
    for i in range(1, n + 1):
        addr = f'"浦东新区世纪大道{i}号\n2号楼"' if i % 211 == 0 else f"世纪大道{i}号"  # quoted newlines
        out.append(f"C{i:07d};{city}{name};{addr};{city};0{i % 9}" if i % 997 else f"C{i:07d};坏行")  # ragged
    return out


HEADER = "客户编号;客户名称;地址;城市;级别"


def _cases() -> dict[str, bytes]:
    gb = (HEADER + "\r\n" + "\r\n".join(_rows(ROWS)) + "\r\n").encode("gb18030")
    utf = (HEADER + "\r\n" + "\r\n".join(_rows(ROWS)) + "\r\n").encode("utf-8")
    # past the text the Arrow path parses at a time, so rows reach the profile before the retry
    ascii_first = ("customer_no;name;address;city;level\r\n"
                   + "\r\n".join(f"C{i:07d};Acme {i};Main St {i};Shanghai;0{i % 9}" for i in range(1, 130_000))
                   + "\r\n").encode("ascii") + ("\r\n".join(_rows(50)) + "\r\n").encode("gb18030")
    big5 = ("客戶編號;客戶名稱;地址;城市;級別\r\n"
            + "\r\n".join(f"C{i:07d};臺灣銀行股份有限公司;信義區世紀大道{i}號;臺北;0{i % 9}" for i in range(1, 2 * ROWS))
            + "\r\n").encode("big5")
    return {
        "gb18030": gb,
        "utf8": utf,
        "gb18030_bad_byte_late": gb[:1_200_000] + b"\xff" + gb[1_200_000:],
        "utf8_then_gb18030_late": utf + ("\r\n".join(_rows(20)) + "\r\n").encode("gb18030"),
        "ascii_first_block_then_gb18030": ascii_first,
        "big5": big5,
    }


def _project(root: Path, data: bytes):
    (root / "data").mkdir(parents=True)
    (root / "data" / "c.csv").write_bytes(data)
    (root / "crmbridge.yml").write_text(
        "name: t\nchunk_rows: 5000\nsources:\n  - name: s\n    entity: e\n    department: d\n    type: csv\n"
        "    path: data/c.csv\n", "utf-8")
    return load_project(root)


def _outcome(project, quick: bool, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(ex, "QUICK_DETECTION", quick)
        try:
            res = ex.run_extract(project, full=True)
        except UsageError as exc:
            return "error", str(exc), exc.hint
    d = Path(res.extract_dir)
    s = res.sources[0]
    manifest = json.loads((d / "manifest.json").read_text("utf-8"))
    profile = json.loads((d / "profile.json").read_text("utf-8"))
    manifest.pop("run_id"), profile.pop("run_id")
    return (s.as_dict(), pq.read_table(d / s.parquet), (d / s.reject_file).read_bytes() if s.reject_file else None,
            manifest, profile, [p.name for p in d.rglob("*")])


@pytest.mark.parametrize("case", sorted(_cases()))
def test_detection_on_the_first_block_gives_the_whole_file_result(case, tmp_path, monkeypatch):
    data = _cases()[case]
    assert len(data) > enc.BLOCK
    project = _project(tmp_path / case, data)
    whole = _outcome(project, False, monkeypatch)
    calls = []
    real = enc.detect_encoding
    monkeypatch.setattr(enc, "detect_encoding", lambda path, whole=True: calls.append(whole) or real(path, whole))
    quick = _outcome(project, True, monkeypatch)
    assert calls[0] is False  # the quick detection was used
    if whole[0] == "error":
        assert quick == whole
        assert not list(project.runs_dir.rglob("*.parquet"))
        return
    assert quick[0] == whole[0]
    assert quick[1].equals(whole[1]) and quick[1].schema == whole[1].schema
    assert quick[2:] == whole[2:]
    # files whose first block decodes but not the rest were read twice (the second time on the whole-file choice)
    assert (len(calls) == 2) == (case in ("gb18030_bad_byte_late", "utf8_then_gb18030_late",
                                          "ascii_first_block_then_gb18030"))


def test_a_file_of_one_block_is_detected_whole(tmp_path):
    p = tmp_path / "small.csv"
    p.write_bytes((HEADER + "\r\n" + "\r\n".join(_rows(100))).encode("gb18030") + b"\xff")
    assert enc.detect_encoding(p, whole=False) == enc.detect_encoding(p)
    assert not enc.detect_encoding(p, whole=False).tentative
