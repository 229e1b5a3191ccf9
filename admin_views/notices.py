"""公告管理 (FAQ 38): MIIT and bureaus write notices with attachments, publish and withdraw them."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import ColumnElement
from werkzeug.wrappers import Response
from wtforms import MultipleFileField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

import notices
import permissions
import workflow
from admin_views.base import ConsoleForm, FilterStartsWith, PostRowAction, SecureModelView, commit_change
from admin_views.labels import NOTICE_CATEGORY_LABELS, PROVINCE_NAMES, label
from extensions import db
from models import Notice, NoticeAttachment
from permissions import Action
from workflow import NoticeData


class NoticeForm(ConsoleForm):
    category = SelectField(_l("Category"), choices=[(str(k), v) for k, v in NOTICE_CATEGORY_LABELS.items()])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=workflow.notices.MAX_TITLE)])
    body = TextAreaField(_l("Text"), render_kw={
        "rows": 12, "data-rich-text": "1", "data-title-bold": _l("Bold"), "data-title-italic": _l("Italic"),
        "data-title-formatblock": _l("Heading"), "data-title-insertunorderedlist": _l("Bulleted list"),
        "data-title-insertorderedlist": _l("Numbered list"), "data-title-createlink": _l("Link address"),
        "data-title-removeformat": _l("Clear formatting")},
                         description=_l("Paragraphs, bold, lists, links and tables are kept; "
                                        "scripts and styles are removed."))
    new_attachments = MultipleFileField(
        _l("Add attachments"), render_kw={"accept": ",".join(f".{ext}" for ext in notices.MIME_TYPES)},
        description=_l("PDF, images, Office documents, ZIP or RAR; the type is checked by the content."))


def _published(_view: Any, _context: Any, model: Notice, _name: str) -> Markup:
    text = _l("Published") if model.published else _l("Draft")
    return Markup('<span class="badge badge-{}">{}</span>').format(
        "success" if model.published else "secondary", text)


class NoticeView(SecureModelView):
    access_action = create_action = edit_action = delete_action = export_action = Action.NOTICE_MANAGE
    audit_object = "notice"
    form = NoticeForm
    edit_template = "admin/notice_edit.html"
    create_template = "admin/notice_create.html"
    column_list = ("title", "category", "province_code", "published", "published_at", "updated_at")
    column_default_sort = ("id", True)
    column_labels = {"title": _l("Title"), "category": _l("Category"), "province_code": _l("Province"),
                     "published": _l("State"), "published_at": _l("Published at"), "updated_at": _l("Updated at")}
    column_formatters = {
        "category": lambda _v, _c, m, _n: label(NOTICE_CATEGORY_LABELS, m.category),
        "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, _l("National")),
        "published": _published,
    }
    column_formatters_export = {
        "category": lambda _v, _c, m, _n: label(NOTICE_CATEGORY_LABELS, m.category),
        "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, _l("National")),
        "published": lambda _v, _c, m, _n: _l("Published") if m.published else _l("Draft"),
    }
    column_filters = (
        FilterEqual(Notice.category, _l("Category"),
                    options=[(str(k), v) for k, v in NOTICE_CATEGORY_LABELS.items()]),
        FilterStartsWith(Notice.title, _l("Title")),
    )
    row_post_actions = (
        PostRowAction("publish", _l("Publish"), "fa fa-bullhorn", _l("Publish this notice on the public site?")),
        PostRowAction("withdraw", _l("Withdraw"), "fa fa-eye-slash",
                      _l("Withdraw this notice from the public site?")),
    )

    def scope(self) -> ColumnElement[bool]:
        return permissions.notice_scope(current_user)

    # --- create / edit / delete through the workflow ------------------------------------------
    def _save(self, form: NoticeForm, notice: Notice | None) -> Notice | None:
        uploads = [(f.filename, f.stream) for f in request.files.getlist("new_attachments") if f and f.filename]
        data = NoticeData(form.category.data or "", form.title.data or "", form.body.data or "")
        saved: list[Notice] = []
        commit_change(lambda: saved.append(workflow.save_notice(current_user, notice, data, uploads)))
        return saved[0] if saved else None

    def create_model(self, form: NoticeForm) -> Notice | bool:
        return self._save(form, None) or False

    def update_model(self, form: NoticeForm, model: Notice) -> bool:
        return self._save(form, model) is not None

    def delete_model(self, model: Notice) -> bool:
        return commit_change(lambda: workflow.delete_notice(current_user, model))

    # --- publish / withdraw ------------------------------------------------------------------------
    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return permissions.may_manage_notice(current_user, obj) and (
            (name == "publish" and not obj.published) or (name == "withdraw" and obj.published))

    def run_row_action(self, name: str, obj: Notice) -> str:
        workflow.set_published(current_user, obj, published=name == "publish")
        return str(_l("Notice published.") if name == "publish" else _l("Notice withdrawn."))

    # --- attachments -------------------------------------------------------------------------------
    def _attachment(self, attachment_id: int) -> NoticeAttachment:
        attachment = db.session.get(NoticeAttachment, attachment_id)
        if attachment is None or not permissions.may_manage_notice(current_user, attachment.notice):
            abort(404)
        return attachment

    @expose("/attachment/<int:attachment_id>")
    def attachment_download(self, attachment_id: int) -> Response:
        return notices.download(self._attachment(attachment_id))

    @expose("/attachment/<int:attachment_id>/remove", methods=("POST",))
    def attachment_remove(self, attachment_id: int) -> Response:
        notice = self._attachment(attachment_id).notice
        commit_change(lambda: workflow.remove_attachment(current_user, attachment_id), _l("Attachment removed."))
        return redirect(self.get_url(".edit_view", id=notice.id, url=request.form.get("url") or None))
