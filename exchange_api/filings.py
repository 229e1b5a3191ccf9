"""The filing operations of the data-exchange API (issue 16 §2, result codes 1xxx): a new filing, a new website,
a new or cancelled access, a change, a cancellation, the ISP's verification result, and a filing's status.

Each record calls the same workflow function as the console's page for it — the rules, permissions and audit
events are the workflow's — and this module only translates: JSON records into the workflow's data classes, the
workflow's refusals into result codes and the record's field paths (`filing_codes`). Records name filings as the
console does: by filing number or website number (…号-n), and applications by their id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import or_, select, true
from sqlalchemy.exc import IntegrityError

import permissions
import workflow
from exchange_api.core import Refusal, batch_operation, query_operation
from exchange_api.filing_codes import NOT_FOUND, Rename, api_field, coded, not_served
from extensions import db
from models import Application, Certificate, CertificateStatus, Domain, Entity, FilingStatus, Role, User, Website
from validators import normalise_domain
from workflow.errors import NotFound, WorkflowError
from workflow.filing_batch import Filed, submit_new_filings

T = TypeVar("T")
FAMILY = "1"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- the filing's data, as the console's wizard has it ------------------------------------------------------

class FilingIpRange(Record):
    start: str = Field(max_length=45, description="起始 IP 地址", examples=["203.0.113.1"])
    end: str = Field(default="", max_length=45, description="结束 IP 地址（省略：与起始地址相同）",
                     examples=["203.0.113.20"])


class FilingAccess(Record):
    isp: str | None = Field(default=None, max_length=64,
                            description="接入服务商的账号名；省略时为调用者本人（调用者须为接入服务商）",
                            examples=["tj_isp"])
    method: str = Field(max_length=16, description="接入方式代码（代码表“接入方式”）", examples=["2"])
    server_province_code: str = Field(max_length=6, description="服务器所在省份代码", examples=["120000"])
    ip_ranges: list[FilingIpRange] = Field(default_factory=list, max_length=100, description="服务器 IP 地址段")

    def data(self, isp_id: int) -> workflow.AccessData:
        return workflow.AccessData(isp_id=isp_id, method=self.method, server_province_code=self.server_province_code,
                                   ip_ranges=[(r.start, r.end or r.start) for r in self.ip_ranges])


class FilingPreapproval(Record):
    category: str = Field(max_length=16, description="前置审批类别代码（代码表“前置审批类别”）", examples=["1"])
    document_number: str = Field(max_length=64, description="前置审批文号", examples=["津新出审〔2026〕1号"])


class FilingWebsite(Record):
    name: str = Field(max_length=128, description="网站名称", examples=["示例科技官网"])
    domains: list[str] = Field(max_length=100, description="网站域名（可为 IP 地址），每个一次；中文域名可用原文",
                               examples=[["www.example.cn", "example.cn"]])
    home_url: str = Field(max_length=512, description="网站首页地址，须在所列域名之下",
                          examples=["http://www.example.cn/"])
    service_content: str = Field(max_length=16, description="网站服务内容代码（代码表“网站服务内容”）", examples=["2"])
    languages: str = Field(default="1", max_length=64, description="网站语言代码，逗号分隔", examples=["1"])
    responsible_name: str = Field(default="", max_length=64, description="网站负责人姓名")
    responsible_mobile: str = Field(default="", max_length=20, description="网站负责人手机号码")
    preapprovals: list[FilingPreapproval] = Field(default_factory=list, max_length=20, description="前置审批项")
    bbs: bool = Field(default=False, description="是否开办电子公告（交互式栏目）服务")
    bbs_sections: str = Field(default="", max_length=255, description="交互式栏目名称")
    accesses: list[FilingAccess] = Field(max_length=10, description="接入信息：每个接入服务商一条")

    def data(self, isp_ids: dict[str | None, int]) -> workflow.WebsiteData:
        return workflow.WebsiteData(
            name=self.name, domains=list(self.domains), home_url=self.home_url, service_content=self.service_content,
            accesses=[a.data(isp_ids.get(a.isp, 0)) for a in self.accesses], languages=self.languages,
            responsible_name=self.responsible_name, responsible_mobile=self.responsible_mobile,
            preapprovals=[(p.category, p.document_number) for p in self.preapprovals], bbs=self.bbs,
            bbs_sections=self.bbs_sections)


class FilingEntity(Record):
    province_code: str = Field(max_length=6, description="主体所在省份代码", examples=["120000"])
    unit_name: str = Field(max_length=128, description="主办单位名称（个人：姓名）", examples=["天津示例科技有限公司"])
    unit_nature: str = Field(max_length=16, description="单位性质代码（代码表“单位性质”）", examples=["4"])
    certificate_type: str = Field(max_length=16, description="证件类型代码（代码表“证件类型”）", examples=["1"])
    certificate_number: str = Field(max_length=64, description="证件号码（统一社会信用代码等）",
                                    examples=["91120000MA05JXXX0X"])
    responsible_name: str = Field(max_length=64, description="主体负责人姓名", examples=["张三"])
    responsible_id_number: str = Field(max_length=18, description="主体负责人身份证号码",
                                       examples=["11010519491231002X"])
    responsible_mobile: str = Field(max_length=20, description="主体负责人手机号码", examples=["13912345678"])
    responsible_email: str = Field(max_length=254, description="主体负责人电子邮件", examples=["owner@example.cn"])
    address: str = Field(default="", max_length=255, description="通信地址")
    commercial: bool = Field(default=False, description="是否经营性（需要 ICP 许可证）")

    def data(self) -> workflow.EntityData:
        return workflow.EntityData(**self.model_dump())


EXAMPLE_ENTITY = {
    "province_code": "120000", "unit_name": "天津示例科技有限公司", "unit_nature": "4", "certificate_type": "1",
    "certificate_number": "911200000000000018", "responsible_name": "张三",
    "responsible_id_number": "11010519491231002X", "responsible_mobile": "13912345678",
    "responsible_email": "owner@example.cn", "address": "天津市和平区某路1号"}
EXAMPLE_WEBSITE = {
    "name": "示例科技官网", "domains": ["www.example.cn", "example.cn"], "home_url": "http://www.example.cn/",
    "service_content": "2", "accesses": [{"method": "2", "server_province_code": "120000",
                                          "ip_ranges": [{"start": "203.0.113.1", "end": "203.0.113.20"}]}]}


class NewFilingRecord(Record):
    """新增备案：主体、网站与接入一次提交（同控制台“备案信息录入”的提交）。"""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"entity": EXAMPLE_ENTITY, "websites": [EXAMPLE_WEBSITE]}]})
    application_id: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                       description="修改后重新提交被退回或驳回的申请时填其申请编号；新备案省略")
    entity: FilingEntity
    websites: list[FilingWebsite] = Field(max_length=50, description="网站，至少一个")


# --- after approval: by filing number or website number ------------------------------------------------------

NUMBER = Field(max_length=40, description="备案号（主体）或网站备案号（…号-n）", examples=["津ICP备2026000001号-1"])
WEBSITE_NUMBER = Field(max_length=40, description="网站备案号（…号-n）", examples=["津ICP备2026000001号-1"])


class NewWebsiteRecord(Record):
    """新增网站（由接入该备案的接入服务商提交，直接进入管局审核）。"""

    model_config = ConfigDict(json_schema_extra={"examples": [{"number": "津ICP备2026000001号",
                                                               "website": EXAMPLE_WEBSITE}]})
    number: str = NUMBER
    website: FilingWebsite


class NewAccessRecord(Record):
    """新增接入：尚未接入该网站的接入服务商，凭备案主体给出的接入授权码。"""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "number": "津ICP备2026000001号-1", "access_code": "ABCD-EFGH-JKLM",
        "access": {"method": "2", "server_province_code": "120000", "ip_ranges": [{"start": "198.51.100.1"}]}}]})
    number: str = WEBSITE_NUMBER
    access: FilingAccess = Field(description="接入信息；接入服务商即调用者本人（isp 省略或为本人账号名）")
    access_code: str = Field(max_length=32, description="备案主体给出的接入授权码（一次有效）")


class CancelAccessRecord(Record):
    """取消接入：仍有其他接入服务商时立即生效，最后一个接入由管局审核后网站转为“无接入”。"""

    model_config = ConfigDict(json_schema_extra={"examples": [{"number": "津ICP备2026000001号-1"}]})
    number: str = WEBSITE_NUMBER


class ChangeRecord(Record):
    """变更（由接入服务商代为提交）：kind 说明变更什么，其余字段按 kind 填写。"""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"kind": "add_domains", "number": "津ICP备2026000001号-1", "domains": ["news.example.cn"]},
        {"kind": "edit_website", "number": "津ICP备2026000001号-1", "name": "示例科技", "home_url":
            "http://www.example.cn/", "service_content": "2"},
        {"kind": "responsible", "number": "津ICP备2026000001号", "responsible_name": "李四",
         "responsible_id_number": "11010519491231002X", "responsible_mobile": "13912345679",
         "responsible_email": "li@example.cn"}]})
    kind: Literal["add_domains", "edit_website", "responsible"] = Field(
        description="add_domains：网站增加域名（domains）；edit_website：网站名称、首页、服务内容（name、home_url、"
                    "service_content）；responsible：主体负责人（responsible_*）")
    number: str = Field(max_length=40, description="add_domains、edit_website：网站备案号；responsible：备案号")
    domains: list[str] = Field(default_factory=list, max_length=100, description="增加的域名")
    name: str = Field(default="", max_length=128, description="网站名称")
    home_url: str = Field(default="", max_length=512, description="网站首页地址")
    service_content: str = Field(default="", max_length=16, description="网站服务内容代码")
    responsible_name: str = Field(default="", max_length=64, description="主体负责人姓名")
    responsible_id_number: str = Field(default="", max_length=18, description="主体负责人身份证号码")
    responsible_mobile: str = Field(default="", max_length=20, description="主体负责人手机号码")
    responsible_email: str = Field(default="", max_length=254, description="主体负责人电子邮件")


class CancellationRecord(Record):
    """注销：网站备案号注销该网站，备案号注销整个主体；由备案主体本人或其接入服务商申请，管局审核。"""

    model_config = ConfigDict(json_schema_extra={"examples": [{"number": "津ICP备2026000001号-1",
                                                               "reason": "网站不再运营"}]})
    number: str = NUMBER
    reason: str = Field(max_length=500, description="注销原因")


class VerificationRecord(Record):
    """接入服务商核实结果：核实通过（verify），或退回并说明原因（return）。"""

    model_config = ConfigDict(json_schema_extra={"examples": [{"application_id": 7, "result": "verify"},
                                                              {"application_id": 8, "result": "return",
                                                               "reason": "网站负责人手机号码有误"}]})
    application_id: int = Field(ge=1, le=2**31 - 1, description="待核实的申请编号")
    result: Literal["verify", "return"] = Field(description="verify：核实通过；return：退回")
    reason: str = Field(default="", max_length=500, description="退回原因（result 为 return 时必填）")


# --- translating ---------------------------------------------------------------------------------------------

def _through(run: Callable[[], T], rename: Rename, served_field: str | None = None) -> T:
    """Run a workflow call; its refusal becomes coded (a NotFound on a filing found by its public number: 1012)."""
    try:
        return run()
    except NotFound as error:
        if served_field is None:
            raise
        raise not_served(served_field) from error
    except WorkflowError as error:
        raise coded(error, rename) from error


def _filing(number: str, want_website: bool = False) -> tuple[Entity, Website | None]:
    """The filing in force with this number (as the console's 新增接入 finds it); a website number if asked."""
    entity, website = _through(lambda: workflow.find_by_number(number), api_field(("number", "number")))
    if want_website and website is None:
        raise Refusal(NOT_FOUND, f"{number.strip()} 不是网站备案号：请填写网站备案号（…号-n）。", "number")
    return entity, website


def _isp_ids(actor: User, accesses: Iterable[FilingAccess]) -> dict[str | None, int]:
    """Account name → user id of the ISPs the records name (one query), None → the caller if it is an ISP; a
    name that is no ISP maps to nothing, and the workflow refuses it as an unknown access provider."""
    names = {a.isp for a in accesses if a.isp}
    found = {name: user_id for name, user_id in db.session.execute(select(User.username, User.id).where(
        User.username.in_(sorted(names)), User.role == Role.ISP))} if names else {}
    return {**found, None: actor.id if actor.role == Role.ISP else 0}


# --- the operations ------------------------------------------------------------------------------------------

def _new_filing_field(dotted: str) -> str:
    return dotted if dotted.startswith("websites") else f"entity.{dotted}"


NEW_FILING_FIELDS = api_field(fallback=_new_filing_field)


@batch_operation("/filings", scope="filings", record=NewFilingRecord, family=FAMILY, whole_batch=True,
                 summary="新增备案（主体 + 网站 + 接入）",
                 description="与控制台“备案信息录入”的提交相同：保存并提交，接入服务商提交的申请视为已核实。"
                             "接入服务商为客户备案时须是每个网站的接入服务商之一；备案主体（ICP 用户）只为自己备案。"
                             "给出 application_id 时修改并重新提交被退回或驳回的申请。"
                             "接受的记录返回 application_id 与 entity_id。")
def new_filings(actor: User, records: list[tuple[int, NewFilingRecord]]) -> list[dict[str, Any] | Exception]:
    """New filings go through the workflow's batch submission (the same checks as one by one, written at once);
    corrections of a returned application one by one, each in its own savepoint."""
    isp_ids = _isp_ids(actor, (a for _, r in records for w in r.websites for a in w.accesses))
    data = {index: (r.entity.data(), [w.data(isp_ids) for w in r.websites]) for index, r in records}
    fresh = [index for index, r in records if r.application_id is None]
    outcomes = {index: _answer(outcome) for index, outcome in zip(
        fresh, submit_new_filings(actor, [data[i] for i in fresh]), strict=True)}
    for index, record in records:
        if record.application_id is not None:
            outcomes[index] = _resubmit(actor, record.application_id, *data[index])
    return [outcomes[index] for index, _ in records]


def _answer(outcome: Filed | WorkflowError) -> dict[str, Any] | Exception:
    if isinstance(outcome, NotFound):
        return not_served("websites", "不能提交该备案：接入服务商为客户备案时须是每个网站的接入服务商之一，"
                                      "备案主体只为自己备案。")
    if isinstance(outcome, WorkflowError):
        return coded(outcome, NEW_FILING_FIELDS)
    return {"application_id": outcome.application_id, "entity_id": outcome.entity_id}


def _resubmit(actor: User, application_id: int, entity: workflow.EntityData,
              websites: list[workflow.WebsiteData]) -> dict[str, Any] | Exception:
    """A returned or rejected application corrected and submitted again, in its own savepoint."""
    try:
        with db.session.begin_nested():
            application = db.session.scalar(select(Application).where(
                Application.id == application_id, permissions.application_scope(actor)))
            if application is None:  # as the console's 修改 button: another's application is not found
                raise NotFound()
            _through(lambda: workflow.save_filing_draft(actor, entity, websites, application), NEW_FILING_FIELDS)
            _through(lambda: workflow.submit_application(actor, application), NEW_FILING_FIELDS)
            return {"application_id": application.id, "entity_id": application.entity_id}
    except (WorkflowError, IntegrityError) as error:  # the envelope gives each its code
        return error


@batch_operation("/websites", scope="filings", record=NewWebsiteRecord, family=FAMILY,
                 summary="新增网站",
                 description="接入该备案的接入服务商为已备案主体新增网站，调用者须列为新网站的接入服务商；"
                             "新网站在管局审核通过时编号。接受的记录返回 application_id 与 website_id。")
def new_websites(actor: User, record: NewWebsiteRecord) -> dict[str, Any]:
    entity, _website = _filing(record.number)
    data = record.website.data(_isp_ids(actor, record.website.accesses))
    application = _through(lambda: workflow.propose_website(actor, entity, data),
                           api_field(("websites.0", "website")), served_field="number")
    return {"application_id": application.id,
            "website_id": workflow.proposal_of(application)["website_id"]}


@batch_operation("/accesses", scope="filings", record=NewAccessRecord, family=FAMILY,
                 summary="新增接入",
                 description="尚未接入该网站的接入服务商凭接入授权码新增接入（也用于恢复“无接入”的网站），"
                             "管局审核。接受的记录返回 application_id。")
def new_accesses(actor: User, record: NewAccessRecord) -> dict[str, Any]:
    _entity, website = _filing(record.number, want_website=True)
    assert website is not None
    access = record.access.data(_isp_ids(actor, [record.access]).get(record.access.isp, 0))
    application = _through(lambda: workflow.add_access(actor, website, access, record.access_code),
                           api_field(("websites.0.accesses.0", "access"), ("code", "access_code"),
                                     ("isp", "access.isp")), served_field="number")
    return {"application_id": application.id}


@batch_operation("/accesses/cancel", scope="filings", record=CancelAccessRecord, family=FAMILY,
                 summary="取消接入", description="仍有其他接入服务商时立即生效（application_id 为 null）；"
                                              "网站的最后一个接入由管局审核（返回 application_id）。")
def cancel_accesses(actor: User, record: CancelAccessRecord) -> dict[str, Any]:
    _entity, website = _filing(record.number, want_website=True)
    assert website is not None
    application = _through(lambda: workflow.cancel_access(actor, website), api_field(), served_field="number")
    return {"application_id": application.id if application else None, "immediate": application is None}


CHANGE_FIELDS = api_field(("websites.0", ""), fallback=lambda dotted: dotted)


@batch_operation("/changes", scope="filings", record=ChangeRecord, family=FAMILY,
                 summary="变更",
                 description="接入该网站的接入服务商代为提交变更，管局审核。接受的记录返回 application_id。")
def changes(actor: User, record: ChangeRecord) -> dict[str, Any]:
    entity, website = _filing(record.number, want_website=record.kind != "responsible")
    runs: dict[str, Callable[[], Application]] = {
        "add_domains": lambda: workflow.propose_domains(actor, website, list(record.domains)),
        "edit_website": lambda: workflow.propose_website_edit(actor, website, record.name, record.home_url,
                                                              record.service_content),
        "responsible": lambda: workflow.propose_responsible(
            actor, entity, record.responsible_name, record.responsible_id_number, record.responsible_mobile,
            record.responsible_email),
    }
    application = _through(runs[record.kind], CHANGE_FIELDS, served_field="number")
    return {"application_id": application.id}


@batch_operation("/cancellations", scope="filings", record=CancellationRecord, family=FAMILY,
                 summary="注销（网站或主体）", description="备案主体本人或接入该备案的接入服务商申请，管局审核。"
                                                    "接受的记录返回 application_id。")
def cancellations(actor: User, record: CancellationRecord) -> dict[str, Any]:
    entity, website = _filing(record.number)
    application = _through(lambda: workflow.request_cancellation(actor, entity, website, record.reason),
                           api_field(), served_field="number")
    return {"application_id": application.id}


@batch_operation("/verifications", scope="filings", record=VerificationRecord, family=FAMILY,
                 summary="接入服务商核实结果",
                 description="列为接入服务商且待其核实的申请：核实通过，或退回并说明原因。"
                             "接受的记录返回 application_id 与申请的新状态 state。")
def verifications(actor: User, record: VerificationRecord) -> dict[str, Any]:
    application = db.session.get(Application, record.application_id)
    if application is None:
        raise NotFound()
    if record.result == "verify":
        _through(lambda: workflow.isp_verify(actor, application), api_field())
    else:
        _through(lambda: workflow.isp_return(actor, application, record.reason), api_field())
    return {"application_id": application.id, "state": application.state.value}


# --- the status of a filing ------------------------------------------------------------------------------------

class FilingStatusQuery(Record):
    domain: str | None = Field(default=None, max_length=253, description="域名（网站的任一域名）")
    certificate: str | None = Field(default=None, max_length=64, description="主体证件号码")
    number: str | None = Field(default=None, max_length=40, description="备案号、网站备案号或许可证号")

    @field_validator("domain")
    @classmethod
    def _normalised(cls, value: str | None) -> str | None:
        """As the registry stores domains (lower case, punycode): ValueError (400) when it is none."""
        return normalise_domain(value) if value else value

    @model_validator(mode="after")
    def _one_given(self) -> FilingStatusQuery:
        if not (self.domain or self.certificate or self.number):
            raise ValueError("请给出 domain、certificate 或 number 之一")
        return self


class StatusWebsite(BaseModel):
    id: int
    number: str | None = Field(description="网站备案号（审核通过前为 null）")
    name: str
    status: str = Field(description="draft 未通过审核 · active 正常 · no_access 无接入 · cancelled 已注销 · "
                                    "revoked 已撤销")
    domains: list[str]


class StatusApplication(BaseModel):
    id: int
    kind: str = Field(description="new_filing 新增备案 · change 变更 · new_website 新增网站 · new_access 新增接入 · "
                                  "cancel_access 取消接入 · cancel_website 注销网站 · cancel_entity 注销主体")
    state: str = Field(description="draft 草稿或被退回 · isp_review 待接入服务商核实 · bureau_review 待管局审核 · "
                                   "approved 通过 · rejected 驳回 · withdrawn 撤回")
    reasons: dict[str, str] = Field(description="退回或驳回的原因（按字段）")
    submitted_at: str | None
    decided_at: str | None


class StatusFiling(BaseModel):
    entity_id: int
    number: str | None = Field(description="备案号（审核通过前为 null）")
    licence_number: str | None
    unit_name: str
    status: str
    websites: list[StatusWebsite]
    applications: list[StatusApplication] = Field(description="该备案的申请，最近的在前（至多 20 个）")


class FilingStatusAnswer(BaseModel):
    filings: list[StatusFiling] = Field(description="调用者可见的匹配备案：接入服务商为其当前接入的及其提交的，"
                                                    "备案主体为自己的，管局为本省的")


def _visible(actor: User) -> Any:
    """The filings the caller may see: the console's list (an ISP: those it serves now) and those of the
    applications it may see (an ISP: also those it created or submitted)."""
    return or_(permissions.entity_scope(actor),
               Entity.id.in_(select(Application.entity_id).where(permissions.application_scope(actor))))


def _matching(query: FilingStatusQuery) -> Any:
    if query.domain:
        return Entity.id.in_(select(Website.entity_id).join(Domain).where(Domain.name == query.domain))
    if query.certificate:
        return Entity.certificate_number == query.certificate
    return or_(Entity.number == query.number, Entity.licence_number == query.number,
               Entity.id.in_(select(Website.entity_id).where(Website.number == query.number)))


@query_operation("/filings/status", scope="filings", params=FilingStatusQuery, response=FilingStatusAnswer,
                 summary="查询备案状态", description="按域名、证件号码或备案号查询备案及其申请的状态；"
                                                "只返回调用者可见的备案（否则结果为空）。")
def filing_status(actor: User, query: FilingStatusQuery) -> FilingStatusAnswer:
    entities = db.session.scalars(select(Entity).where(_matching(query), _visible(actor))
                                  .order_by(Entity.id).limit(20)).all()
    return FilingStatusAnswer(filings=[_status_of(actor, entity) for entity in entities])


def _status_of(actor: User, entity: Entity) -> StatusFiling:
    """All of it for those who may see the filing (`may_see_entity`: an ISP serving it now); for one seeing it only
    through an application of its own (an ISP whose new access is pending, refused or ended), as the console: its
    own applications and the filed websites, what the public sees."""
    full = permissions.may_see_entity(actor, entity)
    applications = db.session.scalars(select(Application).where(
        Application.entity_id == entity.id, true() if full else permissions.application_scope(actor))
        .order_by(Application.id.desc()).limit(20))
    return StatusFiling(
        entity_id=entity.id, number=entity.number, licence_number=entity.licence_number, unit_name=entity.unit_name,
        status=entity.status.value,
        websites=[StatusWebsite(id=w.id, number=w.number, name=w.name, status=w.status.value,
                                domains=[d.name for d in w.domains if d.live])
                  for w in entity.websites if full or w.number],
        applications=[StatusApplication(
            id=a.id, kind=a.kind.value, state=a.state.value, reasons=_reasons(a.reasons),
            submitted_at=a.submitted_at.isoformat() if a.submitted_at else None,
            decided_at=a.decided_at.isoformat() if a.decided_at else None) for a in applications])


def _reasons(text: str | None) -> dict[str, str]:
    loaded = json.loads(text or "{}")
    return {str(key): str(value) for key, value in loaded.items()} if isinstance(loaded, dict) else {}


class CertificateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=40, description="主体备案号，如 津ICP备26000001号",
                        json_schema_extra={"examples": ["津ICP备26000001号"]})


class CertificateAnswer(BaseModel):
    number: str = Field(description="主体备案号")
    certificate_id: str = Field(description="证书编号（事件 application.approved 的 certificate_id）")
    issued_at: str = Field(description="签发时间（UTC）")
    token: str = Field(description="电子验证标识 bazs.cert 的内容（紧凑 JWS，Ed25519 签名）：原样保存为 bazs.cert，"
                                   "放在网站的 /cert/bazs.cert；用 /api/v1/public/keys 的公钥验证")


@query_operation("/certificate", scope="filings", params=CertificateQuery, response=CertificateAnswer,
                 summary="下载电子验证标识（bazs.cert）",
                 description="在案备案的现行证书，与控制台“备案/许可证下载”相同：接入服务商为其当前接入的备案，"
                             "备案主体为自己的，管局为本省的。")
def current_certificate(actor: User, query: CertificateQuery) -> CertificateAnswer:
    found = db.session.execute(select(Entity.number, Certificate.id, Certificate.issued_at, Certificate.token)
                               .join(Certificate, Certificate.entity_id == Entity.id)
                               .where(Entity.number == query.number, Entity.status == FilingStatus.ACTIVE,
                                      Certificate.status == CertificateStatus.CURRENT,
                                      permissions.entity_scope(actor))).first()
    if found is None:
        raise Refusal(NOT_FOUND, "没有该备案号的在案备案，或其不在本凭证用户的权限范围内。", "number")
    number, certificate_id, issued_at, token = found
    return CertificateAnswer(number=number, certificate_id=certificate_id, issued_at=issued_at.isoformat(),
                             token=token)
