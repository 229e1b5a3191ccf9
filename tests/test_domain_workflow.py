"""Domain reports (issue 14): every rule of workflow/domains.py both ways with its code, each verdict of the
registrant check on a constructed case, and the block / warn policies in ISP verification and bureau approval."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

import workflow
import workflow.domains as domains
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    DomainChange,
    DomainReport,
    DomainStatus,
    Role,
    Verdict,
)
from tests.domain_factories import registrar, report, report_data
from tests.filing_factories import credit_code, entity_data, filed_by_isp, website_data
from tests.helpers import make_user, user_named
from workflow.checks import domain_checks, domain_verdict


def refused(call, *args) -> list[str]:
    with pytest.raises(domains.DomainError) as excinfo:
        call(*args)
    db.session.rollback()
    return [code for _field, code, _message in excinfo.value.coded]


@pytest.fixture
def registrars(ctx):
    return registrar("reg_one"), registrar("reg_two")


CERT = credit_code(700)


# --- the rules -------------------------------------------------------------------------------------------


def test_only_a_registrar_reports_3036(registrars) -> None:
    isp = make_user("isp_not_reg", Role.ISP, "120000")
    assert refused(domains.add_report, isp, report_data("example.cn", CERT)) == ["3036"]


@pytest.mark.parametrize(("overrides", "code"), [
    ({"registered_on": date.today() + timedelta(days=3)}, "3035"),
    ({"expires_on": date.today() - timedelta(days=3)}, "3004"),
    ({"registrant_email": "not-an-address"}, "3013"),
    ({"admin_email": "x@"}, "3013"),
    ({"registrant_phone": "12345"}, "3015"),
    ({"admin_phone": "call me"}, "3015"),
])
def test_each_bad_field_is_refused_with_its_code(registrars, overrides, code) -> None:
    one, _two = registrars
    assert refused(domains.add_report, one, report_data("example.cn", CERT, **overrides)) == [code]
    assert db.session.query(DomainReport).count() == 0


def test_today_is_a_valid_registration_date_and_expiry(registrars) -> None:
    one, _two = registrars
    report(one, "today.cn", CERT, registered_on=date.today(), expires_on=date.today())


def test_every_missing_field_is_named_at_once(registrars) -> None:
    one, _two = registrars
    with pytest.raises(domains.DomainError) as excinfo:
        domains.add_report(one, domains.ReportData(domain="example.cn"))
    db.session.rollback()
    assert {name for name, _code, _message in excinfo.value.coded} == set(domains.REQUIRED) - {"domain"}


def test_one_live_report_per_domain_and_a_transfer(registrars) -> None:
    one, two = registrars
    report(one, "Example.CN.", CERT)  # normalised: lower case, no trailing dot
    with pytest.raises(domains.DomainError) as excinfo:
        domains.add_report(two, report_data("example.cn", CERT))
    db.session.rollback()
    assert "reg_one" in excinfo.value.message
    assert refused(domains.add_report, one, report_data("EXAMPLE.cn", CERT)) == [""]
    # a transfer: the first deletes, the second reports
    domains.delete_report_of(one, "example.cn")
    db.session.commit()
    report(two, "example.cn", CERT)
    assert [r.status for r in db.session.scalars(select(DomainReport).order_by(DomainReport.id))] == [
        DomainStatus.DELETED, DomainStatus.NORMAL]


def test_a_registrar_changes_and_deletes_only_its_own_3037(registrars) -> None:
    one, two = registrars
    made = report(one, "mine.cn", CERT)
    assert refused(domains.change_report, two, made, report_data("mine.cn", CERT)) == ["3037"]
    assert refused(domains.delete_report, two, db.session.get(DomainReport, made.id)) == ["3037"]
    domains.change_report(one, db.session.get(DomainReport, made.id), report_data("mine.cn", "11010519491231002X",
                                                                                  registrant_name="张三"))
    db.session.commit()
    assert db.session.get(DomainReport, made.id).registrant_name == "张三"


def test_a_registrar_reports_the_registered_domain_not_a_name_under_it(registrars) -> None:
    one, _two = registrars
    with pytest.raises(domains.DomainError) as excinfo:
        domains.add_report(one, report_data("www.example.com.cn", CERT))
    db.session.rollback()
    assert "example.com.cn" in excinfo.value.message
    report(one, "example.com.cn", CERT)  # under a public suffix of two labels


def test_an_idn_reported_in_unicode_is_stored_as_punycode(registrars) -> None:
    one, _two = registrars
    made = report(one, "中文网站.中国", CERT)
    assert made.domain == "中文网站.中国".encode("idna").decode("ascii") == "xn--fiq228c37oz8d.xn--fiqs8s"


def test_every_change_is_queued_for_reconciliation_and_audited(registrars) -> None:
    one, _two = registrars
    made = report(one, "queued.cn", CERT)
    domains.change_report(one, made, report_data("queued.cn", "X", registrant_name="别人"))
    domains.delete_report(one, made)
    db.session.commit()
    assert [(c.domain, c.what) for c in db.session.scalars(select(DomainChange).order_by(DomainChange.id))] == [
        ("queued.cn", "reported"), ("queued.cn", "registrant"), ("queued.cn", "deleted")]
    assert list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("domain.%"))
                                   .order_by(AuditEvent.id))) == ["domain.reported", "domain.changed",
                                                                  "domain.deleted"]


# --- verdicts ------------------------------------------------------------------------------------------------


def _verdict(entity, domain: str) -> Verdict:
    return domain_checks(entity, [domain])[0].verdict


def test_verdicts_on_constructed_cases(registrars) -> None:
    one, _two = registrars
    organisation = entity_data(1, certificate_number=CERT, responsible_name="张三",
                               responsible_id_number="11010519491231002X")
    report(one, "bynumber.cn", CERT.lower())  # the same number, any case
    report(one, "byperson.cn", "11010519491231002x", registrant_name="张三")
    report(one, "other.cn", "91110000000000000X", registrant_name="别的公司")
    report(one, "expiring.cn", CERT, expires_on=date.today() + timedelta(days=30))
    report(one, "suspended.cn", CERT, status=DomainStatus.SUSPENDED)
    gone = report(one, "gone.cn", CERT)
    domains.delete_report(one, gone)
    expired = report(one, "expired.cn", CERT)
    expired.expires_on = date.today() - timedelta(days=1)  # time passed since it was reported
    db.session.commit()
    assert _verdict(organisation, "bynumber.cn") == Verdict.CONSISTENT
    assert _verdict(organisation, "byperson.cn") == Verdict.CONSISTENT
    assert _verdict(organisation, "other.cn") == Verdict.INCONSISTENT
    assert _verdict(organisation, "expiring.cn") == Verdict.EXPIRING
    assert _verdict(organisation, "suspended.cn") == Verdict.CONSISTENT
    assert _verdict(organisation, "gone.cn") == Verdict.DELETED
    assert _verdict(organisation, "expired.cn") == Verdict.EXPIRED
    assert _verdict(organisation, "nobody.cn") == Verdict.UNREPORTED
    # a person: only the person's own number
    person = entity_data(2, unit_nature="5", certificate_type="2", unit_name="王五",
                         certificate_number="11010519491231002X")
    assert _verdict(person, "byperson.cn") == Verdict.CONSISTENT
    assert _verdict(person, "bynumber.cn") == Verdict.INCONSISTENT
    # a bare IP address is not a domain: no verdict
    assert domain_checks(organisation, ["203.0.113.7"]) == []


def test_verdict_ignores_case_and_trailing_dot_of_the_filed_name(registrars) -> None:
    one, _two = registrars
    report(one, "MiXed.cn.", CERT)
    organisation = entity_data(3, certificate_number=CERT)
    assert domain_verdict(organisation, "mixed.cn", db.session.scalars(select(DomainReport)).one()).verdict == \
        Verdict.CONSISTENT
    # the filed names under it share its verdict, checked once
    assert [(check.domain, check.verdict) for check in domain_checks(
        organisation, ["www.mixed.cn", "mixed.cn", "m.mixed.cn", "203.0.113.9"])] == [("mixed.cn", Verdict.CONSISTENT)]


# --- the policies ---------------------------------------------------------------------------------------------


def _pending_filing(isp_name: str, n: int, owner_cert: str) -> Application:
    isp = user_named(isp_name)
    application = workflow.save_filing_draft(isp, entity_data(n, certificate_number=owner_cert),
                                             [website_data(f"policy{n}", [isp.id])])
    workflow.submit_application(isp, application)
    db.session.commit()
    return application


def test_block_policy_stops_approval_until_the_registrar_corrects_the_registrant(app, users, registrars) -> None:
    one, _two = registrars
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    application = _pending_filing(users["isp"], 41, CERT)
    bureau = user_named(users["bureau"])
    # www.policy41.cn and policy41.cn are one registration: one blocker
    assert workflow.approval_blockers(application) == ["域名 policy41.cn：未报备（域名注册人核验）。"]
    with pytest.raises(workflow.WorkflowError):
        workflow.approve(bureau, application)
    db.session.rollback()
    wrong = report(one, "policy41.cn", "91110000000000000X", registrant_name="别的公司")
    assert "不一致" in workflow.approval_blockers(db.session.get(Application, application.id))[0]
    domains.change_report(one, wrong, report_data("policy41.cn", CERT))
    db.session.commit()
    application = db.session.get(Application, application.id)
    assert workflow.approval_blockers(application) == []
    workflow.approve(bureau, application)
    db.session.commit()
    assert application.state == ApplicationState.APPROVED


def test_block_policy_stops_the_isp_verification(app, users, registrars) -> None:
    one, _two = registrars
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    owner = make_user("policy_owner", Role.ICP)
    isp = user_named(users["isp"])
    application = workflow.save_filing_draft(owner, entity_data(42, certificate_number=CERT),
                                             [website_data("policy42", [isp.id])])
    workflow.submit_application(owner, application)
    db.session.commit()
    with pytest.raises(workflow.WorkflowError) as excinfo:
        workflow.isp_verify(isp, application)
    db.session.rollback()
    assert "policy42.cn" in excinfo.value.message
    report(one, "policy42.cn", CERT)
    workflow.isp_verify(isp, db.session.get(Application, application.id))
    db.session.commit()
    assert db.session.get(Application, application.id).state == ApplicationState.BUREAU_REVIEW


def test_warn_policy_approves_and_audits_the_verdicts(app, users, registrars) -> None:
    one, _two = registrars
    app.config["DOMAIN_REGISTRANT_CHECK"] = "warn"
    report(one, "site43.cn", "91110000000000000X", registrant_name="别的公司")
    application = filed_by_isp(user_named(users["isp"]), 43)
    db.session.commit()
    assert workflow.approval_blockers(application) == []
    workflow.batch_approve(user_named(users["bureau"]), [application])
    db.session.commit()
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "application.approved")).one()
    assert '"domains":{"site43.cn":"inconsistent"}' in event.changes
