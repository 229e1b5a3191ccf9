"""域名报备 as a spreadsheet (SPEC §8, §11): the template (域名报备数据, 填写说明), each row of an upload read into
the workflow's data (`workflow.domains.ReportData`) and checked by the workflow's own rules, the errors with row,
column, value and result code, the file back with the wrong cells marked, and the export in the template's
columns (so that an export imports again).

A hostile file is refused before it is parsed by `importer`'s checks and read by its streaming reader. Checking
reads the database (code tables, the live reports) but never writes: `workflow/domain_imports.py` writes what
passed, all of it or nothing.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select

import importer
import workflow.domains as domains
import xlsx_reader
from extensions import db
from ip_import import _workbook, _write_row, parse_date  # shared pieces (see write_marked)
from models import CodeTable, DomainReport, DomainStatus, Province, User
from workflow.domains import ReportData
from workflow.errors import CodedProblem

TEMPLATE_NAME = "域名报备导入模板.xlsx"
DATA_SHEET, GUIDE_SHEET, CODES_SHEET = "域名报备数据", "填写说明", "代码"
TEMPLATE_ROWS = 10_000  # rows that get the dropdowns
LOOKUP_CHUNK = 500
STATUS_NAMES = {DomainStatus.NORMAL: "正常", DomainStatus.SUSPENDED: "暂停解析", DomainStatus.EXPIRED: "已过期",
                DomainStatus.DELETED: "已删除"}
DATE_FIELDS = ("registered_on", "expires_on")
BAD_DATE = "日期格式应为 年-月-日，如 2026-01-05。"


@dataclass(frozen=True)
class Column:
    key: str  # the field of `ReportData`
    header: str
    note: str
    codes: str | None = None  # a CodeTable value, "province" or "status": the cell holds a name or the code

    @property
    def required(self) -> bool:
        return self.key in domains.REQUIRED


def _contact(prefix: str, who: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}_name", f"{who}名称", "单位全称或个人姓名，与证件一致"),
        Column(f"{prefix}_organisation", f"{who}单位", "个人注册的域名可不填"),
        Column(f"{prefix}_certificate_type", f"{who}证件类型", "从下拉列表选择", CodeTable.CERTIFICATE_TYPE.value),
        Column(f"{prefix}_certificate_number", f"{who}证件号码", "统一社会信用代码、身份证号码等（请以文本格式填写）"),
        Column(f"{prefix}_address", f"{who}通信地址", ""),
        Column(f"{prefix}_province_code", f"{who}所在省份", "从下拉列表选择", "province"),
        Column(f"{prefix}_city", f"{who}所在城市", ""),
        Column(f"{prefix}_email", f"{who}电子邮件", "如 dns@example.cn"),
        Column(f"{prefix}_phone", f"{who}联系电话", "手机号码或带区号的固定电话，如 022-12345678"),
    )


COLUMNS = (
    Column("domain", "域名", "如 example.cn；中文域名可直接填写（如 例子.中国），系统按 Punycode 保存；每行一个域名"),
    Column("domain_type", "域名类型", "从下拉列表选择", CodeTable.DOMAIN_TYPE.value),
    Column("registered_on", "注册日期", "格式 2024-01-05，不晚于今天"),
    Column("expires_on", "到期日期", "格式 2027-01-05，不早于今天，不早于注册日期"),
    Column("registrar_name", "注册服务机构名称", "本单位对外使用的名称"),
    Column("name_servers", "域名服务器", "每行一个（单元格内按 Alt+Enter 换行），也可用分号“;”分隔"),
    Column("status", "域名状态", "正常、暂停解析或已过期；不填为正常", "status"),
    *_contact("registrant", "注册者"),
    *_contact("admin", "管理联系人"),
    Column("payer_name", "缴费人名称", ""),
)
HEADERS = [column.header for column in COLUMNS]
CODED = tuple(column for column in COLUMNS if column.codes)
POSITION = {column.key: index for index, column in enumerate(COLUMNS, start=1)}


# --- code tables: a name or the code ----------------------------------------------------------------------

class Codes:
    """What each coded column may hold (the name or the code, as in the other templates). A value matching
    nothing is passed on as it is: the workflow's rules refuse it with their own message."""

    def __init__(self) -> None:
        self.pairs = {source: self._pairs(source) for source in {c.codes for c in COLUMNS if c.codes}}
        self.tables = {source: {**{name: code for code, name in pairs}, **{code: code for code, _name in pairs}}
                       for source, pairs in self.pairs.items()}
        self.names = {source: dict(pairs) for source, pairs in self.pairs.items()}

    @staticmethod
    def _pairs(source: str) -> list[tuple[str, str]]:
        if source == "status":
            return [(status.value, STATUS_NAMES[status]) for status in domains.SETTABLE_STATUSES]
        return importer.code_names(source)

    def code(self, source: str, value: str) -> str:
        return self.tables[source].get(value, value)

    def name(self, source: str, code: str) -> str:
        return self.names[source].get(code, code)


# --- the template -----------------------------------------------------------------------------------------

def template_bytes() -> bytes:
    """域名报备导入模板.xlsx: the data sheet first (Chinese headers, text cells, dropdowns fed by the code
    tables), 填写说明 (each column), and the hidden sheet the dropdowns read."""
    codes = Codes()
    workbook = Workbook()
    data = workbook.active
    data.title = DATA_SHEET
    guide = workbook.create_sheet(GUIDE_SHEET)
    listed = workbook.create_sheet(CODES_SHEET)
    guide.append(["列", "是否必填", "填写说明"])
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        cell = data.cell(row=1, column=index, value=column.header)
        cell.font, cell.fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="B22222")
        data.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4)
        data.column_dimensions[letter].number_format = "@"  # text: certificate numbers and dates stay as typed
        guide.append([column.header, "必填" if column.required else "选填", column.note])
        if column.codes:
            names = [name for _code, name in codes.pairs[column.codes]]
            for row, name in enumerate(names, start=1):
                listed.cell(row=row, column=index, value=name)
            validation = DataValidation(
                type="list", formula1=f"'{CODES_SHEET}'!${letter}$1:${letter}${len(names)}", allow_blank=True,
                showErrorMessage=True, errorTitle="请从列表选择", error=f"“{column.header}”请从下拉列表中选择。")
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            data.add_data_validation(validation)
    data.freeze_panes = "B2"
    guide.column_dimensions["A"].width, guide.column_dimensions["C"].width = 22, 90
    guide.append([])
    guide.append(["说明", "", "每行报备一个域名，第一行为表头，不要改动。域名类型、证件类型、省份、状态可填写名称或"
                            "代码。整个文件先全部检查（包括同一域名是否已由本单位或其他注册服务机构报备、是否在文件中重复），"
                            "有任何错误则不导入任何数据，并列出每个错误的行、列、内容、结果代码和说明，返回标出错误单元格"
                            "的文件。域名转移：原注册服务机构删除报备后，由新的注册服务机构报备。"])
    listed.sheet_state = "hidden"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- reading ----------------------------------------------------------------------------------------------

def read_file(path: Path) -> tuple[Iterator[tuple[int, list[str]]], int]:
    """The data rows of an upload (its first sheet) as (row number, cells as text), and how many it declares;
    ImportRefused for a hostile or foreign file, before anything is parsed."""
    kind = xlsx_reader.check_container(path)
    header, rows, declared = xlsx_reader.read_rows(path, kind)
    if header[:len(HEADERS)] != HEADERS:
        raise xlsx_reader.ImportRefused("第一行不是域名报备导入模板的表头；请下载最新的域名报备导入模板，在其中填写。")
    return rows, declared


@dataclass(frozen=True, slots=True)
class CellError:
    row: int  # as the spreadsheet numbers it (the header is row 1); 0 for the file as a whole
    column: int  # 1-based; 0 for the row as a whole
    value: str
    code: str  # the specification's result code, "" where it has none
    message: str

    def as_dict(self) -> dict[str, object]:
        column = COLUMNS[self.column - 1].header if 0 < self.column <= len(COLUMNS) else ""
        return {"row": self.row, "column": column, "value": self.value, "code": self.code, "message": self.message}


def parse_row(number: int, cells: list[str], codes: Codes) -> tuple[ReportData, list[CellError]]:
    """The row as the workflow's data (code-table names turned into codes), and the cells that could not be
    read at all (a date)."""
    width = len(COLUMNS)
    data = dict(zip(POSITION, cells[:width] if len(cells) >= width else cells + [""] * (width - len(cells)),
                    strict=True))
    unreadable = []
    for column in CODED:
        data[column.key] = codes.code(column.codes, data[column.key])
    for key in DATE_FIELDS:
        try:
            data[key] = parse_date(data[key])
        except ValueError:
            unreadable.append(CellError(number, POSITION[key], data[key], "", BAD_DATE))
            data[key] = None
    data["status"] = data["status"] or DomainStatus.NORMAL.value
    return ReportData(**data), unreadable


# --- checking: the workflow's rules on every row ------------------------------------------------------------

@dataclass(slots=True)
class Checked:
    """A row that passed its own checks: what the import writes."""

    row: int
    domain: str  # normalised
    data: ReportData


class RowChecker:
    """Every row through `workflow.domains.report_problems` (its code-table lookups memoised: a query per
    distinct value, not per row); the rule of one live report per domain for the whole file at the end
    (`workflow.domains.holder_problem`, a query per 500 domains), a domain twice in the file refused too. The
    errors are kept on disk; the rows that passed are spilled to a temporary file 5,000 at a time while there is
    no error — as `prepare` makes them (the importer's insert rows), so that the work is done before the write —
    and memory holds only the domains."""

    def __init__(self, actor: User, prepare: Callable[[Checked], Any]) -> None:
        self.actor, self.today = actor, date.today()  # one day for the whole file
        self.codes = Codes()
        self.errors = importer.ErrorLog(CellError)
        self.domains: dict[str, int] = {}  # normalised domain → the row of its first use
        self.count = 0
        self._code_exists = functools.cache(domains._code_exists)
        #: held for the checker's life, so that the workflow's province lookups (`session.get`) find them in the
        #: session's identity map, which keeps objects only weakly (else: a query per lookup, 0.3 ms each)
        self._provinces = db.session.scalars(select(Province)).all()
        self._prepare = prepare
        self.spill = importer.RowSpill(self.errors)

    def check(self, number: int, cells: list[str]) -> None:
        if not any(cells):
            return  # an empty line
        self.count += 1
        data, unreadable = parse_row(number, cells, self.codes)
        for error in unreadable:
            self.errors.append(error)
        skip = {COLUMNS[error.column - 1].key for error in unreadable}
        self._report(number, cells, domains.report_problems(data, self.today, self._code_exists), skip)
        domain = self._domain(number, cells, data)
        if domain and not self.errors:  # once a row is wrong nothing is imported: no need to keep rows
            self.spill.keep(self._prepare(Checked(number, domain, data)))

    def _domain(self, number: int, cells: list[str], data: ReportData) -> str:
        """The domain normalised as the workflow does it; "" when it cannot be (said already or now)."""
        if not data.domain.strip():
            return ""  # required: said by report_problems
        try:
            name = domains.normalised(data.domain)
        except domains.DomainError as refused:
            self._report(number, cells, refused.coded)
            return ""
        if name in self.domains:
            self._report(number, cells, [("domain", "", f"域名 {name} 在第 {self.domains[name]} 行已填写。")])
            return ""
        self.domains[name] = number
        return name

    def _report(self, number: int, cells: list[str], problems: Iterable[CodedProblem],
                skip: set[str] | frozenset[str] = frozenset()) -> None:
        for field, code, message in problems:
            if field in skip:
                continue  # the cell could not be read: said already
            column = POSITION.get(field or "", 0)
            value = cells[column - 1] if 0 < column <= len(cells) else ""
            self.errors.append(CellError(number, column, value, code, str(message)))

    def finish(self) -> None:
        """What needs every row: one live report per domain, against the reports in the database."""
        names = sorted(self.domains)
        for start in range(0, len(names), LOOKUP_CHUNK):
            holders = domains.live_reports(names[start:start + LOOKUP_CHUNK])
            for holder in holders:
                problem = domains.holder_problem(self.actor, holder.domain, holder)
                number = self.domains[holder.domain]
                self._report(number, [holder.domain], [problem] if problem else [])
            for holder in holders:
                db.session.expunge(holder)
        if not self.count and not self.errors:
            self.errors.append(CellError(2, 0, "", "", "文件中没有数据行。"))
        self.spill.flush()

    def rows(self) -> Iterator[list[Any]]:
        """The checked rows again, 5,000 at a time, in file order."""
        return self.spill.chunks()

    def close(self) -> None:
        self.spill.close()
        self.errors.close()


# --- files written: the marked upload, the export -------------------------------------------------------------

def write_marked(path: Path, errors: Iterable[CellError], target: Path) -> None:
    """The upload written back, each wrong cell filled red (the first MAX_COMMENTS commented) and every message
    with its result code in a last column 错误说明: one pass over the rows beside one pass over the errors in
    (row, column) order. Written as the IP import writes its file (`ip_import`'s constant-memory workbook, every
    value a string cell, formula-like text quote-prefixed)."""
    rows, _declared = read_file(path)
    pending = iter(errors)
    following = next(pending, None)
    workbook, styles = _workbook(target)
    sheet = workbook.add_worksheet(DATA_SHEET)
    width, commented = len(COLUMNS), 0
    _write_row(sheet, styles, 0, [*HEADERS, "错误说明"])
    for index, (number, cells) in enumerate(rows, start=1):
        marked: dict[int, list[str]] = {}
        while following is not None and following.row <= number:
            if following.row == number:
                marked.setdefault(following.column or 1, []).append(
                    f"[{following.code}] {following.message}" if following.code else following.message)
            following = next(pending, None)
        _write_row(sheet, styles, index, (cells + [""] * width)[:width], frozenset(marked))
        for column, messages in marked.items():
            if commented < importer.MAX_COMMENTS:
                sheet.write_comment(index, column - 1, "\n".join(messages), {"author": "备案系统"})
                commented += 1
        explained = "；".join(f"{HEADERS[column - 1]}：{message}" for column, messages in marked.items()
                             for message in messages)
        sheet.write_string(index, width, explained, styles[False, importer.is_formula_like(explained)])
    workbook.close()


def report_cells(report: DomainReport, codes: Codes) -> list[str]:
    """A report as the template's cells: code-table names where the template offers a list, dates as
    2026-01-05, the domain as stored (punycode: it imports again), name servers separated by semicolons."""
    cells = []
    for column in COLUMNS:
        value = getattr(report, column.key)
        if isinstance(value, date):
            value = value.isoformat()
        elif column.key == "name_servers":
            value = ";".join(value.split())
        elif column.codes and value:
            value = codes.name(column.codes, str(value))
        cells.append("" if value is None else str(value))
    return cells


def write_export(target: Path | io.BytesIO, reports: Iterable[tuple[DomainReport, str]], overseer: bool) -> int:
    """The reports in the template's columns, streamed row by row (formula-like text written as text); for an
    overseer (bureau, MIIT) a last column 报备单位账号 names each report's registrar. Returns the rows written."""
    codes = Codes()
    workbook, styles = _workbook(target)
    sheet = workbook.add_worksheet(DATA_SHEET)
    _write_row(sheet, styles, 0, [*HEADERS, *(["报备单位账号"] if overseer else [])])
    count = 0
    for count, (report, registrar) in enumerate(reports, start=1):
        _write_row(sheet, styles, count, [*report_cells(report, codes), *([registrar] if overseer else [])])
    workbook.close()
    return count
