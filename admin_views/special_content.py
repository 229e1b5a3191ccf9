"""专项内容管理 (issue 17 §2): the content admins' queue of special filings (confirm, refuse with a reason, the
website's history), and the forbidden words of website names. The blacklist is admin_views/blacklist.py."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_admin.helpers import get_redirect_target
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement
from sqlalchemy.orm import joinedload

import permissions
from admin_views.base import PageRowAction, PostRowAction, SecureModelView, commit_change, posted
from admin_views.blacklist import ListedEntries
from admin_views.labels import PROVINCE_NAMES, label
from models import ForbiddenWord, SpecialContentItem, SpecialState, Website
from permissions import Action
from workflow import special_content

STATE_LABELS = {SpecialState.PENDING: _l("Awaiting confirmation"), SpecialState.CONFIRMED: _l("Confirmed"),
                SpecialState.REFUSED: _l("Not confirmed")}
HISTORY_LABELS = {"opened": _l("Declared (submitted)"), "reopened": _l("Declared again (re-opened)"),
                  "confirmed": _l("Confirmed"), "refused": _l("Not confirmed")}


def _declaration(_view: Any, _context: Any, item: SpecialContentItem, _name: str) -> str:
    return special_content.describe(special_content.item_declaration(item))


class SpecialContentView(SecureModelView):
    """专项备案: the special filings of the user's province (a national content admin: all), pending first."""

    access_action = Action.SPECIAL_CONTENT_REVIEW
    audit_object = "special_content"
    simple_list_pager = True
    column_list = ("id", "website.entity.unit_name", "website.name", "declaration", "province_code", "state",
                   "reason", "opened_at")
    column_default_sort = ("id", True)
    column_sortable_list = ("id", "state", "opened_at")
    column_labels = {"id": _l("No."), "website.entity.unit_name": _l("Unit name"), "website.name": _l("Website"),
                     "declaration": _l("Special content declared"), "province_code": _l("Province"),
                     "state": _l("State"), "reason": _l("Reason"), "opened_at": _l("Declared at")}
    column_formatters = {"state": lambda _v, _c, m, _n: label(STATE_LABELS, m.state),
                         "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, ""),
                         "declaration": _declaration}
    column_filters = (FilterEqual(SpecialContentItem.state, _l("State"),
                                  options=[(str(s), STATE_LABELS[s]) for s in SpecialState]),)
    row_post_actions = (PostRowAction("confirm", _l("Confirm"), "fa fa-check"),)
    row_page_actions = (PageRowAction("refuse", _l("Do not confirm"), ".refuse_view", "fa fa-times"),
                        PageRowAction("history", _l("History"), ".history_view", "fa fa-history"))

    def get_query(self) -> Any:
        """The website and unit of each row in the page's query, not one query per row."""
        return super().get_query().options(joinedload(SpecialContentItem.website).joinedload(Website.entity))

    def scope(self) -> ColumnElement[bool]:
        return permissions.special_content_scope(current_user)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name == "history" or (name in ("confirm", "refuse") and obj.state == SpecialState.PENDING)

    def run_row_action(self, name: str, obj: SpecialContentItem) -> str:
        special_content.review(current_user, obj, confirmed=True)
        return str(_l("Special filing %(id)s confirmed.", id=obj.id))

    @expose("/refuse/", methods=("GET", "POST"))
    def refuse_view(self) -> Any:
        item = self.get_one(request.args.get("id", ""))
        if not self.is_row_action_allowed("refuse", item):
            abort(404)
        if posted() and commit_change(
                lambda: special_content.review(current_user, item, confirmed=False,
                                               reason=request.form.get("reason", "")),
                _l("Special filing %(id)s refused.", id=item.id)):
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return self.render("admin/reason_form.html", application=None, fields={"reason": _l("Reason")},
                           title=_l("Refuse the special filing of %(site)s", site=item.website.name),
                           form=FlaskForm())

    @expose("/history/")
    def history_view(self) -> Any:
        item = self.get_one(request.args.get("id", ""))
        return self.render("admin/special_content/history.html", item=item,
                           declaration=_declaration(None, None, item, ""), state_labels=STATE_LABELS,
                           history=special_content.history(item), history_labels=HISTORY_LABELS,
                           province=PROVINCE_NAMES.get(item.province_code, ""))


class ForbiddenWordView(ListedEntries):
    """禁用词: no website name may contain one (the wizard, the import, the API and the changes check it)."""

    access_action = create_action = edit_action = delete_action = export_action = Action.FORBIDDEN_WORDS_MANAGE
    audit_object = "forbidden_word"
    column_list = ("word", "reason", "province_code", "created_at")
    column_default_sort = ("id", True)
    column_labels = {"word": _l("Forbidden word"), "reason": _l("Reason"), "province_code": _l("Province"),
                     "created_at": _l("Created at")}
    column_formatters = {"province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, "")
                         or str(_l("National"))}
    column_filters = (FilterEqual(ForbiddenWord.word, _l("Forbidden word")),)
    form_columns = ("word", "reason")

    def on_model_change(self, form: Any, model: ForbiddenWord, is_created: bool) -> None:
        model.word = special_content.clean_word(model.word)
        super().on_model_change(form, model, is_created)
