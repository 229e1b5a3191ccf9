"""备案信息录入 (FAQ 40, 58, 65): entity → websites → access → preview → submit, or back to edit.

The data of the steps lives in `FilingDraft` (one per user), so it survives between steps and
sessions; each step is checked with the same workflow functions the final submission uses.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

import permissions
import workflow
from admin_views.base import RoleView
from extensions import db
from forms import show_refusal
from models import (
    Application,
    CodeTable,
    FilingDraft,
    Province,
    Role,
    User,
    UserStatus,
    code_values,
)
from permissions import Action

ENTITY_FIELDS = ("province_code", "unit_name", "unit_nature", "certificate_type", "certificate_number", "address",
                 "responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email", "commercial")


def _provinces() -> list[tuple[str, str]]:
    return [(code, name) for code, name in db.session.execute(
        select(Province.code, Province.name).where(Province.active).order_by(Province.sort_order))]


class EntityForm(FlaskForm):
    province_code = SelectField(_l("Province of the entity"), choices=[])
    unit_name = StringField(_l("Unit name"), [InputRequired(), Length(max=128)])
    unit_nature = SelectField(_l("Unit nature"), choices=[])
    certificate_type = SelectField(_l("Certificate type"), choices=[])
    certificate_number = StringField(_l("Certificate number"), [InputRequired(), Length(max=64)])
    address = StringField(_l("Postal address"), [Length(max=255)])
    responsible_name = StringField(_l("Responsible person"), [InputRequired(), Length(max=64)])
    responsible_id_number = StringField(_l("Responsible person's ID card number"), [InputRequired(), Length(max=18)])
    responsible_mobile = StringField(_l("Responsible person's mobile"), [InputRequired(), Length(max=20)])
    responsible_email = StringField(_l("Responsible person's e-mail"), [InputRequired(), Length(max=254)])
    commercial = BooleanField(_l("Commercial service (needs an ICP licence, FAQ 2–3)"))


class WebsiteForm(FlaskForm):
    name = StringField(_l("Website name"), [InputRequired(), Length(max=128)])
    domains = TextAreaField(_l("Domains (one per line; a bare IP address is allowed)"), [InputRequired()])
    home_url = StringField(_l("Home page address"), [InputRequired(), Length(max=512)])
    service_content = SelectField(_l("Website service content"), choices=[])
    languages = SelectField(_l("Website language"), choices=[])
    preapproval_category = SelectField(_l("Pre-approval category (if any)"), choices=[], default="")
    preapproval_document = StringField(_l("Pre-approval document number"), [Optional(), Length(max=64)])
    bbs = BooleanField(_l("Interactive sections (电子公告 special filing, FAQ 12–13)"))
    bbs_sections = StringField(_l("Interactive sections"), [Length(max=255)])


class AccessForm(FlaskForm):
    website = SelectField(_l("Website"), choices=[], coerce=int)
    isp_id = SelectField(_l("Access provider (ISP)"), choices=[], coerce=int)
    method = SelectField(_l("Access method"), choices=[])
    server_province_code = SelectField(_l("Server location"), choices=[])
    ip_start = StringField(_l("IP range start"), [Optional(), Length(max=45)])
    ip_end = StringField(_l("IP range end"), [Optional(), Length(max=45)])


def _entity_data(values: dict[str, Any]) -> workflow.EntityData:
    return workflow.EntityData(**{name: values.get(name, False if name == "commercial" else "")
                                  for name in ENTITY_FIELDS})


def _website_data(values: dict[str, Any]) -> workflow.WebsiteData:
    return workflow.WebsiteData(
        name=values["name"], domains=values["domains"], home_url=values["home_url"],
        service_content=values["service_content"], languages=values.get("languages", "1"),
        preapprovals=[tuple(p) for p in values.get("preapprovals", [])], bbs=values.get("bbs", False),
        bbs_sections=values.get("bbs_sections", ""),
        accesses=[workflow.AccessData(isp_id=a["isp_id"], method=a["method"],
                                      server_province_code=a["server_province_code"],
                                      ip_ranges=[tuple(r) for r in a["ip_ranges"]])
                  for a in values.get("accesses", [])])


class FilingWizardView(RoleView):
    access_action = Action.FILING_CREATE

    # --- the draft -------------------------------------------------------------------------------
    def _draft(self) -> FilingDraft:
        draft = db.session.scalar(select(FilingDraft).where(FilingDraft.user_id == current_user.id))
        if draft is None:
            draft = FilingDraft(user_id=current_user.id, data=json.dumps({"entity": {}, "websites": []}))
            db.session.add(draft)
        return draft

    def _data(self) -> dict[str, Any]:
        return json.loads(self._draft().data)

    def _store(self, data: dict[str, Any]) -> None:
        self._draft().data = json.dumps(data, ensure_ascii=False)
        db.session.commit()

    def _page(self, step: str, **kwargs: Any) -> str:
        return self.render("admin/wizard.html", step=step, data=self._data(), **kwargs)

    # --- step 1: entity ------------------------------------------------------------------------------
    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        data = self._data()
        form = EntityForm(data=data["entity"] or {"province_code": current_user.province_code or ""})
        form.province_code.choices = _provinces()
        form.unit_nature.choices = code_values(CodeTable.UNIT_NATURE)
        form.certificate_type.choices = code_values(CodeTable.CERTIFICATE_TYPE)
        if form.validate_on_submit():
            values = {name: form[name].data for name in ENTITY_FIELDS}
            try:
                workflow.check_entity(_entity_data(values), self._entity_id())
            except workflow.WorkflowError as error:
                show_refusal(form, error)
            else:
                data["entity"] = values
                self._store(data)
                return redirect(self.get_url(".websites"))
        return self._page("entity", form=form)

    def _entity_id(self) -> int | None:
        draft = self._draft()
        return db.session.get(Application, draft.application_id).entity_id if draft.application_id else None

    # --- step 2: websites ----------------------------------------------------------------------------
    def _website_form(self, values: dict[str, Any] | None) -> WebsiteForm:
        initial = dict(values or {})
        if values:
            initial["domains"] = "\n".join(values["domains"])
            first = (values.get("preapprovals") or [["", ""]])[0]
            initial["preapproval_category"], initial["preapproval_document"] = first
        form = WebsiteForm(data=initial)
        form.service_content.choices = code_values(CodeTable.SERVICE_CONTENT)
        form.languages.choices = code_values(CodeTable.LANGUAGE)
        form.preapproval_category.choices = [("", "—"), *code_values(CodeTable.PREAPPROVAL_CATEGORY)]
        return form

    @expose("/websites/", methods=("GET", "POST"))
    def websites(self) -> Any:
        data = self._data()
        if not data["entity"]:
            return redirect(self.get_url(".index"))
        index = request.args.get("edit", type=int)
        editing = data["websites"][index] if index is not None and 0 <= index < len(data["websites"]) else None
        form = self._website_form(editing)
        if form.validate_on_submit():
            position = index if editing is not None else len(data["websites"])
            values = {"name": form.name.data.strip(), "domains": [d.strip() for d in form.domains.data.splitlines()
                                                                   if d.strip()],
                      "home_url": form.home_url.data.strip(), "service_content": form.service_content.data,
                      "languages": form.languages.data, "bbs": form.bbs.data, "bbs_sections": form.bbs_sections.data,
                      "preapprovals": [[form.preapproval_category.data, form.preapproval_document.data.strip()]]
                      if form.preapproval_category.data else [],
                      "accesses": (editing or {}).get("accesses", [])}
            try:
                own = {w.id for w in db.session.get(Application, self._draft().application_id).entity.websites} \
                    if self._draft().application_id else set()
                values["domains"] = workflow.check_website(_website_data(values), position, own)
            except workflow.WorkflowError as error:
                show_refusal(form, error)
            else:
                if editing is not None:
                    data["websites"][index] = values
                else:
                    data["websites"].append(values)
                self._store(data)
                flash(_l("Website %(name)s saved.", name=values["name"]), "success")
                return redirect(self.get_url(".websites"))
        return self._page("websites", form=form, editing=index if editing is not None else None)

    @expose("/websites/remove/", methods=("POST",))
    def remove_website(self) -> Response:
        data = self._data()
        index = request.form.get("index", type=int)
        if index is not None and 0 <= index < len(data["websites"]):
            data["websites"].pop(index)
            self._store(data)
        return redirect(self.get_url(".websites"))

    # --- step 3: access ------------------------------------------------------------------------------
    def _isp_matches(self, query: str) -> list[tuple[int, str]]:
        """FAQ 58: two or three characters of the ISP's name find it."""
        if len(query) < 2:
            return []
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = db.session.execute(select(User.id, User.organisation).where(
            User.role == Role.ISP, User.status == UserStatus.ACTIVE,
            User.organisation.like(f"%{escaped}%", escape="\\")).order_by(User.organisation).limit(20))
        return [(user_id, organisation) for user_id, organisation in rows]

    @expose("/access/", methods=("GET", "POST"))
    def access(self) -> Any:
        data = self._data()
        if not data["websites"]:
            return redirect(self.get_url(".websites"))
        query = request.values.get("q", "").strip()
        form = AccessForm()
        form.website.choices = [(i, w["name"]) for i, w in enumerate(data["websites"])]
        matches = self._isp_matches(query)
        if current_user.role == Role.ISP and not query:  # an ISP filing for its customer names itself
            matches = [(current_user.id, current_user.organisation or current_user.username)]
        form.isp_id.choices = matches
        form.method.choices = code_values(CodeTable.ACCESS_METHOD)
        form.server_province_code.choices = _provinces()
        if request.method == "POST" and form.validate_on_submit():
            website = data["websites"][form.website.data]
            entry = {"isp_id": form.isp_id.data, "isp_name": dict(matches)[form.isp_id.data],
                     "method": form.method.data, "server_province_code": form.server_province_code.data,
                     "ip_ranges": [[form.ip_start.data.strip(), (form.ip_end.data or form.ip_start.data).strip()]]
                     if form.ip_start.data else []}
            try:
                workflow.check_accesses(_website_data({**website, "accesses": [*website["accesses"], entry]}).accesses,
                                        form.website.data)
            except workflow.WorkflowError as error:
                db.session.rollback()
                flash(error.message, "error")
            else:
                website["accesses"].append(entry)
                self._store(data)
                return redirect(self.get_url(".access"))
        return self._page("access", form=form, query=query, matches=matches)

    @expose("/access/remove/", methods=("POST",))
    def remove_access(self) -> Response:
        data = self._data()
        site, position = request.form.get("website", type=int), request.form.get("index", type=int)
        try:
            data["websites"][site]["accesses"].pop(position)
        except (IndexError, TypeError):
            abort(404)
        self._store(data)
        return redirect(self.get_url(".access"))

    # --- step 4: preview and submit ------------------------------------------------------------------
    @expose("/preview/")
    def preview(self) -> Any:
        return self._page("preview", form=FlaskForm())

    @expose("/submit/", methods=("POST",))
    def submit(self) -> Response:
        if not FlaskForm().validate_on_submit():
            abort(400)
        draft, data = self._draft(), self._data()
        application = db.session.get(Application, draft.application_id) if draft.application_id else None
        try:
            application = workflow.save_filing_draft(current_user, _entity_data(data["entity"]),
                                                     [_website_data(w) for w in data["websites"]], application)
            workflow.submit_application(current_user, application)
            db.session.delete(draft)
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            flash(error.message, "error")
            return redirect(self.get_url(".preview"))
        flash(_l("Application %(id)s submitted; its progress is shown on its page.", id=application.id), "success")
        return redirect(url_for("applications.details_view", id=application.id))

    @expose("/edit/", methods=("POST",))
    def edit(self) -> Response:
        """Back to edit a returned or rejected application: its data become the draft again."""
        if not FlaskForm().validate_on_submit():
            abort(400)
        application = db.session.get(Application, request.form.get("id", type=int) or 0)
        if application is None or not permissions.may_edit_application(current_user, application):
            abort(404)
        entity = application.entity
        websites = [{"name": w.name, "domains": [d.name for d in w.domains], "home_url": w.home_url,
                     "service_content": w.service_content, "languages": w.languages, "bbs": w.bbs,
                     "bbs_sections": w.bbs_sections,
                     "preapprovals": [[p.category, p.document_number] for p in w.preapprovals],
                     "accesses": [{"isp_id": a.isp_id, "isp_name": a.isp.organisation or a.isp.username,
                                   "method": a.method, "server_province_code": a.server_province_code,
                                   "ip_ranges": [r.split("-", 1) for r in a.ip_ranges.splitlines() if r]}
                                  for a in w.accesses]} for w in entity.websites]
        draft = self._draft()
        draft.application_id = application.id
        self._store({"entity": {name: getattr(entity, name) for name in ENTITY_FIELDS}, "websites": websites})
        return redirect(self.get_url(".index"))
