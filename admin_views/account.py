"""个人设置: change password (FAQ 27) and personal information (FAQ 28), for every signed-in user."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

import workflow
from admin_views.base import RoleView
from extensions import db
from forms import show_refusal, validate_with
from models import CodePurpose
from permissions import Action

CHANGE_PURPOSES = (CodePurpose.CHANGE_MOBILE.value, CodePurpose.CHANGE_EMAIL.value)


class ChangePasswordForm(FlaskForm):
    old_password = PasswordField(_l("Current password"), [InputRequired(), Length(max=128)])
    new_password = PasswordField(_l("New password"), [InputRequired(), Length(max=128)])
    confirm = PasswordField(_l("Repeat the new password"), [
        InputRequired(), EqualTo("new_password", message=_l("The two passwords differ."))])


class ProfileForm(FlaskForm):
    contact_name = StringField(_l("Contact name"), [InputRequired(), Length(max=64)])
    organisation = StringField(_l("Organisation"), [Length(max=128)])
    mobile = StringField(_l("Mobile"), [InputRequired(), Length(max=20)])
    email = StringField(_l("E-mail"), [InputRequired(), Length(max=254)])


class ContactCodeForm(FlaskForm):
    code = StringField(_l("Code"), [InputRequired(), Length(min=6, max=6)])


class AccountView(RoleView):
    access_action = Action.DASHBOARD

    def _page(self, form: FlaskForm, title: object) -> str:
        return self.render("admin/account_form.html", form=form, title=title)

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str | Response:
        """Personal information; a new mobile or e-mail waits for the code sent to it."""
        user = current_user._get_current_object()
        form = ProfileForm(obj=user)
        if validate_with(form, lambda: workflow.check_own_profile(  # every error at once, beside its field
                user, form.organisation.data or "", form.contact_name.data or "", form.mobile.data or "",
                form.email.data or "")):
            try:
                awaited = workflow.update_own_profile(user, form.organisation.data, form.contact_name.data,
                                                      form.mobile.data, form.email.data)
                db.session.commit()
            except workflow.WorkflowError as error:
                show_refusal(form, error)
            else:
                if awaited:
                    flash(_l("A code has been sent to the new contact details: enter it to confirm the "
                             "change."), "info")
                    return redirect(self.get_url(".confirm", purpose=awaited[0].value,
                                                 then=awaited[1].value if len(awaited) > 1 else None))
                flash(_l("Your information has been saved."), "success")
                return redirect(self.get_url(".index"))
        return self._page(form, _l("Personal information"))

    @expose("/confirm/<purpose>/", methods=("GET", "POST"))
    def confirm(self, purpose: str) -> str | Response:
        if purpose not in CHANGE_PURPOSES:
            abort(404)
        form = ContactCodeForm()
        if form.validate_on_submit():
            error = workflow.confirm_contact_change(current_user._get_current_object(), CodePurpose(purpose),
                                                    form.code.data)
            db.session.commit()
            if error is None:
                flash(_l("The new contact details are confirmed."), "success")
                then = request.args.get("then")
                if then in CHANGE_PURPOSES and then != purpose:
                    return redirect(self.get_url(".confirm", purpose=then))
                return redirect(self.get_url(".index"))
            form.code.errors = [error]
        title = _l("Confirm the new mobile") if purpose == CodePurpose.CHANGE_MOBILE else _l(
            "Confirm the new e-mail")
        return self._page(form, title)


class PasswordView(RoleView):
    """修改密码 (FAQ 27): old + new; the other sessions of the account end."""

    access_action = Action.DASHBOARD

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str | Response:
        form = ChangePasswordForm()
        if form.validate_on_submit():
            user = current_user._get_current_object()
            try:
                workflow.change_password(user, form.old_password.data, form.new_password.data)
                db.session.commit()
            except workflow.WorkflowError as error:
                show_refusal(form, error)
            else:
                login_user(user)  # this session continues under the new epoch; every other one ends
                flash(_l("Your password has been changed."), "success")
                return redirect(url_for("admin.index"))
        return self.render("admin/account_form.html", form=form, title=_l("Change password"))
