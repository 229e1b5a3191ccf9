"""The IP and domain reports through the data-exchange API (issue 16 §2, SPEC §11): an IP reporting unit adds,
changes and deletes its source blocks, allocations and self-brought blocks, a registrar its domain reports, in
batches of up to 1,000 records; and the two reads (who holds an address, the caller's report of a domain).

Nothing here decides a rule: a record is read the way the xlsx imports read a row (`ip_import.parse_row`,
`domain_import.parse_row`: code-table names or codes, a block's origin guessed from what is filled in) and handed
to the functions of `workflow/ip.py` and `workflow/domains.py` that the console calls, whose refusals carry the
specification's result codes (2xxx, 3xxx). The record schemas are generated from the import templates' columns
(the same field names, headers and notes), with the database columns' lengths, so the OpenAPI document, the
templates and the checks cannot drift apart.

A record to change or delete is named by its id (as an accepted record's `ids` return it) or by what identifies it
to the unit: an IP record by its exact range among the caller's records, a domain report by its domain.

New allocations and new domain reports — the operations a provider sends by the thousand — are checked a batch at
a time by the imports' checkers and inserted as the imports insert them; whatever those refuse, and whatever could
depend on it, goes through the workflow one record at a time, so every outcome is the one the workflow gives
record by record (`add_ip_allocations`).
"""

from __future__ import annotations

import bisect
import itertools
from datetime import date, datetime
from typing import Any

from flask import g
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import audit
import domain_import
import ip_import
import ipindex
import permissions
import workflow.domain_imports as domain_imports
import workflow.domains as domains
import workflow.ip as ip
import workflow.ip_imports as ip_imports
from exchange_api.core import Refusal, batch_operation, in_savepoints, query_operation, refusal_of
from extensions import begin_write, db
from models import DomainReport, DomainStatus, IpAllocation, IpBlock, IpSelfBrought, User, utcnow
from permissions import Action
from workflow.errors import CodedErrors, WorkflowError
from workflow.ip_findings import mark_stale
from workflow.ip_lookup import ChainStep, holder_chain

MAX_ID = 2**63 - 1
ADDRESS_LENGTH = 64  # an IPv6 address written out in full with brackets is shorter
NAMED_LENGTH = 64  # a coded field may hold the code or its name, as in the template; a city its name
TEXT_LENGTH = 4000
DATE_KEYS = {"allocated_on", "registered_on", "expires_on"}


# --- the record schemas, from the templates' columns -----------------------------------------------------------

def _description(header: str, note: str, required: str = "") -> str:
    return "；".join(part for part in (header, note, required) if part)


def _length(key: str, table: Any, coded: bool) -> int:
    """The longest text a field takes: what the column keeps; a code or its name, a city or county by code or
    name, an account name: NAMED_LENGTH; an unbounded text column: TEXT_LENGTH."""
    if key in ("start", "end"):
        return ADDRESS_LENGTH
    column = table.columns.get(key)
    if coded or key in ("city_code", "county_code") or column is None:
        return NAMED_LENGTH
    return getattr(column.type, "length", None) or TEXT_LENGTH


def _field(key: str, description: str, table: Any, coded: bool, required: bool = False) -> tuple[Any, Any]:
    """(type, Field) of one template column: a date, a yes/no, else text no longer than the column keeps."""
    if key in DATE_KEYS:
        return date | None, Field(None, description=f"{description}（YYYY-MM-DD）")
    if key == "redirect_server":
        return bool, Field(False, description=description)
    length = _length(key, table, coded)
    if required:
        return str, Field(min_length=1, max_length=length, description=description)
    return str, Field("", max_length=length, description=description)


def _ip_record(name: str, kind: str, model: Any, example: dict[str, Any], doc: str) -> type[BaseModel]:
    sheet = ip_import.SHEET_OF[kind]
    fields = {column.key: _field(column.key, _description(column.header, column.note, column.required),
                                 model.__table__, bool(column.codes), column.key == "start")
              for column in sheet.columns}
    return create_model(name, __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
                        __doc__=doc, **fields)


def _domain_record() -> type[BaseModel]:
    fields = {column.key: _field(column.key, _description(column.header, column.note,
                                                          "必填" if column.required else ""),
                                 DomainReport.__table__, bool(column.codes), column.key == "domain")
              for column in domain_import.COLUMNS}
    return create_model("DomainReportRecord", __config__=ConfigDict(
        extra="forbid", json_schema_extra={"examples": [DOMAIN_EXAMPLE]}),
        __doc__="一条域名报备：与域名报备导入模板的列相同（代码表字段可填代码或名称）。", **fields)


USER_UNIT_EXAMPLE = {"usage": "1", "allocated_on": "2026-01-05", "user_name": "天津某科技有限公司",
                     "user_nature": "4", "province_code": "120000", "city_code": "120100",
                     "address": "天津市和平区某路1号", "contact_name": "王五", "contact_phone": "022-12345678",
                     "contact_email": "ip@example.cn"}
DOMAIN_EXAMPLE = {"domain": "example.cn", "domain_type": "2", "registered_on": "2025-01-05",
                  "expires_on": "2028-01-05", "registrar_name": "某注册服务机构",
                  "name_servers": "ns1.example.cn\nns2.example.cn", "registrant_name": "天津某科技有限公司",
                  "registrant_certificate_type": "1", "registrant_certificate_number": "91120000MA05XXXX0X",
                  "registrant_email": "dns@example.cn", "registrant_phone": "022-12345678", "admin_name": "李四",
                  "admin_email": "admin@example.cn", "admin_phone": "13912345678"}

BlockRecord = _ip_record("IpBlockRecord", "block", IpBlock, {
    "start": "58.0.0.0", "end": "58.0.255.255", "registry_code": "APNIC"},
    "一条来源信息（本单位从地址注册机构或其他报备单位获得的地址段）：与IP地址导入模板“来源信息”工作表的列相同。")
AllocationRecord = _ip_record("IpAllocationRecord", "allocation", IpAllocation, {
    "start": "58.0.1.0", "end": "58.0.1.255", "method": "1", **USER_UNIT_EXAMPLE},
    "一条分配及使用信息：与IP地址导入模板“分配及使用信息”工作表的列相同。")
SelfBroughtRecord = _ip_record("IpSelfBroughtRecord", "self_brought", IpSelfBrought, {
    "start": "203.0.113.0", "end": "203.0.113.255", "source_name": "某云计算公司", **USER_UNIT_EXAMPLE},
    "一条自带IP信息：与IP地址导入模板“自带IP”工作表的列相同。")
DomainRecord = _domain_record()


def _one_way(given: list[bool], what: str) -> None:
    if sum(given) != 1:
        raise PydanticCustomError("target", f"请只用一种方式指明记录：{what}。")


class IpTarget(BaseModel):
    """要修改或删除的IP记录：编号 id，或本单位记录的地址段 start、end（须完全相同）。"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": 7}, {"start": "58.0.1.0", "end": "58.0.1.255"}]})
    id: int | None = Field(None, ge=1, le=MAX_ID, description="记录编号（新增时应答 ids 中的编号）")
    start: str = Field("", max_length=ADDRESS_LENGTH,
                       description="记录的起始IP地址（不填编号时按地址段查找本单位的记录）")
    end: str = Field("", max_length=ADDRESS_LENGTH, description="记录的终止IP地址；只有一个地址时可不填")

    @model_validator(mode="after")
    def _named_once(self) -> IpTarget:
        _one_way([self.id is not None, bool(self.start.strip() or self.end.strip())], "编号 id，或地址段 start、end")
        return self


class DomainTarget(BaseModel):
    """要修改或删除的域名报备：编号 id，或域名 domain。"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"id": 3}, {"domain": "example.cn"}]})
    id: int | None = Field(None, ge=1, le=MAX_ID, description="报备编号（新增时应答 ids 中的编号）")
    domain: str = Field("", max_length=253, description="报备的域名")

    @model_validator(mode="after")
    def _named_once(self) -> DomainTarget:
        _one_way([self.id is not None, bool(self.domain.strip())], "编号 id，或域名 domain")
        return self


def _change_of(record: type[BaseModel], target: type[BaseModel], what: str) -> type[BaseModel]:
    return create_model(f"{record.__name__.removesuffix('Record')}Change", __base__=record,
                        __doc__=f"修改一条记录：新的内容（各列同新增），以及要修改的记录 target（不填时为{what}）。",
                        target=(target | None, Field(None, description=f"要修改的记录；不填时为{what}")))


BlockChange = _change_of(BlockRecord, IpTarget, "本单位地址段与本记录 start、end 相同的记录")
AllocationChange = _change_of(AllocationRecord, IpTarget, "本单位地址段与本记录 start、end 相同的记录")
SelfBroughtChange = _change_of(SelfBroughtRecord, IpTarget, "本单位地址段与本记录 start、end 相同的记录")
DomainReportChange = _change_of(DomainRecord, DomainTarget, "本记录 domain 的报备")


# --- a record into the workflow's data, as the imports read a row ------------------------------------------------

def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _cached(name: str, make: Any) -> Any:
    """The imports' code-table readers, made once per call (the code tables and divisions: a query each)."""
    if name not in g:
        setattr(g, name, make())
    return g.get(name)


def _ip_data(kind: str, record: BaseModel) -> Any:
    """The record as the sheet's workflow data; what the import finds unreadable (a date, a yes/no) the schema
    has typed already."""
    sheet = ip_import.SHEET_OF[kind]
    data, _unreadable = ip_import.parse_row(sheet, 0, [_cell(getattr(record, column.key)) for column in sheet.columns],
                                            _cached("exchange_ip_codes", ip_import.Codes))
    return data


def _domain_data(record: BaseModel) -> domains.ReportData:
    """As `_ip_data`, for a domain report."""
    data, _unreadable = domain_import.parse_row(0, [_cell(getattr(record, column.key))
                                                    for column in domain_import.COLUMNS],
                                                _cached("exchange_domain_codes", domain_import.Codes))
    return data


# --- the record a change or deletion names -------------------------------------------------------------------

def _ip_target(model: Any, actor: User, target: Any) -> Any:
    """The record by id (the workflow then refuses another unit's: 2054, or a missing one: 2055), or the caller's
    record of exactly this range (None: 2055)."""
    if target.id is not None:
        return db.session.get(model, target.id)
    keys = ip.parse_range(target.start, target.end)
    return db.session.scalar(select(model).where(model.unit_id == actor.id, model.start_key == keys.start_key,
                                                 model.end_key == keys.end_key))


def _named_by(record: Any) -> IpTarget:
    """A change's target, by default the caller's record of the range the change gives."""
    return record.target or IpTarget.model_construct(id=None, start=record.start, end=record.end)


def _domain_target(target: Any) -> DomainReport | None:
    """The report by id, or the live report of the domain whoever made it (the workflow then refuses another
    registrar's: 3037)."""
    if target.id is not None:
        return db.session.get(DomainReport, target.id)
    found = domains.live_reports([domains.normalised(target.domain)])
    return found[0] if found else None


# --- IP reports: source blocks ----------------------------------------------------------------------------------

IP = {"scope": "ip", "family": "2"}
DOMAIN = {"scope": "domain", "family": "3"}


@batch_operation("/ip/blocks", record=BlockRecord, summary="新增来源信息（地址段）", **IP)
def add_ip_blocks(actor: User, record: Any) -> dict[str, Any]:
    return {"block_id": ip.add_block(actor, _ip_data("block", record)).id}


@batch_operation("/ip/blocks/change", record=BlockChange, summary="修改来源信息", **IP)
def change_ip_blocks(actor: User, record: Any) -> dict[str, Any]:
    block = _ip_target(IpBlock, actor, _named_by(record))
    return {"block_id": ip.change_block(actor, block, _ip_data("block", record)).id}


@batch_operation("/ip/blocks/delete", record=IpTarget, summary="删除来源信息", **IP)
def delete_ip_blocks(actor: User, record: IpTarget) -> dict[str, Any]:
    block = _ip_target(IpBlock, actor, record)
    ip.delete_block(actor, block)
    return {"block_id": block.id}


# --- IP reports: allocations -----------------------------------------------------------------------------------

def add_ip_allocation(actor: User, record: Any) -> dict[str, Any]:
    return {"allocation_id": ip.add_allocation(actor, _ip_data("allocation", record)).id}


@batch_operation("/ip/allocations/change", record=AllocationChange, summary="修改分配及使用信息", **IP)
def change_ip_allocations(actor: User, record: Any) -> dict[str, Any]:
    allocation = _ip_target(IpAllocation, actor, _named_by(record))
    return {"allocation_id": ip.change_allocation(actor, allocation, _ip_data("allocation", record)).id}


@batch_operation("/ip/allocations/delete", record=IpTarget, summary="删除分配及使用信息", **IP)
def delete_ip_allocations(actor: User, record: IpTarget) -> dict[str, Any]:
    allocation = _ip_target(IpAllocation, actor, record)
    ip.delete_allocation(actor, allocation)
    return {"allocation_id": allocation.id}


# --- IP reports: self-brought blocks ---------------------------------------------------------------------------

@batch_operation("/ip/self-brought", record=SelfBroughtRecord, summary="新增自带IP信息", **IP)
def add_ip_self_brought(actor: User, record: Any) -> dict[str, Any]:
    return {"self_brought_id": ip.add_self_brought(actor, _ip_data("self_brought", record)).id}


@batch_operation("/ip/self-brought/change", record=SelfBroughtChange, summary="修改自带IP信息", **IP)
def change_ip_self_brought(actor: User, record: Any) -> dict[str, Any]:
    brought = _ip_target(IpSelfBrought, actor, _named_by(record))
    return {"self_brought_id": ip.change_self_brought(actor, brought, _ip_data("self_brought", record)).id}


@batch_operation("/ip/self-brought/delete", record=IpTarget, summary="删除自带IP信息", **IP)
def delete_ip_self_brought(actor: User, record: IpTarget) -> dict[str, Any]:
    brought = _ip_target(IpSelfBrought, actor, record)
    ip.delete_self_brought(actor, brought)
    return {"self_brought_id": brought.id}


# --- domain reports --------------------------------------------------------------------------------------------

def add_domain_report(actor: User, record: Any) -> dict[str, Any]:
    return {"report_id": domains.add_report(actor, _domain_data(record)).id}


@batch_operation("/domains/change", record=DomainReportChange, summary="修改域名报备", **DOMAIN)
def change_domain_reports(actor: User, record: Any) -> dict[str, Any]:
    report = _domain_target(record.target or DomainTarget.model_construct(id=None, domain=record.domain))
    return {"report_id": domains.change_report(actor, report, _domain_data(record)).id}


@batch_operation("/domains/delete", record=DomainTarget, summary="删除域名报备（报备保留，状态为已删除）", **DOMAIN)
def delete_domain_reports(actor: User, record: DomainTarget) -> dict[str, Any]:
    report = _domain_target(record)
    domains.delete_report(actor, report)
    return {"report_id": report.id}


# --- new records at import speed -------------------------------------------------------------------------------

Outcome = dict[str, Any] | Exception


def _with_the_rest(actor: User, records: list[tuple[int, Any]], written: dict[int, dict[str, Any]],
                   handler: Any) -> list[Outcome]:
    """The outcomes in the batch's order: the records written at once, the others one by one (in order) after."""
    rest = iter(in_savepoints(actor, [item for position, item in enumerate(records) if position not in written],
                            handler))
    return [written[position] if position in written else next(rest) for position in range(len(records))]


def _allocation_check(actor: User, records: list[Any]) -> tuple[set[int], list[ip_imports.Checked]]:
    """The IP import's checker over the records: the positions it refuses, and (if none) the checked rows."""
    sheet, checker = ip_import.SHEET_OF["allocation"], ip_imports.Checker(actor)
    try:
        for number, record in enumerate(records, start=1):
            checker.check(sheet, number, [_cell(getattr(record, column.key)) for column in sheet.columns])
        checker.finish()
        refused = {error.row - 1 for error in checker.errors}
        return refused, [] if refused else [row for chunk in checker.rows() for row in chunk]
    finally:
        checker.close()


def _span(record: Any) -> tuple[int, int] | None:
    try:
        keys = ip.parse_range(record.start, record.end)
    except ip.IpError:
        return None
    return keys.start, keys.end


def _clear_of(refused: set[int], spans: list[tuple[int, int] | None]) -> list[int]:
    """The records not refused whose range meets no refused record's range: nothing that happens to those can
    change their outcome (the checker refuses every range that overlaps another, so these never overlap)."""
    bad = sorted(span for position in refused if (span := spans[position]) is not None)
    starts, reach = [start for start, _end in bad], list(itertools.accumulate((end for _start, end in bad), max))

    def meets(span: tuple[int, int]) -> bool:
        last = bisect.bisect_right(starts, span[1]) - 1
        return last >= 0 and reach[last] >= span[0]

    return [position for position, span in enumerate(spans)
            if position not in refused and span is not None and not meets(span)]


@batch_operation("/ip/allocations", record=AllocationRecord, summary="新增分配及使用信息", whole_batch=True,
                 description="整批先按IP地址导入的方式检查，通过的记录一次写入；与被拒记录无关的不受其影响，"
                             "其余记录逐条处理。结果与逐条处理相同。", **IP)
def add_ip_allocations(actor: User, records: list[tuple[int, Any]]) -> list[Outcome]:
    """The batch checked by the IP import's checker (the workflow's rules; a query per distinct code and one pass
    over the unit's allocations instead of some ten queries a record); the records it passes whose ranges meet no
    refused one's are inserted as the import inserts them, with the workflow's audit events; the others go
    through `add_allocation` one by one, so every refusal is the workflow's own and every outcome is what running
    the batch record by record gives. The unit and its source blocks are locked first, as `add_allocation` locks
    the unit and the block it uses."""
    try:
        ip.require_reporter(actor)
    except WorkflowError:
        return in_savepoints(actor, records, add_ip_allocation)
    ip.lock_unit(actor)
    db.session.execute(select(IpBlock.id).where(IpBlock.unit_id == actor.id).with_for_update())
    items = [record for _index, record in records]
    refused, rows = _allocation_check(actor, items)
    clear = _clear_of(refused, [_span(record) for record in items])
    if refused and clear:
        again, rows = _allocation_check(actor, [items[position] for position in clear])
        clear = [] if again else clear  # fewer records pass what more passed; else each goes by itself
    written = _write_allocations(actor, rows, clear) if clear else {}
    return _with_the_rest(actor, records, written, add_ip_allocation)


def _write_allocations(actor: User, rows: list[ip_imports.Checked], clear: list[int]) -> dict[int, dict[str, Any]]:
    writer = ip_imports.Writer(actor)
    writer.write(rows)
    ids = writer.ids_of(IpAllocation, [row.keys.start_key for row in rows])
    mark_stale()
    audit.record_many([("ip.allocation.added", {
        "object_type": "ip_allocation", "object_id": ids[row.keys.start_key], "province_code": actor.province_code,
        "actor": actor, "changes": {"range": row.keys.text, "method": row.data.method}}) for row in rows])
    return {clear[row.row - 1]: {"allocation_id": ids[row.keys.start_key]} for row in rows}


def _report_check(actor: User, records: list[Any], stamp: datetime) -> tuple[set[int], list[dict[str, Any]]]:
    """The domain import's checker over the records: the positions it refuses, and (if none) the insert rows."""
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    checker = domain_import.RowChecker(actor, lambda row: domain_imports.insert_row(actor, row, stamp, sqlite))
    try:
        for number, record in enumerate(records, start=1):
            checker.check(number, [_cell(getattr(record, column.key)) for column in domain_import.COLUMNS])
        checker.finish()
        refused = {error.row - 1 for error in checker.errors}
        return refused, [] if refused else [row for chunk in checker.rows() for row in chunk]
    finally:
        checker.close()


def _name(domain: str) -> str | None:
    try:
        return domains.normalised(domain)
    except domains.DomainError:
        return None


@batch_operation("/domains", record=DomainRecord, summary="新增域名报备", whole_batch=True,
                 description="整批先按域名报备导入的方式检查，通过的记录一次写入；与被拒记录无关的不受其影响，"
                             "其余记录逐条处理。结果与逐条处理相同。", **DOMAIN)
def add_domain_reports(actor: User, records: list[tuple[int, Any]]) -> list[Outcome]:
    """As `add_ip_allocations`, with the domain import's checker and inserts (each report and its queued
    reconciliation) and `add_report`; records interact only through their domain. Another registrar reporting one
    of the domains meanwhile is caught by the unique index of live reports: then every record goes one by one."""
    try:
        domains.require_registrar(actor)
    except domains.DomainError:
        return in_savepoints(actor, records, add_domain_report)
    items, stamp = [record for _index, record in records], utcnow()
    refused, rows = _report_check(actor, items, stamp)
    names = [_name(record.domain) for record in items]
    taken = {names[position] for position in refused}
    clear = [position for position in range(len(items)) if position not in refused and names[position] not in taken]
    if refused and clear:
        again, rows = _report_check(actor, [items[position] for position in clear], stamp)
        clear = [] if again else clear
    written: dict[int, dict[str, Any]] = {}
    if clear:
        try:
            with db.session.begin_nested():
                written = _write_reports(actor, rows, clear)
        except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError):
            written = {}
    return _with_the_rest(actor, records, written, add_domain_report)


def _write_reports(actor: User, rows: list[dict[str, Any]], clear: list[int]) -> dict[int, dict[str, Any]]:
    domain_imports.write_reports(actor, iter([rows]))
    ids = _report_ids(actor, [row["domain"] for row in rows])
    audit.record_many([("domain.reported", {
        "object_type": "domain_report", "object_id": ids[row["domain"]], "province_code": actor.province_code,
        "actor": actor, "changes": {"domain": row["domain"]}}) for row in rows])
    return {position: {"report_id": ids[row["domain"]]} for position, row in zip(clear, rows, strict=True)}


def _report_ids(actor: User, names: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for first in range(0, len(names), domain_import.LOOKUP_CHUNK):
        found |= {domain: report_id for domain, report_id in db.session.execute(select(
            DomainReport.domain, DomainReport.id).where(
            DomainReport.registrar_id == actor.id, DomainReport.status != DomainStatus.DELETED,
            DomainReport.domain.in_(names[first:first + domain_import.LOOKUP_CHUNK])))}
    return found


# --- reads ----------------------------------------------------------------------------------------------------

def _refusal(error: CodedErrors, family: str) -> Refusal:
    """A read's refusal with the code the batch operations would give the same error."""
    result = refusal_of(0, error, family)
    return Refusal(result["code"], result["message"], result["field"])


class LookupQuery(BaseModel):
    """地址查询的参数。"""

    model_config = ConfigDict(extra="forbid")
    address: str = Field(max_length=ADDRESS_LENGTH, description="要查询的 IPv4 或 IPv6 地址",
                         json_schema_extra={"examples": ["58.0.1.7"]})

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        try:
            ipindex.address_key(value)
        except ValueError:
            raise PydanticCustomError("address", "不是有效的 IPv4 或 IPv6 地址。") from None
        return value.strip()


class ChainStepAnswer(BaseModel):
    """持有该地址的一条记录。"""

    kind: str = Field(description="block 来源信息 / allocation 分配信息 / self_brought 自带IP")
    id: int = Field(description="记录编号")
    range: str = Field(description="地址段")
    unit: str = Field(description="报备单位的账号")
    unit_name: str | None = Field(None, description="报备单位名称")
    origin: str | None = Field(None, description="来源类型（来源信息）")
    registry: str | None = Field(None, description="地址注册机构（来源信息）")
    method: str | None = Field(None, description="分配方式（分配信息）")
    target_unit: str | None = Field(None, description="接收单位的账号（再分配）")
    user_name: str | None = Field(None, description="用户单位名称")
    usage: str | None = Field(None, description="使用方式")
    province_code: str | None = Field(None, description="用户单位所在省份的代码")
    city_code: str | None = Field(None, description="用户单位所在城市的代码")
    county_code: str | None = Field(None, description="用户单位所在区县的代码")
    source_unit: str | None = Field(None, description="来源单位的账号（自带IP）")
    source_name: str | None = Field(None, description="来源单位名称（自带IP）")


class LookupAnswer(BaseModel):
    """地址查询的结果。"""

    address: str = Field(description="查询的地址")
    chain: list[ChainStepAnswer] = Field(description="持有该地址的记录：从报备的地址段到最具体的一条；自带IP在最后")


def _visible(actor: User, step: ChainStep) -> bool:
    """The console's lookup shows the whole chain to those who may look up addresses (bureaus, MIIT, special
    query); a reporting unit sees in it what its own record lists show: its own records."""
    return permissions.can(actor, Action.IP_LOOKUP) or (
        permissions.can(actor, Action.IP_REPORT) and step.record.unit_id == actor.id)


@query_operation("/ip/lookup", scope="ip", params=LookupQuery, response=LookupAnswer,
                 summary="地址查询：持有某地址的记录链",
                 description="与控制台“地址查询”相同；报备单位只看到链中本单位的记录。每次查询记入审计日志。")
def look_up_ip(actor: User, query: LookupQuery) -> LookupAnswer:
    chain = [step for step in holder_chain(query.address) if _visible(actor, step)]
    begin_write()
    audit.record("ip.lookup", object_type="ip_address", object_id=query.address, actor=actor,
                 changes={"address": query.address, "records": len(chain)})
    if not chain:
        raise Refusal("2055", f"没有可查看的记录包含地址 {query.address}。", "address")
    return LookupAnswer(address=query.address, chain=[ChainStepAnswer(**step.as_dict()) for step in chain])


class DomainQuery(BaseModel):
    """域名报备查询的参数。"""

    model_config = ConfigDict(extra="forbid")
    domain: str = Field(max_length=253, description="域名", json_schema_extra={"examples": ["example.cn"]})


DomainReportAnswer = create_model(
    "DomainReportAnswer", __base__=DomainRecord, __doc__="本单位对该域名的报备（各列同新增）。",
    id=(int, Field(description="报备编号")),
    status=(str, Field(description="normal 正常 / suspended 暂停解析 / expired 已过期")))


@query_operation("/domains/report", scope="domain", params=DomainQuery, response=DomainReportAnswer,
                 summary="查询本单位对某域名的报备")
def domain_report(actor: User, query: DomainQuery) -> Any:
    try:
        domains.require_registrar(actor)
        report = domains.report_of(actor, query.domain)
    except domains.DomainError as error:
        raise _refusal(error, "3") from None
    if report is None:
        raise Refusal("3001", "本单位没有报备该域名。", "domain")
    texts = {name: getattr(report, name) or "" for name in domains.DATA_FIELDS if name not in (*DATE_KEYS, "status")}
    return DomainReportAnswer(id=report.id, status=str(report.status), registered_on=report.registered_on,
                              expires_on=report.expires_on, **texts)
