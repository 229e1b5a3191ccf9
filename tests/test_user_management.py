"""FAQ 29–30: who creates, edits, disables whom — both sides of every rule."""

from __future__ import annotations

import pytest

import workflow
from extensions import db
from models import Role, User, UserStatus
from tests.helpers import BEIJING, PASSWORD, TIANJIN, post, sign_in, user_named


def _new_user_form(username: str, role: str, province: str = "", **extra: str) -> dict[str, str]:
    return {"username": username, "password": "Init-pass-9", "role": role, "province_code": province,
            "organisation": "测试单位", "contact_name": "张三", "mobile": "13812345678",
            "email": f"{username}@example.cn", **extra}


def _exists(app, username: str) -> bool:
    with app.app_context():
        return db.session.query(User.id).filter_by(username=username).first() is not None


# --- creation: allowed side -------------------------------------------------------------------

def test_miit_creates_bureau_with_province(app, as_user) -> None:
    response = post(as_user("miit"), "/admin/management_users/new/",
                    _new_user_form("sh_bureau", "bureau", "310000"))
    assert response.status_code == 302
    with app.app_context():
        created = user_named("sh_bureau")
        assert (created.role, created.province_code) == (Role.BUREAU, "310000")
        assert created.created_by.username == "miitadmin"


def test_miit_creates_miit(app, as_user) -> None:
    post(as_user("miit"), "/admin/management_users/new/", _new_user_form("miit_2", "miit"))
    assert _exists(app, "miit_2")


def test_bureau_creates_isp_with_import_right_in_own_province(app, as_user) -> None:
    response = post(as_user("bureau"), "/admin/filing_users/new/",
                    _new_user_form("tj_isp2", "isp", TIANJIN, can_import="y"))
    assert response.status_code == 302
    with app.app_context():
        assert user_named("tj_isp2").can_import is True


@pytest.mark.parametrize("role", ["preapproval", "content_admin", "special_query"])
def test_bureau_creates_lower_management_roles(app, as_user, role: str) -> None:
    post(as_user("bureau"), "/admin/management_users/new/",
         _new_user_form(f"tj_{role}", role, TIANJIN, preapproval_category="3"
                        if role == "preapproval" else ""))
    assert _exists(app, f"tj_{role}")


# --- creation: refused side -------------------------------------------------------------------

@pytest.mark.parametrize("role", ["bureau", "miit"])
def test_bureau_cannot_create_its_level_or_above(app, as_user, role: str) -> None:
    response = post(as_user("bureau"), "/admin/management_users/new/",
                    _new_user_form("climber", role, TIANJIN))
    assert response.status_code == 200  # the form again, with the error
    assert not _exists(app, "climber")


def test_bureau_cannot_create_in_another_province(app, as_user) -> None:
    response = post(as_user("bureau"), "/admin/filing_users/new/",
                    _new_user_form("bj_isp9", "isp", BEIJING))
    assert response.status_code == 200
    assert not _exists(app, "bj_isp9")


@pytest.mark.parametrize("role", ["isp", "icp", "preapproval", "special_query", "content_admin"])
def test_other_roles_cannot_create_users(app, as_user, role: str) -> None:
    response = post(as_user(role), "/admin/filing_users/new/", _new_user_form("intruder", "isp", TIANJIN))
    assert response.status_code == 403
    assert not _exists(app, "intruder")


def test_bureau_needs_a_province(app, as_user) -> None:
    body = post(as_user("miit"), "/admin/management_users/new/",
                _new_user_form("nowhere", "bureau")).get_data(as_text=True)
    assert "该类用户必须选择所属省份" in body
    assert not _exists(app, "nowhere")


def test_preapproval_needs_a_category(app, as_user) -> None:
    body = post(as_user("miit"), "/admin/management_users/new/",
                _new_user_form("preapp2", "preapproval")).get_data(as_text=True)
    assert "必须选择前置审批类型" in body
    assert not _exists(app, "preapp2")


def test_username_taken_is_refused_in_chinese(app, as_user, users) -> None:
    body = post(as_user("miit"), "/admin/filing_users/new/",
                _new_user_form(users["isp"], "isp", TIANJIN)).get_data(as_text=True)
    assert "该用户名已被使用" in body


@pytest.mark.parametrize(("password", "message"), [
    ("abc", "密码至少6位"), ("12345678", "密码不能全是数字"), ("newisp", "密码不能与用户名相同")])
def test_password_rules_refuse(app, as_user, password: str, message: str) -> None:
    form = _new_user_form("newisp", "isp", TIANJIN, password=password)
    body = post(as_user("bureau"), "/admin/filing_users/new/", form).get_data(as_text=True)
    assert message in body
    assert not _exists(app, "newisp")


def test_import_right_field_offered_to_bureau_only(as_user) -> None:
    assert 'name="can_import"' in as_user("bureau").get("/admin/filing_users/new/").get_data(as_text=True)
    assert 'name="can_import"' not in as_user("miit").get("/admin/filing_users/new/").get_data(as_text=True)


def test_miit_cannot_grant_import_right_at_creation(app, users) -> None:
    with app.app_context():
        miit = user_named(users["miit"])
        with pytest.raises(workflow.WorkflowError, match="只有通信管理局可以授予导入权限"):
            workflow.create_user(miit, workflow.UserData(
                username="isp_by_miit", role=Role.ISP, password=PASSWORD, province_code=TIANJIN,
                contact_name="a", mobile="13812345678", email="a@example.cn", can_import=True))


def test_icp_accounts_are_not_created_by_staff(app) -> None:
    with app.app_context():
        miit = User(username="x", role=Role.MIIT)
        with pytest.raises(workflow.WorkflowError):
            workflow.create_user(miit, workflow.UserData(
                username="icp9", role=Role.ICP, password=PASSWORD, contact_name="a",
                mobile="13812345678", email="a@example.cn"))


# --- object scope: 天津 bureau and a 北京 user --------------------------------------------------

def _id(app, username: str) -> int:
    with app.app_context():
        return user_named(username).id


def test_bureau_lists_only_own_province(as_user, users) -> None:
    body = as_user("bureau").get("/admin/filing_users/").get_data(as_text=True)
    assert users["isp"] in body
    assert users["isp_bj"] not in body
    assert users["icp"] not in body  # ICP accounts are MIIT's


@pytest.mark.parametrize("path", ["/admin/filing_users/details/?id={id}",
                                  "/admin/filing_users/edit/?id={id}"])
def test_bureau_cannot_open_other_province_user(app, as_user, users, path: str) -> None:
    response = as_user("bureau").get(path.format(id=_id(app, users["isp_bj"])))
    assert response.status_code == 404


def test_bureau_cannot_edit_other_province_user(app, as_user, users) -> None:
    target = _id(app, users["isp_bj"])
    response = post(as_user("bureau"), f"/admin/filing_users/edit/?id={target}",
                    {"province_code": TIANJIN, "contact_name": "篡改", "mobile": "13812345678",
                     "email": "x@example.cn"})
    assert response.status_code == 404
    with app.app_context():
        assert user_named(users["isp_bj"]).contact_name == "测试联系人"


@pytest.mark.parametrize("action", ["disable", "reset_password", "grant_import"])
def test_bureau_row_actions_refused_on_other_province(app, as_user, users, action: str) -> None:
    target = _id(app, users["isp_bj"])
    response = post(as_user("bureau"), f"/admin/filing_users/row-action/{action}/", {"id": target})
    assert response.status_code == 404
    with app.app_context():
        assert user_named(users["isp_bj"]).status == UserStatus.ACTIVE


def test_bureau_export_holds_only_own_province(as_user, users) -> None:
    import io

    from openpyxl import load_workbook

    response = as_user("bureau").get("/admin/filing_users/export/xlsx/")
    sheet = load_workbook(io.BytesIO(response.data)).active
    names = {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert users["isp"] in names
    assert users["isp_bj"] not in names


def test_bureau_cannot_edit_miit(app, as_user, users) -> None:
    response = as_user("bureau").get(f"/admin/management_users/edit/?id={_id(app, users['miit'])}")
    assert response.status_code == 404


# --- editing, status, password, import right ---------------------------------------------------

def test_bureau_edits_own_isp_and_it_is_audited(app, as_user, users) -> None:
    target = _id(app, users["isp"])
    response = post(as_user("bureau"), f"/admin/filing_users/edit/?id={target}",
                    {"province_code": TIANJIN, "organisation": "天津新名称", "contact_name": "李四",
                     "mobile": "13812345678", "email": "new@example.cn"})
    assert response.status_code == 302
    with app.app_context():
        edited = user_named(users["isp"])
        assert (edited.organisation, edited.contact_name, edited.username) == (
            "天津新名称", "李四", users["isp"])
        from models import AuditEvent

        event = db.session.query(AuditEvent).filter_by(action="user.edit").one()
        assert event.actor_username == users["bureau"] and "天津新名称" in event.changes


def test_username_is_immutable(app, users) -> None:
    with app.app_context():
        user = user_named(users["isp"])
        with pytest.raises(ValueError):
            user.username = "renamed"


def test_disable_ends_sessions_and_sign_in(app, as_user, users) -> None:
    isp_client = as_user("isp")
    assert isp_client.get("/admin/").status_code == 200
    response = post(as_user("bureau"), "/admin/filing_users/row-action/disable/",
                    {"id": _id(app, users["isp"])})
    assert response.status_code == 302
    assert isp_client.get("/admin/").status_code == 302  # the existing session is gone
    body = sign_in(isp_client, users["isp"]).get_data(as_text=True)
    assert "已被停用" in body
    post(as_user("bureau"), "/admin/filing_users/row-action/enable/", {"id": _id(app, users["isp"])})
    assert sign_in(isp_client, users["isp"]).status_code == 302


def test_reset_password_shows_new_one_once_and_old_stops_working(app, as_user, users) -> None:
    client = as_user("miit")
    response = post(client, "/admin/management_users/row-action/reset_password/",
                    {"id": _id(app, users["bureau"])}, follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "仅显示一次" in body
    new_password = body.split("仅显示一次）：")[1][:12]
    fresh = app.test_client()
    assert sign_in(fresh, users["bureau"]).status_code == 200  # old password refused
    assert sign_in(fresh, users["bureau"], new_password).status_code == 302


def test_bureau_grants_and_withdraws_import_right(app, as_user, users) -> None:
    client, target = as_user("bureau"), _id(app, users["isp"])
    post(client, "/admin/filing_users/row-action/grant_import/", {"id": target})
    with app.app_context():
        assert user_named(users["isp"]).can_import is True
    post(client, "/admin/filing_users/row-action/withdraw_import/", {"id": target})
    with app.app_context():
        assert user_named(users["isp"]).can_import is False


def test_import_right_only_for_isps(app, as_user, users) -> None:
    response = post(as_user("bureau"), "/admin/filing_users/row-action/grant_import/",
                    {"id": _id(app, users["ip_reporter"])})
    assert response.status_code == 404


def test_miit_cannot_grant_import(app, as_user, users) -> None:
    response = post(as_user("miit"), "/admin/filing_users/row-action/grant_import/",
                    {"id": _id(app, users["isp"])})
    assert response.status_code == 404


def test_nobody_disables_themselves(app, as_user, users) -> None:
    response = post(as_user("miit"), "/admin/management_users/row-action/disable/",
                    {"id": _id(app, users["miit"])})
    assert response.status_code == 404


def test_username_race_is_a_clear_error_not_a_500(app, users, monkeypatch) -> None:
    """Two registrations of one name at the same moment: the unique constraint decides, politely."""
    with app.app_context():
        monkeypatch.setattr(workflow.users, "check_new_user", lambda actor, data: None)  # both passed the check
        with pytest.raises(workflow.WorkflowError, match="该用户名已被使用"):
            workflow.create_user(None, workflow.UserData(
                username=users["isp"], role=Role.ISP, password=PASSWORD, province_code=TIANJIN,
                contact_name="a", mobile="13812345678", email="a@example.cn"))
        db.session.rollback()
