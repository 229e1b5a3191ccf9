"""A small registry with a record in every state, and every GET address of the URL map filled with real ids.

Shared by the page scan (no inline script on any page, tests/test_csp_pages.py) and the CSRF test of every POST
route (tests/test_csrf_routes.py).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

import ipindex
import workflow
import workflow.inspections as inspections
from extensions import db
from models import (
    Application,
    BlacklistEntry,
    CheckCode,
    DomainFlag,
    Entity,
    FindingKind,
    InspectionFinding,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    IpFinding,
    Notice,
    NoticeAttachment,
    PreapprovalItem,
    RevocationRequest,
    Role,
    RunState,
    SecurityKey,
    SpecialContentItem,
    Verdict,
)
from tests.accounts_helpers import deliver, eml_bodies
from tests.domain_factories import report
from tests.filing_factories import credit_code, entity_data, filed_by_isp, website_data
from tests.helpers import TIANJIN, make_user, post, user_named, with_captcha
from tests.ip_factories import allocation, block, reporter, self_brought
from tests.test_filing_console import ENTITY
from tests.test_lifecycle import approved_filing
from tests.test_notices import PDF
from workflow import domain_imports, exchange, ip_imports

SKIPPED_PREFIXES = ("/static/", "/admin/static/")

#: view endpoint → the world record whose id its `?id=` pages open
VIEW_RECORDS = {
    "filings": "entity", "applications": "bureau_application", "bureau_queue": "bureau_application",
    "isp_queue": "isp_application", "preapproval_queue": "preapproval_item", "revocation_queue": "revocation_request",
    "revocation_requests": "revocation_request", "blacklist": "blacklist", "notices": "notice",
    "ip_blocks": "ip_block", "ip_all_blocks": "ip_block", "ip_allocations": "ip_allocation",
    "ip_all_allocations": "ip_allocation", "ip_self_brought": "ip_self_brought",
    "ip_all_self_brought": "ip_self_brought", "ip_findings": "ip_finding",
    "domain_reports": "domain_report", "domain_overview": "domain_report", "domain_flags": "domain_flag",
    "special_content": "special_content_item",
    "inspection_runs": "inspection_run", "inspection_findings": "inspected_website",
    "rectification_notices": "rectification_notice",
}


@dataclass
class World:
    """The ids of one record of each kind; `values` fills URL arguments and `?id=` of each endpoint."""

    ids: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


def _owner_application_in_isp_review(people: dict[str, str]) -> int:
    owner, isp = user_named(people["icp"]), user_named(people["isp"])
    application = workflow.save_filing_draft(owner, entity_data(31), [website_data(
        "scan31", [isp.id], preapprovals=[("1", "津新闻[2026]031号")], bbs=True, bbs_sections="论坛")])
    workflow.submit_application(owner, application)
    db.session.flush()
    return application.id


#: the accounts the world adds to the `users` fixture's
EXTRA_ACCOUNTS = {"isp2": "tj_isp2", "importer": "tj_importer"}
#: an account with a security key (issue 17 §3): its password leads to 登录 › 安全密钥, not to a session
KEY_HOLDER = "tj_keyholder"


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
        world.ids["special_content_item"] = db.session.scalar(select(SpecialContentItem.id))
    _ip_records(app, people, world)
    _domain_records(app, people, world)
    _inspection_records(app, people, world)
    with app.app_context():  # 个人设置 › 接口凭证 lists it; its revocation posts to it (issue 16)
        credential, _secret = exchange.create_credential(user_named(people["isp"]), "订单系统", ("filings", "events"))
        db.session.commit()
        world.values["credential_id"] = credential.id
    with app.app_context():  # its rename and removal post to it; a stored key, no ceremony (test_security_keys.py)
        holder = make_user(KEY_HOLDER, Role.PREAPPROVAL, TIANJIN)
        key = SecurityKey(user_id=holder.id, name="办公室密钥", credential_id=b"world-key", public_key=b"-")
        db.session.add(key)
        db.session.commit()
        world.values["key_id"] = key.id
    post(as_user("bureau"), "/admin/notices/row-action/publish/", {"id": world.ids["notice"]})
    with app.app_context():
        assert db.session.get(Notice, world.ids["notice"]).published
    world.values.update(job_id=world.ids["import_job"], notice_id=world.ids["notice"],
                        attachment_id=world.ids["attachment"], export_type="xlsx", name="unit_nature",
                        number=world.values["entity_number"], token="not-a-real-token",
                        purpose="change_mobile")
    return world


def _ip_records(app: Flask, people: dict[str, str], world: World) -> None:
    """The fixture IP reporter's block, an allocation and a re-allocation to a second unit, a self-brought block and
    a finding (issue 13)."""
    with app.app_context():
        unit = user_named(people["ip_reporter"])
        reporter("tj_ipreport2", organisation="天津第二数据中心")
        world.ids["ip_block"] = block(unit, "203.0.113.0", "203.0.113.255").id
        world.ids["ip_allocation"] = allocation(unit, "203.0.113.0", "203.0.113.15").id
        allocation(unit, "203.0.113.64", "203.0.113.127", method="2", target_unit="tj_ipreport2")
        world.ids["ip_self_brought"] = self_brought(unit, "192.0.2.0", "192.0.2.255", source_name="某客户").id
        finding = IpFinding(kind=FindingKind.CONFLICT, code="2056", unit_id=unit.id, province_code=TIANJIN,
                            record_kind="block", record_id=world.ids["ip_block"], detail="与其他单位的来源地址段重叠",
                            family=4, start_key=ipindex.hex_key(ipindex.address_key("203.0.113.0")),
                            end_key=ipindex.hex_key(ipindex.address_key("203.0.113.255")))
        db.session.add(finding)
        db.session.commit()
        world.ids["ip_finding"] = finding.id
        job = ip_imports.queue_ip_import(unit, "IP地址.xlsx", io.BytesIO(b"not a workbook"))  # its page lists it
        db.session.commit()
        ip_imports.run_ip_import(job)


def _domain_records(app: Flask, people: dict[str, str], world: World) -> None:
    """The fixture registrar's report of the bureau's pending application's registered domain, another report, and
    a 域名核验异常 on the approved filing's website (issue 14)."""
    with app.app_context():
        unit, application = user_named(people["domain_reporter"]), db.session.get(Application,
                                                                                  world.ids["bureau_application"])
        world.ids["domain_report"] = report(unit, "site32.cn", application.entity.certificate_number).id
        report(unit, "other32.cn", credit_code(33), registrant_name="另一家公司")
        website = db.session.get(Entity, world.ids["entity"]).websites[0]
        flag = DomainFlag(website_id=website.id, province_code=TIANJIN, domain=website.domains[0].name,
                          verdict=Verdict.INCONSISTENT, detail="注册人变更")
        db.session.add(flag)
        db.session.commit()
        world.ids["domain_flag"] = flag.id
        job = domain_imports.queue_domain_import(unit, "域名.xlsx", io.BytesIO(b"not a workbook"))  # its page lists it
        db.session.commit()
        domain_imports.run_domain_import(job)


def _inspection_records(app: Flask, people: dict[str, str], world: World) -> None:
    """A finished 天津 run with one failing result and its finding, and a rectification notice (issue 18)."""
    with app.app_context():
        bureau = user_named(people["bureau"])
        website = db.session.get(Entity, world.ids["entity"]).websites[0]
        run = InspectionRun(province_code=TIANJIN, scope=InspectionScope.ALL, created_by_id=bureau.id,
                            state=RunState.DONE, total=1, checked=1, failing=1)
        db.session.add(run)
        db.session.flush()
        evidence = {"number": {"passed": False, "outcome": "missing", "message": "首页未展示备案号",
                               "evidence": {"url": "http://www.example.cn/", "status": 200, "excerpt": "欢迎"}}}
        result = InspectionResult(run_id=run.id, website_id=website.id, entity_id=website.entity_id,
                                  province_code=TIANJIN, passed=False, failing="number",
                                  evidence=json.dumps(evidence, ensure_ascii=False))
        db.session.add(result)
        db.session.flush()
        db.session.add(InspectionFinding(website_id=website.id, check=CheckCode.NUMBER, entity_id=website.entity_id,
                                         province_code=TIANJIN, outcome="missing", message="首页未展示备案号",
                                         last_result_id=result.id))
        notice = inspections.issue_notice(bureau, website, ["number"], "请在首页底部展示备案号",
                                          inspections.beijing_today() + timedelta(days=15))
        db.session.commit()
        world.ids.update(inspection_run=run.id, inspected_website=website.id, rectification_notice=notice.id)


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
