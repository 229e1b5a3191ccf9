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
from admin_views.domain_verdicts import verdict_panel
from admin_views.labels import PROVINCE_NAMES, code_name
from extensions import db
from forms import Chosen, validate_with
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
from validators import display_domain, split_domains
from workflow.checks import domain_checks

ENTITY_FIELDS = ("province_code", "unit_name", "unit_nature", "certificate_type", "certificate_number", "address",
                 "responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email", "commercial")


def _provinces() -> list[tuple[str, str]]:
    return [(code, name) for code, name in db.session.execute(
        select(Province.code, Province.name).where(Province.active).order_by(Province.sort_order))]


class EntityForm(FlaskForm):
    province_code = SelectField(_l("Province of the entity"), choices=[])
    unit_name = StringField(_l("Unit name"), [InputRequired(), Length(max=128)])
    unit_nature = SelectField(_l("Unit nature"), [Chosen(_l("Choose the unit nature."))], choices=[])
    certificate_type = SelectField(_l("Certificate type"), [Chosen(_l("Choose the certificate type."))],
                                   choices=[])
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


# --- the preview: every field with its label, code-table names instead of codes ------------------------
Row = tuple[str, str | list[str]]


def _yes_no(value: Any) -> str:
    return str(_l("Yes") if value else _l("No"))


def entity_rows(entity: dict[str, Any]) -> list[Row]:
    """The entity step as the preview shows it: (label, value) in the form's order."""
    labels = {field.name: str(field.label.text) for field in EntityForm()}
    shown = {"province_code": lambda code: PROVINCE_NAMES.get(code, code),
             "unit_nature": lambda code: code_name(CodeTable.UNIT_NATURE, code),
             "certificate_type": lambda code: code_name(CodeTable.CERTIFICATE_TYPE, code),
             "commercial": _yes_no}
    return [(labels[name], shown.get(name, str)(entity.get(name) or "") or "—") for name in ENTITY_FIELDS]


def website_section(website: dict[str, Any]) -> dict[str, Any]:
    """A website of the preview: its rows, and one list of rows per access provider."""
    rows: list[Row] = [
        (str(_l("Website name")), website["name"]),
        (str(_l("Domains")), [display_domain(name) for name in website["domains"]]),
        (str(_l("Home page")), website["home_url"]),
        (str(_l("Service content")), code_name(CodeTable.SERVICE_CONTENT, website["service_content"])),
        (str(_l("Website language")), code_name(CodeTable.LANGUAGE, website.get("languages", ""))),
        (str(_l("Pre-approval items")), [f"{code_name(CodeTable.PREAPPROVAL_CATEGORY, category)} {document}"
                                         for category, document in website.get("preapprovals", [])]
         or str(_l("None"))),
        (str(_l("Interactive sections")), website.get("bbs_sections", "") if website.get("bbs") else _yes_no(False)),
    ]
    accesses = [[(str(_l("Access provider (ISP)")), access["isp_name"]),
                 (str(_l("Access method")), code_name(CodeTable.ACCESS_METHOD, access["method"])),
                 (str(_l("Server location")), PROVINCE_NAMES.get(access["server_province_code"],
                                                                 access["server_province_code"])),
                 (str(_l("IP ranges")), [f"{start} – {end}" for start, end in access["ip_ranges"]]
                  or str(_l("None")))]
                for access in website.get("accesses", [])]
    return {"name": website["name"], "rows": rows, "accesses": accesses}


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
        form.unit_nature.choices = [("", str(_l("— choose —"))), *code_values(CodeTable.UNIT_NATURE)]  # no default
        form.certificate_type.choices = [("", str(_l("— choose —"))), *code_values(CodeTable.CERTIFICATE_TYPE)]
        values = {name: form[name].data for name in ENTITY_FIELDS}
        if validate_with(form, lambda: workflow.check_entity(_entity_data(values), self._entity_id())):
            data["entity"] = values
            self._store(data)
            return redirect(self.get_url(".websites"))
        return self._page("entity", form=form)

    def _entity_id(self) -> int | None:
        draft = self._draft()
        return db.session.get(Application, draft.application_id).entity_id if draft.application_id else None

    def _own_website_ids(self) -> set[int]:
        """The websites of the application being corrected (their domains are theirs already)."""
        draft = self._draft()
        return {w.id for w in db.session.get(Application, draft.application_id).entity.websites} \
            if draft.application_id else set()

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
        values = {"name": (form.name.data or "").strip(), "domains": split_domains(form.domains.data),
                  "home_url": (form.home_url.data or "").strip(), "service_content": form.service_content.data,
                  "languages": form.languages.data, "bbs": form.bbs.data, "bbs_sections": form.bbs_sections.data,
                  "preapprovals": [[form.preapproval_category.data, (form.preapproval_document.data or "").strip()]]
                  if form.preapproval_category.data else [],
                  "accesses": (editing or {}).get("accesses", [])}
        position = index if editing is not None else len(data["websites"])
        others = [_website_data(w) for i, w in enumerate(data["websites"]) if i != position]

        def check() -> None:
            values["domains"] = workflow.check_website(_website_data(values), position, self._own_website_ids(),
                                                       others, data["entity"].get("province_code"))

        if validate_with(form, check, {"preapprovals": "preapproval_document"}):
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
        site = form.website.data if form.website.data in range(len(data["websites"])) else None
        entry = {"isp_id": form.isp_id.data, "isp_name": dict(matches).get(form.isp_id.data, ""),
                 "method": form.method.data, "server_province_code": form.server_province_code.data,
                 "ip_ranges": [[form.ip_start.data.strip(), (form.ip_end.data or form.ip_start.data).strip()]]
                 if form.ip_start.data else []}

        def check() -> None:
            if site is not None:
                website = data["websites"][site]
                workflow.check_accesses(_website_data({**website, "accesses": [*website["accesses"], entry]})
                                        .accesses, site)

        if request.method == "POST" and validate_with(form, check, {"ip_ranges": "ip_start"}):
            data["websites"][site]["accesses"].append(entry)
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
        data = self._data()
        return self._page("preview", form=FlaskForm(), entity_rows=entity_rows(data["entity"]),
                          website_sections=[website_section(w) for w in data["websites"]],
                          verdicts=self._verdicts(data))

    def _verdicts(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The registrant check of the draft's domains (issue 14), before anything is saved."""
        if not data["entity"]:
            return None
        names = [name for website in data["websites"] for name in website["domains"]]
        return verdict_panel(domain_checks(_entity_data(data["entity"]), names))

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
            for _field, message in error.errors:
                flash(message, "error")
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
