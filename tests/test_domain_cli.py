"""The domain reporting commands (issue 14): `flask domain-import FILE --as USERNAME`, `flask domain-check DOMAIN`,
and the domain reports `flask seed-demo` makes (one live report per domain, the intended verdict mix)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

import workflow.domains as domains
from extensions import db
from models import (
    DomainChange,
    DomainReport,
    DomainStatus,
    Role,
    User,
    Verdict,
    Website,
)
from tests.domain_factories import registrar, report
from tests.filing_factories import credit_code, filed_by_isp
from tests.helpers import user_named
from tests.test_domain_import import domain_row, template_with
from workflow.checks import domain_checks

CERT = credit_code(1)  # the entity of filed_by_isp(isp, 1)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def reg(app, users):
    with app.app_context():
        registrar("cli_reg", organisation="命令行域名注册服务有限公司")
    return "cli_reg"


def _file(app, tmp_path, rows) -> str:
    path = tmp_path / "域名报备.xlsx"
    path.write_bytes(template_with(app, rows))
    return str(path)


# --- domain-import ----------------------------------------------------------------------------------------

def test_domain_import_imports_a_valid_file(app, runner, reg, tmp_path) -> None:
    result = runner.invoke(args=["domain-import", _file(app, tmp_path, [domain_row("cli-one.cn"),
                                                                        domain_row("cli-two.cn")]), "--as", reg])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0]) == {"rows": 2, "imported": 2, "errors": 0}
    with app.app_context():
        assert sorted(db.session.scalars(select(DomainReport.domain))) == ["cli-one.cn", "cli-two.cn"]
        assert db.session.scalar(select(func.count(DomainChange.id))) == 2


def test_domain_import_prints_each_error_and_exits_1(app, runner, reg, tmp_path) -> None:
    future = (date.today() + timedelta(days=3)).isoformat()
    rows = [domain_row("ok.cn"), domain_row("late.cn", registered_on=future), domain_row("tel.cn", admin_phone="1")]
    result = runner.invoke(args=["domain-import", _file(app, tmp_path, rows), "--as", reg])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert json.loads(lines[0]) == {"rows": 3, "imported": 0, "errors": 2}
    assert lines[1].split("\t")[:4] == ["3", "注册日期", future, "3035"] and lines[1].split("\t")[4]
    assert lines[2].split("\t")[:4] == ["4", "管理联系人联系电话", "1", "3015"] and lines[2].split("\t")[4]
    with app.app_context():
        assert db.session.scalar(select(func.count(DomainReport.id))) == 0


def test_domain_import_refuses_anyone_but_a_registrar(app, runner, users, tmp_path) -> None:
    path = _file(app, tmp_path, [domain_row("x.cn")])
    result = runner.invoke(args=["domain-import", path, "--as", "tj_isp"])
    assert result.exit_code == 1 and "3036" in result.output
    result = runner.invoke(args=["domain-import", path, "--as", "nobody"])
    assert result.exit_code == 1 and "no account named nobody" in result.output


def test_domain_import_refuses_a_hostile_file(app, runner, reg, tmp_path) -> None:
    path = tmp_path / "bad.xlsx"
    path.write_bytes(b"MZ\x90\x00 not a workbook")
    result = runner.invoke(args=["domain-import", str(path), "--as", reg])
    assert result.exit_code == 1 and "不是 Excel 文件" in result.output


# --- domain-check -----------------------------------------------------------------------------------------

def test_domain_check_refuses_a_bad_name(runner, app) -> None:
    for bad in ("not a domain", "-x-.cn", "a..cn"):
        result = runner.invoke(args=["domain-check", "--", bad])
        assert result.exit_code == 1 and "not a domain name" in result.output


def test_domain_check_prints_the_reports_and_the_verdict_of_each_filing(app, runner, reg) -> None:
    with app.app_context():
        filed_by_isp(user_named("tj_isp"), 1)  # www.site1.cn and site1.cn, entity CERT
        db.session.commit()
        unit = user_named(reg)
        old = report(unit, "site1.cn", "91110000000000000X", registrant_name="别的公司")
        domains.delete_report(unit, db.session.get(DomainReport, old.id))
        db.session.commit()
        report(unit, "site1.cn", CERT.lower())
    printed = json.loads(runner.invoke(args=["domain-check", "SITE1.cn."]).output)
    assert printed["domain"] == "site1.cn"
    assert [(r["status"], r["registrar"]) for r in printed["reports"]] == [("normal", reg), ("deleted", reg)]
    assert printed["reports"][0]["registrant_certificate_number"] == CERT  # upper-cased by the workflow
    [site] = printed["websites"]
    assert (site["verdict"], site["blocking"], site["certificate_number"]) == ("consistent", False, CERT)
    assert site["verdict_words"] == "一致" and site["report_id"] == printed["reports"][0]["id"]
    unreported = json.loads(runner.invoke(args=["domain-check", "www.site1.cn"]).output)
    assert unreported["reports"] == [] and unreported["websites"][0]["verdict"] == "unreported"
    assert unreported["websites"][0]["verdict_words"] == "未报备"


def test_domain_check_of_an_idn_in_unicode(app, runner, reg) -> None:
    with app.app_context():
        report(user_named(reg), "xn--fsqu00a.xn--fiqs8s", CERT, registrant_name="别人")
    printed = json.loads(runner.invoke(args=["domain-check", "例子.中国"]).output)
    assert printed["domain"] == "xn--fsqu00a.xn--fiqs8s" and printed["display"].startswith("例子.中国")
    assert len(printed["reports"]) == 1 and printed["websites"] == []


# --- seed-demo ---------------------------------------------------------------------------------------------

def test_seed_demo_reports_the_demo_domains_in_the_intended_mix(app, runner) -> None:
    result = runner.invoke(args=["seed-demo", "--filings", "300", "--password", "Demo-pass-2026"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    with app.app_context():
        reports = db.session.scalars(select(DomainReport)).all()
        assert summary["domain_reports"] == len(reports) == 300 * 98 // 100  # one per registered domain
        live = Counter(r.domain for r in reports if r.status != DomainStatus.DELETED)
        assert max(live.values()) == 1  # one live report per domain
        registrars = {r.registrar_id for r in reports}
        assert len(registrars) == 3 and {u.role for u in db.session.scalars(
            select(User).where(User.id.in_(registrars)))} == {Role.DOMAIN_REPORTER}
        for made in reports[:50]:  # each one passes the workflow's own checks
            assert list(domains.report_problems(_as_data(made))) == []
        verdicts = Counter()
        for website in db.session.scalars(select(Website)):
            names = [domain.name for domain in website.domains]
            verdicts.update(check.verdict for check in domain_checks(website.entity, names))
        # per 100 filings 3 mismatched, 2 unreported, 2 expiring (www. and the bare domain: one registration)
        assert verdicts == {Verdict.CONSISTENT: 279, Verdict.INCONSISTENT: 9, Verdict.UNREPORTED: 6,
                            Verdict.EXPIRING: 6}
        by_person = [r for r in reports if r.registrant_certificate_type == "16"]
        assert by_person and all(r.registrant_name == "张三" for r in by_person)  # the responsible person


def _as_data(made: DomainReport) -> domains.ReportData:
    values = {name: getattr(made, name) for name in domains.DATA_FIELDS}
    return domains.ReportData(**{**values, "status": made.status.value,
                                 "registrant_province_code": made.registrant_province_code or "",
                                 "admin_province_code": made.admin_province_code or ""})

