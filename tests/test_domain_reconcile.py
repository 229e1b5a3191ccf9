"""The registrant check after approval (issue 14): a changed report flags exactly the websites using the domain,
their owner and ISPs are e-mailed once, a corrected report resolves the flag; the filings approved before the
check existed are flagged by `domain-reconcile --all`, not revoked."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select

import workflow
import workflow.domains as domains
from extensions import db
from models import DomainChange, DomainFlag, DomainReport, Entity, FilingStatus, MessageChannel, OutboxMessage, Verdict
from tests.domain_factories import registrar, report, report_data
from tests.filing_factories import filed_by_isp
from tests.helpers import user_named
from workflow.domain_reconcile import flag_all_filings, queue_passed_expiries, reconcile_domain_changes


@pytest.fixture
def approved(ctx, users):
    """Two approved filings (sites site51 and site52, each with www. and the bare domain), unreported."""
    isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
    applications = [filed_by_isp(isp, n) for n in (51, 52)]
    db.session.commit()
    workflow.batch_approve(bureau, applications)
    db.session.commit()
    return {n: application.entity for n, application in zip((51, 52), applications, strict=True)}


def open_flags() -> dict[str, Verdict]:
    return {flag.domain: flag.verdict for flag in db.session.scalars(
        select(DomainFlag).where(DomainFlag.resolved_at.is_(None)))}


def emails() -> list[tuple[str, str]]:
    return sorted((m.recipient, m.subject) for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.EMAIL,
                                    OutboxMessage.subject.like("%域名%"))))


def test_filings_approved_before_the_check_are_flagged_once_and_not_revoked(approved, users) -> None:
    db.session.execute(delete(DomainChange))  # as if approved before the check: nothing queued
    db.session.commit()
    figures = flag_all_filings()
    assert figures["flagged"] == 2 and figures["emails"] == 4  # 2 websites (www. and bare: one registration) × 2
    assert open_flags() == {"site51.cn": Verdict.UNREPORTED, "site52.cn": Verdict.UNREPORTED}
    assert {recipient for recipient, _subject in emails()} == {"owner51@example.cn", "owner52@example.cn",
                                                               f"{users['isp']}@example.cn"}
    again = flag_all_filings()
    assert again["flagged"] == 0 and again["emails"] == 0 and len(emails()) == 4
    assert {entity.status for entity in db.session.scalars(select(Entity))} == {FilingStatus.ACTIVE}


def test_a_changed_report_flags_exactly_the_websites_using_it_and_a_correction_resolves(approved) -> None:
    one = registrar("reg_reconcile")
    certificate = approved[51].certificate_number
    reconcile_domain_changes()  # the approvals' own flags (approved under warn, unreported)
    made = report(one, "site51.cn", certificate)
    assert reconcile_domain_changes()["resolved"] == 1  # consistent now
    domains.change_report(one, made, report_data("site51.cn", "91110000000000000X", registrant_name="别人"))
    db.session.commit()
    figures = reconcile_domain_changes()
    assert figures["flagged"] == 1 and figures["emails"] == 2
    assert open_flags()["site51.cn"] == Verdict.INCONSISTENT
    flag = db.session.scalars(select(DomainFlag).where(DomainFlag.domain == "site51.cn",
                                                       DomainFlag.resolved_at.is_(None))).one()
    assert "注册人变更" in flag.detail and "别人" in flag.detail
    # another change that still fails: the flag follows, nobody is e-mailed again
    domains.delete_report(one, db.session.get(DomainReport, made.id))
    db.session.commit()
    assert reconcile_domain_changes()["emails"] == 0
    assert open_flags()["site51.cn"] == Verdict.DELETED
    # reported again, correctly: resolved
    report(one, "site51.cn", certificate)
    assert reconcile_domain_changes()["resolved"] == 1
    assert open_flags() == {"site52.cn": Verdict.UNREPORTED}  # the other stays unreported
    assert db.session.scalar(select(DomainChange.id).where(DomainChange.processed_at.is_(None))) is None


def test_a_passed_expiry_is_queued_once_and_flags_the_website(approved) -> None:
    one = registrar("reg_expiry")
    made = report(one, "site52.cn", approved[52].certificate_number)
    reconcile_domain_changes()
    assert "site52.cn" not in open_flags()
    made.expires_on = date.today() - timedelta(days=1)  # time passed
    db.session.commit()
    assert queue_passed_expiries() == 1
    db.session.commit()
    assert queue_passed_expiries() == 0
    reconcile_domain_changes()
    assert open_flags()["site52.cn"] == Verdict.EXPIRED


def test_an_approval_under_warn_with_failing_domains_is_flagged_by_the_worker(approved) -> None:
    assert reconcile_domain_changes()["flagged"] == 2  # the fixture's two approvals queued their domains
    assert set(open_flags()) == {"site51.cn", "site52.cn"}
