"""The registrant check's verdicts (issue 14) as every page that checks an application shows them: the wizard's
preview, the application's page, the approve and batch pages, the changes that file domains. One row per domain:
the registrar, the registrant, its certificate number, the expiry and a coloured badge (一致 / 不一致 / 未报备 /
即将到期 / 已过期 / 已删除); templates/admin/domain_verdicts.html draws them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import flash
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

import validators
from admin_views.labels import label
from models import Application, DomainReport, Role, Verdict
from workflow import registrant
from workflow.checks import DomainCheck

VERDICT_LABELS = {
    Verdict.CONSISTENT: _l("Consistent"), Verdict.EXPIRING: _l("Expiring soon"),
    Verdict.INCONSISTENT: _l("Inconsistent"), Verdict.UNREPORTED: _l("Not reported"),
    Verdict.EXPIRED: _l("Expired"), Verdict.DELETED: _l("Deleted"),
}
#: the roles that see a registrant's certificate number whole on an application's page (others: masked)
WHOLE_NUMBER_ROLES = (Role.MIIT, Role.BUREAU, Role.ISP)


@dataclass(frozen=True)
class VerdictRow:
    """One filed domain: its reported registration and the verdict (its value names the badge's CSS class)."""

    domain: str
    verdict: str
    label: str
    blocking: bool
    registrar: str = ""
    registrant: str = ""
    certificate_number: str = ""
    expires_on: date | None = None


def verdict_badge(verdict: Verdict) -> Markup:
    """The verdict's coloured badge (its colour from static/css/console.css: the CSP allows no inline style)."""
    return Markup('<span class="badge verdict verdict-{}">{}</span>').format(verdict.value,
                                                                            label(VERDICT_LABELS, verdict))


def masked(number: str) -> str:
    """9112**********1Y: enough to tell two numbers apart, not enough to copy one."""
    return number if len(number) <= 6 else number[:4] + "*" * (len(number) - 6) + number[-2:]


def _registrant(report: DomainReport) -> str:
    names = [report.registrant_name, report.registrant_organisation]
    return " · ".join(dict.fromkeys(name for name in names if name))


def verdict_row(check: DomainCheck, whole_numbers: bool) -> VerdictRow:
    report = check.report
    row = VerdictRow(validators.display_domain(check.domain), check.verdict.value,
                     label(VERDICT_LABELS, check.verdict), check.blocking)
    if report is None:
        return row
    number = report.registrant_certificate_number
    return VerdictRow(row.domain, row.verdict, row.label, row.blocking,
                      registrar=report.registrar.organisation or report.registrar.username,
                      registrant=_registrant(report), certificate_number=number if whole_numbers else masked(number),
                      expires_on=report.expires_on)


def verdict_panel(checks: Sequence[DomainCheck]) -> dict[str, Any]:
    """What templates/admin/domain_verdicts.html shows: a row per domain, and what the policy makes of them."""
    whole = current_user.role in WHOLE_NUMBER_ROLES
    return {"rows": [verdict_row(check, whole) for check in checks], "blocks": registrant.blocks(),
            "blocking": any(check.blocking for check in checks)}


def application_verdicts(application: Application) -> dict[str, Any]:
    return verdict_panel(registrant.application_checks(application))


def flash_verdicts(application: Application) -> None:
    """After an ISP sends a change that files domains: each domain whose check fails, and what follows."""
    failing = [check for check in registrant.application_checks(application) if check.verdict != Verdict.CONSISTENT]
    for check in failing:
        flash(_l("Domain %(domain)s: %(verdict)s (registrant check).", domain=validators.display_domain(check.domain),
                 verdict=label(VERDICT_LABELS, check.verdict)), "warning")
    if registrant.blocks() and any(check.blocking for check in failing):
        flash(_l("The bureau cannot approve this application until the registrar has reported each domain with "
                 "the filing entity as its registrant."), "warning")
