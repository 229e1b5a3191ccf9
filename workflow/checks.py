"""The filing data (SPEC §3): its checks, which raise WorkflowErrors naming every field in error, and the rows it
becomes — shared by new filings and the changes after approval."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import (
    BLOCKING_VERDICTS,
    TAKEN_STATUSES,
    Access,
    BlacklistEntry,
    BlacklistKind,
    CodeItem,
    CodeTable,
    Domain,
    DomainReport,
    DomainStatus,
    Entity,
    FilingStatus,
    PreapprovalItem,
    Province,
    ReviewState,
    Role,
    User,
    UserStatus,
    Verdict,
    Website,
)
from validators import (
    certificate_number_error,
    certificate_type_error,
    display_domain,
    email_error,
    home_url_error,
    id_card_error,
    mobile_error,
    normalise_domain,
    parse_ip_range,
    registered_domain,
)
from workflow.batch_reads import batch_reads
from workflow.errors import Problem, WorkflowError, raise_problems
from workflow.special_content import name_problems

#: an approved filing or website, with or without access: what may be changed, cancelled or revoked
LIVE_STATUSES = (FilingStatus.ACTIVE, FilingStatus.NO_ACCESS)


def require_live(entity: Entity, website: Website | None = None) -> None:
    if entity.status not in LIVE_STATUSES or (website is not None and website.status not in LIVE_STATUSES):
        raise WorkflowError(_l("Only an approved filing can be changed, cancelled or revoked."))


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


# --- what the checks read: from the database, or preloaded for a batch -------------------------------------

@dataclass
class Preloaded:
    """What checking a batch of filings reads, loaded once (the data-exchange API's 1,000 filings a call: a few
    queries in all instead of a dozen per filing). The rules stay in the check functions below; only their reads
    come from here. `take` marks an accepted filing's certificate number and domains as taken, so that a later
    filing of the batch is checked against it as it would be against the database."""

    codes: set[tuple[str, str]]
    certificate_natures: dict[str, set[str]]
    blacklist: set[tuple[str, str]]
    certificates: dict[str, set[int | None]]  # certificate number → the entities holding it (None: of this batch)
    domains: dict[str, int | None]  # live domain → its website (None: taken by a filing of this batch)

    def take(self, entity: EntityData, domains: Iterable[str]) -> None:
        self.certificates.setdefault(entity.certificate_number.strip(), set()).add(None)
        self.domains.update(dict.fromkeys(domains))


_PRELOADED: ContextVar[Preloaded | None] = ContextVar("preloaded_checks", default=None)


def _in_chunks(values: Iterable[str], query: Any) -> Iterator[Any]:
    wanted = sorted(set(values))
    for start in range(0, len(wanted), 1000):
        yield from db.session.execute(query(wanted[start:start + 1000]))


@contextmanager
def preloaded_checks(filings: Sequence[tuple[EntityData, Sequence[WebsiteData]]]) -> Iterator[Preloaded]:
    """Inside the block the check functions read what these filings need from memory, loaded here."""
    entities = [entity for entity, _websites in filings]
    domains = [name for _entity, websites in filings for website in websites for name in _domain_names(website, "")[0]]
    values = [e.unit_name.strip() for e in entities] + [e.certificate_number.strip() for e in entities] + domains
    certificates: dict[str, set[int | None]] = {}
    for number, entity_id in _in_chunks((e.certificate_number.strip() for e in entities), lambda chunk: select(
            Entity.certificate_number, Entity.id).where(Entity.certificate_number.in_(chunk),
                                                        Entity.status.in_(TAKEN_STATUSES))):
        certificates.setdefault(number, set()).add(entity_id)
    known = Preloaded(
        codes={(str(table), code) for table, code in db.session.execute(select(CodeItem.table, CodeItem.code))},
        certificate_natures=_certificate_natures(),
        blacklist={(str(kind), value) for kind, value in _in_chunks(values, lambda chunk: select(
            BlacklistEntry.kind, BlacklistEntry.value).where(BlacklistEntry.value.in_(chunk)))},
        certificates=certificates,
        domains=dict(_in_chunks(domains, lambda chunk: select(Domain.name, Domain.website_id).where(
            Domain.name.in_(chunk), Domain.live))))
    token = _PRELOADED.set(known)
    try:
        with batch_reads():
            yield known
    finally:
        _PRELOADED.reset(token)


def _code_exists(table: CodeTable, code: str) -> bool:
    if (known := _PRELOADED.get()) is not None:
        return (str(table), code) in known.codes
    return db.session.scalar(select(CodeItem.id).where(CodeItem.table == table, CodeItem.code == code)) is not None


def _certificate_natures() -> dict[str, set[str]]:
    """Certificate type → the unit natures it fits (the code table's `extra` column)."""
    if (known := _PRELOADED.get()) is not None:
        return known.certificate_natures
    return {code: set((extra or "").split(",")) for code, extra in db.session.execute(
        select(CodeItem.code, CodeItem.extra).where(CodeItem.table == CodeTable.CERTIFICATE_TYPE))}


def _blacklisted(kind: BlacklistKind, value: str) -> bool:
    if (known := _PRELOADED.get()) is not None:
        return (str(kind), value) in known.blacklist
    return db.session.scalar(select(BlacklistEntry.id).where(
        BlacklistEntry.kind == kind, BlacklistEntry.value == value)) is not None


def _certificate_taken(number: str, entity_id: int | None) -> bool:
    """Another entity holds this certificate number in a draft or a filing in force (FAQ 62)."""
    if (known := _PRELOADED.get()) is not None:
        return bool(known.certificates.get(number, set()) - {entity_id or 0})
    return db.session.scalar(select(Entity.id).where(
        Entity.certificate_number == number, Entity.status.in_(TAKEN_STATUSES),
        Entity.id != (entity_id or 0)).limit(1)) is not None


_FREE = object()


def _domain_holder(name: str) -> object:
    """The website holding this live domain (None: a filing of the batch being checked), or _FREE."""
    if (known := _PRELOADED.get()) is not None:
        return known.domains.get(name, _FREE)
    holder = db.session.scalar(select(Domain.website_id).where(Domain.name == name, Domain.live))
    return _FREE if holder is None else holder


def check_entity(data: EntityData, entity_id: int | None = None) -> None:
    """The entity step of the wizard; raises WorkflowErrors naming every field in error."""
    raise_problems(entity_problems(data, entity_id))


def entity_problems(data: EntityData, entity_id: int | None = None) -> Iterator[Problem]:
    """Every problem of the entity's fields, as (field, message)."""
    if db.session.get(Province, data.province_code or "") is None:
        yield "province_code", _l("Unknown province.")
    unit_name = (data.unit_name or "").strip()
    if not unit_name:
        yield "unit_name", _l("The unit name is required.")
    elif _blacklisted(BlacklistKind.UNIT_NAME, unit_name):
        yield "unit_name", _l("This value is on the registry's blacklist and cannot be filed.")
    if not _code_exists(CodeTable.UNIT_NATURE, data.unit_nature or ""):
        yield "unit_nature", _l("Choose the unit nature.")
    elif error := certificate_type_error(data.unit_nature, data.certificate_type, _certificate_natures()):
        yield "certificate_type", error
    yield from _certificate_number_problems(data, entity_id)
    for name, check in (("responsible_id_number", id_card_error), ("responsible_mobile", mobile_error),
                        ("responsible_email", email_error)):
        if error := check((getattr(data, name) or "").strip()):
            yield name, error


def _certificate_number_problems(data: EntityData, entity_id: int | None) -> Iterator[Problem]:
    number = (data.certificate_number or "").strip()
    if error := certificate_number_error(data.certificate_type or "", number):
        yield "certificate_number", error
    elif _blacklisted(BlacklistKind.CERTIFICATE_NUMBER, number):
        yield "certificate_number", _l("This value is on the registry's blacklist and cannot be filed.")
    elif _certificate_taken(number, entity_id):
        yield "certificate_number", _l("An entity with this certificate number is already filed (FAQ 62).")


def _address_text(raw: str) -> str | None:
    """A bare IP address (FAQ 7) in its standard form, else None."""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def _domain_names(website: WebsiteData, field_name: str) -> tuple[list[str], list[Problem]]:
    """The website's domains normalised (IDN → punycode, bare IP addresses kept), and a problem per bad,
    repeated or missing one, naming it."""
    names: list[str] = []
    problems: list[Problem] = []
    for raw in website.domains:
        if (address := _address_text(raw)) is not None:
            name = address
        else:
            try:
                name = normalise_domain(raw)
            except ValueError as error:
                problems.append((field_name, _l("%(domain)s: %(error)s", domain=raw.strip(), error=error)))
                continue
        if name in names:
            problems.append((field_name, _l("The domain %(name)s is given twice.", name=display_domain(name))))
        else:
            names.append(name)
    if not names and not problems:
        problems.append((field_name, _l("Give each website at least one domain, each once.")))
    return names, problems


def normalised_domains(website: WebsiteData, index: int) -> list[str]:
    names, problems = _domain_names(website, f"websites-{index}-domains")
    raise_problems(problems)
    return names


def check_website(website: WebsiteData, index: int, own_website_ids: set[int] = frozenset(),
                  others: Sequence[WebsiteData] = (), province_code: str | None = None) -> list[str]:
    """The website step of the wizard (without access); returns the normalised domains. `others` are the
    filing's other websites: a domain already on one of them is refused here, naming it."""
    names, problems = website_problems(website, index, own_website_ids, others, province_code)
    raise_problems(problems)
    return names


def website_problems(website: WebsiteData, index: int, own_website_ids: set[int] = frozenset(),
                     others: Sequence[WebsiteData] = (), province_code: str | None = None,
                     ) -> tuple[list[str], list[Problem]]:
    """The website's normalised domains and every problem of its fields; the name checked against the forbidden
    words (the national ones, and those of `province_code`, the entity's province)."""
    prefix = f"websites-{index}-"
    names, problems = _domain_names(website, prefix + "domains")
    in_filing = {name: other.name for other in others for name in _domain_names(other, "")[0]}
    for name in names:
        if name in in_filing:
            problems.append((prefix + "domains", _l("The domain %(name)s is already on website %(site)s of this "
                                                    "filing.", name=display_domain(name), site=in_filing[name])))
        elif _blacklisted(BlacklistKind.DOMAIN, name):
            problems.append((prefix + "domains", _l("%(domain)s: this value is on the registry's blacklist and "
                                                    "cannot be filed.", domain=display_domain(name))))
        elif (holder := _domain_holder(name)) is not _FREE and holder not in own_website_ids:
            problems.append((prefix + "domains", _l("The domain %(name)s is already on another website.",
                                                    name=display_domain(name))))
    if not (website.name or "").strip():
        problems.append((prefix + "name", _l("The website name is required.")))
    problems += name_problems(website.name or "", province_code, prefix + "name")
    if names and (error := home_url_error(website.home_url or "", names)):
        problems.append((prefix + "home_url", error))
    elif not names and not (website.home_url or "").strip():
        problems.append((prefix + "home_url", _l("The home page address is required.")))
    if not _code_exists(CodeTable.SERVICE_CONTENT, website.service_content or ""):
        problems.append((prefix + "service_content", _l("Choose the website's service content.")))
    for category, document in website.preapprovals:
        if not _code_exists(CodeTable.PREAPPROVAL_CATEGORY, category) or not document.strip():
            problems.append((prefix + "preapprovals",
                             _l("Each pre-approval item needs its category and document number.")))
    return names, problems


def check_accesses(accesses: list[AccessData], index: int) -> None:
    """The access step of the wizard, for website `index`; each problem names its field
    (`websites-<i>-accesses-<n>-<field>`)."""
    raise_problems(access_problems(accesses, index))


def access_problems(accesses: list[AccessData], index: int) -> Iterator[Problem]:
    prefix = f"websites-{index}-accesses"
    if not accesses:
        yield prefix, _l("Name at least one access provider (ISP).")
    seen: set[int] = set()
    for position, access in enumerate(accesses):
        field_prefix = f"{prefix}-{position}-"
        isp = db.session.get(User, access.isp_id)
        if isp is None or isp.role != Role.ISP or isp.status != UserStatus.ACTIVE:
            yield field_prefix + "isp_id", _l("Unknown access provider.")
        elif access.isp_id in seen:
            yield field_prefix + "isp_id", _l("Each access provider once per website.")
        seen.add(access.isp_id)
        if not _code_exists(CodeTable.ACCESS_METHOD, access.method or ""):
            yield field_prefix + "method", _l("Choose the access method.")
        if db.session.get(Province, access.server_province_code or "") is None:
            yield field_prefix + "server_province_code", _l("Unknown province.")
        for start, end in access.ip_ranges:
            try:
                parse_ip_range(start, end)
            except ValueError as error:
                yield field_prefix + "ip_ranges", str(error)


def filing_problems(entity: EntityData, websites: Sequence[WebsiteData], entity_id: int | None = None,
                    own_website_ids: set[int] = frozenset()) -> Iterator[Problem]:
    """Every problem of a whole filing (the entity, each website against the ones before it, each access)."""
    yield from entity_problems(entity, entity_id)
    for index, website in enumerate(websites):
        yield from website_problems(website, index, own_website_ids, websites[:index], entity.province_code)[1]
        yield from access_problems(website.accesses, index)


# --- the rows a filing's data becomes (the `*_values` also serve the batch writer, workflow.filing_batch) ----

def entity_values(data: EntityData) -> dict[str, Any]:
    """The entity's columns from the wizard's data, text trimmed."""
    return {name: value.strip() if isinstance(value, str) else value for name, value in vars(data).items()}


def access_values(access: AccessData) -> dict[str, Any]:
    return {"isp_id": access.isp_id, "method": access.method, "server_province_code": access.server_province_code,
            "ip_ranges": "\n".join(f"{s}-{e}" for s, e in access.ip_ranges), "live": True}


def access_row(access: AccessData) -> Access:
    return Access(**access_values(access))


def website_values(website: WebsiteData) -> dict[str, Any]:
    """A new website's own columns (not yet approved)."""
    return {"name": website.name.strip(), "home_url": website.home_url.strip(),
            "service_content": website.service_content, "languages": website.languages,
            "responsible_name": website.responsible_name, "responsible_mobile": website.responsible_mobile,
            "bbs": website.bbs, "bbs_sections": website.bbs_sections, "status": FilingStatus.DRAFT}


def preapproval_values(province_code: str, category: str, document: str) -> dict[str, Any]:
    return {"province_code": province_code, "category": category, "document_number": document.strip(),
            "state": ReviewState.PENDING}


def website_row(entity: Entity, website: WebsiteData, names: list[str]) -> Website:
    """A new website (not yet approved) of the entity, with its domains, pre-approval items and accesses."""
    row = Website(entity=entity, **website_values(website))
    row.domains = [domain_row(name) for name in names]
    row.preapprovals = [PreapprovalItem(entity=entity, **preapproval_values(entity.province_code, c, d))
                        for c, d in website.preapprovals]
    row.accesses = [access_row(a) for a in website.accesses]
    return row


# --- the registrant check (issue 14, 工信部信管〔2017〕264号) ----------------------------------------------

#: 单位性质 of a person (the other natures are organisations)
INDIVIDUAL_NATURE = "5"
#: a consistent report expiring sooner than this reads 即将到期
EXPIRING_WITHIN = timedelta(days=91)


@dataclass(frozen=True)
class DomainCheck:
    """The verdict on one filed domain, with the report it was made from (None: 未报备)."""

    domain: str
    verdict: Verdict
    report: DomainReport | None = None

    @property
    def blocking(self) -> bool:
        return self.verdict in BLOCKING_VERDICTS


def reports_of(domains: Sequence[str]) -> dict[str, DomainReport]:
    """The report that speaks for each domain: the live one, else the latest deleted one (in chunks of 500)."""
    found: dict[str, DomainReport] = {}
    names = sorted(set(domains))
    for start in range(0, len(names), 500):
        for report in db.session.scalars(select(DomainReport).where(DomainReport.domain.in_(names[start:start + 500]))
                                         .order_by(DomainReport.id)):
            current = found.get(report.domain)
            if current is None or current.status == DomainStatus.DELETED:
                found[report.domain] = report
    return found


def _same_number(first: str, second: str) -> bool:
    return bool(first.strip()) and first.strip().upper() == second.strip().upper()


def registrant_is_entity(report: DomainReport, entity: Entity | EntityData) -> bool:
    """The registrant is the filing entity: its certificate number, or for an organisation its responsible
    person's ID number (264号: the domain may be held by the unit's principal)."""
    if _same_number(report.registrant_certificate_number, entity.certificate_number):
        return True
    return entity.unit_nature != INDIVIDUAL_NATURE and _same_number(report.registrant_certificate_number,
                                                                    entity.responsible_id_number)


def domain_values(name: str) -> dict[str, Any]:
    """A filed domain, with the registered domain it lies under (what the registrant check looks up)."""
    return {"name": name, "live": True, "registered": registered_domain(name)}


def domain_row(name: str) -> Domain:
    return Domain(**domain_values(name))


def domain_verdict(entity: Entity | EntityData, domain: str, report: DomainReport | None,
                   today: date | None = None) -> DomainCheck:
    """The one verdict function: 一致 / 即将到期 / 不一致 / 未报备 / 已过期 / 已删除."""
    today = today or date.today()
    if report is None:
        return DomainCheck(domain, Verdict.UNREPORTED)
    if report.status == DomainStatus.DELETED:
        return DomainCheck(domain, Verdict.DELETED, report)
    if report.status == DomainStatus.EXPIRED or report.expires_on < today:
        return DomainCheck(domain, Verdict.EXPIRED, report)
    if not registrant_is_entity(report, entity):
        return DomainCheck(domain, Verdict.INCONSISTENT, report)
    if report.expires_on < today + EXPIRING_WITHIN:
        return DomainCheck(domain, Verdict.EXPIRING, report)
    return DomainCheck(domain, Verdict.CONSISTENT, report)


def is_registrable(name: str) -> bool:
    """A filed "domain" may be a bare IP address (FAQ 7): nothing registers those."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


def registered_names(domains: Sequence[str]) -> list[str]:
    """The registered domains a filing's names lie under (`www.example.cn` → `example.cn`), once each, in
    order; bare addresses skipped."""
    return list(dict.fromkeys(registered_domain(name) for name in domains if is_registrable(name)))


def domain_checks(entity: Entity | EntityData, domains: Sequence[str],
                  reports: dict[str, DomainReport] | None = None) -> list[DomainCheck]:
    """The verdicts on the registered domains of a filing's names; `reports` preloaded for a batch."""
    names = registered_names(domains)
    reports = reports_of(names) if reports is None else reports
    return [domain_verdict(entity, name, reports.get(name)) for name in names]
