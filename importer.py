"""Spreadsheet exchange (SPEC §8): exports safe against formula injection, the import template, and the
import's checking — every row is checked (the wizard's validators, the registry's rules in bulk) before anything
is written — and the marked file that answers a refused one. Reading the file: `xlsx_reader`.

Nothing here writes to the database: `workflow/imports.py` imports what this module accepted.
"""

from __future__ import annotations

import io
import ipaddress
import os
import pickle
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import xlsxwriter
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import ARRAY, String, any_, bindparam, select

import xlsx_reader
from extensions import db
from models import (
    TAKEN_STATUSES,
    BlacklistEntry,
    CodeItem,
    CodeTable,
    Domain,
    Entity,
    ForbiddenWord,
    Province,
    Role,
    User,
    UserStatus,
    code_values,
    forbidden_word_in,
)
from validators import (
    certificate_number_error,
    certificate_type_error,
    email_error,
    home_url_error,
    id_card_error,
    mobile_error,
    normalise_domain,
    parse_ip_range,
    split_domains,
)

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


def _write(target: Any, headers: Sequence[str], rows: Iterable[Sequence[object]], title: str) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=re.sub(r"[\\/*?:\[\]]", "", title)[:31] or "export")
    sheet.append([_cell(sheet, header) for header in headers])
    for row in rows:
        sheet.append([_cell(sheet, value) for value in row])
    workbook.save(target)


def xlsx_bytes(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str = "export") -> bytes:
    """A write-only workbook with one sheet, in memory (small tables: the code tables)."""
    buffer = io.BytesIO()
    _write(buffer, headers, rows, title)
    return buffer.getvalue()


def write_xlsx(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str = "export") -> str:
    """The same streamed to a temporary file (any number of rows in bounded memory); the caller removes it."""
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="export-")
    os.close(handle)
    _write(path, headers, rows, title)
    return path


def content_disposition(filename: str, ascii_fallback: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients, the real (Chinese) name in `filename*`."""
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(filename)}"


# --- the import template (FAQ 34) -------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str
    header: str
    note: str
    codes: str | None = None  # "province" or a CodeTable value: the cell holds a name (or the code)
    required: bool = True


COLUMNS = (
    Column("province", "省份", "主体所在省份（按此确定审核的通信管理局）", "province"),
    Column("unit_name", "主办单位名称", "单位全称或个人姓名，与证件一致"),
    Column("unit_nature", "单位性质", "从下拉列表选择", CodeTable.UNIT_NATURE.value),
    Column("certificate_type", "证件类型", "与单位性质相符，从下拉列表选择", CodeTable.CERTIFICATE_TYPE.value),
    Column("certificate_number", "证件号码",
           "统一社会信用代码（18位）或身份证号码；同一主体的多个网站填写相同的证件号码"),
    Column("address", "通信地址", "主体的通信地址", required=False),
    Column("responsible_name", "负责人姓名", "主体负责人"),
    Column("responsible_id_number", "负责人身份证号码", "18位，末位可为X（请以文本格式填写）"),
    Column("responsible_mobile", "负责人手机号码", "11位手机号码"),
    Column("responsible_email", "负责人电子邮件", "接收审核通知和电子证书"),
    Column("website_name", "网站名称", "每行一个网站"),
    Column("domains", "网站域名", "同一网站的多个域名写在本单元格内，每行一个（单元格内按 Alt+Enter 换行），"
                                  "也可用分号“;”分隔，如 www.example.cn;example.cn"),
    Column("home_url", "网站首页地址", "须在本网站的域名上，如 http://www.example.cn/"),
    Column("service_content", "网站服务内容", "从下拉列表选择", CodeTable.SERVICE_CONTENT.value),
    Column("access_method", "接入方式", "从下拉列表选择", CodeTable.ACCESS_METHOD.value),
    Column("server_province", "服务器放置地", "服务器所在省份", "province"),
    Column("ip_start", "IP地址段起始", "网站使用的IP地址段的起始地址", required=False),
    Column("ip_end", "IP地址段终止", "终止地址；只有一个地址时可不填", required=False),
    Column("preapproval_category", "前置审批类别", "涉及前置审批时填写", CodeTable.PREAPPROVAL_CATEGORY.value,
           required=False),
    Column("preapproval_document", "前置审批文号", "涉及前置审批时填写", required=False),
    Column("isp_username", "接入商用户名", "通信管理局导入时必填；接入商导入时不填（即为本接入商）", required=False),
)
DATA_SHEET, GUIDE_SHEET, CODES_SHEET = "备案数据", "填写说明", "代码"
TEMPLATE_NAME = "备案导入模板.xlsx"
TEMPLATE_ROWS = 10_000  # rows that get the dropdowns


def code_names(source: str) -> list[tuple[str, str]]:
    """(code, name) of a column's code table, in order."""
    if source == "province":
        return [(p.code, p.name) for p in db.session.scalars(
            select(Province).where(Province.active).order_by(Province.sort_order))]
    return code_values(CodeTable(source))


def template_bytes() -> bytes:
    """备案导入模板.xlsx: the data sheet (Chinese headers, text cells, dropdowns fed by the code tables),
    the explanation of each column, and the codes sheet the dropdowns read."""
    workbook = Workbook()
    data = workbook.active
    data.title = DATA_SHEET
    guide = workbook.create_sheet(GUIDE_SHEET)
    codes = workbook.create_sheet(CODES_SHEET)
    guide.append(["列", "是否必填", "填写说明"])
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        cell = data.cell(row=1, column=index, value=column.header)
        cell.font, cell.fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="B22222")
        data.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4)
        data.column_dimensions[letter].number_format = "@"  # text: ID numbers and mobiles keep their digits
        guide.append([column.header, "必填" if column.required else "选填", column.note])
        if column.codes:
            names = [name for _code, name in code_names(column.codes)]
            codes.cell(row=1, column=index, value=column.header)
            for row, name in enumerate(names, start=2):
                codes.cell(row=row, column=index, value=name)
            validation = DataValidation(
                type="list", formula1=f"'{CODES_SHEET}'!${letter}$2:${letter}${len(names) + 1}", allow_blank=True,
                showErrorMessage=True, errorTitle="请从列表选择", error=f"“{column.header}”请从下拉列表中选择。")
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            data.add_data_validation(validation)
    data.freeze_panes = "A2"
    guide.column_dimensions["A"].width, guide.column_dimensions["C"].width = 20, 80
    guide.append([])
    guide.append(["说明", "", "每行一个网站；同一主体的多个网站各占一行，主体各列填写相同内容。整个文件先全部检查，"
                                "有任何错误则不导入任何数据，并返回标出错误单元格的文件。"])
    guide.append(["域名分隔", "", "与系统中所有表单相同：一个域名占一行（单元格内按 Alt+Enter 换行）；"
                                "为便于粘贴，分号“;”“；”、逗号“,”“，”和顿号“、”也可作分隔。"])
    codes.sheet_state = "hidden"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class CellError:
    row: int  # as the spreadsheet numbers it (the header is row 1)
    column: int  # 1-based
    value: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": COLUMNS[self.column - 1].header if self.column else "",
                "value": self.value, "message": self.message}


class ErrorLog:
    """Every error of a file, kept in a private temporary SQLite database on disk rather than in memory (a
    200,000-row file wrong in every cell has four million), and read back in (rank, row, column) order.

    The errors are any dataclass with `row`, `column` and `value` (the filings' `CellError`, the IP and domain
    sheets' own with a result code); `rank` orders them before the row (the IP file: its sheet)."""

    BATCH = 10_000
    VALUE_CHARS = 200  # a cell may hold 32,767 characters; the list shows the start

    def __init__(self, kind: type = CellError, rank: Callable[[Any], int] | None = None) -> None:
        self._kind, self._rank = kind, rank or (lambda _error: 0)
        self._fields = [item.name for item in dataclass_fields(kind)]
        columns = ", ".join(f'"{name}"' for name in self._fields)
        self._db = sqlite3.connect("")  # "": a temporary database, removed when closed
        self._db.execute(f"CREATE TABLE errors (rank INTEGER, {columns})")
        self._insert = f"INSERT INTO errors VALUES (?, {', '.join('?' for _name in self._fields)})"
        self._select = f'SELECT {columns} FROM errors ORDER BY rank, "row", "column", rowid'
        self._pending: list[tuple[Any, ...]] = []
        self.count = 0

    def append(self, error: Any) -> None:
        values = [getattr(error, name) for name in self._fields]
        values[self._fields.index("value")] = error.value[:self.VALUE_CHARS]
        self._pending.append((self._rank(error), *values))
        self.count += 1
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany(self._insert, self._pending)
        self._pending = []

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        """In (rank, row, column) order, then in the order found."""
        self._flush()
        for row in self._db.execute(self._select):
            yield self._kind(*row)

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class ImportedWebsite:
    row: int
    certificate_number: str  # of its entity
    entity: tuple[str, ...] | None  # the entity's fields (ENTITY_KEYS), on the entity's first row only
    name: str
    domains: list[str]
    home_url: str
    service_content: str
    access_method: str
    server_province_code: str
    ip_ranges: list[tuple[str, str]]
    preapprovals: list[tuple[str, str]]
    isp_username: str


ENTITY_KEYS = ("province", "unit_name", "unit_nature", "certificate_type", "certificate_number", "address",
               "responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email")
INDEX = {column.key: position for position, column in enumerate(COLUMNS)}
KEYS = tuple(column.key for column in COLUMNS)
REQUIRED = tuple(column.key for column in COLUMNS if column.required)
SPILL_EVERY = 5000


class RowSpill:
    """The rows that passed their checks, pickled to a temporary file SPILL_EVERY at a time and read back in file
    order (a 200,000-row file is never all in memory) — none kept once the file has an error."""

    def __init__(self, errors: ErrorLog) -> None:
        self._errors = errors
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as its checker; see close()
        self._pending: list[Any] = []

    def keep(self, row: Any) -> None:
        self._pending.append(row)
        if len(self._pending) >= SPILL_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._pending and not len(self._errors):  # once a row is wrong nothing is imported: stop keeping rows
            pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending = []

    def chunks(self) -> Iterator[list[Any]]:
        """The kept rows again, SPILL_EVERY at a time, in file order."""
        self.flush()
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)
            except EOFError:
                return

    def close(self) -> None:
        self._file.close()


class RowChecker:
    """Every rule of the wizard that needs no database, per row; the registry's rules afterwards, in bulk.

    Memory stays bounded: the checked rows are handed to `stage` SPILL_EVERY at a time, in file order, while no row
    has an error (the import writes them staged as the file is read; none is handed over once a row is wrong);
    only the keys the registry checks need stay in memory."""

    def __init__(self, importer: User, stage: Callable[[list[ImportedWebsite]], None]) -> None:
        self.importer = importer
        self._stage, self._checked = stage, list[ImportedWebsite]()
        self.province_scope = importer.province_code if importer.role == Role.BUREAU else None
        self.codes = {column.key: self._lookup(column.codes) for column in COLUMNS if column.codes}
        self.allowed_types = {code: set((extra or "").split(",")) for code, extra in db.session.execute(
            select(CodeItem.code, CodeItem.extra).where(CodeItem.table == CodeTable.CERTIFICATE_TYPE))}
        self.blacklist = set(db.session.scalars(select(BlacklistEntry.value)))  # small: content admins keep it
        self.forbidden: dict[str | None, list[str]] = {}  # province (None: national) → its forbidden words
        for word, province in db.session.execute(select(ForbiddenWord.word, ForbiddenWord.province_code)
                                                 .order_by(ForbiddenWord.id)):
            self.forbidden.setdefault(province, []).append(word)
        self.entities: dict[str, tuple[int, int]] = {}  # certificate number → first row, packed fingerprint
        self.domains: dict[str, int] = {}  # name → the row of its first use
        self.isp_rows: dict[str, list[int]] = {}  # ISP usernames named (a bureau's import) → rows
        self.errors = ErrorLog()

    @staticmethod
    def _lookup(source: str) -> dict[str, str]:
        pairs = code_names(source)
        return {**{name: code for code, name in pairs}, **{code: code for code, _name in pairs}}

    def _error(self, row: int, key: str, value: str, message: str) -> None:
        self.errors.append(CellError(row, INDEX[key] + 1, value, message))

    def _coded(self, row: int, key: str, value: str) -> str:
        code = self.codes[key].get(value, "")
        if value and not code:
            self._error(row, key, value, f"“{value}”不是有效的{COLUMNS[INDEX[key]].header}，请从下拉列表选择。")
        return code

    def check(self, row: int, cells: list[str]) -> None:
        if not any(cells):
            return  # an empty line
        values = dict(zip(KEYS, cells[:len(KEYS)] + [""] * (len(KEYS) - len(cells)), strict=True))
        for key in REQUIRED:
            if not values[key]:
                self._error(row, key, "", f"“{COLUMNS[INDEX[key]].header}”必填。")
        codes = self.codes
        coded = {key: codes[key].get(values[key]) or self._coded(row, key, values[key]) for key in codes}
        if self.province_scope and coded["province"] and coded["province"] != self.province_scope:
            self._error(row, "province", values["province"], "只能导入本省的备案。")
        fields = tuple(coded[key] if key in coded else values[key] for key in ENTITY_KEYS)
        first = self._check_entity(row, fields, values)
        self._add_website(row, values, coded, fields if first else None)

    def _check_entity(self, row: int, fields: tuple[str, ...], raw: dict[str, str]) -> bool:
        """True on the entity's first row (its fields are kept with the website then)."""
        number = fields[ENTITY_KEYS.index("certificate_number")]
        fingerprint = _fingerprint(fields)
        if number in self.entities:  # another website of an entity already read: the columns must agree
            first_row, first = self.entities[number]
            for index, key in enumerate(ENTITY_KEYS):
                if (fingerprint >> (32 * index)) & 0xFFFFFFFF != (first >> (32 * index)) & 0xFFFFFFFF:
                    self._error(row, key, raw[key], f"与第 {first_row} 行同一主体（证件号码相同）的内容不一致。")
            return False
        named = dict(zip(ENTITY_KEYS, fields, strict=True))
        if named["unit_nature"] and named["certificate_type"] and (error := certificate_type_error(
                named["unit_nature"], named["certificate_type"], self.allowed_types)):
            self._error(row, "certificate_type", raw["certificate_type"], error)
        if named["certificate_number"] and named["certificate_type"] and (error := certificate_number_error(
                named["certificate_type"], named["certificate_number"])):
            self._error(row, "certificate_number", named["certificate_number"], error)
        for key, validate in (("responsible_id_number", id_card_error), ("responsible_mobile", mobile_error),
                              ("responsible_email", email_error)):
            if named[key] and (error := validate(named[key])):
                self._error(row, key, named[key], error)
        for key in ("certificate_number", "unit_name"):
            if named[key] in self.blacklist:
                self._error(row, key, named[key], "该内容在黑名单中，不能备案。")
        if number:
            self.entities[number] = (row, fingerprint)
        return True

    def _add_website(self, row: int, values: dict[str, str], coded: dict[str, str],
                     entity: tuple[str, ...] | None) -> None:
        names = []
        for raw in split_domains(values["domains"]):  # the one separator rule of every form
            try:
                name = _ip_text(raw) or normalise_domain(raw)
            except ValueError as error:
                self._error(row, "domains", raw, str(error))
                continue
            if name in self.domains:
                self._error(row, "domains", raw, f"域名 {name} 在第 {self.domains[name]} 行已填写。")
            if name in self.blacklist:
                self._error(row, "domains", raw, "该内容在黑名单中，不能备案。")
            self.domains.setdefault(name, row)
            names.append(name)
        words = self.forbidden.get(None, []) + self.forbidden.get(coded["province"], [])
        if words and (word := forbidden_word_in(values["website_name"], words)):
            self._error(row, "website_name", values["website_name"], f"网站名称含有禁用词“{word}”，不能备案。")
        if names and values["home_url"] and (error := home_url_error(values["home_url"], names)):
            self._error(row, "home_url", values["home_url"], error)
        ip_ranges = []
        if values["ip_start"]:
            try:
                start, end = parse_ip_range(values["ip_start"], values["ip_end"] or values["ip_start"])
                ip_ranges.append((str(start), str(end)))
            except ValueError as error:
                self._error(row, "ip_start", values["ip_start"], str(error))
        preapprovals = []
        if coded["preapproval_category"] or values["preapproval_document"]:
            if not (coded["preapproval_category"] and values["preapproval_document"]):
                self._error(row, "preapproval_document", values["preapproval_document"],
                            "前置审批类别和文号须同时填写。")
            preapprovals.append((coded["preapproval_category"], values["preapproval_document"]))
        isp = self.importer.username if self.importer.role == Role.ISP else values["isp_username"]
        if self.importer.role != Role.ISP:
            self.isp_rows.setdefault(isp, []).append(row)
        if len(self.errors):
            return  # nothing is imported: the row is not kept
        self._checked.append(ImportedWebsite(
            row, values["certificate_number"], entity, values["website_name"], names, values["home_url"],
            coded["service_content"], coded["access_method"], coded["server_province"], ip_ranges, preapprovals,
            isp))
        if len(self._checked) >= SPILL_EVERY:
            self.hand_over()

    def hand_over(self) -> None:
        """The rows checked since the last hand-over to `stage`, unless a row was wrong (the last ones: at the end)."""
        if self._checked and not len(self.errors):
            self._stage(self._checked)
        self._checked = []

    def close(self) -> None:
        self.errors.close()

    # --- the registry's rules, one query per chunk of values -----------------------------------------
    def check_registry(self) -> None:
        """The file's domains filed already, its certificate numbers taken, its ISPs unknown."""
        taken_domains = _existing(select(Domain.name).where(Domain.live), Domain.name, list(self.domains))
        for name in sorted(taken_domains):
            self._error(self.domains[name], "domains", name, f"域名 {name} 已在其他网站备案。")
        taken_numbers = _existing(select(Entity.certificate_number).where(Entity.status.in_(TAKEN_STATUSES)),
                                  Entity.certificate_number, list(self.entities))
        for number in sorted(taken_numbers):
            self._error(self.entities[number][0], "certificate_number", number, "该证件号码已有有效备案（FAQ 62）。")
        self._check_isps()

    def _check_isps(self) -> None:
        isps = active_isp_ids(self.isp_rows)
        for username, rows in sorted(self.isp_rows.items()):
            if username not in isps:
                for row in rows:
                    self._error(row, "isp_username", username,
                                "请填写有效的接入商用户名。" if username else "通信管理局导入时须填写接入商用户名。")


def active_isp_ids(usernames: Iterable[str]) -> dict[str, int]:
    """The active ISP accounts among `usernames`: username → id."""
    return dict(db.session.execute(select(User.username, User.id).where(
        User.username.in_(sorted(usernames)), User.role == Role.ISP, User.status == UserStatus.ACTIVE)).all())


def _fingerprint(fields: tuple[str, ...]) -> int:
    """32 bits of each field's hash in one integer: enough to tell which column of a later row of the same
    entity differs, at a fraction of the memory of the fields themselves."""
    packed = 0
    for index, value in enumerate(fields):
        packed |= (hash(value) & 0xFFFFFFFF) << (32 * index)
    return packed


IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+")


def _ip_text(raw: str) -> str | None:
    """The address normalised, or None when the text is not an IP address (then it is a domain)."""
    if not IP_CHARS.fullmatch(raw):
        return None  # cheap: most cells are domains, and a failed ip_address() costs an exception
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _existing(query: Any, column: Any, values: list[str], chunk: int = 500) -> set[str]:
    """Which of `values` the registry already holds in `column`. PostgreSQL: one statement, the values sent as
    one array and looked up on the column's index (`= ANY`): 600 statements of 500 values cost 5 s against
    5,000,000 websites, the one statement about 1 s. SQLite (no arrays): `chunk` values per statement."""
    if db.session.get_bind().dialect.name == "postgresql":
        return set(db.session.scalars(query.where(column == any_(bindparam("values", values, ARRAY(String))))))
    found: set[str] = set()
    for start in range(0, len(values), chunk):
        found |= set(db.session.scalars(query.where(column.in_(values[start:start + chunk]))))
    return found


MAX_COMMENTS = 10_000  # cell comments in the marked file; every error is also in its last column, 错误说明


def _header(column: int) -> str:
    return COLUMNS[column - 1].header if 0 < column <= len(COLUMNS) else f"第 {column} 列"


def write_annotated(path: Path, errors: Iterable[CellError], target: Path) -> None:
    """The uploaded rows written back to `target`, each wrong cell filled red (the first MAX_COMMENTS also
    commented) and every message in a last column 错误说明: one pass over the rows beside one pass over the
    errors in (row, column) order (linear in both). Written by XlsxWriter in constant-memory mode, row by row
    (three times faster than openpyxl's write-only mode for 100,000 rows); every value as a string cell,
    formula-like text with Excel's quote prefix, so nothing in the file ever runs."""
    header, rows, _count = xlsx_reader.read_rows(path, xlsx_reader.container_kind(path))
    workbook = xlsxwriter.Workbook(str(target), {"constant_memory": True, "strings_to_formulas": False,
                                                 "strings_to_numbers": False, "strings_to_urls": False})
    sheet = workbook.add_worksheet(DATA_SHEET)
    styles = {(wrong, quoted): workbook.add_format({"bg_color": "#FFC7CE"} if wrong else {}) for wrong in (0, 1)
              for quoted in (0, 1)}
    for (_wrong, quoted), style in styles.items():
        if quoted:
            style.set_quote_prefix()
    pending = iter(errors)
    following = next(pending, None)
    commented = 0

    def write(row_number: int, index: int, values: list[str]) -> None:
        nonlocal following, commented
        marked: dict[int, list[str]] = {}
        while following is not None and following.row <= row_number:
            if following.row == row_number:
                marked.setdefault(following.column or 1, []).append(following.message)
            following = next(pending, None)
        values = (values + [""] * len(COLUMNS))[:len(COLUMNS)]  # the template's columns, then 错误说明
        for column, value in enumerate(values, start=1):
            text = "" if value is None else str(value)
            style = styles[column in marked, is_formula_like(text)]
            sheet.write_string(index, column - 1, text, style)
            if column in marked and commented < MAX_COMMENTS:
                sheet.write_comment(index, column - 1, "\n".join(marked[column]), {"author": "备案系统"})
                commented += 1
        explained = "；".join(f"{_header(column)}：{message}" for column, messages in marked.items()
                             for message in messages)
        sheet.write_string(index, len(COLUMNS), explained, styles[False, is_formula_like(explained)])

    write(1, 0, header)
    sheet.write_string(0, len(COLUMNS), "错误说明")
    for index, (row_number, values) in enumerate(rows, start=1):
        write(row_number, index, values)
    workbook.close()
