"""网站检查's words in the console: the checks, run states and scopes, notice states and handling results in
Chinese, and a stored result's evidence made readable (admin_views/inspections.py, admin_views/rectification.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select

from admin_views.base import local_time
from admin_views.labels import label
from extensions import db
from models import (
    Access,
    CheckCode,
    HandlingResult,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    NoticeState,
    RunState,
    User,
)
from workflow.ip import unit_label

CHECK_LABELS = {CheckCode.DNS: _l("Domain resolution"), CheckCode.ALIVE: _l("Home page reachable"),
                CheckCode.NUMBER: _l("Filing number shown"), CheckCode.LINK: _l("Filing number linked"),
                CheckCode.CERT: _l("Electronic verification mark"), CheckCode.ACCESS: _l("Access addresses")}
RUN_STATE_LABELS = {RunState.QUEUED: _l("Waiting to run"), RunState.RUNNING: _l("Running"),
                    RunState.DONE: _l("Finished"), RunState.FAILED: _l("Run failed"),
                    RunState.CANCELLED: _l("Run cancelled")}
RUN_STATE_COLOURS = {RunState.QUEUED: "secondary", RunState.RUNNING: "info", RunState.DONE: "success",
                     RunState.FAILED: "danger", RunState.CANCELLED: "dark"}
SCOPE_LABELS = {InspectionScope.ALL: _l("All websites"), InspectionScope.ISP: _l("One access provider"),
                InspectionScope.LIST: _l("Given numbers or domains"), InspectionScope.SCHEDULE: _l("Rolling pass")}
NOTICE_STATE_LABELS = {NoticeState.OPEN: _l("Awaiting handling"), NoticeState.ANSWERED: _l("Answered"),
                       NoticeState.CLOSED: _l("Closed")}
HANDLING_LABELS = {HandlingResult.RECTIFIED: _l("Rectified"), HandlingResult.ACCESS_STOPPED: _l("Access stopped"),
                   HandlingResult.FILING_UPDATED: _l("Filing information changed"),
                   HandlingResult.DISPUTED: _l("Checked, no problem (disputed)")}

#: the evidence a check keeps, in the order shown, with its label (anything else is not shown)
EVIDENCE_FIELDS = (("url", _l("Address fetched")), ("final_url", _l("Final address")),
                   ("address", _l("Server address")), ("at", _l("Fetched at")), ("status", _l("HTTP status")),
                   ("elapsed_ms", _l("Time taken (ms)")), ("redirects", _l("Redirects")),
                   ("truncated", _l("Cut at the size or time bound")), ("message", _l("Fetch error")),
                   ("domains", _l("Domains")), ("addresses", _l("Resolved addresses")),
                   ("outside", _l("Addresses outside the filed ranges")),
                   ("unused", _l("Filed accesses not in use")), ("number", _l("Number found")),
                   ("entity_number", _l("Entity number")), ("href", _l("Link")),
                   ("certificate_id", _l("Certificate id")))


def check_names(codes: str) -> list[str]:
    """Comma-separated check codes ("dns,cert"), in Chinese."""
    return [str(label(CHECK_LABELS, code)) for code in codes.split(",") if code]


def run_state_badge(run: InspectionRun) -> Markup:
    colour = RUN_STATE_COLOURS.get(run.state, "secondary")
    return Markup('<span class="badge badge-{}">{}</span>').format(colour, label(RUN_STATE_LABELS, run.state))


@dataclass(frozen=True)
class CheckEvidence:
    code: str
    name: str
    passed: bool | None  # None: not checked
    message: str
    fields: list[tuple[str, str]]  # (label, value), shown escaped
    excerpt: str  # what the page said, shown in <pre>, escaped


def evidence_of(result: InspectionResult) -> list[CheckEvidence]:
    """The result's checks, in CheckCode order, from its stored evidence (JSON: per check code its `passed`,
    `outcome`, `message` and `evidence` — what was fetched)."""
    try:
        stored = json.loads(result.evidence or "{}")
    except ValueError:
        stored = {}
    stored = stored if isinstance(stored, dict) else {}
    return [_check_evidence(code, stored[str(code)]) for code in CheckCode
            if isinstance(stored.get(str(code)), dict)]


def _check_evidence(code: CheckCode, check: dict[str, Any]) -> CheckEvidence:
    details = check.get("evidence") if isinstance(check.get("evidence"), dict) else {}
    fields = [(str(name), _shown(key, details[key])) for key, name in EVIDENCE_FIELDS
              if details.get(key) not in (None, "", [], {})]
    return CheckEvidence(str(code), str(label(CHECK_LABELS, code)), check.get("passed"),
                         str(check.get("message", "")), fields, str(details.get("excerpt", "")))


def _shown(key: str, value: Any) -> str:
    """A piece of evidence as the clerk reads it: the time in the registry's time zone, yes / no, lists joined, each
    domain with its addresses (or 未解析: the check's message says why)."""
    if key == "at" and isinstance(value, str):
        try:
            return local_time(None, datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None))
        except ValueError:
            return value
    if key == "unused" and isinstance(value, list):
        return _accesses_named(value)
    if isinstance(value, bool):
        return str(_l("Yes") if value else _l("No"))
    if isinstance(value, list | tuple):
        return "、".join(str(item) for item in value)
    if isinstance(value, dict):
        return "；".join(f"{name}：{_shown('', item) if isinstance(item, list) else _l('Did not resolve')}"
                        for name, item in value.items())
    return str(value)


def _accesses_named(access_ids: list[Any]) -> str:
    """The filed accesses the check found unused, as the clerk knows them: the ISP and its filed ranges (an access
    since deleted keeps its number)."""
    ids = [value for value in access_ids if isinstance(value, int)]
    rows = db.session.execute(select(Access.id, Access.ip_ranges, User).join(User, User.id == Access.isp_id)
                              .where(Access.id.in_(ids)))
    named = {access_id: f"{unit_label(isp)}：{'、'.join(ranges.split())}" for access_id, ranges, isp in rows}
    return "；".join(named.get(access_id, str(access_id)) for access_id in ids)
