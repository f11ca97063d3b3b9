"""CSV/TXT sources against the case files in tests/data/extract (named after their defect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmbridge.config import CsvSource
from crmbridge.connectors.encoding import detect_encoding
from crmbridge.connectors.files import read_csv, sniff_delimiter
from crmbridge.errors import UsageError

CASES = Path(__file__).parent.parent / "data" / "extract"
RENAME = {"客户编号": "customer_no", "客户名称": "name", "城市": "city", "电话": "phone"}
EXPECTED = [
    ["C000001", "上海明远贸易有限公司", "上海", "021-6234 5678"],
    ["Ｃ000002", "北京华信科技股份有限公司", "北京", "（010）88886666"],
    ["C000003", "深圳市腾达电子有限公司", "深圳", "+86 138 0013 8000"],
]


def src(path: str, **kw) -> CsvSource:
    return CsvSource(type="csv", name="s", entity="customers", path=path, **kw)


def consume(read):
    kept, rejected = [], []
    for line, cells, bad in read.events:
        if bad is None:
            kept.append((line, cells))
        else:
            rejected.append((line, bad[0], bad[1]))
    return kept, rejected


def extract_case(name: str, **kw):
    read = read_csv(src(name, **kw), CASES / name, name)
    return read, *consume(read)


@pytest.mark.parametrize("name, encoding, delimiter", [
    ("csv__utf8_plain.csv", "utf-8", ","),
    ("csv__utf8_bom_crlf.csv", "utf-8", ","),
    ("csv__gb18030_semicolon.csv", "gb18030", ";"),
    ("csv__utf16_bom_tab.txt", "utf-16-le", "\t"),
    ("csv__utf16le_no_bom.csv", "utf-16-le", ","),
    ("csv__cr_only_line_endings.csv", "utf-8", ","),
])
def test_every_encoding_and_line_ending_gives_the_same_rows(name, encoding, delimiter):
    read, kept, rejected = extract_case(name, columns=RENAME)
    assert (read.encoding, read.delimiter) == (encoding, delimiter)
    assert read.columns == ["customer_no", "name", "city", "phone"]  # BOM not glued to the first header
    assert [c for _, c in kept] == EXPECTED
    assert [ln for ln, _ in kept] == [2, 3, 4]
    assert rejected == []
    assert len(read.sha256) == 64


def test_big5_is_not_mistaken_for_gb18030():
    # Every Big5 byte sequence is valid GB18030: the strict step alone would give mojibake.
    read, kept, _ = extract_case("csv__big5_traditional.csv")
    assert read.encoding == "big5"
    assert read.columns == ["客戶編號", "客戶名稱", "城市", "電話"]
    assert kept[0][1][1] == "台灣積體電路製造股份有限公司"


def test_encoding_can_be_overridden(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("id,name\n1,Müller\n".encode("latin-1"))
    read = read_csv(src(str(p), encoding="latin-1"), p, "latin.csv")
    assert consume(read)[0] == [(2, ["1", "Müller"])]
    # gbk is always read as its superset gb18030, so rare characters outside GBK still decode
    p2 = tmp_path / "rare.csv"
    p2.write_bytes("id,name\n1,𠮷野家\n".encode("gb18030"))
    read = read_csv(src(str(p2)), p2, "rare.csv", encoding="gbk")
    assert read.encoding == "gb18030" and consume(read)[0][0][1] == ["1", "𠮷野家"]


def test_undecodable_byte_names_file_line_and_offset():
    name = "csv__undecodable_byte.csv"
    with pytest.raises(UsageError) as ei:
        consume(read_csv(src(name), CASES / name, name))
    msg = str(ei.value)
    offset = (CASES / name).read_bytes().index(b"\xff")
    assert f"{name}: line 3, byte offset {offset}: bytes ff are not valid" in msg
    assert "--encoding" in msg


def test_declared_encoding_that_does_not_fit_is_a_usage_error():
    name = "csv__gb18030_semicolon.csv"
    with pytest.raises(UsageError, match=r"line 1, byte offset 0: .* not valid utf-8"):
        consume(read_csv(src(name, encoding="utf-8"), CASES / name, name))


def test_ragged_rows_are_rejected_with_line_and_reason():
    read, kept, rejected = extract_case("csv__ragged_rows.csv")
    assert [ln for ln, _ in kept] == [2, 5]
    assert [(ln, reason) for ln, reason, _ in rejected] == [
        (3, "too_few_fields (2 instead of 4)"), (4, "too_many_fields (5 instead of 4)")]
    assert rejected[1][2] == "C000003,多,余,的,字段\n"  # the raw record text, untouched


def test_unterminated_quote_rejects_one_line_and_parsing_resumes():
    _, kept, rejected = extract_case("csv__unterminated_quote.csv")
    assert [(ln, reason) for ln, reason, _ in rejected] == [(3, "unterminated_quote")]
    assert [ln for ln, _ in kept] == [2, 4]
    assert kept[1][1][0] == "C000003"


def test_unterminated_quote_in_a_long_file_does_not_swallow_the_rest(tmp_path, monkeypatch):
    import crmbridge.connectors.csv_rows as csv_rows

    monkeypatch.setattr(csv_rows, "MAX_RECORD_LINES", 50)
    p = tmp_path / "long.csv"
    p.write_text("id,name\n1,\"open\n" + "".join(f"{i},n{i}\n" for i in range(2, 500)), "utf-8")
    read = read_csv(src(str(p)), p, "long.csv")
    kept, rejected = consume(read)
    assert [(ln, r) for ln, r, _ in rejected] == [(2, "unterminated_quote")]
    assert len(kept) == 498 and kept[0] == (3, ["2", "n2"]) and kept[-1] == (500, ["499", "n499"])


def test_malformed_quotes_are_rejected_not_altered():
    _, kept, rejected = extract_case("csv__malformed_quotes.csv")
    assert [(ln, r.split(" (")[0]) for ln, r, _ in rejected] == [(2, "malformed_quotes")]
    assert [ln for ln, _ in kept] == [3]


def test_bare_carriage_return_in_an_unquoted_field_is_rejected():
    _, kept, rejected = extract_case("csv__bare_carriage_return.csv")
    assert [(ln, r) for ln, r, _ in rejected] == [(2, "bare_carriage_return")]
    assert rejected[0][2] == "C000001,上海\r明远,上海,1\n" and [ln for ln, _ in kept] == [3]


def test_utf8_with_one_bad_byte_is_an_error_not_mojibake():
    name = "csv__utf8_with_one_bad_byte.csv"
    data = (CASES / name).read_bytes()
    offset = data.index("深".encode("gb18030"))
    with pytest.raises(UsageError, match=rf"line 4, byte offset {offset}: bytes c9 "):
        consume(read_csv(src(name), CASES / name, name))


def test_quoted_newlines_keep_the_starting_line_number():
    _, kept, _ = extract_case("csv__quoted_newlines.csv")
    assert kept[0] == (2, ["C000001", "上海明远\n贸易有限公司", "上海", 'a "b" c'])
    assert kept[1][0] == 4


def test_blank_and_duplicate_headers_are_named_and_noted():
    read, kept, _ = extract_case("csv__blank_and_duplicate_headers.csv")
    assert read.columns == ["客户编号", "_col2", "电话", "电话__2", "城市"]
    assert kept == [(2, ["C000001", "x", "1", "2", "上海"])]
    assert any("duplicate header '电话'" in n for n in read.notes)
    assert any("blank header in column 2" in n for n in read.notes)


def test_trailing_delimiters_are_tolerated():
    read, kept, rejected = extract_case("csv__trailing_delimiters.csv")
    assert read.columns == ["客户编号", "客户名称"]
    assert kept == [(2, ["C000001", "甲"]), (3, ["C000002", "乙"]), (4, ["C000003", "丙"])]
    assert rejected == []
    assert any("trailing delimiter" in n for n in read.notes)


def test_embedded_nul_is_kept():
    _, kept, _ = extract_case("csv__embedded_nul.csv")
    assert kept[0][1][1] == "上海\x00明远"


def test_blank_lines_are_counted_not_rows():
    read, kept, rejected = extract_case("csv__pipe_delimiter_blank_lines.txt")
    assert read.delimiter == "|"
    assert kept == [(4, ["C000001", "甲", "上海", "1"]), (7, ["C000002", "乙", "北京", "2"])]
    assert rejected == [] and read.skipped_blank == 4


def test_preamble_above_the_header_row():
    read, kept, _ = extract_case("csv__preamble_header_row3.csv", header_row=3, columns=RENAME)
    assert read.encoding == "gb18030" and read.columns[0] == "customer_no"
    assert [c for _, c in kept] == EXPECTED and kept[0][0] == 4


def test_very_long_field(tmp_path):
    p = tmp_path / "long_field.csv"
    big = "长" * 500_000
    p.write_text(f'id,note\n1,"{big}"\n2,x\n', "utf-8")
    kept, rejected = consume(read_csv(src(str(p)), p, "long_field.csv"))
    assert kept[0][1][1] == big and kept[1] == (3, ["2", "x"]) and rejected == []


def test_missing_file_and_missing_columns_name_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="source s: file data/nope.csv not found"):
        read_csv(src("data/nope.csv"), tmp_path / "data/nope.csv", "data/nope.csv")
    name = "csv__utf8_plain.csv"
    with pytest.raises(UsageError, match="'邮箱' named in `columns:` not found"):
        read_csv(src(name, columns={"邮箱": "email"}), CASES / name, name)
    with pytest.raises(UsageError, match="key column.*credit_code"):
        read_csv(src(name, key=["credit_code"]), CASES / name, name)


def test_empty_file_is_a_usage_error(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    with pytest.raises(UsageError, match="no header row"):
        read_csv(src(str(p)), p, "empty.csv")


@pytest.mark.parametrize("delim", [",", ";", "\t", "|", "^", "\x1f"])
def test_delimiter_sniffing(delim):
    lines = [f"a{delim}b{delim}c\n", f"1{delim}\"x{delim}y\"{delim}3\n", f"4{delim}5{delim}6\n"]
    assert sniff_delimiter(lines, '"') == delim


def test_detection_reads_the_whole_file_not_just_the_head(tmp_path):
    # The first 64 KiB are pure ASCII; the GB18030 bytes only come later.
    p = tmp_path / "late.csv"
    p.write_bytes(("id,name\n" + "1,abc\n" * 20_000 + "2,上海\n").encode("gb18030"))
    assert detect_encoding(p).encoding == "gb18030"
