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
