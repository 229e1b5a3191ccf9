"""The registrant check applied to an application (issue 14): which domains it files, their verdicts, and what
the policy (`DOMAIN_REGISTRANT_CHECK`) makes of them for the ISP's verification and the bureau's approval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l

import validators
from extensions import db
from models import Application, ApplicationKind, DomainChange, DomainReport, Entity, FilingStatus, Verdict
from workflow.checks import DomainCheck, EntityData, domain_checks, registered_names, reports_of
from workflow.lifecycle import UNBLOCKED_KINDS, proposal_of

VERDICT_WORDS = {
    Verdict.CONSISTENT: _l("consistent"), Verdict.EXPIRING: _l("expiring soon"),
    Verdict.INCONSISTENT: _l("registrant differs from the filing entity"), Verdict.UNREPORTED: _l("not reported"),
    Verdict.EXPIRED: _l("expired"), Verdict.DELETED: _l("deleted"),
}


def blocks() -> bool:
    """Whether failing verdicts stop verification and approval ("block", the default) or only show ("warn")."""
    return current_app.config.get("DOMAIN_REGISTRANT_CHECK", "block") != "warn"


def _as_data(entity: Entity) -> EntityData:
    return EntityData(province_code=entity.province_code, unit_name=entity.unit_name, unit_nature=entity.unit_nature,
                      certificate_type=entity.certificate_type, certificate_number=entity.certificate_number,
                      responsible_name=entity.responsible_name, responsible_id_number=entity.responsible_id_number,
                      responsible_mobile=entity.responsible_mobile, responsible_email=entity.responsible_email)


def _website_domains(entity: Entity, website_id: Any) -> list[str]:
    return [domain.name for website in entity.websites if website.id == website_id for domain in website.domains
            if domain.live or website.status == FilingStatus.DRAFT]


def filed_domains(application: Application) -> tuple[EntityData, list[str]]:
    """The entity as it will be once approved, and the domains the application files (an IDN as punycode):
    a new filing all of its websites', a new website or access that website's, a change the domains it adds —
    or, for a new responsible person, every live domain checked against the new person."""
    entity, proposal = application.entity, proposal_of(application)
    subject = _as_data(entity)
    if application.kind == ApplicationKind.NEW_FILING:
        return subject, [domain.name for website in entity.websites for domain in website.domains]
    if application.kind in (ApplicationKind.NEW_WEBSITE, ApplicationKind.NEW_ACCESS):
        return subject, _website_domains(entity, proposal.get("website_id"))
    if proposal.get("type") == "add_domains":
        return subject, list(proposal.get("domains", []))
    if proposal.get("type") == "responsible":
        subject = replace(subject, responsible_name=proposal.get("responsible_name", ""),
                          responsible_id_number=proposal.get("responsible_id_number", ""))
        return subject, [domain.name for website in entity.websites for domain in website.domains if domain.live]
    return subject, []


def application_checks(application: Application, reports: dict[str, DomainReport] | None = None) -> list[DomainCheck]:
    if application.kind in UNBLOCKED_KINDS:
        return []
    subject, domains = filed_domains(application)
    return domain_checks(subject, domains, reports)


def preload_reports(applications: Sequence[Application]) -> dict[str, DomainReport]:
    """The reports of every domain of a batch, in a few queries."""
    return reports_of(registered_names([name for application in applications
                                        if application.kind not in UNBLOCKED_KINDS
                                        for name in filed_domains(application)[1]]))


def blocker_messages(checks: Sequence[DomainCheck]) -> list[str]:
    """Under "block", why verification or approval must wait: one line per failing domain."""
    if not blocks():
        return []
    return [str(_l("Domain %(domain)s: %(verdict)s (registrant check).", domain=validators.display_domain(check.domain),
                   verdict=VERDICT_WORDS[check.verdict])) for check in checks if check.blocking]


def queue_failing(checks: Sequence[DomainCheck]) -> None:
    """Approved under "warn" with failing verdicts: the reconciliation opens their 域名核验异常 flags."""
    db.session.add_all(DomainChange(domain=check.domain, what="filed") for check in checks if check.blocking)


def audited(checks: Sequence[DomainCheck]) -> dict[str, str]:
    """The verdicts as the audit event records them (under "warn" the decision is taken knowing them)."""
    return {check.domain: check.verdict.value for check in checks}
