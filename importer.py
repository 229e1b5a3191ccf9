"""Spreadsheet exchange. For now: the export of any list to .xlsx, safe against formula injection.

(The import of filings, SPEC §8, is built on this module by its own issue.)
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_TRIGGERS = ("=", "+", "-", "@")


def is_formula_like(text: str) -> bool:
    """Text a spreadsheet might run: leading = + - @ or a control character (tab, CR, ...)."""
    return bool(text) and (text.startswith(FORMULA_TRIGGERS) or ord(text[0]) < 0x20)


def _cell(sheet: WriteOnlyWorksheet, value: object) -> WriteOnlyCell:
    if value is None or isinstance(value, (bool, int, float, datetime, date)):
        return WriteOnlyCell(sheet, value=value)
    text = str(value)
    cell = WriteOnlyCell(sheet, value=text)
    if is_formula_like(text):
        cell.data_type = "s"  # a string cell, never a formula
        cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
    return cell


def xlsx_bytes(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str = "export") -> bytes:
    """A streamed (write-only) workbook with one sheet: header row, then the rows."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append([_cell(sheet, header) for header in headers])
    for row in rows:
        sheet.append([_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def content_disposition(filename: str, ascii_fallback: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients, the real (Chinese) name in `filename*`."""
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(filename)}"
