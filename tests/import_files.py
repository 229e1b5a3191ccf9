"""Spreadsheets for the import tests and benchmark: filled templates, and hostile files."""

from __future__ import annotations

import io
import zipfile

from flask import Flask
from openpyxl import Workbook, load_workbook

import importer
from tests.filing_factories import credit_code


def valid_row(n: int, province: str = "天津市") -> list[str]:
    """One website of a new entity, every cell valid (names as the template's dropdowns give them)."""
    return [province, f"天津导入科技有限公司{n}", "企业", "统一社会信用代码证书", credit_code(900_000 + n),
            f"天津市南开区某路{n}号", "王五", "11010519491231002X", "13912345678", f"import{n}@example.cn",
            f"导入网站{n}", f"www.import{n}.cn;import{n}.cn", f"http://www.import{n}.cn/", "单位门户网站", "主机托管",
            "天津市", "203.0.113.1", "203.0.113.9", "", "", ""]


def filled_template(app: Flask, rows: list[list[str]]) -> bytes:
    """The downloaded template with rows typed into its data sheet (as a person would in Excel)."""
    with app.app_context():
        workbook = load_workbook(io.BytesIO(importer.template_bytes()))
    sheet = workbook[importer.DATA_SHEET]
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def plain_xlsx(rows: list[list[object]], formula_cell: str | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([column.header for column in importer.COLUMNS])
    for row in rows:
        sheet.append(row)
    if formula_cell:
        sheet[formula_cell] = '=HYPERLINK("http://x","y")'
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _rezip(source: bytes, replace: dict[str, bytes], level: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as original, zipfile.ZipFile(out, "w", level) as target:
        for item in original.infolist():
            target.writestr(item.filename, replace.get(item.filename, original.read(item.filename)))
        for name in set(replace) - set(original.namelist()):
            target.writestr(name, replace[name])
    return out.getvalue()


def zip_bomb() -> bytes:
    """A real workbook whose sheet part declares 300 MB (zeros compress ~1000:1)."""
    return _rezip(plain_xlsx([]), {"xl/worksheets/sheet1.xml": b"0" * (300 * 1024 * 1024)})


def comment_bomb() -> bytes:
    """The issue's case: a 300 MB XML comment in the sheet, a few hundred KB compressed."""
    sheet = zipfile.ZipFile(io.BytesIO(plain_xlsx([]))).read("xl/worksheets/sheet1.xml")
    head, tail = sheet.split(b"<sheetData", 1)
    return _rezip(plain_xlsx([]), {"xl/worksheets/sheet1.xml": head + b"<!--" + b"-" * (300 * 1024 * 1024 // 2)
                                   + b"x" * (300 * 1024 * 1024 // 2) + b"-->" + b"<sheetData" + tail})


def entity_bomb() -> bytes:
    """Billion laughs in the shared strings."""
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                         for i in range(1, 10))
              + b']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol9;</t></si></sst>')
    return _rezip(plain_xlsx([["x"]]), {"xl/sharedStrings.xml": laughs})


def legacy_xls(rows: list[list[str]]) -> bytes:
    """The same sheet in the Excel 97–2003 format (.xls), as older offices still send it."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet(importer.DATA_SHEET)
    for r, row in enumerate([[column.header for column in importer.COLUMNS], *rows]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def with_part(source: bytes, name: str, data: bytes) -> bytes:
    """The workbook with one part replaced (or added)."""
    return _rezip(source, {name: data})


def part(source: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(source)).read(name)


def edited_sheet(source: bytes, old: str, new: str) -> bytes:
    """The workbook with one piece of its sheet's XML replaced (a malformed file as a broken writer makes it)."""
    sheet = part(source, "xl/worksheets/sheet1.xml").decode()
    assert old in sheet, old
    return with_part(source, "xl/worksheets/sheet1.xml", sheet.replace(old, new, 1).encode())


LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
          + "]>")


def _without_declaration(source: bytes, name: str) -> str:
    xml = part(source, name).decode()
    return xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml


def doctype_after_comment(source: bytes, name: str = "xl/workbook.xml", doctype: bool = True) -> bytes:
    """A billion-laughs DOCTYPE placed after a 5,000-byte comment, beyond the first 4,096 bytes of the part."""
    body = _without_declaration(source, name)
    return with_part(source, name, f'<?xml version="1.0" encoding="UTF-8"?><!--{"x" * 5000}-->'
                                   f'{LAUGHS if doctype else ""}{body}'.encode())


def in_utf16(source: bytes, name: str, doctype: bool = True) -> bytes:
    """The part re-encoded as UTF-16 (with its byte-order mark), optionally with a billion-laughs DOCTYPE."""
    body = _without_declaration(source, name)
    return with_part(source, name, f'<?xml version="1.0" encoding="UTF-16"?>{LAUGHS if doctype else ""}{body}'
                     .encode("utf-16"))


def with_shared_string(source: bytes, cell: str, index: str) -> bytes:
    """A shared-strings table of one text, and `cell` pointing into it with `index` (valid or not)."""
    sheet = part(source, "xl/worksheets/sheet1.xml").decode()
    start = sheet.index(f'<c r="{cell}"')
    end = sheet.index("</c>", start) + 4
    sheet = f'{sheet[:start]}<c r="{cell}" t="s"><v>{index}</v></c>{sheet[end:]}'
    shared = (b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
              b'2006/main" count="1" uniqueCount="1"><si><t>\xe5\xa4\xa9\xe6\xb4\xa5&amp;1</t></si></sst>')
    return _rezip(source, {"xl/worksheets/sheet1.xml": sheet.encode(), "xl/sharedStrings.xml": shared})
