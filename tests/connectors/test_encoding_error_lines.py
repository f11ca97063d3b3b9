"""The line and byte offset of an undecodable byte: ``decoded_text`` counts the lines before it only when
it fails (not in every block); the figures must be those of the text decoded up to the bad byte, across
block boundaries, BOMs, CRLF and CR line ends, and a sequence cut off at the end of the file."""

import random

import pytest

from crmbridge.connectors import encoding as enc
from crmbridge.errors import UsageError

BAD = {"utf-8": [b"\xff", b"\xe5\x8f", b"\xc0\xaf"], "gb18030": [b"\xff", b"\x81\x20", b"\x80"],
       "big5": [b"\xff", b"\xa4\x20"], "utf-16-le": [b"\x00\xdc", b"\x00\xd8a\x00"]}
TEXT = ["a", "Z", ";", "\n", "\r\n", "\r", "客", "户", "Ｃ", "　", "é", "\"", " "]


def expected(data: bytes, det: enc.Detected) -> str:
    """``line L, byte offset O``: from one strict decoding of the whole file (the reference)."""
    with pytest.raises(UnicodeDecodeError) as ei:
        data[det.bom:].decode(det.encoding)
    bad = det.bom + ei.value.start
    return f"line {data[det.bom:bad].decode(det.encoding).count(chr(10)) + 1}, byte offset {bad}:"


def encodes(c: str, encoding: str) -> bool:
    try:
        return bool(c.encode(encoding))
    except UnicodeEncodeError:
        return False


def cases(rnd: random.Random):
    for encoding, bads in BAD.items():
        for bom in (b"", b"\xef\xbb\xbf") if encoding == "utf-8" else (b"\xff\xfe",) if encoding == "utf-16-le" \
                else (b"",):
            for _ in range(40):
                chars = [c for c in TEXT if encodes(c, encoding)]
                text = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 60)))
                bad = rnd.choice(bads)
                at_end = rnd.random() < 0.2 and len(bad) > 1 and encoding != "utf-16-le"
                tail = "" if at_end else "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 20)))
                data = bom + text.encode(encoding) + (bad[:1] if at_end else bad) + tail.encode(encoding)
                yield data, enc.Detected(encoding, len(bom), "declared")


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_error_names_the_line_and_offset_of_the_bad_byte(tmp_path, monkeypatch, block):
    monkeypatch.setattr(enc, "BLOCK", block)
    p = tmp_path / "f.csv"
    for data, det in cases(random.Random(block)):
        p.write_bytes(data)
        with pytest.raises(UsageError) as ei:
            list(enc.decoded_text(p, det, "f.csv"))
        assert str(ei.value).startswith(f"f.csv: {expected(data, det)} bytes "), (data, det, str(ei.value))
