"""黑名单: domains, certificate numbers and unit names refused at filing and approval (content admins), and the
base of the content admins' lists (the forbidden words: admin_views/special_content.py)."""

from __future__ import annotations

from typing import Any

from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement
from wtforms import SelectField

import permissions
from admin_views.base import SecureModelView
from admin_views.labels import PROVINCE_NAMES, label
from models import BlacklistEntry, BlacklistKind
from permissions import Action
from validators import normalise_domain
from workflow import WorkflowError

KIND_LABELS = {BlacklistKind.DOMAIN: _l("Domain"), BlacklistKind.CERTIFICATE_NUMBER: _l("Certificate number"),
               BlacklistKind.UNIT_NAME: _l("Unit name")}


class ListedEntries(SecureModelView):
    """The content admins' lists of values (the blacklist, the forbidden words): a provincial admin reads the
    national entries and its province's, and changes only its province's; a national one all of them."""

    def scope(self) -> ColumnElement[bool]:
        """Entries by their `province_code` (None: national)."""
        return permissions.listed_scope(current_user, self.access_action, self.model.province_code)

    def require_changeable(self, model: Any) -> None:
        if not permissions.may_change_listed(current_user, self.access_action, model.province_code):
            raise WorkflowError(_l("A national entry is kept by the national content administrators."))

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        if is_created:
            model.province_code, model.created_by_id = current_user.province_code, current_user.id
        else:
            self.require_changeable(model)
        super().on_model_change(form, model, is_created)

    def on_model_delete(self, model: Any) -> None:
        self.require_changeable(model)
        super().on_model_delete(model)


class BlacklistView(ListedEntries):
    access_action = Action.BLACKLIST_MANAGE
    create_action = edit_action = delete_action = export_action = Action.BLACKLIST_MANAGE
    audit_object = "blacklist"
    column_list = ("kind", "value", "reason", "province_code", "created_at")
    column_default_sort = ("id", True)
    column_labels = {"kind": _l("Kind"), "value": _l("Value"), "reason": _l("Reason"),
                     "province_code": _l("Province"), "created_at": _l("Created at")}
    column_formatters = {"kind": lambda _v, _c, m, _n: label(KIND_LABELS, m.kind),
                         "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, "")
                         or str(_l("National"))}
    column_filters = (FilterEqual(BlacklistEntry.kind, _l("Kind"), options=[(str(k), KIND_LABELS[k])
                                                                           for k in BlacklistKind]),
                      FilterEqual(BlacklistEntry.value, _l("Value")))
    form_columns = ("kind", "value", "reason")
    form_overrides = {"kind": SelectField}
    form_args = {"kind": {"choices": [(str(k), KIND_LABELS[k]) for k in BlacklistKind], "coerce": BlacklistKind}}

    def on_model_change(self, form: Any, model: BlacklistEntry, is_created: bool) -> None:
        model.value = model.value.strip()
        if model.kind == BlacklistKind.DOMAIN:
            try:
                model.value = normalise_domain(model.value)
            except ValueError as error:
                raise WorkflowError(str(error), "value") from error
        super().on_model_change(form, model, is_created)
