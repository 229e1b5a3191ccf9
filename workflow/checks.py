"""The filing data (SPEC §3): its checks, which raise WorkflowError naming the field, and the rows it
becomes — shared by new filings and the changes after approval."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import (
    TAKEN_STATUSES,
    Access,
    BlacklistEntry,
    BlacklistKind,
    CodeItem,
    CodeTable,
    Domain,
    Entity,
    FilingStatus,
    PreapprovalItem,
    Province,
    ReviewState,
    Role,
    User,
    UserStatus,
    Website,
)
from validators import (
    certificate_number_error,
    certificate_type_error,
    email_error,
    home_url_error,
    id_card_error,
    ip_address_error,
    mobile_error,
    normalise_domain,
    parse_ip_range,
)
from workflow.errors import WorkflowError


@dataclass
class AccessData:
    isp_id: int
    method: str
    server_province_code: str
    ip_ranges: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class WebsiteData:
    name: str
    domains: list[str]
    home_url: str
    service_content: str
    accesses: list[AccessData]
    languages: str = "1"
    responsible_name: str = ""
    responsible_mobile: str = ""
    preapprovals: list[tuple[str, str]] = field(default_factory=list)  # (category code, document number)
    bbs: bool = False
    bbs_sections: str = ""


@dataclass
class EntityData:
    province_code: str
    unit_name: str
    unit_nature: str
    certificate_type: str
    certificate_number: str
    responsible_name: str
    responsible_id_number: str
    responsible_mobile: str
    responsible_email: str
    address: str = ""
    commercial: bool = False


def _code_exists(table: CodeTable, code: str) -> bool:
    return db.session.scalar(select(CodeItem.id).where(CodeItem.table == table, CodeItem.code == code)) is not None


def _blacklisted(kind: BlacklistKind, value: str) -> bool:
    return db.session.scalar(select(BlacklistEntry.id).where(
        BlacklistEntry.kind == kind, BlacklistEntry.value == value)) is not None


def check_entity(data: EntityData, entity_id: int | None = None) -> None:
    """The entity step of the wizard; raises WorkflowError naming the field."""
    if db.session.get(Province, data.province_code) is None:
        raise WorkflowError(_l("Unknown province."), "province_code")
    if not data.unit_name.strip():
        raise WorkflowError(_l("The unit name is required."), "unit_name")
    allowed = {code: set((extra or "").split(",")) for code, extra in db.session.execute(
        select(CodeItem.code, CodeItem.extra).where(CodeItem.table == CodeTable.CERTIFICATE_TYPE))}
    if not _code_exists(CodeTable.UNIT_NATURE, data.unit_nature):
        raise WorkflowError(_l("Unknown unit nature."), "unit_nature")
    if error := certificate_type_error(data.unit_nature, data.certificate_type, allowed):
        raise WorkflowError(error, "certificate_type")
    if error := certificate_number_error(data.certificate_type, data.certificate_number):
        raise WorkflowError(error, "certificate_number")
    if error := id_card_error(data.responsible_id_number):
        raise WorkflowError(error, "responsible_id_number")
    if error := mobile_error(data.responsible_mobile):
        raise WorkflowError(error, "responsible_mobile")
    if error := email_error(data.responsible_email):
        raise WorkflowError(error, "responsible_email")
    for kind, value, name in ((BlacklistKind.CERTIFICATE_NUMBER, data.certificate_number, "certificate_number"),
                              (BlacklistKind.UNIT_NAME, data.unit_name.strip(), "unit_name")):
        if _blacklisted(kind, value):
            raise WorkflowError(_l("This value is on the registry's blacklist and cannot be filed."), name)
    other = db.session.scalar(select(Entity.id).where(
        Entity.certificate_number == data.certificate_number, Entity.status.in_(TAKEN_STATUSES),
        Entity.id != (entity_id or 0)).limit(1))
    if other is not None:
        raise WorkflowError(_l("An entity with this certificate number is already filed (FAQ 62)."),
                            "certificate_number")


def normalised_domains(website: WebsiteData, index: int) -> list[str]:
    names = []
    for raw in website.domains:
        if ip_address_error(raw) is None:
            names.append(str(ipaddress.ip_address(raw.strip())))
            continue
        try:
            names.append(normalise_domain(raw))
        except ValueError as error:
            raise WorkflowError(str(error), f"websites-{index}-domains") from error
    if not names or len(set(names)) != len(names):
        raise WorkflowError(_l("Give each website at least one domain, each once."), f"websites-{index}-domains")
    return names


def check_website(website: WebsiteData, index: int, own_website_ids: set[int] = frozenset()) -> list[str]:
    """The website step of the wizard (without access); returns the normalised domains."""
    prefix = f"websites-{index}-"
    names = normalised_domains(website, index)
    if not website.name.strip():
        raise WorkflowError(_l("The website name is required."), prefix + "name")
    if error := home_url_error(website.home_url, names):
        raise WorkflowError(error, prefix + "home_url")
    if not _code_exists(CodeTable.SERVICE_CONTENT, website.service_content):
        raise WorkflowError(_l("Choose the website's service content."), prefix + "service_content")
    for name in names:
        if _blacklisted(BlacklistKind.DOMAIN, name):
            raise WorkflowError(_l("This value is on the registry's blacklist and cannot be filed."),
                                prefix + "domains")
        holder = db.session.scalar(select(Domain.website_id).where(Domain.name == name, Domain.live))
        if holder is not None and holder not in own_website_ids:
            raise WorkflowError(_l("The domain %(name)s is already on another website.", name=name),
                                prefix + "domains")
    for category, document in website.preapprovals:
        if not _code_exists(CodeTable.PREAPPROVAL_CATEGORY, category) or not document.strip():
            raise WorkflowError(_l("Each pre-approval item needs its category and document number."),
                                prefix + "preapprovals")
    return names


def check_accesses(accesses: list[AccessData], index: int) -> None:
    """The access step of the wizard, for website `index`."""
    field_name = f"websites-{index}-accesses"
    if not accesses:
        raise WorkflowError(_l("Name at least one access provider (ISP)."), field_name)
    if len({a.isp_id for a in accesses}) != len(accesses):
        raise WorkflowError(_l("Each access provider once per website."), field_name)
    for access in accesses:
        isp = db.session.get(User, access.isp_id)
        if isp is None or isp.role != Role.ISP or isp.status != UserStatus.ACTIVE:
            raise WorkflowError(_l("Unknown access provider."), field_name)
        if not _code_exists(CodeTable.ACCESS_METHOD, access.method):
            raise WorkflowError(_l("Choose the access method."), field_name)
        if db.session.get(Province, access.server_province_code) is None:
            raise WorkflowError(_l("Unknown province."), field_name)
        for start, end in access.ip_ranges:
            try:
                parse_ip_range(start, end)
            except ValueError as error:
                raise WorkflowError(str(error), field_name) from error




def access_row(access: AccessData) -> Access:
    return Access(isp_id=access.isp_id, method=access.method, server_province_code=access.server_province_code,
                  ip_ranges="\n".join(f"{s}-{e}" for s, e in access.ip_ranges), live=True)


def website_row(entity: Entity, website: WebsiteData, names: list[str]) -> Website:
    """A new website (not yet approved) of the entity, with its domains, pre-approval items and accesses."""
    row = Website(entity=entity, name=website.name.strip(), home_url=website.home_url.strip(),
                  service_content=website.service_content, languages=website.languages,
                  responsible_name=website.responsible_name, responsible_mobile=website.responsible_mobile,
                  bbs=website.bbs, bbs_sections=website.bbs_sections, status=FilingStatus.DRAFT)
    row.domains = [Domain(name=name, live=True) for name in names]
    row.preapprovals = [PreapprovalItem(category=c, document_number=d.strip(), state=ReviewState.PENDING)
                        for c, d in website.preapprovals]
    row.accesses = [access_row(a) for a in website.accesses]
    return row
