"""The IP and domain reports through the data-exchange API (issue 16 §2, SPEC §11): an IP reporting unit adds,
changes and deletes its source blocks, allocations and self-brought blocks, a registrar its domain reports, in
batches of up to 1,000 records; and the two reads (who holds an address, the caller's report of a domain).

Nothing here decides a rule: a record is read the way the xlsx imports read a row (`ip_import.parse_row`,
`domain_import.parse_row`: code-table names or codes, a block's origin guessed from what is filled in) and handed
to the functions of `workflow/ip.py` and `workflow/domains.py` that the console calls, whose refusals carry the
specification's result codes (2xxx, 3xxx). The record schemas are generated from the import templates' columns
(the same field names, headers and notes), with the database columns' lengths, so the OpenAPI document, the
templates and the checks cannot drift apart.

A record to change or delete is named by its id (as an accepted record's `ids` return it) or, as in a template,
by what identifies it: an IP record by its exact range among the caller's records, a domain report by its domain.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import g
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select

import audit
import domain_import
import ip_import
import ipindex
import permissions
import workflow.domains as domains
import workflow.ip as ip
from exchange_api.core import Refusal, batch_operation, query_operation, refusal_of
from extensions import begin_write, db
from models import DomainReport, IpAllocation, IpBlock, IpSelfBrought, User
from permissions import Action
from workflow.errors import CodedErrors
from workflow.ip_lookup import ChainStep, holder_chain

MAX_ID = 2**63 - 1
ADDRESS_LENGTH = 64  # an IPv6 address written out in full with brackets is shorter
CODED_LENGTH = 64  # a coded field may hold the code or its name, as in the template
DATE_KEYS = {"allocated_on", "registered_on", "expires_on"}


# --- the record schemas, from the templates' columns -----------------------------------------------------------

def _description(header: str, note: str, required: str = "") -> str:
    return "；".join(part for part in (header, note, required) if part)


def _field(key: str, description: str, table: Any, coded: bool, required: bool = False) -> tuple[Any, Any]:
    """(type, Field) of one template column: a date, a yes/no, else text no longer than the column that keeps it
    (a coded column: the code or its name)."""
    if key in DATE_KEYS:
        return date | None, Field(None, description=f"{description}（YYYY-MM-DD）")
    if key == "redirect_server":
        return bool, Field(False, description=description)
    column = table.columns.get(key)
    length = ADDRESS_LENGTH if key in ("start", "end") else CODED_LENGTH if coded else \
        getattr(column.type, "length", None) if column is not None else None
    return str, Field(... if required else "", max_length=length or 255, description=description)


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
        _one_way([self.id is not None, bool(self.start.strip())], "编号 id，或地址段 start、end")
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
DomainChange = _change_of(DomainRecord, DomainTarget, "本记录 domain 的报备")


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
    sheet = ip_import.SHEET_OF[kind]
    data, unreadable = ip_import.parse_row(sheet, 0, [_cell(getattr(record, column.key)) for column in sheet.columns],
                                           _cached("exchange_ip_codes", ip_import.Codes))
    if unreadable:
        raise ip.IpError([(sheet.columns[error.column - 1].key, error.code, error.message) for error in unreadable])
    return data


def _domain_data(record: BaseModel) -> domains.ReportData:
    data, unreadable = domain_import.parse_row(0, [_cell(getattr(record, column.key))
                                                   for column in domain_import.COLUMNS],
                                               _cached("exchange_domain_codes", domain_import.Codes))
    if unreadable:
        raise domains.DomainError([(domain_import.COLUMNS[error.column - 1].key, error.code, error.message)
                                   for error in unreadable])
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

@batch_operation("/ip/allocations", record=AllocationRecord, summary="新增分配及使用信息", **IP)
def add_ip_allocations(actor: User, record: Any) -> dict[str, Any]:
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

@batch_operation("/domains", record=DomainRecord, summary="新增域名报备", **DOMAIN)
def add_domain_reports(actor: User, record: Any) -> dict[str, Any]:
    return {"report_id": domains.add_report(actor, _domain_data(record)).id}


@batch_operation("/domains/change", record=DomainChange, summary="修改域名报备", **DOMAIN)
def change_domain_reports(actor: User, record: Any) -> dict[str, Any]:
    report = _domain_target(record.target or DomainTarget.model_construct(id=None, domain=record.domain))
    return {"report_id": domains.change_report(actor, report, _domain_data(record)).id}


@batch_operation("/domains/delete", record=DomainTarget, summary="删除域名报备（报备保留，状态为已删除）", **DOMAIN)
def delete_domain_reports(actor: User, record: DomainTarget) -> dict[str, Any]:
    report = _domain_target(record)
    domains.delete_report(actor, report)
    return {"report_id": report.id}


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
    id: int
    range: str = Field(description="地址段")
    unit: str = Field(description="报备单位的账号")
    unit_name: str | None = Field(None, description="报备单位名称")
    origin: str | None = Field(None, description="来源类型（来源信息）")
    registry: str | None = Field(None, description="地址注册机构（来源信息）")
    method: str | None = Field(None, description="分配方式（分配信息）")
    target_unit: str | None = Field(None, description="接收单位的账号（再分配）")
    user_name: str | None = Field(None, description="用户单位名称")
    usage: str | None = Field(None, description="使用方式")
    province_code: str | None = None
    city_code: str | None = None
    county_code: str | None = None
    source_unit: str | None = Field(None, description="来源单位的账号（自带IP）")
    source_name: str | None = Field(None, description="来源单位名称（自带IP）")


class LookupAnswer(BaseModel):
    """地址查询的结果。"""

    address: str
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
