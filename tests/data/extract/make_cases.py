"""Regenerate the extract case files: `python tests/data/extract/make_cases.py`.

Each file is named after the defect it exercises; the tests in tests/connectors/test_files*.py and
tests/migrations/test_extract*.py state what crmbridge must make of it.
"""

from pathlib import Path

HERE = Path(__file__).parent

HEADER = "客户编号,客户名称,城市,电话\n"
ROWS = [
    "C000001,上海明远贸易有限公司,上海,021-6234 5678\n",
    "Ｃ000002,北京华信科技股份有限公司,北京,（010）88886666\n",
    "C000003,深圳市腾达电子有限公司,深圳,+86 138 0013 8000\n",
]
TRAD = "客戶編號,客戶名稱,城市,電話\nC000001,台灣積體電路製造股份有限公司,新竹,03-5636688\n" \
       "C000002,鴻海精密工業股份有限公司,新北,02-22683466\nC000003,聯發科技股份有限公司,新竹,03-5670766\n"

# Everything at once, as an old CRM's export tends to arrive: GB18030, CRLF, ';', trailing delimiters,
# a duplicate and a blank header, blank lines, a row of only delimiters, an embedded NUL, a quoted
# newline, a ragged row, a malformed quote, a long field and an unterminated quote on the last record.
MESSY = "\r\n".join([
    " 客户编号 ;客户名称;电话;电话;;城市;",
    "C000001;上海明远贸易有限公司;021-1;021-2;x;上海;",
    "",
    "Ｃ000002;\"北京\r\n华信\";010-1;;;北京;",
    ";;;;;;",
    "   ",
    "C000003;深圳\x00腾达;0755;;;深圳",
    "C000004;多余字段;1;2;3;4;5;6",
    "C000005;\"引号\"错;1;2;3;4;",
    "C000006;" + "长" * 100_000 + ";1;2;3;4;",
    "C000007;\"没有结束的引号;1;2;3;4;",
    "C000008;最后一行;1;2;3;杭州;",
]) + "\r\n"


def cases() -> dict[str, bytes]:
    text = HEADER + "".join(ROWS)
    return {
        "csv__utf8_plain.csv": text.encode("utf-8"),
        "csv__utf8_bom_crlf.csv": b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"),
        "csv__gb18030_semicolon.csv": text.replace(",", ";").encode("gb18030"),
        "csv__big5_traditional.csv": TRAD.encode("big5"),
        "csv__utf16_bom_tab.txt": text.replace(",", "\t").encode("utf-16"),
        "csv__utf16le_no_bom.csv": text.encode("utf-16-le"),
        "csv__undecodable_byte.csv": (HEADER + ROWS[0]).encode("utf-8") + b"C000002,\xff\xfe bad,x,y\n",
        "csv__ragged_rows.csv": (HEADER + ROWS[0] + "C000002,短行\n" + "C000003,多,余,的,字段\n"
                                 + ROWS[2]).encode("utf-8"),
        "csv__unterminated_quote.csv": (HEADER + ROWS[0] + 'C000002,"未闭合的引号,北京,1\n'
                                        + ROWS[2]).encode("utf-8"),
        "csv__quoted_newlines.csv": (HEADER + 'C000001,"上海明远\n贸易有限公司",上海,"a ""b"" c"\n'
                                     + ROWS[1]).encode("utf-8"),
        "csv__blank_and_duplicate_headers.csv": ("客户编号,,电话,电话, 城市 \n"
                                                 "C000001,x,1,2,上海\n").encode("utf-8"),
        "csv__trailing_delimiters.csv": ("客户编号;客户名称;\nC000001;甲;\nC000002;乙;;\n"
                                         "C000003;丙\n").encode("gb18030"),
        "csv__embedded_nul.csv": (HEADER + "C000001,上海\x00明远,上海,1\n").encode("utf-8"),
        "csv__pipe_delimiter_blank_lines.txt": ("\n客户编号|客户名称|城市|电话\n\nC000001|甲|上海|1\n"
                                                "||||\n\nC000002|乙|北京|2\n\n").encode("utf-8"),
        "csv__preamble_header_row3.csv": ("导出时间: 2023-01-05 \"系统A\n导出人: admin\n" + text).encode("gb18030"),
        "csv__cr_only_line_endings.csv": text.replace("\n", "\r").encode("utf-8"),
        "csv__bare_carriage_return.csv": (HEADER + "C000001,上海\r明远,上海,1\n" + ROWS[1]).encode("utf-8"),
        "csv__utf8_with_one_bad_byte.csv": (HEADER + "".join(ROWS)).encode("utf-8").replace(
            "深".encode("utf-8"), "深".encode("gb18030"), 1),
        "csv__messy_legacy_export.csv": MESSY.encode("gb18030"),
        "csv__malformed_quotes.csv": (HEADER + 'C000001,"甲"乙,上海,1\n' + ROWS[1]).encode("utf-8"),
    }


if __name__ == "__main__":
    for name, data in cases().items():
        (HERE / name).write_bytes(data)
        print(name, len(data))
