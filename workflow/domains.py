"""域名报备 (SPEC §11, 工信部信管〔2017〕264号, Order No. 43): a registrar (`domain_reporter`) adds, changes and
deletes its reports of the domains it registers. Every refusal carries the data-exchange specification's result
code. Each change queues the domain for the reconciliation (`DomainChange`), which re-checks the filings using it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import audit
import validators
from extensions import db
from models import (
    CodeItem,
    CodeTable,
    DomainChange,
    DomainReport,
    DomainStatus,
    Province,
    Role,
    User,
    UserStatus,
)
from workflow.errors import CodedErrors, CodedProblem


class DomainError(CodedErrors):
    """Refused domain report: every problem with its result code (`coded`), and as form errors."""


def _raise(problems: Iterable[CodedProblem]) -> None:
    found = list(problems)
    if found:
        raise DomainError(found)


@dataclass
class ReportData:
    domain: str = ""
    domain_type: str = ""
    registered_on: date | None = None
    expires_on: date | None = None
    registrar_name: str = ""
    name_servers: str = ""  # one per line (commas and spaces tolerated)
    status: str = DomainStatus.NORMAL
    registrant_name: str = ""
    registrant_organisation: str = ""
    registrant_certificate_type: str = ""
    registrant_certificate_number: str = ""
    registrant_address: str = ""
    registrant_province_code: str = ""
    registrant_city: str = ""
    registrant_email: str = ""
    registrant_phone: str = ""
    admin_name: str = ""
    admin_organisation: str = ""
    admin_certificate_type: str = ""
    admin_certificate_number: str = ""
    admin_address: str = ""
    admin_province_code: str = ""
    admin_city: str = ""
    admin_email: str = ""
    admin_phone: str = ""
    payer_name: str = ""


DATA_FIELDS = tuple(item.name for item in fields(ReportData))
#: what every report must give (the specification's mandatory fields)
REQUIRED = ("domain", "domain_type", "registered_on", "expires_on", "registrant_name", "registrant_certificate_type",
            "registrant_certificate_number", "registrant_email", "registrant_phone", "admin_name", "admin_email",
            "admin_phone")
#: statuses a registrar sets (已删除 comes only from deleting)
SETTABLE_STATUSES = (DomainStatus.NORMAL, DomainStatus.SUSPENDED, DomainStatus.EXPIRED)


def require_registrar(actor: User) -> None:
    if actor.role != Role.DOMAIN_REPORTER or actor.status != UserStatus.ACTIVE:
        raise DomainError([(None, "3036", _l("Only domain registries and registrars report domains."))])


def normalised(domain: str) -> str:
    """The domain as filings store it; DomainError if it is not a registered domain (a registrar reports
    `example.cn`, which covers the filed `www.example.cn`)."""
    try:
        name = validators.normalise_domain(domain)
    except ValueError as error:
        raise DomainError([("domain", "", str(error))]) from None
    if (registered := validators.registered_domain(name)) != name:
        raise DomainError([("domain", "", _l("Report the registered domain %(registered)s, not a name under it.",
                                             registered=validators.display_domain(registered)))])
    return name


def _code_exists(table: CodeTable, code: str) -> bool:
    return db.session.execute(select(CodeItem.id).where(CodeItem.table == table, CodeItem.code == code,
                                                        CodeItem.active)).first() is not None


#: whether a code exists in a code table (an import passes a memoised one: a query per distinct value)
CodeCheck = Callable[[CodeTable, str], bool]


def _contact_problems(data: ReportData, prefix: str, code_exists: CodeCheck) -> Iterator[CodedProblem]:
    email, phone = getattr(data, f"{prefix}_email"), getattr(data, f"{prefix}_phone")
    if email and (message := validators.email_error(email.strip())):
        yield f"{prefix}_email", "3013", message
    if phone and (message := validators.phone_error(phone)):
        yield f"{prefix}_phone", "3015", message
    certificate_type = getattr(data, f"{prefix}_certificate_type")
    if certificate_type and not code_exists(CodeTable.CERTIFICATE_TYPE, certificate_type):
        yield f"{prefix}_certificate_type", "", str(_l("Unknown certificate type."))
    province = getattr(data, f"{prefix}_province_code")
    if province and db.session.get(Province, province) is None:
        yield f"{prefix}_province_code", "", str(_l("Unknown province."))


def report_problems(data: ReportData, today: date | None = None,
                    code_exists: CodeCheck = _code_exists) -> Iterator[CodedProblem]:
    """Every problem of the report's own fields (not yet those that need the other reports)."""
    today = today or date.today()
    for name in REQUIRED:
        if getattr(data, name) in ("", None):
            yield name, "", str(_l("This field is required."))
    if data.domain_type and not code_exists(CodeTable.DOMAIN_TYPE, data.domain_type):
        yield "domain_type", "", str(_l("Unknown domain type."))
    if data.registered_on and data.registered_on > today:
        yield "registered_on", "3035", str(_l("The registration date must not be in the future."))
    if data.expires_on and data.expires_on < today:
        yield "expires_on", "3004", str(_l("The expiry date has passed; report a domain that is registered."))
    if data.registered_on and data.expires_on and data.expires_on < data.registered_on:
        yield "expires_on", "", str(_l("The expiry date must not be before the registration date."))
    if data.status not in SETTABLE_STATUSES:
        yield "status", "", str(_l("Choose the domain's status."))
    for prefix in ("registrant", "admin"):
        yield from _contact_problems(data, prefix, code_exists)


def _live_report(domain: str, exclude: int | None = None) -> DomainReport | None:
    query = select(DomainReport).where(DomainReport.domain == domain, DomainReport.status != DomainStatus.DELETED)
    if exclude is not None:
        query = query.where(DomainReport.id != exclude)
    return db.session.execute(query).scalar_one_or_none()


def live_reports(domains: Sequence[str]) -> list[DomainReport]:
    """The live reports of these domains, in one query (an import asks a few hundred at a time)."""
    return list(db.session.scalars(select(DomainReport).where(DomainReport.domain.in_(domains),
                                                              DomainReport.status != DomainStatus.DELETED)))


def _taken_problem(actor: User, domain: str, exclude: int | None = None) -> CodedProblem | None:
    return holder_problem(actor, domain, _live_report(domain, exclude))


def holder_problem(actor: User, domain: str, holder: DomainReport | None) -> CodedProblem | None:
    """One live report per domain: what is wrong with the actor reporting `domain` while `holder` is live."""
    if holder is None:
        return None
    if holder.registrar_id == actor.id:
        return "domain", "", str(_l("You have already reported %(domain)s; change that report.",
                                    domain=validators.display_domain(domain)))
    return "domain", "", str(_l("%(domain)s is reported by %(registrar)s; a transfer is their deletion, then your "
                                "report.", domain=validators.display_domain(domain),
                                registrar=holder.registrar.organisation or holder.registrar.username))


def _fill(report: DomainReport, data: ReportData, domain: str) -> None:
    for name in DATA_FIELDS:
        value = getattr(data, name)
        if isinstance(value, str):
            value = value.strip()
        setattr(report, name, value)
    report.domain = domain
    report.status = DomainStatus(data.status)
    report.name_servers = "\n".join(validators.split_domains(data.name_servers))
    report.registrant_certificate_number = report.registrant_certificate_number.upper()
    report.admin_certificate_number = report.admin_certificate_number.upper()
    for prefix in ("registrant", "admin"):
        name = f"{prefix}_province_code"
        setattr(report, name, getattr(report, name) or None)


def _queue_change(domain: str, what: str) -> None:
    db.session.add(DomainChange(domain=domain, what=what))


def _flush(report: DomainReport, domain: str) -> None:
    """In a savepoint: the partial unique index catches a second live report made at the same moment."""
    try:
        with db.session.begin_nested():
            db.session.add(report)
            db.session.flush()
    except IntegrityError:
        raise DomainError([("domain", "", _l("%(domain)s was reported by another registrar at the same moment.",
                                             domain=validators.display_domain(domain)))]) from None


def _record(action: str, actor: User, report: DomainReport, **changes: object) -> None:
    audit.record(action, object_type="domain_report", object_id=report.id, province_code=actor.province_code,
                 changes={"domain": report.domain, **changes})


def add_report(actor: User, data: ReportData) -> DomainReport:
    require_registrar(actor)
    domain = normalised(data.domain) if data.domain.strip() else ""
    _raise([*report_problems(data), *(p for p in [domain and _taken_problem(actor, domain)] if p)])
    report = DomainReport(registrar_id=actor.id)
    _fill(report, data, domain)
    _flush(report, domain)
    _queue_change(domain, "reported")
    _record("domain.reported", actor, report)
    return report


def _own(actor: User, report: DomainReport | None) -> DomainReport:
    require_registrar(actor)
    if report is None or report.status == DomainStatus.DELETED:
        raise DomainError([(None, "", _l("Record not found."))])
    if report.registrar_id != actor.id:
        raise DomainError([(None, "3037", _l("This domain is reported by another registrar; you may not change or "
                                             "delete its report."))])
    return report


def _what_changed(report: DomainReport, data: ReportData) -> str:
    """The reconciliation's note: the registrant, the expiry or the status, when they change."""
    changed = []
    if (report.registrant_name, report.registrant_certificate_number) != (
            data.registrant_name.strip(), data.registrant_certificate_number.strip().upper()):
        changed.append("registrant")
    if report.expires_on != data.expires_on:
        changed.append("expiry")
    if report.status != data.status:
        changed.append("status")
    return ",".join(changed) or "details"


def change_report(actor: User, report: DomainReport | None, data: ReportData) -> DomainReport:
    report = _own(actor, report)
    domain = normalised(data.domain) if data.domain.strip() else ""
    _raise([*report_problems(data), *(p for p in [domain and _taken_problem(actor, domain, report.id)] if p)])
    before, what = report.domain, _what_changed(report, data)
    _fill(report, data, domain)
    _flush(report, domain)
    _queue_change(domain, what)
    if before != domain:
        _queue_change(before, "deleted")
    _record("domain.changed", actor, report, changed=what)
    return report


def delete_report(actor: User, report: DomainReport | None) -> None:
    """The report stays, as 已删除: the filings using the domain then read 已删除 until it is reported again."""
    report = _own(actor, report)
    report.status = DomainStatus.DELETED
    db.session.flush()
    _queue_change(report.domain, "deleted")
    _record("domain.deleted", actor, report)


def delete_report_of(actor: User, domain: str) -> None:
    """Delete by domain name (the specification's second way)."""
    require_registrar(actor)
    name = normalised(domain)
    delete_report(actor, _live_report(name))


def report_of(actor: User, domain: str) -> DomainReport | None:
    """The actor's live report of a domain (for changing it by domain name)."""
    report = _live_report(normalised(domain))
    return report if report is not None and report.registrar_id == actor.id else None

