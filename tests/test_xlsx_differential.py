"""Issue 19 §3: `xlsx_reader.XlsxRows` (the streaming reader of every import) against openpyxl, on workbooks generated
by hypothesis and written by openpyxl (normal and write-only), XlsxWriter (shared strings, and inline strings in its
constant_memory mode), LibreOffice Calc (`soffice --convert-to xlsx`) and by hand (cells without `r`, the `r` after
other attributes, rich-text runs, phonetic runs, `xml:space`, raw CR/LF, character references, `_xHHHH_` escapes,
rows without `r`, the 1900 and 1904 date systems). Any difference is a failure.

The oracle is openpyxl's normal mode (`load_workbook`): it parses the sheet with a real XML parser (entities, line-end
normalisation) and places each cell by its reference or, lacking one, by counting — the rules XlsxRows must follow —
and it never depends on the `<dimension>` element. The read-only mode (streaming, like XlsxRows) must agree with it,
once told to ignore `<dimension>` (`reset_dimensions`), which it otherwise trusts to pad or cut rows.

XlsxRows gives each cell as the text the importer checks, so the comparison goes through this mapping (and nothing
else): a value is stripped; empty cells at a row's end and rows with no text are dropped; a number compares as a
number (XlsxRows keeps the stored digits, dropping a whole number's ".0"); a boolean is "1"/"0"; a date is its serial
number in the workbook's date system (the importer has no date column; the stored number is what it reads); and a
text goes through Excel's `_xHHHH_` escape, which Excel and LibreOffice read but openpyxl does not (only to the
characters XML can carry: NUL or U+FFFF would not reach the database).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import zipfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import openpyxl.reader.excel
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.cell.text import Text
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, to_excel
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

import xlsx_reader

#: generated workbooks per writer (each is written, read by openpyxl twice and by XlsxRows)
EXAMPLES = {"openpyxl": 50, "openpyxl_write_only": 30, "xlsxwriter_shared": 50, "xlsxwriter_inline": 50,
            "handwritten": 250}
LIBREOFFICE_WORKBOOKS = 8
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def bounded(examples: int) -> settings:
    """A fixed number of examples, the same on every run (CI reproduces a failure), none remembered."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=HEALTH)

# --- the values ------------------------------------------------------------------------------------------------------

#: what a registry's spreadsheet holds, and what breaks readers: XML's five, CR/LF, the ideographic space, emoji
#: (with a joiner), CJK outside the BMP, Excel's escape written literally, a number's ".0"
SNIPPETS = ("&", "<", ">", '"', "'", "&amp;", "&#13;", "\n", "\r\n", "\r", "\t", " ", "\u3000", "\xa0", "😀",
            "\U0001F468\u200d\U0001F469\u200d\U0001F467", "𠀀", "𪚥", "𫝀", "_x000D_", "_x005F_", "_x0041_", "_x0000_",
            ".0", "天津", "www.例子.中国", "0123")
PLAIN = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
TEXT = st.lists(st.one_of(st.text(PLAIN, max_size=6), st.sampled_from(SNIPPETS)), max_size=5).map("".join)
LONG = st.builds(lambda char, count: char * count, st.sampled_from("长a𪚥😀"), st.sampled_from([32_767, 3_000]))
NUMBER = st.one_of(st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False, width=64),
                   st.sampled_from([0, 1, -1, 13800138000, 0.1, 1e-7, 1e20, 123456789012.5]))
WHEN = st.one_of(st.datetimes(datetime(1904, 1, 2), datetime(9999, 12, 31)).map(lambda d: d.replace(microsecond=0)),
                 st.dates(date(1904, 1, 2), date(9999, 12, 31)))
VALUE = st.one_of(st.none(), st.none(), TEXT, TEXT.map(str.strip).filter(bool), NUMBER, st.booleans(), WHEN,
                  st.integers(0, 10**11).map(str))  # numbers stored as text
ROWS = st.lists(st.lists(VALUE, max_size=7), min_size=1, max_size=7)
#: a workbook: its rows (a None row is an empty row), the 1904 date system or not, and now and then a 32,767-character
#: cell at a random place
WORKBOOK = st.tuples(ROWS, st.booleans(), st.one_of(st.none(), st.tuples(LONG, st.integers(0, 6), st.integers(0, 6))))


def _rows(workbook: tuple[list[list[Any]], bool, Any]) -> list[list[Any]]:
    rows, _date_1904, long = workbook
    rows = [list(row) for row in rows]
    if long:
        text, row, column = long
        rows.extend([] for _ in range(row + 1 - len(rows)))
        rows[row].extend(None for _ in range(column + 1 - len(rows[row])))
        rows[row][column] = text
    return rows


# --- the mapping and the comparison ----------------------------------------------------------------------------------

def _xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code < 0xD800 or 0xE000 <= code <= 0xFFFD


def _excel_unescape(text: str) -> str:
    return re.sub(r"_x([0-9A-Fa-f]{4})_",
                  lambda found: chr(int(found.group(1), 16)) if _xml_char(int(found.group(1), 16)) else found.group(0),
                  text)


def _same(actual: str, oracle: Any, epoch: datetime) -> bool:
    """The mapping of the module docstring, one cell."""
    if oracle is None:
        return actual == ""
    if isinstance(oracle, bool):
        return actual == ("1" if oracle else "0")
    if isinstance(oracle, (datetime, date, time, timedelta)):
        return abs(float(actual) - to_excel(oracle, epoch)) < 1e-8
    if isinstance(oracle, (int, float)):
        return not actual.endswith(".0") and float(actual) == float(oracle)
    return actual == _excel_unescape(str(oracle)).strip()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not _excel_unescape(value).strip())


def _string_table(source: Any) -> list[str]:
    """openpyxl's shared strings without its `text.replace("x005F_", "")`: that half of Excel's unescape deletes
    "x005F_" wherever it stands (a text holding it literally loses it) and leaves every other `_xHHHH_`; the mapping
    applies the whole unescape to every text, shared or inline, instead."""
    strings = []
    for _event, node in iterparse(source):
        if node.tag == f"{{{SHEET_MAIN_NS}}}si":
            strings.append(Text.from_tree(node).content)
            node.clear()
    return strings


@pytest.fixture(autouse=True)
def _raw_shared_strings(monkeypatch) -> None:
    monkeypatch.setattr(openpyxl.reader.excel, "read_string_table", _string_table)


def _oracle(path: Path, read_only: bool) -> tuple[list[tuple[int, list[Any]]], datetime]:
    workbook = load_workbook(path, read_only=read_only)
    sheet = workbook.worksheets[0]
    if read_only:
        sheet.reset_dimensions()  # read every row the XML has, whatever <dimension> says
    rows = []
    for cells in sheet.iter_rows():
        values = [getattr(cell, "value", None) for cell in cells]
        number = next((cell.row for cell in cells if getattr(cell, "row", None)), None)
        while values and _blank(values[-1]):
            values.pop()
        if values and not all(_blank(value) for value in values):
            rows.append((number, values))
    workbook.close()
    return rows, workbook.epoch


def _read(path: Path) -> list[tuple[int, list[str]]]:
    rows = []
    for number, cells in xlsx_reader.XlsxRows(path):
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            rows.append((number, cells))
    return rows


def assert_agree(path: Path) -> int:
    """XlsxRows and both openpyxl modes agree on every cell (through the mapping); the cells compared."""
    actual = _read(path)
    expected, epoch = _oracle(path, read_only=False)
    streamed, _epoch = _oracle(path, read_only=True)
    assert [(n, [repr(v) for v in row]) for n, row in streamed] == [(n, [repr(v) for v in row]) for n, row in expected]
    assert [number for number, _cells in actual] == [number for number, _cells in expected], path
    for (number, cells), (_number, values) in zip(actual, expected, strict=True):
        assert len(cells) == len(values), (path, number, cells, values)
        for column, (cell, value) in enumerate(zip(cells, values, strict=True)):
            assert _same(cell, value, epoch), (path, f"{get_column_letter(column + 1)}{number}", cell, value)
    return sum(len(cells) for _number, cells in actual)


# --- the writers -----------------------------------------------------------------------------------------------------

def write_openpyxl(path: Path, rows: list[list[Any]], date_1904: bool, write_only: bool = False) -> None:
    workbook = Workbook(write_only=write_only)
    workbook.epoch = CALENDAR_MAC_1904 if date_1904 else CALENDAR_WINDOWS_1900
    sheet = workbook.create_sheet() if write_only else workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def write_xlsxwriter(path: Path, rows: list[list[Any]], date_1904: bool, inline: bool) -> None:
    """Shared strings by default; `constant_memory` writes every text as an inline string (rows in order)."""
    workbook = xlsxwriter.Workbook(str(path), {
        "constant_memory": inline, "date_1904": date_1904, "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False})
    sheet, when = workbook.add_worksheet(), workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for number, row in enumerate(rows):
        for column, value in enumerate(row):
            if isinstance(value, bool):
                sheet.write_boolean(number, column, value)
            elif isinstance(value, (int, float)):
                sheet.write_number(number, column, value)
            elif isinstance(value, (datetime, date)):
                sheet.write_datetime(number, column, value, when)
            elif isinstance(value, str):
                sheet.write_string(number, column, value)
    workbook.close()


# --- hand-written XML: what writers outside the two libraries do ------------------------------------------------------

STYLES = ('<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
          '2006/main"><fonts count="1"><font><sz val="11"/></font></fonts><fills count="1"><fill><patternFill '
          'patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/>'
          '</cellStyleXfs><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="22" applyNumberFormat="1"/></cellXfs>'
          '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def _package(sheet: str, shared: list[str], date_1904: bool) -> bytes:
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
             'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
             'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
             'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
             '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
             'officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType='
             '"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/><Override PartName="/xl/'
             'sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
             'sharedStrings+xml"/></Types>')
    rel = '<Relationship Id="{}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{}" ' \
          'Target="{}"/>'
    parts = {
        "[Content_Types].xml": types,
        "_rels/.rels": f'<Relationships xmlns="{PACKAGE}">{rel.format("rId1", "officeDocument", "xl/workbook.xml")}'
                       "</Relationships>",
        "xl/workbook.xml": f'<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><workbookPr date1904="{int(date_1904)}"/>'
                           '<sheets><sheet name="数据" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PACKAGE}">'
                                      + rel.format("rId1", "worksheet", "worksheets/sheet1.xml")
                                      + rel.format("rId2", "styles", "styles.xml")
                                      + rel.format("rId3", "sharedStrings", "sharedStrings.xml") + "</Relationships>",
        "xl/styles.xml": STYLES,
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>'
                                    f"{sheet}</sheetData></worksheet>",
        "xl/sharedStrings.xml": f'<sst xmlns="{MAIN}" count="{len(shared)}" uniqueCount="{len(shared)}">'
                                + "".join(shared) + "</sst>",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text.encode())
    return buffer.getvalue()


def _escaped(text: str, style: int) -> str:
    """The text as some writer stores it: plain, every non-ASCII character as a reference, or Excel's way (a CR as
    `_x000D_`, a literal `_xHHHH_` guarded by `_x005F_`)."""
    if style == 1:
        return "".join(c if c.isascii() else f"&#x{ord(c):X};" for c in escape(text))
    if style == 2:
        text = re.sub(r"(_x[0-9A-Fa-f]{4}_)", r"_x005F\1", text).replace("\r", "_x000D_")
    return escape(text)


def _runs(text: str, style: int) -> str:
    """One `<t>`, or the text cut into rich runs (one bold) with a phonetic run that is not part of the value."""
    space = ' xml:space="preserve"' if text != text.strip() or style == 3 else ""
    if style != 4 or len(text) < 2:
        return f"<t{space}>{_escaped(text, style)}</t>"
    half = len(text) // 2
    return (f'<r><t xml:space="preserve">{_escaped(text[:half], 0)}</t></r><r><rPr><b/><sz val="11"/></rPr>'
            f'<t xml:space="preserve">{_escaped(text[half:], 0)}</t></r><rPh sb="0" eb="1"><t>ルビ</t></rPh>')


HAND_CELL = st.tuples(st.sampled_from(["r", "no_r", "r_last"]), st.sampled_from(["inline", "shared", "str"]),
                      st.integers(0, 4))


@st.composite
def handwritten(draw: st.DrawFn) -> tuple[bytes, int]:
    """A sheet from generated rows, each cell written in a generated way; the cells written."""
    rows, date_1904 = _rows(draw(WORKBOOK)), draw(st.booleans())
    epoch = CALENDAR_MAC_1904 if date_1904 else CALENDAR_WINDOWS_1900
    shared: list[str] = []
    xml, cells, number = [], 0, 0
    for row in rows:
        if draw(st.booleans()):  # a row that says its number, now and then after an empty row not written at all
            number += draw(st.integers(1, 2))
            xml.append(f'<row r="{number}">')
        else:  # a row without `r` is the one after the previous row
            number += 1
            xml.append("<row>")
        column = 0
        for value in row:
            column += 1
            reference, kind, style = draw(HAND_CELL)
            if value is None:
                continue
            ref = f"{get_column_letter(column)}{number}"
            if reference == "no_r" and column > 1 and row[column - 2] is None:
                reference = "r"  # a cell after a gap says where it is
            head = {"r": f'<c r="{ref}"', "no_r": "<c", "r_last": f'<c s="0" r="{ref}"'}[reference]
            cells += 1
            if isinstance(value, bool):
                xml.append(f'{head} t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, (datetime, date)):  # a date style, except on the cells whose style is 0
                style_attribute = "" if reference == "r_last" else ' s="1"'
                xml.append(f"{head}{style_attribute}><v>{to_excel(value, epoch)!r}</v></c>")
            elif isinstance(value, (int, float)):
                xml.append(f"{head}><v>{value!r}</v></c>")
            elif kind == "shared":
                shared.append(f"<si>{_runs(value, style)}</si>")
                xml.append(f'{head} t="s"><v>{len(shared) - 1}</v></c>')
            elif kind == "str" and style != 4:
                xml.append(f'{head} t="str"><v>{_escaped(value, style)}</v></c>')
            else:
                xml.append(f'{head} t="inlineStr"><is>{_runs(value, style)}</is></c>')
        xml.append("</row>")
    return _package("".join(xml), shared, date_1904), cells


# --- the tests -------------------------------------------------------------------------------------------------------

@pytest.fixture
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("differential")


@pytest.mark.parametrize("writer", ["openpyxl", "openpyxl_write_only", "xlsxwriter_shared", "xlsxwriter_inline"])
def test_xlsxrows_reads_what_openpyxl_reads_from_each_writer(workdir, writer) -> None:
    path, compared = workdir / f"{writer}.xlsx", []

    @bounded(EXAMPLES[writer])
    @given(WORKBOOK)
    def check(workbook) -> None:
        rows, date_1904 = _rows(workbook), workbook[1]
        if writer.startswith("openpyxl"):
            write_openpyxl(path, rows, date_1904, write_only=writer == "openpyxl_write_only")
        else:
            write_xlsxwriter(path, rows, date_1904, inline=writer == "xlsxwriter_inline")
        compared.append(assert_agree(path))

    check()
    assert len(compared) == EXAMPLES[writer] and sum(compared) > 5 * EXAMPLES[writer]


def test_xlsxrows_reads_hand_written_xml_as_openpyxl_does(workdir) -> None:
    """Cells without `r` or with it last, rows without `r`, rich and phonetic runs, `xml:space`, references,
    `_xHHHH_`, CR/LF, texts that look like numbers, both date systems."""
    path, compared, written = workdir / "hand.xlsx", [], []

    @bounded(EXAMPLES["handwritten"])
    @given(handwritten())
    def check(made) -> None:
        data, cells = made
        path.write_bytes(data)
        compared.append(assert_agree(path))
        written.append(cells)

    check()
    assert len(compared) == EXAMPLES["handwritten"] and sum(written) > 5 * EXAMPLES["handwritten"]


# --- LibreOffice: a few workbooks generated once per session with a fixed seed, converted in one call ---------------

def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.fixture(scope="session")
def libreoffice_files(tmp_path_factory) -> list[Path]:
    """CSV files of generated rows, converted to .xlsx by one `soffice --convert-to xlsx` call (~5 s)."""
    if not _soffice():
        if os.environ.get("REQUIRE_BROWSER_TESTS"):  # CI (.ci/run) installs LibreOffice Calc with Chromium
            pytest.fail("LibreOffice (soffice) is required in CI: apt-get install libreoffice-calc-nogui")
        pytest.skip("LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui")
    folder = tmp_path_factory.mktemp("libreoffice")
    sources: list[Path] = []

    @bounded(LIBREOFFICE_WORKBOOKS)
    @given(WORKBOOK)
    def generate(workbook) -> None:
        source = folder / f"generated{len(sources)}.csv"
        with source.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["" if v is None else v for v in row] for row in _rows(workbook)])
        sources.append(source)

    generate()
    subprocess.run([_soffice(), f"-env:UserInstallation=file://{folder}/profile", "--headless",
                    "--infilter=CSV:44,34,76,1", "--convert-to", "xlsx", "--outdir", str(folder),
                    *map(str, sources)], check=True, capture_output=True, timeout=180)
    return [source.with_suffix(".xlsx") for source in sources]


def test_xlsxrows_reads_what_openpyxl_reads_from_libreoffice(libreoffice_files) -> None:
    assert len(libreoffice_files) == LIBREOFFICE_WORKBOOKS
    compared = [assert_agree(path) for path in libreoffice_files]
    assert sum(compared) > 3 * LIBREOFFICE_WORKBOOKS
    with zipfile.ZipFile(libreoffice_files[-1]) as archive:  # LibreOffice's own writer, shared strings
        assert "LibreOffice" in archive.read("docProps/app.xml").decode()


# --- what the differential tests found (each a difference from openpyxl before issue 19), as fixed examples -----------

FOUND = [
    # the `r` after another attribute: the cell was dropped
    ('<row r="1"><c s="0" r="A1" t="inlineStr"><is><t>天津</t></is></c></row>', [(1, ["天津"])]),
    # cells and rows without `r`: the whole row was dropped
    ('<row><c t="inlineStr"><is><t>a</t></is></c><c><v>2</v></c></row><row><c r="C2"><v>3</v></c><c><v>4</v></c>'
     "</row>", [(1, ["a", "2"]), (2, ["", "", "3", "4"])]),
    # a shared string unescaped twice: "&amp" (stored &amp;amp) was read as "&", "&lt;" as "<"
    ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>', [(1, ["&amp", "&lt;"])]),
    # HTML's character references instead of XML's: &#128; was "€"
    ('<row r="1"><c r="A1" t="inlineStr"><is><t>&#128;&#x1F600;&#x20000;</t></is></c></row>', [(1, ["\x80😀𠀀"])]),
    # line ends as XML reads them: CRLF and CR are LF, each run on its own; &#13; stays a CR
    ('<row r="1"><c r="A1" t="inlineStr"><is><t>a\r\nb\rc&#13;d</t></is></c><c r="B1" t="inlineStr"><is><r><t>x\r'
     '</t></r><r><t>\ny</t></r></is></c></row>', [(1, ["a\nb\nc\rd", "x\n\ny"])]),
    # a text (t="str") ending in ".0" lost it
    ('<row r="1"><c r="A1" t="str"><v>v1.0</v></c><c r="B1"><v>12.0</v></c></row>', [(1, ["v1.0", "12"])]),
    # the phonetic run of an inline rich text was read as part of the value
    ('<row r="1"><c r="A1" t="inlineStr"><is><r><t>東</t></r><r><rPr><b/></rPr><t>京</t></r><rPh sb="0" eb="2">'
     "<t>トウキョウ</t></rPh></is></c></row>", [(1, ["東京"])]),
    # Excel's _xHHHH_: a pasted CR is _x000D_, a literal _x0041_ is _x005F_x0041_; NUL stays as written
    ('<row r="1"><c r="A1" t="inlineStr"><is><t>www.a.cn_x000D_\nwww.b.cn</t></is></c><c r="B1" t="inlineStr">'
     "<is><t>_x005F_x0041_ _x0000_</t></is></c></row>", [(1, ["www.a.cn\r\nwww.b.cn", "_x0041_ _x0000_"])]),
]


@pytest.mark.parametrize(("sheet", "rows"), FOUND)
def test_each_difference_found_stays_fixed(tmp_path, sheet, rows) -> None:
    path = tmp_path / "found.xlsx"
    path.write_bytes(_package(sheet, ["<si><t>&amp;amp</t></si>", "<si><r><t>&amp;</t></r><r><t>lt;</t></r></si>"],
                              date_1904=False))
    assert list(xlsx_reader.XlsxRows(path)) == rows
    assert_agree(path)


@pytest.mark.parametrize(("sheet", "message"), [
    ('<row r="1"><c r="a1"><v>1</v></c></row>', "单元格引用“a1”无效，文件已损坏。"),
    ('<row r="1"><c s="0" r="1A"><v>1</v></c></row>', "单元格引用“1A”无效，文件已损坏。"),
    ('<row r="x"><c><v>1</v></c></row>', "行号“x”无效，文件已损坏。"),
])
def test_a_malformed_reference_is_refused_not_skipped(tmp_path, sheet, message) -> None:
    """Before issue 19 a cell whose reference was not `[A-Z]+[0-9]+` was silently left out."""
    path = tmp_path / "malformed.xlsx"
    path.write_bytes(_package(sheet, [], date_1904=False))
    with pytest.raises(xlsx_reader.ImportRefused) as refused:
        list(xlsx_reader.XlsxRows(path))
    assert refused.value.message == message
