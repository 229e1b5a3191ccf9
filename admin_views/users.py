"""用户管理 (FAQ 29–30): 报备用户 and 管理用户, one view class, two endpoints."""

from __future__ import annotations

from typing import Any

from flask import abort, request
from flask_admin.contrib.sqla.filters import BooleanEqualFilter, FilterEqual
from flask_admin.model.template import EditRowAction
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, and_, select
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import InputRequired, Length

import permissions
import workflow
from admin_views.base import FilterStartsWith, PostRowAction, SecureModelView
from admin_views.labels import PROVINCE_NAMES, ROLE_LABELS, STATUS_LABELS, code_name, label
from admin_views.search import ProvinceFilter
from extensions import db
from forms import Chosen, show_refusal, validate_with
from models import CodeTable, Province, Role, User, UserStatus, code_values, starts_with
from permissions import Action
from workflow import security_keys


class _AccountFields(FlaskForm):
    """Set once, at creation (declared first so that they come first on the form)."""

    username = StringField(_l("Username"), [InputRequired(), Length(max=64)])
    password = PasswordField(_l("Initial password"), [InputRequired(), Length(max=128)])
    role = SelectField(_l("Role"), [Chosen(_l("Choose the account's role."))], choices=[])  # no default


class UserEditForm(FlaskForm):
    province_code = SelectField(_l("Province"), choices=[], default="")
    preapproval_category = SelectField(_l("Pre-approval category"), choices=[], default="")
    organisation = StringField(_l("Organisation"), [Length(max=128)])
    contact_name = StringField(_l("Contact name"), [InputRequired(), Length(max=64)])
    mobile = StringField(_l("Mobile"), [InputRequired(), Length(max=20)])
    email = StringField(_l("E-mail"), [InputRequired(), Length(max=254)])
    isp_account = SelectField(_l("Access-provider account"), choices=[], default="", validate_choice=False,
                              description=_l("IP reporting units only: the ISP whose filed access ranges the unit's "
                                             "reported blocks must cover."))


class UserForm(_AccountFields, UserEditForm):
    can_import = BooleanField(_l("Import right (ISP)"))


def _province_choices(actor: User) -> list[tuple[str, str]]:
    query = select(Province.code, Province.name).where(Province.active).order_by(Province.sort_order)
    if actor.role != Role.MIIT:
        query = query.where(Province.code == actor.province_code)
    return [("", str(_l("— none (national) —")))] * (actor.role == Role.MIIT) + [
        (code, name) for code, name in db.session.execute(query)
    ]


def _isp_choices(actor: User) -> list[tuple[str, str]]:
    """The access providers an IP reporting unit may be given: those of the bureau's province, all for MIIT."""
    query = select(User.username, User.organisation).where(User.role == Role.ISP).order_by(User.username)
    if actor.role != Role.MIIT:
        query = query.where(User.province_code == actor.province_code)
    rows = db.session.execute(query)
    return [("", "—"), *((name, f"{organisation or name}（{name}）") for name, organisation in rows)]


def _category_choices() -> list[tuple[str, str]]:
    return [("", "—"), *code_values(CodeTable.PREAPPROVAL_CATEGORY)]


class ManagedEditRowAction(EditRowAction):
    """The edit pencil, only on rows the user may edit."""

    def render(self, context: Any, row_id: str, row: Any) -> Any:
        view = context.resolve("admin_view")
        return super().render(context, row_id, row) if view.is_row_action_allowed("edit", row) else ""


class UserView(SecureModelView):
    access_action = Action.USER_LIST
    create_action = Action.USER_CREATE
    edit_action = Action.USER_EDIT
    export_action = Action.USER_EXPORT
    audit_object = "user"
    simple_list_pager = True  # millions of ICP accounts: no count(*) per page
    can_view_details = True
    column_list = ("username", "role", "province", "organisation", "contact_name", "status",
                   "can_import", "created_at")
    column_details_list = ("username", "role", "province", "organisation", "contact_name",
                           "mobile", "email", "status", "can_import", "preapproval_category", "isp_account",
                           "created_by", "created_at", "last_login_at")
    column_export_list = column_details_list
    column_sortable_list = ("username", "created_at")
    column_default_sort = ("username", False)
    column_labels = {
        "username": _l("Username"), "role": _l("Role"), "province": _l("Province"),
        "organisation": _l("Organisation"), "contact_name": _l("Contact name"),
        "mobile": _l("Mobile"), "email": _l("E-mail"), "status": _l("Status"),
        "can_import": _l("Import right"), "preapproval_category": _l("Pre-approval category"),
        "isp_account": _l("Access-provider account"),
        "created_by": _l("Created by"), "created_at": _l("Created at"),
        "last_login_at": _l("Last sign-in"),
    }
    column_formatters = {
        "role": lambda _v, _c, m, _n: label(ROLE_LABELS, m.role),
        "status": lambda _v, _c, m, _n: label(STATUS_LABELS, m.status),
        "preapproval_category": lambda _v, _c, m, _n: code_name(CodeTable.PREAPPROVAL_CATEGORY, m.preapproval_category),
    }
    column_formatters_export = column_formatters
    row_post_actions = (
        PostRowAction("disable", _l("Disable"), "fa fa-ban",
                      _l("Disable this account? Its sessions end at once.")),
        PostRowAction("enable", _l("Enable"), "fa fa-check"),
        PostRowAction("reset_password", _l("Reset password"), "fa fa-key",
                      _l("Generate a new password for this account?")),
        PostRowAction("reset_keys", _l("Reset security keys"), "fa fa-unlock-alt",
                      _l("Delete every security key of this account? Its sessions end; it registers a new key at its "
                         "next sign-in.")),
        PostRowAction("grant_import", _l("Grant import"), "fa fa-upload"),
        PostRowAction("withdraw_import", _l("Withdraw import"), "fa fa-times",
                      _l("Withdraw the import right of this ISP?")),
    )

    def __init__(self, model: type, session: Any, *, role_group: tuple[Role, ...], **kwargs: Any):
        self.role_group = role_group
        self.column_filters = (
            FilterStartsWith(User.username, _l("Username")),
            FilterEqual(User.username, _l("Username")),
            FilterEqual(User.role, _l("Role"),
                        options=[(str(r), ROLE_LABELS[r]) for r in role_group]),
            ProvinceFilter(User.province_code, _l("Province"),
                           options=list(PROVINCE_NAMES.items())),
            FilterEqual(User.status, _l("Status"),
                        options=[(str(s), STATUS_LABELS[s]) for s in UserStatus]),
            BooleanEqualFilter(User.can_import, _l("Import right")),
        )
        super().__init__(model, session, **kwargs)

    def scope(self) -> ColumnElement[bool]:
        return and_(permissions.user_scope(current_user), User.role.in_([str(r) for r in self.role_group]))

    def search_condition(self, term: str) -> ColumnElement[bool]:
        """The search box: a username prefix (ix_users_username_pattern)."""
        return starts_with(User.username, term)

    def search_order(self, term: str) -> tuple[Any, ...]:
        return (User.username,)

    def search_placeholder(self) -> str:
        return str(_l("Username (beginning)"))

    def get_list_row_actions(self) -> list[Any]:
        return [ManagedEditRowAction() if isinstance(a, EditRowAction) else a
                for a in super().get_list_row_actions()]

    # --- forms -----------------------------------------------------------------------------
    def get_create_form(self) -> type:
        return UserForm

    def get_edit_form(self) -> type:
        return UserEditForm

    def _fill_choices(self, form: Any) -> Any:
        form.province_code.choices = _province_choices(current_user)
        if Role.PREAPPROVAL in self.role_group:
            form.preapproval_category.choices = _category_choices()
        else:
            del form["preapproval_category"]
        if Role.IP_REPORTER in self.role_group:
            form.isp_account.choices = _isp_choices(current_user)
        else:
            del form["isp_account"]
        return form

    def create_form(self, obj: Any = None) -> Any:
        form = self._fill_choices(super().create_form(obj))
        form.role.choices = [("", str(_l("— choose —")))] + [
            (str(r), str(ROLE_LABELS[r])) for r in self.role_group if r in permissions.creatable_roles(current_user)]
        if not (current_user.role == Role.BUREAU and Role.ISP in self.role_group):
            del form["can_import"]
        return form

    def edit_form(self, obj: Any = None) -> Any:
        if obj is None or not self.is_row_action_allowed("edit", obj):
            abort(404)
        form = self._fill_choices(super().edit_form(obj))
        if obj.role != Role.IP_REPORTER and "isp_account" in form:
            del form["isp_account"]
        return form

    def validate_form(self, form: Any) -> bool:
        """The account forms: the form's own validators and every rule of the workflow at once, each error
        beside its field (other forms, e.g. the row actions', as Flask-Admin does)."""
        if "contact_name" not in form:
            return super().validate_form(form)
        return validate_with(form, lambda: self._check(form))

    def _check(self, form: Any) -> None:
        if "username" in form:  # creation
            role = form.role.data if form.role.data in {str(r) for r in Role} else None
            workflow.check_new_user(current_user, self._user_data(form, role and Role(role), form.username.data))
        else:
            target = self.get_one(request.args.get("id", ""))
            workflow.check_user_profile(self._user_data(form, target.role, target.username), current_user)

    def _user_data(self, form: Any, role: Role | None, username: str) -> workflow.UserData:
        fields = {name: form[name].data for name in (
            "password", "province_code", "organisation", "contact_name", "mobile", "email",
            "preapproval_category", "can_import", "isp_account") if name in form}
        return workflow.UserData(username=username, role=role, **fields)

    def create_model(self, form: Any) -> Any:
        try:
            data = self._user_data(form, Role(form.role.data), form.username.data)
            user = workflow.create_user(current_user, data)
            db.session.commit()
        except workflow.WorkflowError as error:
            show_refusal(form, error)
            return False
        return user

    def update_model(self, form: Any, model: User) -> bool:
        try:
            workflow.update_user(current_user, model, self._user_data(form, model.role, model.username))
            db.session.commit()
        except workflow.WorkflowError as error:
            show_refusal(form, error)
            return False
        return True

    # --- row actions -----------------------------------------------------------------------
    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        manage = permissions.may_manage_user
        checks = {
            "edit": lambda: manage(current_user, obj, Action.USER_EDIT),
            "disable": lambda: obj.status != UserStatus.DISABLED
            and manage(current_user, obj, Action.USER_STATUS),
            "enable": lambda: obj.status == UserStatus.DISABLED
            and manage(current_user, obj, Action.USER_STATUS),
            "reset_password": lambda: manage(current_user, obj, Action.USER_RESET_PASSWORD),
            "reset_keys": lambda: security_keys.may_reset_keys(current_user, obj) and bool(security_keys.keys_of(obj)),
            "grant_import": lambda: not obj.can_import and permissions.may_grant_import(current_user, obj),
            "withdraw_import": lambda: obj.can_import and permissions.may_grant_import(current_user, obj),
        }
        return name in checks and bool(checks[name]())

    def run_row_action(self, name: str, obj: User) -> str:
        if name == "disable":
            workflow.set_user_status(current_user, obj, UserStatus.DISABLED)
            return str(_l("Account %(name)s disabled.", name=obj.username))
        if name == "enable":
            workflow.set_user_status(current_user, obj, UserStatus.ACTIVE)
            return str(_l("Account %(name)s enabled.", name=obj.username))
        if name == "reset_password":
            password = workflow.reset_user_password(current_user, obj)
            return str(_l("New password of %(name)s (shown once): %(password)s",
                          name=obj.username, password=password))
        if name == "reset_keys":
            count = security_keys.reset_keys(current_user, obj)
            return str(_l("%(count)d security key(s) of %(name)s deleted: a new one is registered at its next sign-in.",
                          count=count, name=obj.username))
        granted = name == "grant_import"
        workflow.set_import_grant(current_user, obj, granted)
        return str(_l("Import right of %(name)s granted.", name=obj.username) if granted
                   else _l("Import right of %(name)s withdrawn.", name=obj.username))
