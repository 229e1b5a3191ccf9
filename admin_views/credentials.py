"""个人设置 › 接口凭证 and 接口说明 (issue 16): a user's credentials for the data-exchange API — created with a name,
scopes, an optional expiry and optional source networks, the secret shown once; listed with their last use;
revoked — all through `workflow.exchange`; and the page that explains the API and links its OpenAPI document."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import abort, flash, make_response, redirect, request
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import DateField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.validators import InputRequired, Length, Optional

from admin_views.base import RoleView, commit_change
from deadlines import BEIJING
from exchange_api.core import OPERATIONS
from extensions import db
from forms import show_refusal, validate_with
from models import ApiCredential, UserStatus
from workflow import WorkflowError
from workflow.errors import raise_problems
from workflow.exchange import allowed_scopes, create_credential, credential_problems, own_credential, revoke_credential

#: how each scope is offered in the form
SCOPE_LABELS = {"filings": _l("Filings (new filings, changes, cancellations, verification, status)"),
                "ip": _l("IP reports (source blocks, allocations, self-brought)"),
                "domain": _l("Domain reports (add, change, delete)"), "events": _l("Event feed and Webhook")}


class CheckboxesField(SelectMultipleField):
    """A multiple choice shown as check boxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class CredentialForm(FlaskForm):
    name = StringField(_l("Name"), [InputRequired(), Length(max=64)],
                       description=_l("What the credential is for, e.g. the system that uses it."))
    scopes = CheckboxesField(_l("Scopes"), choices=[], validate_choice=False)  # the workflow says why, in Chinese
    expires_at = DateField(_l("Valid until (inclusive)"), [Optional()],
                           description=_l("Empty: until revoked."))
    networks = TextAreaField(_l("Allowed source addresses"), [Length(max=4000)],
                             description=_l("One IP address or network (CIDR) a line, e.g. 203.0.113.0/24. "
                                            "Empty: any address."))


def expiry(day: date | None) -> datetime | None:
    """The end of the chosen day in Beijing time, as stored (naive UTC)."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time(), BEIJING).astimezone(UTC).replace(tzinfo=None)


def operations_table() -> list[dict[str, str]]:
    """The data-exchange operations (the registry the OpenAPI document is made from): method, path, scope, summary."""
    return [{"method": operation.method, "path": f"/api/v1/exchange{operation.path}", "scope": operation.scope,
             "summary": operation.summary} for operation in sorted(OPERATIONS, key=lambda op: (op.scope, op.path))]


class ApiAccessMixin:
    """Open to the users whose role may hold API scopes (ISP, ICP, bureau, MIIT, IP and domain reporters)."""

    def is_accessible(self) -> bool:
        return (current_user.is_authenticated and current_user.status == UserStatus.ACTIVE
                and bool(allowed_scopes(current_user)))


class CredentialView(ApiAccessMixin, RoleView):
    """The actor's own credentials only: another user's id is 404."""

    def _form(self, blank: bool = False) -> CredentialForm:
        form = CredentialForm(formdata=None) if blank else CredentialForm()
        form.scopes.choices = [(scope, str(SCOPE_LABELS[scope])) for scope in SCOPE_LABELS
                               if scope in allowed_scopes(current_user)]
        return form

    def _check(self, form: CredentialForm) -> None:
        raise_problems(credential_problems(current_user, form.name.data or "", form.scopes.data or [],
                                           expiry(form.expires_at.data), form.networks.data or ""))

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str | Response:
        """The list and the form; after a creation the same page with the secret, which is never shown again."""
        form, created = self._form(), None
        if validate_with(form, lambda: self._check(form)):
            try:
                created = create_credential(current_user, form.name.data, form.scopes.data,
                                            expiry(form.expires_at.data), form.networks.data or "")
                db.session.commit()
            except WorkflowError as error:
                show_refusal(form, error)
            else:
                flash(_l("The credential is created. Copy its secret now: it is shown only this once."), "success")
                form = self._form(blank=True)
        credentials = db.session.scalars(select(ApiCredential).where(ApiCredential.user_id == current_user.id)
                                         .order_by(ApiCredential.revoked_at.is_not(None), ApiCredential.id.desc()))
        page = make_response(self.render("admin/credentials/index.html", form=form, credentials=list(credentials),
                                         labels=SCOPE_LABELS, revoke_form=FlaskForm(), created=created))
        page.headers["Cache-Control"] = "no-store"  # a secret may be in it: never kept by a cache
        return page

    @expose("/<int:credential_id>/revoke", methods=("POST",))
    def revoke(self, credential_id: int) -> Response:
        """A POST with the CSRF token (the app's CSRFProtect refuses any other) for one of the actor's own."""
        try:
            credential = own_credential(current_user, credential_id)
        except WorkflowError:
            abort(404)
        commit_change(lambda: revoke_credential(current_user, credential),
                      _l("The credential %(name)s is revoked: calls with it are refused from now on.",
                         name=credential.name))
        return redirect(self.get_url(".index"))


class ApiDocsView(ApiAccessMixin, RoleView):
    """接口说明: how to call the API, its operations (from the OpenAPI document) and the link to that document."""

    @expose("/")
    def index(self) -> str:
        return self.render("admin/credentials/docs.html", operations=operations_table(),
                           base_url=request.host_url.rstrip("/"), scopes=sorted(allowed_scopes(current_user)),
                           labels=SCOPE_LABELS)

