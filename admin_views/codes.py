"""代码表: read by every role, edited by MIIT (values are deactivated, never deleted)."""

from __future__ import annotations

from typing import Any

from flask_admin.contrib.sqla.filters import BooleanEqualFilter, FilterEqual
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, true
from wtforms import SelectField

from admin_views.base import SecureModelView
from admin_views.labels import CODE_TABLE_LABELS, label
from models import CodeItem, CodeTable
from permissions import Action


class CodeTableView(SecureModelView):
    access_action = Action.CODE_LIST
    create_action = Action.CODE_EDIT
    edit_action = Action.CODE_EDIT
    export_action = Action.CODE_LIST

    def scope(self) -> ColumnElement[bool]:
        return true()

    def edit_form(self, obj: Any = None) -> Any:
        """The code is the key other records refer to: fixed once created."""
        form = super().edit_form(obj)
        del form["code"]
        return form


class ProvinceView(CodeTableView):
    audit_object = "province"
    column_list = ("code", "name", "abbr", "sort_order", "active")
    column_default_sort = ("sort_order", False)
    form_columns = ("code", "name", "abbr", "sort_order", "active")
    column_labels = {"code": _l("Code"), "name": _l("Name"), "abbr": _l("Abbreviation"),
                     "sort_order": _l("Order"), "active": _l("In use")}
    column_filters = ("active",)


class CodeItemView(CodeTableView):
    audit_object = "code_item"
    column_list = ("table", "code", "name", "extra", "sort_order", "active")
    column_default_sort = [("table", False), ("sort_order", False)]
    form_columns = ("table", "code", "name", "extra", "sort_order", "active")
    column_labels = {"table": _l("Code table"), "code": _l("Code"), "name": _l("Name"),
                     "extra": _l("Applies to (unit nature codes)"), "sort_order": _l("Order"),
                     "active": _l("In use")}
    column_formatters = {"table": lambda _v, _c, m, _n: label(CODE_TABLE_LABELS, m.table)}
    column_formatters_export = column_formatters
    form_overrides = {"table": SelectField}
    form_args = {"table": {
        "choices": [(str(t), CODE_TABLE_LABELS[t]) for t in CodeTable],
        "coerce": CodeTable,
    }}
    column_filters = (
        FilterEqual(CodeItem.table, _l("Code table"),
                    options=[(str(t), CODE_TABLE_LABELS[t]) for t in CodeTable]),
        BooleanEqualFilter(CodeItem.active, _l("In use")),
    )
