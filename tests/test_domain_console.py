"""域名报备 in the console (issue 14): a registrar's own reports (list, search, filters, add / edit / delete — by
record and by domain — each refusal beside its field with its code, nothing changed); the bureaus' and MIIT's
read-only lists and their scope; 域名核验异常; the registrant check's verdicts on every page that checks an
application; national registrars created by MIIT."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

import workflow
from extensions import db
from models import (
    Application,
    ApplicationState,
    DomainChange,
    DomainFlag,
    DomainReport,
    DomainStatus,
    Role,
    User,
    Verdict,
    utcnow,
)
from tests.domain_factories import registrar, report
from tests.filing_factories import credit_code, entity_data, filed_by_isp, website_data
from tests.helpers import BEIJING, TIANJIN, make_user, post, sign_in, user_named

CERT = credit_code(901)
TODAY = date.today()


def form_data(domain: str, certificate_number: str = CERT, **overrides: str) -> dict[str, str]:
    """What a registrar types in the add / edit form (a valid report)."""
    fields = {
        "domain": domain, "domain_type": "2", "registered_on": str(TODAY - timedelta(days=30)),
        "expires_on": str(TODAY + timedelta(days=700)), "status": "normal", "registrar_name": "天津某注册商",
        "name_servers": "ns1.example.cn\nns2.example.cn", "payer_name": "",
        "registrant_name": "天津测试科技有限公司", "registrant_organisation": "天津测试科技有限公司",
        "registrant_certificate_type": "1", "registrant_certificate_number": certificate_number,
        "registrant_address": "天津市和平区某路1号", "registrant_province_code": TIANJIN, "registrant_city": "天津市",
        "registrant_email": "dns@example.cn", "registrant_phone": "022-12345678",
        "admin_name": "李四", "admin_organisation": "", "admin_certificate_type": "", "admin_certificate_number": "",
        "admin_address": "", "admin_province_code": "", "admin_city": "", "admin_email": "admin@example.cn",
        "admin_phone": "13912345678",
    }
    return {**fields, **overrides}


def table(page: str) -> str:
    """The list's table (the rows), without the filter menus above it."""
    return page.split("model-list", 1)[1]


def domains_listed(page: str) -> list[str]:
    return re.findall(r'<td class="col-domain">\s*(.*?)\s*</td>', page, re.S)


def reports_count() -> int:
    return db.session.scalar(select(func.count()).select_from(DomainReport)) or 0


def field_errors(page: str, field: str) -> list[str]:
    """The messages shown beside a field of a console form."""
    block = re.search(rf'id="{field}"[^>]*>(.*?)</div>\s*(?:<small|</div>)', page, re.S)
    assert block, field
    return re.findall(r'<div class="invalid-feedback d-block">(.*?)</div>', block.group(0), re.S)


@pytest.fixture
def registrar_client(as_user):
    return as_user("domain_reporter")


@pytest.fixture
def other_registrar(app):
    with app.app_context():
        return registrar("bj_registrar", BEIJING).id


# --- who opens what --------------------------------------------------------------------------------------

PAGES = {
    "/admin/domain_reports/": {"domain_reporter"},
    "/admin/domain_reports/new/": {"domain_reporter"},
    "/admin/domain_reports/delete-by-domain/": {"domain_reporter"},
    "/admin/domain_overview/": {"bureau", "miit"},
    "/admin/domain_flags/": {"bureau", "miit"},
}
ROLES = ("miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval", "content_admin",
         "special_query")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", sorted(PAGES))
def test_each_page_opens_for_its_roles_only(as_user, role: str, path: str) -> None:
    assert as_user(role).get(path).status_code == (200 if role in PAGES[path] else 403), (role, path)


@pytest.mark.parametrize("path", ["/admin/domain_overview/new/", "/admin/domain_overview/edit/?id=1",
                                  "/admin/domain_overview/delete-by-domain/"])
def test_the_overview_is_read_only(as_user, path: str) -> None:
    assert as_user("bureau").get(path).status_code in (403, 404)


def test_the_menu_has_a_domain_category_for_the_roles_concerned(as_user) -> None:
    for role, entries in (("domain_reporter", ["我的域名报备"]), ("bureau", ["域名报备信息", "域名核验异常"]),
                          ("miit", ["域名报备信息", "域名核验异常"]), ("isp", [])):
        menu = as_user(role).get("/admin/").get_data(as_text=True).split("console-main")[0]
        assert ("域名报备" in menu) == bool(entries), role
        for entry in entries:
            assert entry in menu, (role, entry)


def test_the_registrar_home_counts_reports_and_expiring_ones(app, users, registrar_client) -> None:
    with app.app_context():
        unit = user_named(users["domain_reporter"])
        report(unit, "soon.cn", CERT, expires_on=TODAY + timedelta(days=30))
        report(unit, "later.cn", CERT)
    page = registrar_client.get("/admin/").get_data(as_text=True)
    assert re.search(r'console-card-count">2</div>\s*<div class="console-card-title">我的域名报备', page)
    assert re.search(r'console-card-count">1</div>\s*<div class="console-card-title">3个月内到期', page)
    listed = registrar_client.get("/admin/domain_reports/?flt0_0=soon").get_data(as_text=True)
    assert "soon.cn" in listed and "later.cn" not in listed


# --- add, edit, delete --------------------------------------------------------------------------------------


def test_a_registrar_adds_a_report_typed_in_chinese(app, registrar_client) -> None:
    response = post(registrar_client, "/admin/domain_reports/new/", form_data("例子.中国"))
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.scalar(select(DomainReport))
        assert stored.domain == "xn--fsqu00a.xn--fiqs8s" and stored.registrant_certificate_number == CERT
        assert db.session.scalar(select(DomainChange.domain)) == "xn--fsqu00a.xn--fiqs8s"
    listed = table(registrar_client.get("/admin/domain_reports/").get_data(as_text=True))
    assert "例子.中国 (xn--fsqu00a.xn--fiqs8s)" in listed and "正常" in listed and "国家和地区顶级域名" in listed


@pytest.mark.parametrize(("overrides", "field", "code"), [
    ({"registered_on": str(TODAY + timedelta(days=3))}, "registered_on", "3035"),
    ({"expires_on": str(TODAY - timedelta(days=3))}, "expires_on", "3004"),
    ({"registrant_email": "not-an-address"}, "registrant_email", "3013"),
    ({"admin_phone": "12345"}, "admin_phone", "3015"),
])
def test_a_refused_report_shows_the_code_beside_its_field_and_writes_nothing(app, registrar_client, overrides,
                                                                             field, code) -> None:
    response = post(registrar_client, "/admin/domain_reports/new/", form_data("refused.cn", **overrides))
    assert response.status_code == 200
    errors = field_errors(response.get_data(as_text=True), field)
    assert any(f"结果代码 {code}" in message for message in errors), errors
    with app.app_context():
        assert reports_count() == 0


def test_every_problem_of_the_form_shows_at_once(app, registrar_client) -> None:
    response = post(registrar_client, "/admin/domain_reports/new/", form_data(
        "all.cn", registrant_name="", registered_on=str(TODAY + timedelta(days=3)), admin_email="x@"))
    page = response.get_data(as_text=True)
    assert field_errors(page, "registrant_name") and field_errors(page, "admin_email")
    assert any("3035" in message for message in field_errors(page, "registered_on"))
    with app.app_context():
        assert reports_count() == 0


def test_a_domain_reported_by_another_registrar_is_refused_naming_the_holder(app, registrar_client,
                                                                             other_registrar) -> None:
    with app.app_context():
        report(db.session.get(User, other_registrar), "taken.cn", CERT)
    page = post(registrar_client, "/admin/domain_reports/new/", form_data("TAKEN.cn.")).get_data(as_text=True)
    assert any("bj_registrar 域名注册服务机构" in message for message in field_errors(page, "domain"))
    with app.app_context():
        assert reports_count() == 1


def test_a_registrar_edits_its_report(app, users, registrar_client) -> None:
    with app.app_context():
        report_id = report(user_named(users["domain_reporter"]), "edit.cn", CERT).id
    form = registrar_client.get(f"/admin/domain_reports/edit/?id={report_id}").get_data(as_text=True)
    assert 'value="edit.cn"' in form
    response = post(registrar_client, f"/admin/domain_reports/edit/?id={report_id}",
                    form_data("edit.cn", credit_code(902), registrant_name="天津另一家公司"))
    assert response.status_code == 302
    with app.app_context():
        changed = db.session.get(DomainReport, report_id)
        assert changed.registrant_certificate_number == credit_code(902)
        assert changed.registrant_name == "天津另一家公司"
        assert any("registrant" in what for what in db.session.scalars(select(DomainChange.what)))


def test_a_refused_edit_changes_nothing(app, users, registrar_client) -> None:
    with app.app_context():
        report_id = report(user_named(users["domain_reporter"]), "keep.cn", CERT).id
    response = post(registrar_client, f"/admin/domain_reports/edit/?id={report_id}",
                    form_data("keep.cn", credit_code(903), expires_on=str(TODAY - timedelta(days=2))))
    assert response.status_code == 200
    assert any("3004" in message for message in field_errors(response.get_data(as_text=True), "expires_on"))
    with app.app_context():
        assert db.session.get(DomainReport, report_id).registrant_certificate_number == CERT


def test_a_registrar_deletes_a_report_and_it_stays_as_deleted(app, users, registrar_client) -> None:
    with app.app_context():
        report_id = report(user_named(users["domain_reporter"]), "gone.cn", CERT).id
    response = post(registrar_client, "/admin/domain_reports/delete/", {"id": report_id, "url": "/admin/"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(DomainReport, report_id).status == DomainStatus.DELETED
    listed = table(registrar_client.get("/admin/domain_reports/").get_data(as_text=True))
    assert "已删除" in listed and f"/admin/domain_reports/edit/?id={report_id}" not in listed
    assert registrar_client.get(f"/admin/domain_reports/edit/?id={report_id}").status_code == 404


def test_the_batch_delete_goes_through_the_workflow_and_the_scope(app, users, registrar_client,
                                                                   other_registrar) -> None:
    with app.app_context():
        mine = report(user_named(users["domain_reporter"]), "batch.cn", CERT).id
        theirs = report(db.session.get(User, other_registrar), "notmine.cn", CERT).id
    post(registrar_client, "/admin/domain_reports/action/", {"action": "delete", "rowid": [mine, theirs]})
    with app.app_context():
        assert db.session.get(DomainReport, mine).status == DomainStatus.DELETED  # kept, as 已删除
        assert db.session.get(DomainReport, theirs).status == DomainStatus.NORMAL


def test_delete_by_domain_typed_in_chinese(app, users, registrar_client) -> None:
    with app.app_context():
        report_id = report(user_named(users["domain_reporter"]), "xn--fsqu00a.xn--fiqs8s", CERT).id
    response = post(registrar_client, "/admin/domain_reports/delete-by-domain/", {"domain": "例子.中国"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(DomainReport, report_id).status == DomainStatus.DELETED


def test_delete_by_domain_refused_beside_the_field(app, registrar_client, other_registrar) -> None:
    with app.app_context():
        theirs = report(db.session.get(User, other_registrar), "theirs.cn", CERT).id
    for domain, expected in (("theirs.cn", "结果代码 3037"), ("nobody.cn", "记录不存在"), ("not a domain", "域名")):
        response = post(registrar_client, "/admin/domain_reports/delete-by-domain/", {"domain": domain})
        assert response.status_code == 200
        assert any(expected in message for message in field_errors(response.get_data(as_text=True), "domain"))
    with app.app_context():
        assert db.session.get(DomainReport, theirs).status == DomainStatus.NORMAL


# --- scope ---------------------------------------------------------------------------------------------------


def test_another_registrars_record_is_404_by_every_address(app, registrar_client, other_registrar) -> None:
    with app.app_context():
        theirs = report(db.session.get(User, other_registrar), "private.cn", CERT).id
    for path in (f"/admin/domain_reports/edit/?id={theirs}", f"/admin/domain_reports/details/?id={theirs}"):
        assert registrar_client.get(path).status_code == 404, path
    assert post(registrar_client, "/admin/domain_reports/delete/", {"id": theirs}).status_code == 404
    assert post(registrar_client, f"/admin/domain_reports/edit/?id={theirs}",
                form_data("private.cn", credit_code(904))).status_code == 404
    assert "private.cn" not in registrar_client.get("/admin/domain_reports/").get_data(as_text=True)
    with app.app_context():
        unchanged = db.session.get(DomainReport, theirs)
        assert unchanged.status == DomainStatus.NORMAL and unchanged.registrant_certificate_number == CERT


@pytest.fixture
def spread(app, users, people):
    """A 天津 registrar's report, a national registrar's report of a domain filed in 天津, and a 北京 registrar's
    report of a domain filed nowhere."""
    with app.app_context():
        tianjin = user_named(users["domain_reporter"])
        national = registrar("cn_registrar", None)
        beijing = registrar("bj_registrar", BEIJING)
        filed_by_isp(user_named(people["isp"]), 911)  # files www.site911.cn and site911.cn in 天津
        db.session.commit()
        return {"tianjin": report(tianjin, "local.cn", CERT).id, "national": report(national, "site911.cn", CERT).id,
                "beijing": report(beijing, "beijing-only.cn", CERT).id}


def test_a_bureau_sees_its_province_and_miit_sees_all(as_user, spread) -> None:
    tianjin = as_user("bureau").get("/admin/domain_overview/").get_data(as_text=True)
    assert "local.cn" in tianjin and "site911.cn" in tianjin and "beijing-only.cn" not in tianjin
    beijing = as_user("bureau_bj").get("/admin/domain_overview/").get_data(as_text=True)
    assert "beijing-only.cn" in beijing and "local.cn" not in beijing and "site911.cn" not in beijing
    nation = as_user("miit").get("/admin/domain_overview/").get_data(as_text=True)
    assert all(name in nation for name in ("local.cn", "site911.cn", "beijing-only.cn"))
    assert as_user("bureau").get(f"/admin/domain_overview/details/?id={spread['beijing']}").status_code == 404
    assert as_user("bureau").get(f"/admin/domain_overview/details/?id={spread['national']}").status_code == 200


def test_the_overview_filters_by_registrar(app, as_user, spread) -> None:
    miit = as_user("miit")
    assert "cn_registrar 域名注册服务机构" in table(miit.get("/admin/domain_overview/").get_data(as_text=True))
    with app.app_context():
        beijing_id = user_named("bj_registrar").id
    filtered = table(miit.get(f"/admin/domain_overview/?flt0_3={beijing_id}").get_data(as_text=True))
    assert "beijing-only.cn" in filtered and "local.cn" not in filtered


def test_a_forged_registrar_filter_is_refused_not_a_500(as_user) -> None:
    """北京 has no registrar here: the filter has no options to check the value against."""
    for forged in ("abc", "9" * 40, "-1"):
        page = as_user("bureau_bj").get(f"/admin/domain_overview/?flt0_3={forged}")
        assert page.status_code == 200 and "alert-danger" in page.get_data(as_text=True)


# --- search --------------------------------------------------------------------------------------------------


@pytest.fixture
def searchable(app, users):
    with app.app_context():
        unit = user_named(users["domain_reporter"])
        report(unit, "xn--fsqu00a.xn--fiqs8s", credit_code(905), registrant_name="例子科技有限公司")
        report(unit, "zhouba.com.cn", credit_code(906), registrant_name="周八科技有限公司")
        report(unit, "zhouba.cn", credit_code(906), registrant_name="周八科技有限公司")
        report(unit, "other.cn", credit_code(907), registrant_name="另一家公司")


@pytest.mark.parametrize(("term", "found"), [
    ("例子.中国", ["例子.中国 (xn--fsqu00a.xn--fiqs8s)"]),
    ("XN--FSQU00A.xn--fiqs8s.", ["例子.中国 (xn--fsqu00a.xn--fiqs8s)"]),
    ("zhouba.c", ["zhouba.cn", "zhouba.com.cn"]),
    ("zhouba.cn", ["zhouba.cn"]),
    ("周八", ["zhouba.cn", "zhouba.com.cn"]),
    (credit_code(907).lower(), ["other.cn"]),
    ("ouba", []),  # a fragment from the middle finds nothing (never LIKE '%x%')
])
def test_the_search_box(registrar_client, searchable, term: str, found: list[str]) -> None:
    page = registrar_client.get("/admin/domain_reports/", query_string={"search": term}).get_data(as_text=True)
    assert domains_listed(page) == found, term


def test_the_status_and_type_filters(app, users, registrar_client) -> None:
    with app.app_context():
        unit = user_named(users["domain_reporter"])
        report(unit, "paused.cn", CERT, status=DomainStatus.SUSPENDED)
        report(unit, "running.cn", CERT, domain_type="1")
    paused = table(registrar_client.get("/admin/domain_reports/?flt0_1=suspended").get_data(as_text=True))
    assert "paused.cn" in paused and "running.cn" not in paused and "暂停解析" in paused
    typed = registrar_client.get("/admin/domain_reports/?flt0_2=1").get_data(as_text=True)
    assert "running.cn" in typed and "paused.cn" not in typed


# --- the verdicts where an application is checked -------------------------------------------------------------


@pytest.fixture
def pending(app, users, people):
    """An application in bureau review filing site920.net and site920.cn (two registered domains): the first
    reported with the entity's certificate number, the second with another registrant's."""
    with app.app_context():
        isp = user_named(people["isp"])
        application = workflow.save_filing_draft(isp, entity_data(920), [website_data(
            "site920", [isp.id], domains=["site920.net", "site920.cn"], home_url="http://site920.net/")])
        workflow.submit_application(isp, application)
        db.session.commit()
        unit = user_named(users["domain_reporter"])
        report(unit, "site920.net", credit_code(920))
        report(unit, "site920.cn", credit_code(921), registrant_name="别人的公司")
        return application.id


def test_the_application_page_shows_each_verdict_with_its_badge(as_user, pending) -> None:
    page = as_user("bureau").get(f"/admin/applications/details/?id={pending}").get_data(as_text=True)
    assert "域名注册人核验" in page
    assert '<span class="badge verdict verdict-consistent">一致</span>' in page
    assert '<span class="badge verdict verdict-inconsistent">不一致</span>' in page
    assert "别人的公司" in page and credit_code(921) in page  # the bureau sees the number whole
    assert "tj_domain" in page  # the registrar (its account, no organisation given)


def test_the_owner_sees_the_registrant_number_masked(app, users, pending) -> None:
    with app.app_context():
        owner = user_named(users["icp"])
        entity = db.session.get(Application, pending).entity
        entity.owner_id = owner.id
        db.session.commit()
    client = app.test_client()
    sign_in(client, users["icp"])
    page = client.get(f"/admin/applications/details/?id={pending}").get_data(as_text=True)
    number = credit_code(921)
    assert number not in page and f"{number[:4]}{'*' * 12}{number[-2:]}" in page


def test_under_block_the_bureau_cannot_approve_and_is_told_why(app, as_user, pending) -> None:
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    bureau = as_user("bureau")
    page = bureau.get(f"/admin/applications/approve/?id={pending}").get_data(as_text=True)
    assert "site920.cn" in page and "不一致" in page and "标红的域名" in page
    assert re.search(r'<button class="btn btn-danger" type="submit"\s+disabled', page)
    post(bureau, f"/admin/applications/approve/?id={pending}", {"number": ""})
    with app.app_context():
        assert db.session.get(Application, pending).state == ApplicationState.BUREAU_REVIEW


def test_under_block_the_batch_page_names_the_blocked_and_offers_the_others(app, people, as_user, pending) -> None:
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    with app.app_context():
        other = filed_by_isp(user_named(people["isp"]), 922).id
        unit = user_named("tj_domain")
        report(unit, "site922.cn", credit_code(922))
    page = as_user("bureau").get(f"/admin/bureau_queue/batch-approve/?ids={pending},{other}").get_data(as_text=True)
    assert "域名 site920.cn：" in page and "其中 1 个申请目前不能办理" in page
    assert f"ids={other}" in page and "只保留可以办理的 1 个" in page
    assert page.count("verdict-consistent") == 2 and page.count("verdict-inconsistent") == 1


def test_under_warn_the_page_says_that_approving_records_the_verdicts(app, as_user, pending) -> None:
    app.config["DOMAIN_REGISTRANT_CHECK"] = "warn"
    bureau = as_user("bureau")
    page = bureau.get(f"/admin/applications/approve/?id={pending}").get_data(as_text=True)
    assert "核验结果记入审计日志" in page and "不一致" in page
    assert post(bureau, f"/admin/applications/approve/?id={pending}", {"number": ""}).status_code == 302
    with app.app_context():
        assert db.session.get(Application, pending).state == ApplicationState.APPROVED


def test_the_isp_batch_verification_names_the_unreported_domains(app, users, people, as_user) -> None:
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    with app.app_context():
        owner, isp = user_named(users["icp"]), user_named(people["isp"])
        application = workflow.save_filing_draft(owner, entity_data(930), [website_data("site930", [isp.id])])
        workflow.submit_application(owner, application)
        db.session.commit()
        application_id = application.id
    page = as_user("isp").get(f"/admin/isp_queue/batch-verify/?ids={application_id}").get_data(as_text=True)
    assert "未报备" in page and "域名 site930.cn" in page
    assert re.search(r'<button class="btn btn-danger" type="submit"\s+disabled', page)


def test_the_wizard_preview_checks_the_draft_domains(as_user) -> None:
    from tests.test_filing_console import ENTITY

    owner = as_user("icp")
    post(owner, "/admin/filing/", ENTITY)
    post(owner, "/admin/filing/websites/", {"name": "预览网站", "domains": "preview940.cn",
                                           "home_url": "http://preview940.cn/", "service_content": "2",
                                           "languages": "1"})
    page = owner.get("/admin/filing/preview/").get_data(as_text=True)
    assert "域名注册人核验" in page and '<span class="badge verdict verdict-unreported">未报备</span>' in page


def test_a_change_adding_domains_tells_the_isp_their_verdicts(app, as_user, people) -> None:
    from tests.test_lifecycle import approved_filing

    with app.app_context():  # approved under the suite's "warn"
        entity = approved_filing(people, n=950)
        entity_id, website_id = entity.id, entity.websites[0].id
        db.session.commit()
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    isp = as_user("isp")
    response = post(isp, f"/admin/filings/change/?id={entity_id}",
                    {"type": "add_domains", "website_id": website_id, "domains": "added950.cn"},
                    follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "域名 added950.cn：未报备" in page and "管局无法审核通过该申请" in page


# --- 域名核验异常 -----------------------------------------------------------------------------------------------


@pytest.fixture
def flags(app, people):
    """Flags on a 天津 and a 北京 website (the reconciliation worker writes them; here inserted by hand)."""
    with app.app_context():
        tianjin = filed_by_isp(user_named(people["isp"]), 960).entity.websites[0]
        beijing = filed_by_isp(user_named(people["isp_bj"]), 961, BEIJING).entity.websites[0]
        rows = [DomainFlag(website_id=tianjin.id, province_code=TIANJIN, domain="site960.cn",
                           verdict=Verdict.INCONSISTENT, detail="注册人变更"),
                DomainFlag(website_id=tianjin.id, province_code=TIANJIN, domain="www.site960.cn",
                           verdict=Verdict.DELETED, detail="报备删除", resolved_at=utcnow()),
                DomainFlag(website_id=beijing.id, province_code=BEIJING, domain="site961.cn",
                           verdict=Verdict.EXPIRED, detail="已到期")]
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


def test_the_bureau_sees_its_provinces_flags_open_first(as_user, flags) -> None:
    page = as_user("bureau").get("/admin/domain_flags/").get_data(as_text=True)
    rows = table(page)
    assert "site961.cn" not in rows
    assert domains_listed(rows) == ["site960.cn", "www.site960.cn"]  # the open one first
    assert "注册人变更" in rows and '<span class="badge verdict verdict-inconsistent">不一致</span>' in rows
    assert "site960网站" in rows
    nation = table(as_user("miit").get("/admin/domain_flags/").get_data(as_text=True))
    assert "site961.cn" in nation and "已过期" in nation


def test_the_flags_filter_by_verdict_and_state(as_user, flags) -> None:
    miit = as_user("miit")
    expired = table(miit.get("/admin/domain_flags/?flt0_0=expired").get_data(as_text=True))
    assert "site961.cn" in expired and "site960.cn" not in expired
    still_open = table(miit.get("/admin/domain_flags/?flt0_1=open").get_data(as_text=True))
    assert "www.site960.cn" not in still_open and "site961.cn" in still_open
    bureau = as_user("bureau")
    home = bureau.get("/admin/").get_data(as_text=True)
    assert re.search(r'console-card-count">1</div>\s*<div class="console-card-title">未处理的域名核验异常', home)
    card = re.search(r'href="(/admin/domain_flags/\?[^"]+)"', home).group(1).replace("&amp;", "&")
    opened = bureau.get(card).get_data(as_text=True)
    assert "alert-danger" not in opened and domains_listed(table(opened)) == ["site960.cn"]


# --- registrars are created by MIIT (national) or by a bureau (its province) ------------------------------------


def _new_registrar(username: str, province: str) -> dict[str, str]:
    return {"username": username, "password": "Init-pass-9", "role": "domain_reporter", "province_code": province,
            "organisation": f"{username} 注册商", "contact_name": "张三", "mobile": "13912345678",
            "email": f"{username}@example.cn"}


def test_miit_creates_a_national_registrar(app, as_user) -> None:
    assert post(as_user("miit"), "/admin/filing_users/new/", _new_registrar("cn_reg", "")).status_code == 302
    with app.app_context():
        created = user_named("cn_reg")
        assert created.role == Role.DOMAIN_REPORTER and created.province_code is None


def test_a_bureau_creates_registrars_of_its_province_only(app, as_user) -> None:
    bureau = as_user("bureau")
    assert post(bureau, "/admin/filing_users/new/", _new_registrar("tj_reg", TIANJIN)).status_code == 302
    for username, province in (("no_province_reg", ""), ("bj_reg", BEIJING)):
        assert post(bureau, "/admin/filing_users/new/", _new_registrar(username, province)).status_code == 200
    with app.app_context():
        assert user_named("tj_reg").province_code == TIANJIN
        assert db.session.scalar(select(func.count()).select_from(User).where(
            User.username.in_(("no_province_reg", "bj_reg")))) == 0


def test_a_national_registrar_reports(app) -> None:
    with app.app_context():
        national = make_user("cn_reg2", Role.DOMAIN_REPORTER)
        assert report(national, "national.cn", CERT).registrar_id == national.id


def test_a_refused_verification_names_every_failing_domain(app, users, people, as_user) -> None:
    """Two registered domains unreported: the ISP's 核实 on the application's page is refused naming both."""
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    with app.app_context():
        owner, isp = user_named(users["icp"]), user_named(people["isp"])
        application = workflow.save_filing_draft(owner, entity_data(931), [website_data(
            "site931", [isp.id], domains=["site931.cn", "site931.net"], home_url="http://site931.cn/")])
        workflow.submit_application(owner, application)
        db.session.commit()
        application_id = application.id
    client = as_user("isp")
    response = post(client, "/admin/applications/row-action/verify/", {"id": application_id},
                    follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "域名 site931.cn：未报备" in page and "域名 site931.net：未报备" in page
    with app.app_context():
        assert db.session.get(Application, application_id).state == ApplicationState.ISP_REVIEW
