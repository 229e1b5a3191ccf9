"""专项查询 (issue 17 §1): what an investigator may search, how personal data is masked, and the register.

Every search kind is an equality or a prefix on an indexed column (never `LIKE '%x%'`), so that a query costs
the same at 1,000 and 1,000,000 filings; every query, unmasking (显示) and export states a reason (案由) and a
case number and is written to the audit log and to the register (`models.SpecialQueryLog`) in the caller's
transaction. A provincial account (created by a bureau) finds its province's filings only, and the IP and
domain reports of its province's reporting units.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

import audit
import permissions
from extensions import db
from models import (
    MAX_ID,
    Access,
    AccessRange,
    Domain,
    DomainReport,
    Entity,
    IpAllocation,
    IpSelfBrought,
    SpecialQueryAction,
    SpecialQueryLog,
    User,
    Website,
    starts_with,
    utcnow,
)
from numbering import ABBREVIATIONS
from permissions import Action
from validators import CREDIT_CODE_TYPE, normalise_domain, registered_domain, with_and_without_www
from workflow.checks import INDIVIDUAL_NATURE
from workflow.errors import NotFound, WorkflowError, raise_problems
from workflow.ip_lookup import ChainStep, holder_chain, in_live_access_ranges

#: the most rows an export holds (issue 17): the filings and reports it reads, each up to this many
EXPORT_LIMIT = 10_000
#: the filings (and reports) a result page shows; the export has the rest
PAGE_LIMIT = 100
MAX_TERM = 253
MAX_REASON = 500
MAX_CASE_NUMBER = 64
NUMBER_RE = re.compile(rf"^[{ABBREVIATIONS}]ICP", re.IGNORECASE)
ID_NUMBER_RE = re.compile(r"^(\d{15}|\d{17}[\dX])$")
CREDIT_CODE_RE = re.compile(r"^[0-9A-Z]{18}$")
MOBILE_RE = re.compile(r"^\+?[\d-]{5,20}$")


class Kind(StrEnum):
    UNIT_NAME = "unit_name"  # 单位名称, prefix
    NUMBER = "number"  # 备案号 / 网站备案号 / 许可证号, prefix
    DOMAIN = "domain"  # 域名, exact (with and without www., and every host under a registered domain)
    IP = "ip"  # IP地址: the filings whose live access covers it, the IP reports holding it
    PERSON_NAME = "person_name"  # 负责人姓名, exact
    ID_NUMBER = "id_number"  # 身份证号码, exact
    MOBILE = "mobile"  # 手机号码, exact
    EMAIL = "email"  # 电子邮件, exact
    CREDIT_CODE = "credit_code"  # 统一社会信用代码 (the entity's certificate number), exact


@dataclass(frozen=True)
class Query:
    """A checked query: the kind, the term as searched, and why (案由, case number)."""

    kind: Kind
    term: str
    reason: str
    case_number: str


def check_query(kind: str, term: str, reason: str, case_number: str) -> Query:
    """The query, or every problem with it at once (WorkflowErrors): reason and case number are required."""
    problems: list[tuple[str | None, Any]] = []
    reason, case_number, term = reason.strip(), case_number.strip(), term.strip()
    if not reason:
        problems.append(("reason", _l("State the reason for this query.")))
    elif len(reason) > MAX_REASON:
        problems.append(("reason", _l("The reason is too long (at most %(max)s characters).", max=MAX_REASON)))
    if not case_number:
        problems.append(("case_number", _l("State the case number for this query.")))
    elif len(case_number) > MAX_CASE_NUMBER:
        problems.append(("case_number", _l("The case number is too long (at most %(max)s characters).",
                                           max=MAX_CASE_NUMBER)))
    try:
        chosen = Kind(kind)
    except ValueError:
        problems.append(("kind", _l("Choose what to search by.")))
        chosen = None
    if chosen is not None:
        term, problem = _normalised_term(chosen, term)
        if problem is not None:
            problems.append(("term", problem))
    raise_problems(problems)
    assert chosen is not None
    return Query(chosen, term, reason, case_number)


def _normalised_term(kind: Kind, term: str) -> tuple[str, Any]:
    """The term as the kind stores it (upper-case certificate numbers, normalised domains), or a problem."""
    if not term:
        return term, _l("Type what to search for.")
    if len(term) > MAX_TERM:
        return term, _l("The search text is too long (at most %(max)s characters).", max=MAX_TERM)
    compact = term.replace(" ", "")
    if kind == Kind.UNIT_NAME:
        return term, None if len(term) >= 2 else _l("Type at least the first two characters of the unit name.")
    if kind == Kind.NUMBER:
        value = compact[0] + "ICP" + compact[4:] if NUMBER_RE.match(compact) else compact
        return value, None if NUMBER_RE.match(compact) else _l(
            "A number begins with the province's abbreviation and ICP, e.g. 津ICP备26000001号.")
    if kind == Kind.DOMAIN:
        try:
            return normalise_domain(compact), None
        except ValueError:
            return compact, _l("This is not a valid domain name.")
    if kind == Kind.IP:
        try:
            return str(ipaddress.ip_address(compact.strip("[]"))), None
        except ValueError:
            return compact, _l("This is not a valid IPv4 or IPv6 address.")
    return _normalised_identifier(kind, compact)


def _normalised_identifier(kind: Kind, compact: str) -> tuple[str, Any]:
    if kind == Kind.ID_NUMBER:
        value = compact.upper()
        return value, None if ID_NUMBER_RE.match(value) else _l("An ID number has 15 or 18 characters.")
    if kind == Kind.CREDIT_CODE:
        value = compact.upper()
        return value, None if CREDIT_CODE_RE.match(value) else _l(
            "A unified social credit code has 18 digits and letters.")
    if kind == Kind.MOBILE:
        return compact, None if MOBILE_RE.match(compact) else _l("This is not a valid telephone number.")
    if kind == Kind.EMAIL:
        return compact, None if "@" in compact else _l("This is not a valid e-mail address.")
    return compact, None  # a person's name, exact


# --- masking ---------------------------------------------------------------------------------------------

def mask_id(value: str) -> str:
    """1201**********0030: the first and last four characters of an ID (or certificate) number."""
    if len(value) <= 8:
        return value[:1] + "*" * (len(value) - 1)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """139****2222: the first three and the last four digits."""
    if len(value) <= 7:
        return value[:1] + "*" * (len(value) - 1)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_email(value: str) -> str:
    """z***@example.cn: the first character of the mailbox and the whole domain."""
    local, at, domain = value.partition("@")
    return f"{local[:1]}***{at}{domain}" if value else ""


def mask_name(value: str) -> str:
    """张**: the family name only."""
    return value[:1] + "*" * max(len(value) - 1, 1) if value else ""


@dataclass(frozen=True)
class Mask:
    """How personal data is shown: masked (result lists, exports) or whole (one record, after 显示)."""

    whole: bool = False

    def name(self, value: str | None) -> str:
        return (value or "") if self.whole else mask_name(value or "")

    def id(self, value: str | None) -> str:
        return (value or "") if self.whole else mask_id(value or "")

    def phone(self, value: str | None) -> str:
        return (value or "") if self.whole else mask_phone(value or "")

    def email(self, value: str | None) -> str:
        return (value or "") if self.whole else mask_email(value or "")

    def certificate(self, entity: Entity) -> str:
        """An individual's certificate number is an ID number; a unit's (credit code …) is not personal."""
        return self.id(entity.certificate_number) if entity.unit_nature == INDIVIDUAL_NATURE else \
            entity.certificate_number

    def registrant_certificate(self, report: DomainReport) -> str:
        """A registrant's credit code is a unit's; any other certificate may be a person's."""
        number = report.registrant_certificate_number
        return number if report.registrant_certificate_type == CREDIT_CODE_TYPE else self.id(number)


MASKED, WHOLE = Mask(), Mask(whole=True)


# --- the searches ----------------------------------------------------------------------------------------

@dataclass
class Results:
    """What a query found: filings (websites, domains and accesses loaded), domain reports, IP records."""

    query: Query
    entities: list[Entity] = field(default_factory=list)
    entity_count: int = 0  # up to the limit + 1 (more than the limit)
    reports: list[DomainReport] = field(default_factory=list)
    report_count: int = 0
    ip_records: list[ChainStep] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.entity_count + self.report_count + len(self.ip_records)


def _entity_selects(query: Query) -> list[Select[Any]]:
    """The entity ids a query finds, one indexed probe per select."""
    term, by_entity = query.term, select(Entity.id)
    by_website = select(Entity.id).join(Website, Website.entity_id == Entity.id)
    by_domain = by_website.join(Domain, Domain.website_id == Website.id)
    if query.kind == Kind.UNIT_NAME:  # ix_entities_unit_name(_pattern), ix_entities_province_unit_name
        return [by_entity.where(starts_with(Entity.unit_name, term))]
    if query.kind == Kind.NUMBER:
        return [_number_select(term)]
    if query.kind == Kind.DOMAIN:  # ix_domains_name, ix_domains_registered
        return [by_domain.where(Domain.name.in_(with_and_without_www(term))),
                by_domain.where(Domain.registered == registered_domain(term))]
    if query.kind == Kind.IP:
        return _address_selects(term)
    columns = {
        Kind.PERSON_NAME: (Entity.responsible_name, Website.responsible_name),
        Kind.ID_NUMBER: (Entity.responsible_id_number, Entity.certificate_number),
        Kind.MOBILE: (Entity.responsible_mobile, Website.responsible_mobile),
        Kind.EMAIL: (Entity.responsible_email,),
        Kind.CREDIT_CODE: (Entity.certificate_number,),
    }[query.kind]
    values = _exact_values(query)
    return [(by_website if column.class_ is Website else by_entity).where(column.in_(values)) for column in columns]


def _number_select(term: str) -> Select[Any]:
    """许可证号 (津ICP证…), 网站备案号 (…号-1) or 备案号 (津ICP备…), each by its unique index's prefix."""
    if "证" in term:
        return select(Entity.id).where(starts_with(Entity.licence_number, term))
    if "-" in term:
        return select(Entity.id).join(Website, Website.entity_id == Entity.id).where(
            starts_with(Website.number, term))
    return select(Entity.id).where(starts_with(Entity.number, term, plain_index=True))


def _address_selects(address: str) -> list[Select[Any]]:
    """The filings whose live access ranges contain the address (`ipindex` buckets, one probe per level), and
    those with a website filed under the bare address."""
    in_ranges = select(Entity.id).join(Website, Website.entity_id == Entity.id).join(
        Access, Access.website_id == Website.id).join(AccessRange, AccessRange.access_id == Access.id).where(
        in_live_access_ranges(ipaddress.ip_address(address)))
    as_domain = select(Entity.id).join(Website, Website.entity_id == Entity.id).join(
        Domain, Domain.website_id == Website.id).where(Domain.name == address)
    return [in_ranges, as_domain]


def _exact_values(query: Query) -> list[str]:
    """E-mail addresses as typed and in lower case (stored as the owner typed them)."""
    return sorted({query.term, query.term.lower()}) if query.kind == Kind.EMAIL else [query.term]


def _report_conditions(query: Query) -> list[Any]:
    """The domain reports a query finds (each on an index of domain_reports); none for a number or an address."""
    term = query.term
    if query.kind == Kind.DOMAIN:
        return [DomainReport.domain.in_(sorted({*with_and_without_www(term), registered_domain(term)}))]
    if query.kind == Kind.UNIT_NAME:
        return [starts_with(DomainReport.registrant_name, term)]
    columns = {Kind.PERSON_NAME: DomainReport.registrant_name, Kind.MOBILE: DomainReport.registrant_phone,
               Kind.EMAIL: DomainReport.registrant_email, Kind.ID_NUMBER: DomainReport.registrant_certificate_number,
               Kind.CREDIT_CODE: DomainReport.registrant_certificate_number}
    column = columns.get(query.kind)
    return [] if column is None else [column.in_(_exact_values(query))]


def _found_entity_ids(actor: User, query: Query, limit: int) -> list[int]:
    """Up to `limit` entity ids, each select read up to `limit` rows along its index (never a UNION of all the
    matches: the demo's 1,000,000 filings share one responsible person). A number is found first and scoped
    after: with the province in the same query SQLite walked the province's index (a 天津 website number: 216 ms
    instead of 28), and a number names its entity's province (numbering.py), so its matches are all of one."""
    scope = permissions.special_query_scope(actor, Entity.province_code)
    found: dict[int, None] = {}
    for statement in _entity_selects(query):
        if query.kind == Kind.NUMBER:
            ids = list(db.session.scalars(statement.limit(limit)))
            found.update(dict.fromkeys(db.session.scalars(select(Entity.id).where(Entity.id.in_(ids), scope))))
        else:
            found.update(dict.fromkeys(db.session.scalars(statement.where(scope).limit(limit))))
        if len(found) >= limit:
            break
    return list(found)[:limit]


def _load_entities(ids: list[int]) -> list[Entity]:
    """The filings, each with its websites, their domains and accesses (and the ISP), in few queries."""
    if not ids:
        return []
    loaded = db.session.scalars(select(Entity).where(Entity.id.in_(ids)).options(
        selectinload(Entity.websites).selectinload(Website.domains),
        selectinload(Entity.websites).selectinload(Website.accesses).selectinload(Access.isp))).all()
    return sorted(loaded, key=lambda entity: (entity.unit_name, entity.id))


def _found_reports(actor: User, query: Query, limit: int) -> list[DomainReport]:
    conditions = _report_conditions(query)
    if not conditions:
        return []
    scope = permissions.special_query_unit_scope(actor, DomainReport.registrar_id)
    return list(db.session.scalars(select(DomainReport).where(*conditions, scope)
                                   .options(selectinload(DomainReport.registrar))
                                   .order_by(DomainReport.domain, DomainReport.id).limit(limit)))


def _found_ip_records(actor: User, query: Query) -> list[ChainStep]:
    """The IP reports holding the address (workflow.ip_lookup), of the reporting units in scope."""
    if query.kind != Kind.IP:
        return []
    return [step for step in holder_chain(query.term)
            if permissions.may_special_query(actor, step.unit.province_code)]


def _require_permission(actor: User) -> None:
    if not permissions.can(actor, Action.SPECIAL_QUERY):
        raise WorkflowError(_l("You may not use the special query."))


def _find(actor: User, query: Query, limit: int) -> Results:
    _require_permission(actor)
    ids = _found_entity_ids(actor, query, limit + 1)
    reports = _found_reports(actor, query, limit + 1)
    return Results(query, entities=_load_entities(ids[:limit]), entity_count=len(ids), reports=reports[:limit],
                   report_count=len(reports), ip_records=_found_ip_records(actor, query))


def search(actor: User, query: Query) -> Results:
    """A query's results, the first PAGE_LIMIT filings and reports (a count above PAGE_LIMIT means "more than";
    the export has up to EXPORT_LIMIT rows), recorded."""
    found = _find(actor, query, PAGE_LIMIT)
    _register(actor, SpecialQueryAction.SEARCH, query, found.total)
    return found


# --- 显示: one record whole --------------------------------------------------------------------------------

#: the records 显示 shows whole: entity (the filing with its websites), domain report, IP user-unit records
REVEALABLE = {"entity": Entity, "domain_report": DomainReport, "ip_allocation": IpAllocation,
              "ip_self_brought": IpSelfBrought}


def reveal(actor: User, query: Query, record_type: str, record_id: str) -> Any:
    """One record of a query's results, for showing whole (recorded); NotFound outside the actor's scope."""
    _require_permission(actor)
    model = REVEALABLE.get(record_type)
    if model is None or not record_id.isdigit() or int(record_id) > MAX_ID:
        raise NotFound()
    record = db.session.get(model, int(record_id))
    if record is None or not _in_scope(actor, record):
        raise NotFound()
    _register(actor, SpecialQueryAction.REVEAL, query, 1, record_type=record_type, record_id=record_id)
    return record


def _in_scope(actor: User, record: Any) -> bool:
    if isinstance(record, Entity):
        return permissions.may_special_query(actor, record.province_code)
    unit = record.registrar if isinstance(record, DomainReport) else record.unit
    return permissions.may_special_query(actor, unit.province_code)


# --- export ----------------------------------------------------------------------------------------------

def export(actor: User, query: Query) -> Results:
    """A query's results for a spreadsheet (up to EXPORT_LIMIT filings and reports; the view masks the personal
    data and writes at most EXPORT_LIMIT rows), recorded."""
    found = _find(actor, query, EXPORT_LIMIT)
    _register(actor, SpecialQueryAction.EXPORT, query, found.total)
    return found


# --- the register ----------------------------------------------------------------------------------------

def _register(actor: User, action: SpecialQueryAction, query: Query, results: int, *, record_type: str = "",
              record_id: str = "") -> SpecialQueryLog:
    """One line of 专项查询记录 and its audit event, in the caller's transaction."""
    entry = SpecialQueryLog(at=utcnow(), user_id=actor.id, username=actor.username,
                            province_code=actor.province_code, action=action, kind=str(query.kind), term=query.term,
                            reason=query.reason, case_number=query.case_number, results=results,
                            record_type=record_type, record_id=record_id,
                            ip=(request.remote_addr or "") if has_request_context() else "")
    db.session.add(entry)
    db.session.flush()
    audit.record(f"special_query.{action}", object_type=record_type or "special_query",
                 object_id=record_id or entry.id, actor=actor,
                 changes={"kind": str(query.kind), "term": query.term, "reason": query.reason,
                          "case_number": query.case_number, "results": results, "register": entry.id})
    return entry
