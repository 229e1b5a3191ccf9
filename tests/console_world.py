"""A small registry with a record in every state, and every GET address of the URL map filled with real ids.

Shared by the page scan (no inline script on any page, tests/test_csp_pages.py) and the CSRF test of every POST
route (tests/test_csrf_routes.py).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

import workflow
from extensions import db
from models import BlacklistEntry, Notice, NoticeAttachment, PreapprovalItem, RevocationRequest, Role
from tests.accounts_helpers import deliver, eml_bodies
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import TIANJIN, make_user, post, user_named, with_captcha
from tests.test_filing_console import ENTITY
from tests.test_lifecycle import approved_filing
from tests.test_notices import PDF

SKIPPED_PREFIXES = ("/static/", "/admin/static/")

#: view endpoint → the world record whose id its `?id=` pages open
VIEW_RECORDS = {
    "filings": "entity", "applications": "bureau_application", "bureau_queue": "bureau_application",
    "isp_queue": "isp_application", "preapproval_queue": "preapproval_item", "revocation_queue": "revocation_request",
    "revocation_requests": "revocation_request", "blacklist": "blacklist", "notices": "notice",
}


@dataclass
class World:
    """The ids of one record of each kind; `values` fills URL arguments and `?id=` of each endpoint."""

    ids: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


def _owner_application_in_isp_review(people: dict[str, str]) -> int:
    owner, isp = user_named(people["icp"]), user_named(people["isp"])
    application = workflow.save_filing_draft(owner, entity_data(31), [website_data(
        "scan31", [isp.id], preapprovals=[("1", "津新闻[2026]031号")])])
    workflow.submit_application(owner, application)
    db.session.flush()
    return application.id


#: the accounts the world adds to the `users` fixture's
EXTRA_ACCOUNTS = {"isp2": "tj_isp2", "importer": "tj_importer"}


def build_world(app: Flask, users: dict[str, str], as_user) -> World:
    """One record of every kind the console lists, made through the workflow and the console itself."""
    world = World()
    people = {**users, **EXTRA_ACCOUNTS}
    with app.app_context():
        make_user("tj_isp2", Role.ISP, TIANJIN, organisation="天津第二网络公司")
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
        entity = approved_filing(people, sites=2)
        world.ids["entity"] = entity.id
        world.values["website_number"] = entity.websites[0].number
        world.values["entity_number"] = entity.number
        world.ids["bureau_application"] = filed_by_isp(user_named(people["isp"]), 32).id
        world.ids["isp_application"] = _owner_application_in_isp_review(people)
        job = workflow.queue_import(user_named("tj_importer"), "备案.xlsx", io.BytesIO(b"not a workbook"))
        db.session.commit()
        workflow.run_import(job)
        world.ids["import_job"] = job.id
    owner = as_user("icp")
    post(owner, f"/admin/filings/revocation-request/?id={world.ids['entity']}", {"website_id": "", "reason": "被冒用"})
    post(owner, "/admin/filing/", ENTITY)  # a wizard draft, so every step of the wizard renders
    post(as_user("content_admin"), "/admin/blacklist/new/", {"kind": "domain", "value": "banned.cn", "reason": "违法"})
    post(as_user("bureau"), "/admin/notices/new/", {
        "category": "bulletin", "title": "关于系统升级的通知", "body": "<p>正文</p>",
        "new_attachments": [(io.BytesIO(PDF), "须知.pdf")]}, content_type="multipart/form-data")
    with app.app_context():
        world.ids["revocation_request"] = db.session.scalar(select(RevocationRequest.id))
        world.ids["blacklist"] = db.session.scalar(select(BlacklistEntry.id))
        world.ids["notice"] = db.session.scalar(select(Notice.id))
        world.ids["attachment"] = db.session.scalar(select(NoticeAttachment.id))
        world.ids["preapproval_item"] = db.session.scalar(select(PreapprovalItem.id))
    post(as_user("bureau"), "/admin/notices/row-action/publish/", {"id": world.ids["notice"]})
    with app.app_context():
        assert db.session.get(Notice, world.ids["notice"]).published
    world.values.update(job_id=world.ids["import_job"], notice_id=world.ids["notice"],
                        attachment_id=world.ids["attachment"], export_type="xlsx", name="unit_nature",
                        number=world.values["entity_number"], token="not-a-real-token",
                        purpose="change_mobile")
    return world


def url_for_rule(rule: Rule, world: World) -> str:
    """The rule's path with its arguments filled from the world (no query string)."""
    path = rule.rule
    for argument in rule.arguments:
        for marker in (f"<{argument}>", f"<int:{argument}>", f"<path:{argument}>"):
            path = path.replace(marker, str(world.values[argument]))
    return path


def get_rules(app: Flask) -> list[Rule]:
    """Every rule of the URL map that answers GET, static files aside."""
    return [rule for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ()) and not rule.rule.startswith(SKIPPED_PREFIXES)]


def post_rules(app: Flask) -> list[Rule]:
    """Every rule of the URL map that accepts POST."""
    return [rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())]


def reset_link(app: Flask, client: FlaskClient) -> str:
    """Ask for the fixture ISP's password-reset link as its owner would; the link's path, from the e-mail."""
    post(client, "/password/forgot", with_captcha(client, {
        "username": "tj_isp", "contact_name": "测试联系人", "email": "tj_isp@example.cn"}))
    deliver(app)
    link = re.search(r"(/password/reset/[^\s]+)", eml_bodies(app, "tj_isp@example.cn")[-1])
    assert link, "no reset link was e-mailed"
    return link.group(1)
