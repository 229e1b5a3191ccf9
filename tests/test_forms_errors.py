"""Does every form show all its errors at once, each beside its field, keeping what was typed (never a
password or the captcha)?"""

from __future__ import annotations

import re

import pytest

import workflow
from extensions import db
from models import Role, User
from tests.accounts_helpers import REGISTRATION
from tests.filing_factories import credit_code, filed_by_isp
from tests.helpers import CAPTCHA, TIANJIN, post, user_named, with_captcha

ENTITY = {"province_code": TIANJIN, "unit_name": "天津表单科技有限公司", "unit_nature": "4", "certificate_type": "1",
          "certificate_number": credit_code(950), "address": "天津市河西区某路8号", "responsible_name": "周八",
          "responsible_id_number": "11010519491231002X", "responsible_mobile": "13611112222",
          "responsible_email": "owner@example.cn"}


def error_beside(body: str, field: str) -> str | None:
    """The first error shown after the field's input and before the next field's group, or None."""
    match = re.search(rf'name="{field}"(?:(?!class="form-group).)*?class="invalid-feedback[^"]*">(?:\s|<[^>]+>)*'
                      r'([^<\s][^<]*)<', body, re.S)
    return match.group(1).strip() if match else None


def typed_value(body: str, field: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{field}"[^>]*>', body)
    assert match, field
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else None


# --- the wizard's step 1 --------------------------------------------------------------------------

def test_wizard_entity_with_four_bad_fields_shows_four_errors(app, as_user) -> None:
    """Can an owner see every mistake of step 1 at once?"""
    bad = {**ENTITY, "certificate_number": "91350100M000100Y44", "responsible_id_number": "110105194912310021",
           "responsible_mobile": "12345", "responsible_email": "not-an-e-mail"}
    body = post(as_user("icp"), "/admin/filing/", bad).get_data(as_text=True)
    for field in ("certificate_number", "responsible_id_number", "responsible_mobile", "responsible_email"):
        assert error_beside(body, field), field
        assert typed_value(body, field) == bad[field]  # what was typed is kept
    assert error_beside(body, "unit_name") is None
    assert "统一社会信用代码的校验码不正确" in body and "手机号码" in body


def test_wizard_entity_form_and_workflow_errors_together(app, as_user) -> None:
    """An empty required field (the form's own check) and a bad ID card (the workflow's) show together."""
    body = post(as_user("icp"), "/admin/filing/", {**ENTITY, "unit_name": "", "responsible_id_number": "123"}
                ).get_data(as_text=True)
    assert error_beside(body, "unit_name") and error_beside(body, "responsible_id_number")


def test_wizard_entity_without_errors_goes_on(app, as_user) -> None:
    assert post(as_user("icp"), "/admin/filing/", ENTITY).headers["Location"] == "/admin/filing/websites/"


def test_wizard_website_errors_together(app, as_user) -> None:
    owner = as_user("icp")
    post(owner, "/admin/filing/", ENTITY)
    body = post(owner, "/admin/filing/websites/", {
        "name": "", "domains": "bad..domain\nwww.good.cn", "home_url": "ftp://elsewhere.cn/", "service_content": "2",
        "languages": "1", "preapproval_category": "1", "preapproval_document": ""}).get_data(as_text=True)
    for field in ("name", "domains", "home_url", "preapproval_document"):
        assert error_beside(body, field), field
    assert "bad..domain" in body and "www.good.cn" in body  # the typed domains stay in the box


def test_wizard_access_errors_beside_fields(app, as_user, users) -> None:
    owner = as_user("icp")
    post(owner, "/admin/filing/", ENTITY)
    post(owner, "/admin/filing/websites/", {"name": "甲网", "domains": "www.jia950.cn", "home_url": "http://www.jia950.cn/",
                                             "service_content": "2", "languages": "1", "preapproval_category": ""})
    with app.app_context():
        isp_id = user_named(users["isp"]).id
    body = post(owner, "/admin/filing/access/", {"q": "网络", "website": 0, "isp_id": isp_id, "method": "2",
                                                 "server_province_code": TIANJIN, "ip_start": "203.0.113.9",
                                                 "ip_end": "203.0.113.1"}).get_data(as_text=True)
    assert error_beside(body, "ip_start")
    assert typed_value(body, "ip_start") == "203.0.113.9"


# --- staff account creation ---------------------------------------------------------------------

def test_staff_user_creation_shows_every_error(app, as_user) -> None:
    """Can MIIT see all the mistakes of a new account at once, and keep what it typed but the password?"""
    form = {"username": "x", "password": "123", "role": "bureau", "province_code": "", "organisation": "某局",
            "contact_name": "", "mobile": "99", "email": "nobody"}
    body = post(as_user("miit"), "/admin/management_users/new/", form).get_data(as_text=True)
    for field in ("username", "password", "province_code", "contact_name", "mobile", "email"):
        assert error_beside(body, field), field
    assert typed_value(body, "username") == "x" and typed_value(body, "mobile") == "99"
    assert typed_value(body, "password") in (None, "")  # never sent back
    with app.app_context():
        assert db.session.query(User).filter_by(username="x").first() is None


def test_staff_user_without_role_is_refused_beside_the_role(app, as_user) -> None:
    form = {"username": "tj_new_isp", "password": "Init-pass-9", "role": "", "province_code": TIANJIN,
            "organisation": "某公司", "contact_name": "张三", "mobile": "13812345678", "email": "a@example.cn"}
    body = post(as_user("bureau"), "/admin/management_users/new/", form).get_data(as_text=True)
    assert error_beside(body, "role")


def test_staff_user_creation_still_works(app, as_user) -> None:
    form = {"username": "tj_isp_new", "password": "Init-pass-9", "role": "isp", "province_code": TIANJIN,
            "organisation": "某公司", "contact_name": "张三", "mobile": "13812345678", "email": "a@example.cn"}
    assert post(as_user("bureau"), "/admin/filing_users/new/", form).status_code == 302
    with app.app_context():
        assert user_named("tj_isp_new").role == Role.ISP


def test_staff_user_edit_shows_every_error(app, as_user, users) -> None:
    with app.app_context():
        isp_id = user_named(users["isp"]).id
    body = post(as_user("bureau"), f"/admin/filing_users/edit/?id={isp_id}",
                {"province_code": TIANJIN, "organisation": "某", "contact_name": "", "mobile": "1",
                 "email": "x"}).get_data(as_text=True)
    for field in ("contact_name", "mobile", "email"):
        assert error_beside(body, field), field


# --- registration and sign-in ------------------------------------------------------------------

def _registration_page(client):
    post(client, "/register")
    post(client, "/register/flow")


def test_registration_shows_every_error_and_clears_password_and_captcha(app, client) -> None:
    _registration_page(client)
    form = {**REGISTRATION, "username": "ab", "password": "123456", "confirm": "123456", "mobile": "1",
            "email": "nope"}
    body = post(client, "/register/form", with_captcha(client, form)).get_data(as_text=True)
    for field in ("username", "password", "mobile", "email"):
        assert error_beside(body, field), field
    assert typed_value(body, "contact_name") == REGISTRATION["contact_name"]
    assert typed_value(body, "mobile") == "1"
    assert typed_value(body, "password") in (None, "") and typed_value(body, "captcha") == ""


def test_registration_with_a_wrong_captcha_still_shows_the_field_errors(app, client) -> None:
    """A wrong captcha: its error and the fields' errors at once (but not whether the name is taken)."""
    _registration_page(client)
    client.get("/captcha.png")
    body = post(client, "/register/form", {**REGISTRATION, "mobile": "1", "captcha": "WRONG"}).get_data(as_text=True)
    assert error_beside(body, "captcha") and error_beside(body, "mobile")
    assert typed_value(body, "captcha") == ""
    with app.app_context():
        assert db.session.query(User).filter_by(username=REGISTRATION["username"]).first() is None


def test_registration_of_a_taken_name_is_refused_beside_it(app, client, users) -> None:
    _registration_page(client)
    with app.app_context():
        workflow.register_icp(workflow.UserData(username="taken1", role=Role.ICP, password="Site-owner-7",
                                                contact_name="甲", mobile="13611112222", email="t@example.cn"))
        db.session.commit()
    body = post(client, "/register/form", with_captcha(client, {**REGISTRATION, "username": "taken1"})
                ).get_data(as_text=True)
    assert "已被使用" in (error_beside(body, "username") or "")


def test_valid_registration_goes_on(app, client) -> None:
    _registration_page(client)
    response = post(client, "/register/form", with_captcha(client, REGISTRATION))
    assert response.status_code == 302 and response.headers["Location"].endswith("/register/done")


def test_failed_sign_in_clears_the_captcha_and_password_but_keeps_the_name(app, client, users) -> None:
    body = post(client, "/login", with_captcha(client, {"username": users["isp"], "password": "wrong-one"})
                ).get_data(as_text=True)
    assert "用户名或密码错误" in body
    assert typed_value(body, "captcha") == "" and CAPTCHA not in re.findall(r'value="([^"]*)"', body)
    assert typed_value(body, "username") == users["isp"]
    assert typed_value(body, "password") in (None, "")


# --- personal settings and the change of a filing ------------------------------------------------

def test_change_password_shows_every_error(app, as_user) -> None:
    body = post(as_user("isp"), "/admin/password/", {"old_password": "wrong", "new_password": "123456",
                                                     "confirm": "123456"}).get_data(as_text=True)
    assert error_beside(body, "old_password") and error_beside(body, "new_password")


def test_personal_information_shows_every_error_at_once(app, as_user) -> None:
    """An empty required field and malformed contact details: all beside their fields in one answer."""
    body = post(as_user("isp"), "/admin/account/", {"contact_name": "", "organisation": "天津某网络公司",
                                                    "mobile": "123", "email": "x"}).get_data(as_text=True)
    for field in ("contact_name", "mobile", "email"):
        assert error_beside(body, field), field
    assert typed_value(body, "mobile") == "123"


@pytest.fixture
def filing(app, users):
    with app.app_context():
        application = filed_by_isp(user_named(users["isp"]), 951)
        workflow.approve(user_named(users["bureau"]), application)
        db.session.commit()
        entity = application.entity
        return {"id": entity.id, "website": entity.websites[0].id}


def test_change_of_responsible_person_shows_every_error_and_keeps_the_typing(app, as_user, filing) -> None:
    typed = {"type": "responsible", "responsible_name": "", "responsible_id_number": "123",
             "responsible_mobile": "9", "responsible_email": "x"}
    body = post(as_user("isp"), f"/admin/filings/change/?id={filing['id']}", typed).get_data(as_text=True)
    for field in ("responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email"):
        assert error_beside(body, field), field
    assert typed_value(body, "responsible_id_number") == "123"


def test_change_adding_domains_one_per_line_or_pasted(app, as_user, filing) -> None:
    """The separator rule: one per line; commas, 、 and semicolons pasted are accepted too."""
    typed = "www.new951.cn\nnew951.cn、a951.cn；b951.cn"
    response = post(as_user("isp"), f"/admin/filings/change/?id={filing['id']}",
                    {"type": "add_domains", "website_id": filing["website"], "domains": typed})
    assert response.status_code == 302
    with app.app_context():
        application = db.session.query(workflow.lifecycle.Application).filter_by(entity_id=filing["id"]).order_by(
            workflow.lifecycle.Application.id.desc()).first()
        assert workflow.proposal_of(application)["domains"] == ["www.new951.cn", "new951.cn", "a951.cn", "b951.cn"]
