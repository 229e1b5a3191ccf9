"""After approval in the console (SPEC §4, §7): the pages behind the filings list's buttons (change,
access, cancellation, revocation request), 新增接入 by number, the revocation requests (mine and to
process, with a batch confirmation), and 按号撤销 / 吊销 with a confirmation page.

Every page posts to a method that calls workflow.py; nothing here changes a state itself.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, request
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.helpers import get_redirect_target
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement
from werkzeug.wrappers import Response

import permissions
import workflow
from admin_views.base import PageRowAction, PostRowAction, RoleView, SecureModelView, commit_change, posted
from admin_views.domain_verdicts import flash_verdicts
from admin_views.labels import PROVINCE_NAMES, label
from extensions import db
from models import (
    Application,
    CodeTable,
    Entity,
    RequestState,
    RevocationRequest,
    Role,
    User,
    Website,
    code_values,
)
from permissions import Action
from validators import display_domain, split_domains
from workflow.checks import LIVE_STATUSES

REQUEST_STATE_LABELS = {RequestState.PENDING: _l("Pending"), RequestState.DONE: _l("Revoked"),
                        RequestState.REFUSED: _l("Refused")}


def describe_proposal(application: Application) -> list[str]:
    """What a change, access or cancellation application asks, in words, for the auditor."""
    proposal = workflow.proposal_of(application)
    sites = {w.id: w for w in application.entity.websites}
    site = sites.get(proposal.get("website_id"))
    name = site.name if site else ""
    kind = proposal.get("type", "")
    lines = {
        "add_domains": lambda: [str(_l("Add domains to %(site)s: %(domains)s", site=name,
                                       domains=", ".join(map(display_domain, proposal["domains"]))))],
        "edit_website": lambda: [str(_l("Edit %(site)s: name %(name)s, home page %(url)s",
                                        site=name, name=proposal["name"], url=proposal["home_url"]))],
        "responsible": lambda: [str(_l("New responsible person: %(name)s, %(mobile)s, %(email)s",
                                       name=proposal["responsible_name"], mobile=proposal["responsible_mobile"],
                                       email=proposal["responsible_email"]))],
        "new_website": lambda: [str(_l("New website %(site)s (numbered on approval)", site=name))],
        "new_access": lambda: [str(_l("New access to %(site)s by %(isp)s", site=name,
                                      isp=_isp_name(proposal["access"]["isp_id"])))],
        "cancel_access": lambda: [str(_l("Cancel the last access of %(site)s: it will be frozen as “no access”",
                                         site=name))],
        "cancel_website": lambda: [str(_l("Cancel website %(site)s", site=name)),
                                   str(_l("Reason: %(reason)s", reason=proposal.get("reason", "")))],
        "cancel_entity": lambda: [str(_l("Cancel the whole filing")),
                                  str(_l("Reason: %(reason)s", reason=proposal.get("reason", "")))],
    }
    return lines[kind]() if kind in lines else []


def _isp_name(isp_id: int) -> str:
    isp = db.session.get(User, isp_id)
    return (isp.organisation or isp.username) if isp else "?"


def _website_choice(entity: Entity) -> Website | None:
    """The website picked in the form (by id, among the entity's), or None for the whole entity."""
    picked = request.form.get("website_id", "")
    if not picked:
        return None
    website = next((w for w in entity.websites if str(w.id) == picked), None)
    if website is None:
        abort(404)
    return website


def _access_data(isp_id: int) -> workflow.AccessData:
    start, end = request.form.get("ip_start", "").strip(), request.form.get("ip_end", "").strip()
    return workflow.AccessData(isp_id=isp_id, method=request.form.get("method", ""),
                               server_province_code=request.form.get("server_province_code", ""),
                               ip_ranges=[(start, end or start)] if start else [])


def _change_errors(run: Any) -> dict[str, list[str]] | None:
    """Run a change and commit it; when refused, roll back and return its errors by field (`websites-0-domains`
    → `domains`; the ones naming no field are flashed), or None when it was made."""
    try:
        run()
        db.session.commit()
    except workflow.WorkflowError as error:
        db.session.rollback()
        errors: dict[str, list[str]] = {}
        for field, message in error.errors:
            if field:
                errors.setdefault(field.rsplit("-", 1)[-1], []).append(message)
            else:
                flash(message, "error")
        return errors
    return None


class AfterApprovalPages:
    """Mixed into the filings view (备案信息): its rows' buttons lead here; rows are scoped by its get_one."""

    row_page_actions = (
        PageRowAction("change", _l("Change"), ".change_view", "fa fa-pencil"),
        PageRowAction("access", _l("Access"), ".access_view", "fa fa-plug"),
        PageRowAction("access_code", _l("Access authorisation code"), ".access_code_view", "fa fa-key"),
        PageRowAction("cancellation", _l("Cancel"), ".cancellation_view", "fa fa-times-circle"),
        PageRowAction("revocation_request", _l("Ask to revoke"), ".revocation_request_view", "fa fa-flag"),
        PageRowAction("revoke", _l("Revoke"), ".revoke_redirect", "fa fa-ban"),
    )

    def lifecycle_action_allowed(self, name: str, entity: Entity) -> bool:
        """Which buttons a row shows (the workflow checks everything again when the page posts)."""
        if entity.status not in LIVE_STATUSES:
            return False
        role = current_user.role
        return {
            "change": role == Role.ISP, "access": role == Role.ISP, "access_code": role == Role.ICP,
            "cancellation": role in (Role.ICP, Role.ISP),
            "revocation_request": permissions.can(current_user, Action.REVOCATION_REQUEST) and (
                role != Role.ISP or current_user.can_import),
            "revoke": permissions.can(current_user, Action.FILING_REVOKE),
        }.get(name, False)

    def _entity_for(self, name: str) -> Entity:
        entity = self.get_one(request.args.get("id", ""))  # type: ignore[attr-defined]
        if not self.lifecycle_action_allowed(name, entity):
            abort(404)
        return entity

    def _back(self) -> str:
        return get_redirect_target() or self.get_url(".index_view")  # type: ignore[attr-defined]

    def _page(self, template: str, entity: Entity, **kwargs: Any) -> str:
        return self.render(template, entity=entity, form=FlaskForm(), back=self._back(),  # type: ignore[attr-defined]
                           **kwargs)

    @expose("/change/", methods=("GET", "POST"))
    def change_view(self) -> Any:
        """变更 (FAQ 52), by the ISP: add domains, edit a website, change the responsible person, add a website.
        A refused change comes back with every error beside its field and what was typed kept."""
        entity = self._entity_for("change")
        kind, errors = request.form.get("type"), {}
        if posted():
            form = request.form
            website = _website_choice(entity)
            runs = {
                "add_domains": lambda: workflow.propose_domains(current_user, website,
                                                                split_domains(form.get("domains", ""))),
                "edit_website": lambda: workflow.propose_website_edit(
                    current_user, website, form.get("name", ""), form.get("home_url", ""),
                    form.get("service_content", "")),
                "responsible": lambda: workflow.propose_responsible(
                    current_user, entity, form.get("responsible_name", ""), form.get("responsible_id_number", ""),
                    form.get("responsible_mobile", ""), form.get("responsible_email", "")),
                "new_website": lambda: workflow.propose_website(current_user, entity, workflow.WebsiteData(
                    name=form.get("name", ""), home_url=form.get("home_url", ""),
                    domains=split_domains(form.get("domains", "")),
                    service_content=form.get("service_content", ""), accesses=[_access_data(current_user.id)])),
            }
            if kind not in runs or (kind in ("add_domains", "edit_website") and website is None):
                abort(400)
            sent: dict[str, Application] = {}
            errors = _change_errors(lambda: sent.update(application=runs[kind]()))
            if errors is None:
                flash(_l("The change was sent to the bureau for audit."), "success")
                flash_verdicts(sent["application"])
                return redirect(self._back())
        return self._page("admin/lifecycle/change.html", entity, posted_kind=kind, errors=errors or {},
                          services=code_values(CodeTable.SERVICE_CONTENT),
                          methods=code_values(CodeTable.ACCESS_METHOD), provinces=PROVINCE_NAMES)

    @expose("/access/", methods=("GET", "POST"))
    def access_view(self) -> Any:
        """取消接入 (FAQ 64, 69) of the websites this ISP serves."""
        entity = self._entity_for("access")
        if posted():
            website = _website_choice(entity)
            if website is None:
                abort(400)
            outcome: dict[str, Any] = {}
            if commit_change(lambda: outcome.update(application=workflow.cancel_access(current_user, website)),
                       _l("Access cancelled.")):
                if outcome["application"] is not None:
                    flash(_l("It was the website's last access: the bureau confirms it before the website "
                             "is frozen."), "info")
                return redirect(self._back())
        served = [w for w in entity.websites if w.status in LIVE_STATUSES
                  and any(a.live and a.isp_id == current_user.id for a in w.accesses)]
        return self._page("admin/lifecycle/access.html", entity, served=served)

    @expose("/access-code/", methods=("GET", "POST"))
    def access_code_view(self) -> Any:
        """接入授权码: the owner's consent to a new ISP's access, shown once."""
        entity = self._entity_for("access_code")
        outcome: dict[str, str] = {}
        if posted():
            commit_change(lambda: outcome.update(code=workflow.owner_access_code(current_user, entity)),
                          _l("A new access authorisation code was made."))
        return self._page("admin/lifecycle/access_code.html", entity, code=outcome.get("code"),
                          hours=current_app.config["ACCESS_CODE_TTL_HOURS"])

    @expose("/cancellation/", methods=("GET", "POST"))
    def cancellation_view(self) -> Any:
        """注销 of a website or the whole entity, asked by the owner or its ISP."""
        entity = self._entity_for("cancellation")
        if posted() and commit_change(lambda: workflow.request_cancellation(
                current_user, entity, _website_choice(entity), request.form.get("reason", "")),
                _l("The cancellation was sent to the bureau for audit.")):
            return redirect(self._back())
        return self._page("admin/lifecycle/choose_and_reason.html", entity,
                          title=_l("Cancel a filing"), button=_l("Ask the bureau to cancel"))

    @expose("/revocation-request/", methods=("GET", "POST"))
    def revocation_request_view(self) -> Any:
        """撤销申请 (FAQ 35–36)."""
        entity = self._entity_for("revocation_request")
        if posted() and commit_change(lambda: workflow.request_revocation(
                current_user, entity, _website_choice(entity), request.form.get("reason", "")),
                _l("Your revocation request was sent.")):
            return redirect(self._back())
        return self._page("admin/lifecycle/choose_and_reason.html", entity,
                          title=_l("Ask to revoke a filing"), button=_l("Send the request"))

    @expose("/revoke/")
    def revoke_redirect(self) -> Response:
        entity = self._entity_for("revoke")
        return redirect(self.get_url("direct_revocation.index", number=entity.number))  # type: ignore[attr-defined]


class NewAccessView(RoleView):
    """新增接入 (FAQ 64, 69): an ISP not yet serving a website adds access to it, found by its number
    (also how a website frozen as "no access" is revived, and the second half of changing ISP)."""

    access_action = Action.FILING_CHANGE

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        number, website = request.values.get("number", "").strip(), None
        sent: dict[str, Application] = {}
        if number:
            try:
                _entity, website = workflow.find_by_number(number)
            except workflow.WorkflowError as error:
                flash(error.message, "error")
            else:
                if website is None:
                    flash(_l("Give a website number (…号-n)."), "error")
        if website is not None and posted():
            if request.form.get("send_code"):
                commit_change(lambda: workflow.send_access_code(current_user, website.entity),
                              _l("The registry sent an access authorisation code to the filing's responsible "
                                 "person; ask the owner for it."))
            elif request.form.get("confirm") and commit_change(
                    lambda: sent.update(application=workflow.add_access(
                        current_user, website, _access_data(current_user.id), request.form.get("code", ""))),
                    _l("The new access was sent to the bureau for audit.")):
                flash_verdicts(sent["application"])
                return redirect(self.get_url(".index"))
        return self.render("admin/lifecycle/new_access.html", number=number,
                           website=website, form=FlaskForm(), methods=code_values(CodeTable.ACCESS_METHOD),
                           provinces=PROVINCE_NAMES)


class DirectRevocationView(RoleView):
    """按号撤销 (FAQ 39) and 吊销: type a number and a reason, see exactly what ends, confirm."""

    access_action = Action.FILING_REVOKE

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        number = request.values.get("number", "").strip()
        reason, licence = request.form.get("reason", ""), bool(request.form.get("licence"))
        target = None
        if request.method == "POST" and FlaskForm().validate_on_submit():
            try:
                target = workflow.revocation_target(current_user, number)
            except workflow.WorkflowError as error:
                flash(error.message, "error")
                target = None
            if target and request.form.get("confirm") and commit_change(
                    lambda: workflow.revoke_by_number(current_user, number, reason, licence=licence),
                    _l("%(number)s revoked.", number=number)):
                return redirect(self.get_url(".index"))
        entity, website = target or (None, None)
        ending = ([website] if website else [w for w in entity.websites if w.status in LIVE_STATUSES]) if entity else []
        return self.render("admin/lifecycle/revoke.html", form=FlaskForm(), number=number, reason=reason,
                           licence=licence, entity=entity, website=website, ending=ending)


class RevocationRequestView(SecureModelView):
    """我的撤销申请: the requester views, edits and deletes them while pending (FAQ 35)."""

    access_action = export_action = Action.REVOCATION_REQUEST
    audit_object = "revocation_request"
    simple_list_pager = True
    column_list = ("id", "entity.number", "entity.unit_name", "website.number", "reason", "state",
                   "decision_reason", "created_at")
    column_default_sort = ("id", True)
    column_labels = {"id": _l("No."), "entity.number": _l("Filing number"), "entity.unit_name": _l("Unit name"),
                     "website.number": _l("Website number"), "reason": _l("Reason"), "state": _l("State"),
                     "decision_reason": _l("Reply"), "created_at": _l("Requested at"),
                     "requester.username": _l("Requester")}
    column_formatters = {"state": lambda _v, _c, m, _n: label(REQUEST_STATE_LABELS, m.state)}
    row_post_actions = (PostRowAction("delete_request", _l("Delete"), "fa fa-trash", _l("Delete this request?")),)
    row_page_actions = (PageRowAction("edit_request", _l("Edit"), ".edit_request_view", "fa fa-pencil"),)

    def scope(self) -> ColumnElement[bool]:
        return RevocationRequest.requester_id == current_user.id

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name in ("delete_request", "edit_request") and obj.state == RequestState.PENDING

    def run_row_action(self, name: str, obj: RevocationRequest) -> str:
        workflow.delete_revocation_request(current_user, obj)
        return str(_l("Request deleted."))

    @expose("/edit/", methods=("GET", "POST"))
    def edit_request_view(self) -> Any:
        request_row = self.get_one(request.args.get("id", ""))
        if not self.is_row_action_allowed("edit_request", request_row):
            abort(404)
        if posted() and commit_change(lambda: workflow.edit_revocation_request(
                current_user, request_row, request.form.get("reason", "")), _l("Request saved.")):
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return self.render("admin/reason_form.html", application=None, fields={"reason": _l("Reason")},
                           title=_l("Edit revocation request %(id)s", id=request_row.id), form=FlaskForm(),
                           values={"reason": request_row.reason})


class RevocationQueueView(RevocationRequestView):
    """待处理撤销申请: the bureau's (requests of ICP and import users) or MIIT's (requests of bureaus);
    never one's own (FAQ 31, 37). One by one, or many at once through a confirmation page."""

    access_action = export_action = Action.REVOCATION_PROCESS
    column_list = ("id", "entity.number", "entity.unit_name", "website.number", "requester.username", "reason",
                   "created_at")
    row_post_actions = (PostRowAction("accept", _l("Revoke"), "fa fa-ban",
                                      _l("Revoke this filing? Its number becomes void forever.")),)
    row_page_actions = (PageRowAction("refuse", _l("Refuse"), ".refuse_view", "fa fa-times"),)

    def scope(self) -> ColumnElement[bool]:
        return permissions.revocation_queue_scope(current_user)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name in ("accept", "refuse") and permissions.may_process_revocation(current_user, obj)

    def run_row_action(self, name: str, obj: RevocationRequest) -> str:
        workflow.process_revocation_requests(current_user, [obj], accept=True)
        return str(_l("Request %(id)s processed: the filing is revoked.", id=obj.id))

    @expose("/refuse/", methods=("GET", "POST"))
    def refuse_view(self) -> Any:
        request_row = self.get_one(request.args.get("id", ""))
        if not self.is_row_action_allowed("refuse", request_row):
            abort(404)
        if posted() and commit_change(lambda: workflow.process_revocation_requests(
                current_user, [request_row], accept=False, decision_reason=request.form.get("reason", "")),
                _l("Request %(id)s refused.", id=request_row.id)):
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return self.render("admin/reason_form.html", application=None, fields={"reason": _l("Reason")},
                           title=_l("Refuse revocation request %(id)s", id=request_row.id), form=FlaskForm())

    def is_action_allowed(self, name: str) -> bool:
        return name == "accept" and permissions.can(current_user, Action.REVOCATION_PROCESS)

    @action("accept", _l("Revoke the selected"))
    def action_accept(self, ids: list[str]) -> Response:
        return redirect(self.get_url(".batch_view", ids=",".join(ids)))

    @expose("/batch/", methods=("GET", "POST"))
    def batch_view(self) -> Any:
        """Lists exactly what will be revoked before anything is."""
        wanted = [int(x) for x in request.values.get("ids", "").split(",") if x.isdigit()][:1000]
        rows = self.get_query().filter(RevocationRequest.id.in_(wanted)).order_by(RevocationRequest.id).all()
        if posted() and rows and commit_change(
                lambda: workflow.process_revocation_requests(current_user, rows, accept=True),
                _l("%(count)s filings revoked.", count=len(rows))):
            return redirect(self.get_url(".index_view"))
        return self.render("admin/lifecycle/batch_revoke.html", rows=rows, form=FlaskForm(),
                           ids=",".join(str(r.id) for r in rows))

