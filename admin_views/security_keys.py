"""个人设置 › 安全密钥 (issue 17 §3): the user's own security keys — listed, added (the WebAuthn ceremony of
static/js/security-keys.js), renamed, removed while another remains — all through `workflow.security_keys`."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, request
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from admin_views.base import RoleView, commit_change, posted
from auth import ceremony_answer, ceremony_options
from permissions import Action
from workflow import WorkflowError, security_keys


class SecurityKeyView(RoleView):
    """Every signed-in user: only its own keys (another user's key id is 404)."""

    access_action = Action.DASHBOARD

    @expose("/")
    def index(self) -> str:
        user = current_user._get_current_object()
        return self.render("admin/security_keys/index.html", keys=security_keys.keys_of(user),
                           required=security_keys.key_required(user), post_form=FlaskForm())

    @expose("/options", methods=("POST",))
    def options(self) -> Response | tuple[Response, int]:
        return ceremony_options(lambda: security_keys.add_key_options(current_user._get_current_object()))

    @expose("/answer", methods=("POST",))
    def answer(self) -> Response | tuple[Response, int]:
        def add(body: dict[str, Any]) -> Response:
            key = security_keys.add_key(current_user._get_current_object(), body["challenge_id"],
                                        body["credential"], str(body.get("name", "")))
            flash(_l("The security key %(name)s is added.", name=key.name), "success")
            return jsonify(redirect=self.get_url(".index"))

        return ceremony_answer(add)

    def _own(self, key_id: int) -> Any:
        if not posted():
            abort(400)
        try:
            return security_keys.own_key(current_user._get_current_object(), key_id)
        except WorkflowError:
            abort(404)

    @expose("/<int:key_id>/rename", methods=("POST",))
    def rename(self, key_id: int) -> Response:
        key = self._own(key_id)
        commit_change(lambda: security_keys.rename_key(current_user._get_current_object(), key,
                                                       request.form.get("name", "")),
                      _l("The key is renamed."))
        return redirect(self.get_url(".index"))

    @expose("/<int:key_id>/remove", methods=("POST",))
    def remove(self, key_id: int) -> Response:
        key = self._own(key_id)
        name = key.name
        commit_change(lambda: security_keys.remove_key(current_user._get_current_object(), key),
                      _l("The security key %(name)s is removed.", name=name))
        return redirect(self.get_url(".index"))
