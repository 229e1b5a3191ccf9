"""The IP reports as a spreadsheet (SPEC §8, §11): the template (来源信息, 分配及使用信息, 自带IP and 填写说明),
reading an upload sheet by sheet into the workflow's data (`workflow.ip.BlockData` …), the errors with their
sheet, row, column, value and result code, the file back with the wrong cells marked, and the export in the
template's columns (so that an export imports again).

A hostile file is refused before it is parsed by `importer`'s checks and read by its streaming reader. Nothing
here checks a rule of the reports or writes to the database: `workflow/ip_imports.py` runs every row through
`workflow/ip.py`'s rules.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import xlsxwriter
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as safe_xml
from flask import current_app
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from python_calamine import CalamineWorkbook
from sqlalchemy import select

import importer
import xlsx_reader
from extensions import db
from models import CodeTable, Division
from workflow.ip import AllocationData, BlockData, SelfBroughtData

TEMPLATE_NAME = "IP地址备案导入模板.xlsx"
GUIDE_SHEET, CODES_SHEET = "填写说明", "代码"
TEMPLATE_ROWS = 10_000  # rows that get the dropdowns
ORIGINS = [("registry", "互联网地址注册机构"), ("unit", "其他报备单位")]
YES_NO = [("是", "是"), ("否", "否")]
TRUE_TEXTS, FALSE_TEXTS = {"是", "y", "yes", "true", "1"}, {"否", "n", "no", "false", "0", ""}
EXCEL_EPOCH = date(1899, 12, 30)
DATE_RE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?|(\d{4})(\d{2})(\d{2})")


@dataclass(frozen=True)
class Column:
    key: str  # the field of the workflow's data
    header: str
    note: str
    codes: str | None = None  # a CodeTable value, "province", "origin" or "yes_no": a name or the code is read
    required: str = ""  # when it is required, in words ("" optional)


START = Column("start", "起始IP地址", "IPv4 或 IPv6 地址，如 58.0.0.0 或 240e::；"
                                     "IPv4 映射地址（::ffff:1.2.3.4）按 IPv4 处理", required="必填")
END = Column("end", "终止IP地址", "与起始地址同为 IPv4 或同为 IPv6，不小于起始地址；只有一个地址时可不填")
REMARK = Column("remark", "备注", "")
USER_UNIT = (
    Column("usage", "使用方式", "从下拉列表选择", CodeTable.IP_USAGE_METHOD.value, "分配方式为分配并使用、自用时必填"),
    Column("allocated_on", "分配日期", "格式 2026-01-05，不晚于今天", None, "分配方式为分配并使用、自用时必填"),
    Column("user_name", "用户单位名称", "使用该地址的单位全称", None, "分配并使用时必填"),
    Column("user_nature", "单位性质", "从下拉列表选择", CodeTable.UNIT_NATURE.value, "分配并使用时必填"),
    Column("user_category", "单位类别", "从下拉列表选择", CodeTable.UNIT_CLASS.value),
    Column("user_industry", "所属行业", "从下拉列表选择", CodeTable.INDUSTRY.value),
    Column("province_code", "所在省份", "从下拉列表选择", "province", "分配并使用时必填"),
    Column("city_code", "所在城市", "城市名称（直辖市填“市辖区”）或行政区划代码，如 120100", None, "分配并使用时必填"),
    Column("county_code", "所在区县", "区县名称或行政区划代码，如 120101"),
    Column("address", "详细地址", "", None, "分配并使用时必填"),
    Column("contact_name", "联系人姓名", "", None, "分配并使用时必填"),
    Column("contact_phone", "联系电话", "手机号码或带区号的固定电话，如 022-12345678", None, "分配并使用时必填"),
    Column("contact_email", "电子邮件", "", None, "分配并使用时必填"),
    Column("gateway_ip", "网关IP地址", "IPv4 或 IPv6 地址"),
    Column("gateway_location", "网关所在地", ""),
    Column("redirect_server", "是否用作域名跳转服务器", "是 / 否，不填为否", "yes_no"),
    REMARK,
)


@dataclass(frozen=True)
class Sheet:
    kind: str  # block / allocation / self_brought (as the findings and the audit log name them)
    title: str
    columns: tuple[Column, ...]
    data: type  # the workflow's dataclass a row becomes
    note: str

    @property
    def headers(self) -> list[str]:
        return [column.header for column in self.columns]

    def position(self, key: str | None) -> int:
        """1-based column of a field (0: the row as a whole)."""
        return next((index for index, column in enumerate(self.columns, start=1) if column.key == key), 0)


SHEETS = (
    Sheet("block", "来源信息", (
        START, END,
        Column("origin", "来源类型", "从下拉列表选择；不填时按是否填写来源单位账号判断", "origin"),
        Column("registry_code", "地址注册机构", "从下拉列表选择", CodeTable.IP_REGISTRY.value,
               "来源类型为互联网地址注册机构时必填"),
        Column("source_unit", "来源单位账号", "分配给本单位的报备单位在本系统的账号", None,
               "来源类型为其他报备单位时必填"),
        REMARK,
    ), BlockData, "本单位从互联网地址注册机构（APNIC、CNNIC 等）或其他报备单位获得的地址段。"
                  "其他报备单位以“再分配”方式分给本单位的地址段由该单位报备，自动成为本单位的来源信息，无需在此填写。"),
    Sheet("allocation", "分配及使用信息", (
        START, END,
        Column("method", "分配方式", "从下拉列表选择", CodeTable.IP_ALLOCATION_METHOD.value, "必填"),
        Column("target_unit", "接收单位账号", "再分配时填写接收地址的报备单位在本系统的账号", None,
               "分配方式为再分配时必填"),
        *USER_UNIT,
    ), AllocationData, "本单位来源信息中的地址段的分配及使用情况，须完全位于本单位的一个来源地址段内（可以是本文件"
                       "“来源信息”中的地址段），本单位的各条分配记录互不重叠。再分配、预留只需填写地址、分配方式"
                       "（再分配还需接收单位账号）。"),
    Sheet("self_brought", "自带IP", (
        START, END,
        Column("source_unit", "来源单位账号", "地址来自本系统的报备单位时填写其账号"),
        Column("source_name", "来源单位名称", "地址来自其他单位时填写其名称", None, "来源单位账号与名称至少填写一项"),
        *(column for column in USER_UNIT if column.key != "remark"), REMARK,
    ), SelfBroughtData, "客户自带到本单位网络中使用的地址段（不属于本单位的来源信息），各条互不重叠。"),
)
SHEET_OF = {sheet.kind: sheet for sheet in SHEETS}


# --- code tables: a name or the code --------------------------------------------------------------------

class Codes:
    """What a cell may hold for each coded column (the name or the code, as in the filings template), and the
    cities and counties by name within their province or city. A value matching nothing is passed on as it
    is: the workflow's rules refuse it with their own message."""

    def __init__(self) -> None:
        self.tables = {source: self._pairs(source) for sheet in SHEETS for column in sheet.columns
                       if (source := column.codes)}
        self.divisions = {(parent, name): code for code, name, parent in db.session.execute(
            select(Division.code, Division.name, Division.parent_code))}

    @staticmethod
    def _listed(source: str) -> list[tuple[str, str]]:
        """(code, name) of a coded column, in the dropdown's order."""
        return {"origin": ORIGINS, "yes_no": YES_NO}.get(source) or importer.code_names(source)

    def _pairs(self, source: str) -> dict[str, str]:
        pairs = self._listed(source)
        return {**{name: code for code, name in pairs}, **{code: code for code, _name in pairs}}

    def code(self, source: str, value: str) -> str:
        return self.tables[source].get(value, value)

    def division(self, parent: str, value: str) -> str:
        return self.divisions.get((parent, value), value)

    def names(self, source: str) -> list[str]:
        """The names offered by the template's dropdown."""
        return [name for _code, name in self._listed(source)]


# --- the template ---------------------------------------------------------------------------------------

def template_bytes() -> bytes:
    """IP地址备案导入模板.xlsx: the three data sheets (Chinese headers, text cells, dropdowns fed by the code
    tables), 填写说明 (each column), and the hidden sheet the dropdowns read."""
    codes = Codes()
    workbook = Workbook()
    workbook.remove(workbook.active)
    sources = sorted({column.codes for sheet in SHEETS for column in sheet.columns if column.codes})
    ranges = {source: f"'{CODES_SHEET}'!${get_column_letter(index)}$1:${get_column_letter(index)}$"
                      f"{len(codes.names(source))}" for index, source in enumerate(sources, start=1)}
    for sheet in SHEETS:
        _data_sheet(workbook, sheet, ranges)
    _guide(workbook.create_sheet(GUIDE_SHEET))
    listed = workbook.create_sheet(CODES_SHEET)
    for index, source in enumerate(sources, start=1):
        for row, name in enumerate(codes.names(source), start=1):
            listed.cell(row=row, column=index, value=name)
    listed.sheet_state = "hidden"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _data_sheet(workbook: Workbook, sheet: Sheet, ranges: dict[str, str]) -> None:
    data = workbook.create_sheet(sheet.title)
    for index, column in enumerate(sheet.columns, start=1):
        letter = get_column_letter(index)
        cell = data.cell(row=1, column=index, value=column.header)
        cell.font, cell.fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="B22222")
        data.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4)
        data.column_dimensions[letter].number_format = "@"  # text: addresses and dates stay as typed
        if column.codes:
            validation = DataValidation(type="list", formula1=ranges[column.codes], allow_blank=True,
                                        showErrorMessage=True, errorTitle="请从列表选择",
                                        error=f"“{column.header}”请从下拉列表中选择。")
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            data.add_data_validation(validation)
    data.freeze_panes = "A2"


def _guide(guide: Any) -> None:
    guide.append(["工作表", "列", "是否必填", "填写说明"])
    for sheet in SHEETS:
        guide.append([sheet.title, "", "", sheet.note])
        for column in sheet.columns:
            guide.append(["", column.header, column.required or "选填", column.note])
    guide.append([])
    guide.append(["说明", "", "", "每行一条记录，第一行为表头，不要改动。分配方式、使用方式、单位性质等列可填写名称或"
                              "代码。整个文件先全部检查（包括与系统中已报备的记录、与本文件其他行是否重叠），有任何错误"
                              "则不导入任何数据，并列出每个错误的工作表、行、列、内容、结果代码和说明，返回标出错误单元格"
                              "的文件。"])
    for letter, width in (("A", 16), ("B", 24), ("C", 30), ("D", 90)):
        guide.column_dimensions[letter].width = width


# --- reading ---------------------------------------------------------------------------------------------

class SheetRows(xlsx_reader.XlsxRows):
    """`xlsx_reader.XlsxRows` (the streaming, hardened reader) on the worksheet with the given name."""

    def __init__(self, path: Path, title: str) -> None:
        self.title = title
        super().__init__(path)

    def _first_sheet(self) -> str:
        """The part of the sheet named `title` (the base class takes the first sheet)."""
        try:
            relations = safe_xml(self.archive.read("xl/_rels/workbook.xml.rels"), forbid_dtd=True)
            workbook = safe_xml(self.archive.read("xl/workbook.xml"), forbid_dtd=True)
        except (KeyError, ParseError, *xlsx_reader.UNREADABLE_PART) as error:
            raise xlsx_reader.ImportRefused("无法读取该文件的工作表列表，文件已损坏。") from error
        for sheet in workbook.iter(f"{{{xlsx_reader.SHEET_NS}}}sheet"):
            if sheet.get("name") == self.title:
                rel_id = sheet.get(f"{{{xlsx_reader.REL_NS}}}id")
                target = next((r.get("Target") for r in relations if r.get("Id") == rel_id), "") or ""
                name = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                if name in self.archive.namelist():
                    return name
        raise xlsx_reader.ImportRefused(f"无法读取工作表“{self.title}”，文件已损坏。")


def sheet_titles(path: Path, kind: str) -> set[str]:
    """The names of the workbook's sheets (the container already checked)."""
    try:
        if kind == "xls":
            return set(CalamineWorkbook.from_path(str(path)).sheet_names)
        with zipfile.ZipFile(path) as archive:
            workbook = safe_xml(archive.read("xl/workbook.xml"), forbid_dtd=True)
    except Exception as error:  # calamine, zipfile and the XML parser each say "unreadable" their own way
        raise xlsx_reader.ImportRefused("无法读取该文件的工作表列表，文件已损坏。") from error
    return {sheet.get("name") or "" for sheet in workbook.iter(f"{{{xlsx_reader.SHEET_NS}}}sheet")}


def _text(value: object) -> str:
    """A calamine cell (.xls) as text: whole numbers without ".0", date-times as their date."""
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


def read_sheet(path: Path, kind: str, sheet: Sheet) -> tuple[list[str], Iterator[tuple[int, list[str]]], int]:
    """The header, the rows as (row number, cells as text) and how many the sheet declares (0: unknown)."""
    if kind == "xls":
        try:
            rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet.title).iter_rows()
        except Exception as error:  # calamine reports any unreadable sheet the same way
            raise xlsx_reader.ImportRefused(f"无法读取工作表“{sheet.title}”。") from error
        header = [_text(value) for value in next(rows, [])]
        return header, ((number, [_text(value) for value in row])
                        for number, row in enumerate(rows, start=2)), 0
    reader = SheetRows(path, sheet.title)
    rows = iter(reader)
    first = next(rows, (1, []))
    return first[1], rows, max(0, reader.declared_rows - 1)


def check_header(sheet: Sheet, header: list[str]) -> None:
    if header[:len(sheet.columns)] != sheet.headers:
        raise xlsx_reader.ImportRefused(f"工作表“{sheet.title}”的第一行不是导入模板的表头；请下载最新的IP地址导入模板，"
                                     "在其中填写。")


# --- a row into the workflow's data ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CellError:
    sheet: str  # the sheet's kind
    row: int  # as the spreadsheet numbers it (the header is row 1); 0 for the file as a whole
    column: int  # 1-based; 0 for the row as a whole
    value: str
    code: str  # the specification's result code, "" where it has none
    message: str

    def as_dict(self) -> dict[str, object]:
        sheet = SHEET_OF.get(self.sheet)
        column = sheet.columns[self.column - 1].header if sheet is not None and self.column else ""
        return {"sheet": sheet.title if sheet is not None else "", "row": self.row, "column": column,
                "value": self.value, "code": self.code, "message": self.message}


def parse_date(text: str) -> date | None:
    """A date as typed (2026-01-05, 2026/1/5, 2026年1月5日, 20260105) or an Excel date serial; ValueError else."""
    if not text:
        return None
    if re.fullmatch(r"\d{1,5}(\.\d+)?", text):
        return EXCEL_EPOCH + timedelta(days=int(float(text)))
    found = DATE_RE.fullmatch(text)
    if found is None:
        raise ValueError(text)
    year, month, day = (int(part) for part in (found.groups()[:3] if found.group(1) else found.groups()[3:]))
    return date(year, month, day)


def parse_row(sheet: Sheet, number: int, cells: list[str], codes: Codes) -> tuple[Any, list[CellError]]:
    """The row as the sheet's workflow data (code-table names turned into codes), and what could not be read
    at all (a date, yes or no)."""
    values = dict(zip((column.key for column in sheet.columns),
                      (cells + [""] * len(sheet.columns))[:len(sheet.columns)], strict=True))
    problems: list[CellError] = []
    data: dict[str, Any] = {}
    for column in sheet.columns:
        text = values[column.key]
        if column.key == "allocated_on":
            try:
                data["allocated_on"] = parse_date(text)
            except ValueError:
                problems.append(CellError(sheet.kind, number, sheet.position("allocated_on"), text, "",
                                          "日期格式应为 年-月-日，如 2026-01-05。"))
        elif column.key == "redirect_server":
            flag = codes.code("yes_no", text).lower()
            if flag not in TRUE_TEXTS | FALSE_TEXTS:
                problems.append(CellError(sheet.kind, number, sheet.position("redirect_server"), text, "",
                                          "请填写“是”或“否”。"))
            data["redirect_server"] = flag in TRUE_TEXTS
        elif column.key == "city_code":
            data["city_code"] = codes.division(data.get("province_code", ""), text)
        elif column.key == "county_code":
            data["county_code"] = codes.division(data.get("city_code", ""), text)
        else:
            data[column.key] = codes.code(column.codes, text) if column.codes else text
    if sheet.kind == "block" and not data["origin"]:
        data["origin"] = "unit" if data["source_unit"] and not data["registry_code"] else "registry"
    return sheet.data(**data), problems


def row_values(sheet: Sheet, record: Any, codes: Codes | None = None) -> list[object]:
    """A record (model row) as the sheet's cells: code-table names where the template offers a list."""
    names = {source: {code: name for name, code in pairs.items() if name != code}
             for source, pairs in (codes.tables.items() if codes is not None else [])}
    cells: list[object] = []
    for column in sheet.columns:
        value = getattr(record, column.key, "")
        if column.key == "redirect_server":
            value = "是" if value else "否"
        elif isinstance(value, date):
            value = value.isoformat()
        elif column.codes and value:
            value = names.get(column.codes, {}).get(str(value), value)
        cells.append("" if value is None else str(value))
    return cells


# --- errors: kept on disk, read back in (sheet, row, column) order ----------------------------------------

def error_log() -> importer.ErrorLog:
    """The file's errors, on disk, read back in (sheet, row, column) order."""
    order = {sheet.kind: index for index, sheet in enumerate(SHEETS)}
    return importer.ErrorLog(CellError, rank=lambda error: order.get(error.sheet, -1))


# --- files written: the marked upload, the export -----------------------------------------------------------

def _workbook(target: Path | io.BytesIO) -> tuple[Any, dict[tuple[bool, bool], Any]]:
    """A constant-memory XlsxWriter workbook that writes every value as a string cell; the four cell styles
    (wrong or not, formula-like text quote-prefixed or not)."""
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_formulas": False,
                                            "strings_to_numbers": False, "strings_to_urls": False})
    styles = {}
    for wrong in (False, True):
        for quoted in (False, True):
            style = workbook.add_format({"bg_color": "#FFC7CE"} if wrong else {})
            if quoted:
                style.set_quote_prefix()
            styles[wrong, quoted] = style
    return workbook, styles


def _write_row(sheet: Any, styles: dict[tuple[bool, bool], Any], index: int, values: Iterable[object],
               wrong: frozenset[int] = frozenset()) -> None:
    for column, value in enumerate(values):
        text = "" if value is None else str(value)
        sheet.write_string(index, column, text, styles[column + 1 in wrong, importer.is_formula_like(text)])


def write_marked(path: Path, errors: Iterable[CellError], target: Path) -> None:
    """The upload written back sheet by sheet, each wrong cell filled red (the first MAX_COMMENTS commented)
    and every message in a last column 错误说明: one pass over each sheet's rows beside one pass over the
    errors in (sheet, row, column) order."""
    pending = iter(errors)
    following = next(pending, None)
    workbook, styles = _workbook(target)
    kind = xlsx_reader.container_kind(path)
    titles = sheet_titles(path, kind)
    commented = 0
    for sheet in SHEETS:
        out = workbook.add_worksheet(sheet.title)
        width = len(sheet.columns)
        _write_row(out, styles, 0, [*sheet.headers, "错误说明"])
        if sheet.title not in titles:
            continue
        _header, rows, _count = read_sheet(path, kind, sheet)
        for index, (number, cells) in enumerate(rows, start=1):
            marked: dict[int, list[str]] = {}
            while following is not None and (SHEETS.index(SHEET_OF[following.sheet]), following.row) <= (
                    SHEETS.index(sheet), number):
                if following.sheet == sheet.kind and following.row == number:
                    marked.setdefault(following.column or 1, []).append(
                        f"[{following.code}] {following.message}" if following.code else following.message)
                following = next(pending, None)
            _write_row(out, styles, index, (cells + [""] * width)[:width], frozenset(marked))
            for column, messages in marked.items():
                if commented < importer.MAX_COMMENTS:
                    out.write_comment(index, column - 1, "\n".join(messages), {"author": "备案系统"})
                    commented += 1
            explained = "；".join(f"{sheet.columns[column - 1].header}：{message}"
                                 for column, messages in marked.items() for message in messages)
            out.write_string(index, width, explained, styles[False, importer.is_formula_like(explained)])
    workbook.close()


def write_export(target: Path | io.BytesIO, sheets: dict[str, Iterable[Any]], codes: Codes,
                 unit_of: Any = None) -> dict[str, int]:
    """The records in the template's sheets and columns (an export imports again), streamed row by row; with
    `unit_of` (record → the reporting unit's account) a last column 报备单位账号 for the overseers' exports.
    Formula-like text is written as text. Returns the rows written per sheet."""
    workbook, styles = _workbook(target)
    written = {}
    for sheet in SHEETS:
        out = workbook.add_worksheet(sheet.title)
        _write_row(out, styles, 0, [*sheet.headers, *(["报备单位账号"] if unit_of else [])])
        count = 0
        for count, record in enumerate(sheets.get(sheet.kind, ()), start=1):
            _write_row(out, styles, count, [*row_values(sheet, record, codes), *([unit_of(record)] if unit_of else [])])
        written[sheet.kind] = count
    guide = workbook.add_worksheet(GUIDE_SHEET)
    _write_row(guide, styles, 0, ["本文件由IP地址备案系统导出，各工作表的列与IP地址导入模板相同。"])
    workbook.close()
    return written


def max_rows() -> int:
    return int(current_app.config["IMPORT_MAX_ROWS"])


def too_many(count: int) -> str:
    return f"文件有 {count:,} 行，超过上限 {max_rows():,} 行；请分批导入。"

