"""Blueprint: the public site and /api/v1/public/* (SPEC §10) — lookup, filing info, certificates.

Only public data leaves here: unit name and nature, numbers, website names, domains, home URLs,
approval date, pre-approval categories. Never a phone number, ID number, e-mail or address.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_from_directory, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, union
from werkzeug.wrappers import Response

import audit
import certificates
import notices
import security
from admin_views.labels import CODE_TABLE_LABELS, DISCLOSURE_KIND_LABELS, NOTICE_CATEGORY_LABELS, PROVINCE_NAMES
from api_errors import json_error
from extensions import cached, csrf, db
from importer import XLSX_MIME, content_disposition, xlsx_bytes
from models import (
    MAX_ID,
    Access,
    AccessRange,
    Certificate,
    CertificateStatus,
    CodeTable,
    DisclosureEntry,
    DisclosureKind,
    Domain,
    Entity,
    FilingStatus,
    Notice,
    NoticeAttachment,
    NoticeCategory,
    Province,
    PublicName,
    PublicRecord,
    Website,
    code_values,
    starts_with,
)
from numbering import ABBREVIATIONS
from rawsql import RawStatement
from validators import normalise_domain, with_and_without_www
from workflow.ip_lookup import in_live_access_ranges

bp = Blueprint("public", __name__)
api = Blueprint("public_api", __name__, url_prefix="/api/v1/public")
csrf.exempt(api)  # a JSON API for anyone: no session, no cookie to ride on

NUMBER_RE = re.compile(rf"^[{ABBREVIATIONS}]ICP(?:备[0-9]{{8}}号(?:-[0-9]+)?|证[0-9]{{6}}号)$")
MAX_RESULTS = 20
#: the label separators IDNA reads (the normaliser accepts `例子。中国`, `ｗｗｗ．例子．中国`): such a query is a domain
IDNA_DOTS = (".", "\u3002", "\uff0e", "\uff61")
MAX_QUERY = 253  # the longest domain name


# --- lookup (是否备案查询) ----------------------------------------------------------------------

def _domain_candidates(text: str) -> list[str]:
    """The domain as filed, with and without `www.` (URLs, case, IDN, port, trailing dot normalised)."""
    return with_and_without_www(normalise_domain(text))


#: the stored records (public_records), with the unit name they are ordered by
_RECORDS = select(PublicRecord.unit_name, PublicRecord.entity_id, PublicRecord.record)
#: by a live domain of a website in force: two primary-key probes (the name, then its record)
_BY_DOMAIN = RawStatement(_RECORDS.join(PublicName, PublicName.entity_id == PublicRecord.entity_id).where(
    PublicName.name.in_([bindparam("name_a"), bindparam("name_b")])))
_BY_NUMBER = RawStatement(_RECORDS.where(PublicRecord.entity_id.in_(
    select(Entity.id).where(Entity.number == bindparam("number")))))
_BY_LICENCE = RawStatement(_RECORDS.where(PublicRecord.entity_id.in_(
    select(Entity.id).where(Entity.licence_number == bindparam("number")))))
_BY_IDS = _RECORDS.where(PublicRecord.entity_id.in_(bindparam("ids", expanding=True)))


def _unit_name_ids(text: str) -> list[int]:
    return list(db.session.scalars(select(Entity.id).where(
        starts_with(Entity.unit_name, text), Entity.status == FilingStatus.ACTIVE).order_by(Entity.unit_name)
        .limit(MAX_RESULTS)))


def lookup_json(query: str) -> list[str]:
    """是否备案查询 — indexed lookups only: number, domain or IP (exact), unit name (prefix). The records as stored
    (JSON text, `public_records`), by unit name."""
    text = query.strip()
    if not text:
        return []
    if NUMBER_RE.match(text):
        entity_number = text.split("-", 1)[0] if "备" in text else None
        return _in_order((_BY_NUMBER if entity_number else _BY_LICENCE).rows(number=entity_number or text))
    try:
        return _records(_address_ids(text))
    except ValueError:
        pass
    try:
        names = _domain_candidates(text) if any(dot in text for dot in IDNA_DOTS) else []
    except ValueError:
        names = []
    if names:
        return _in_order(_BY_DOMAIN.rows(name_a=names[0], name_b=names[-1]))
    return _records(_unit_name_ids(text))


def lookup(query: str) -> list[dict[str, Any]]:
    """The lookup's records as objects (the HTML page)."""
    return [json.loads(record) for record in lookup_json(query)]


def _address_ids(text: str) -> list[int]:
    """Filings in force with a website filed under this bare IP (FAQ 7) or whose live access ranges
    contain it — through `ipindex` buckets, one index probe per level. ValueError if not an address."""
    address = ipaddress.ip_address(text.strip().strip("[]"))
    in_ranges = select(Website.entity_id).join(Access, Access.website_id == Website.id).join(
        AccessRange, AccessRange.access_id == Access.id).where(
        in_live_access_ranges(address), Website.status == FilingStatus.ACTIVE)
    as_domain = select(Website.entity_id).join(Domain).where(
        Domain.name == str(address), Domain.live,
        Website.status == FilingStatus.ACTIVE)
    return list(db.session.scalars(union(in_ranges, as_domain).limit(MAX_RESULTS)))


def _records(entity_ids: list[int]) -> list[str]:
    """备案公共信息 of filings in force by id: nothing personal."""
    return _in_order(db.session.connection().execute(_BY_IDS, {"ids": entity_ids}).all()) if entity_ids else []


def _in_order(rows: list[Any]) -> list[str]:
    """The records of (unit name, entity id, record) rows, by unit name then entity, each once (a domain and its
    `www.` form find one entity twice)."""
    return list({entity_id: record for _unit, entity_id, record in sorted(rows, key=lambda row: (row[0], row[1]))}
                .values())


# --- certificate verification ------------------------------------------------------------------

def verify_certificate(token: str) -> dict[str, Any]:
    """valid / superseded / revoked / invalid, with the reason and the decoded public content."""
    try:
        payload = certificates.verify(token, certificates.keyring().jwks())
    except certificates.CertificateError as error:
        return {"status": "invalid", "reason": error.message, "payload": None}
    status = db.session.scalar(select(Certificate.status).where(Certificate.id == str(payload.get("certificate_id"))))
    if status is None:
        return {"status": "invalid", "reason": "签名有效，但本系统没有签发过这张证书。", "payload": payload}
    reasons = {CertificateStatus.CURRENT: ("valid", ""),
               CertificateStatus.SUPERSEDED: ("superseded", "该备案已变更，这张证书已被新证书取代。"),
               CertificateStatus.REVOKED: ("revoked", "该备案已被注销或撤销，证书已作废。")}
    result, reason = reasons[status]
    return {"status": result, "reason": reason, "payload": payload}


# --- code tables (代码表查询) ------------------------------------------------------------------------

PROVINCES_TABLE = "provinces"


def code_table_names() -> dict[str, str]:
    return {PROVINCES_TABLE: str(_l("Administrative divisions")),
            **{table.value: str(CODE_TABLE_LABELS[table]) for table in CodeTable}}


def code_table_rows(name: str) -> list[dict[str, str]] | None:
    """The values of one table, in order; None for an unknown name."""
    if name == PROVINCES_TABLE:
        return [{"code": p.code, "name": p.name, "abbreviation": p.abbr} for p in db.session.scalars(
            select(Province).where(Province.active).order_by(Province.sort_order))]
    if name not in {t.value for t in CodeTable}:
        return None
    return [{"code": code, "name": value} for code, value in code_values(CodeTable(name))]


# --- notices (SPEC §9) and 政务公开 ---------------------------------------------------------------

LATEST_PER_CATEGORY = 5
LIST_PAGE_SIZE = 20


def _published() -> Any:
    return select(Notice).where(Notice.published)


def latest_notices() -> dict[NoticeCategory, list[Notice]]:
    """The newest published notices of each category that has any (one indexed query per category)."""
    latest = {category: list(db.session.scalars(
        _published().where(Notice.category == category).order_by(Notice.published_at.desc())
        .limit(LATEST_PER_CATEGORY))) for category in NoticeCategory}
    return {category: rows for category, rows in latest.items() if rows}


#: the footer's pages, written as notices of their category (SPEC §9)
FOOTER_CATEGORIES = (NoticeCategory.STATEMENT, NoticeCategory.CONTACT)


@bp.context_processor
def footer_links() -> dict[str, list[tuple[str, str]]]:
    """使用声明 and 联系我们, each linked only while its category holds a published notice: to that notice when
    it is the only one, else to the category's list."""
    links = []
    for category in FOOTER_CATEGORIES:
        ids = db.session.scalars(select(Notice.id).where(Notice.published, Notice.category == category)
                                 .order_by(Notice.published_at.desc()).limit(2)).all()
        if ids:
            url = (url_for("public.notice_page", notice_id=ids[0]) if len(ids) == 1
                   else url_for("public.notices_page", category=category.value))
            links.append((url, str(NOTICE_CATEGORY_LABELS[category])))
    return {"footer_links": links}


def _page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        return 1


def notice_list(category: str | None, page: int) -> tuple[list[Notice], int]:
    """One page of published notices (of a category), newest first, and the number of pages."""
    query = _published()
    if category:
        query = query.where(Notice.category == category)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Notice.published_at.desc(), Notice.id.desc())
                              .offset((page - 1) * LIST_PAGE_SIZE).limit(LIST_PAGE_SIZE)).all()
    return list(rows), max(1, -(-total // LIST_PAGE_SIZE))


def _category_arg() -> str | None:
    category = request.args.get("category") or None
    if category is not None and category not in {c.value for c in NoticeCategory}:
        abort(404)
    return category


def _published_notice(notice_id: int) -> Notice:
    """Unpublished, withdrawn or deleted notices are 404 to the public."""
    notice = db.session.scalar(_published().where(Notice.id == notice_id))
    if notice is None:
        abort(404)
    return notice


def notice_json(notice: Notice, with_body: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": notice.id, "category": notice.category.value, "title": notice.title,
        "province": PROVINCE_NAMES.get(notice.province_code) if notice.province_code else None,
        "published_at": notice.published_at.isoformat() + "Z" if notice.published_at else None,
        "attachments": [{"name": a.original_name, "size": a.size, "content_type": a.content_type,
                         "url": url_for("public.notice_attachment", notice_id=notice.id, attachment_id=a.id)}
                        for a in notice.attachments]}
    if with_body:
        data["body_html"] = notice.body
    return data


DISCLOSURE_PAGE_SIZE = 50
STATISTICS_SECONDS = 600


def province_statistics() -> list[dict[str, Any]]:
    """Per province: filings in force, cancelled, revoked, kept 10 minutes in the configured cache (per process, or
    shared by every node): GROUP BY over 1,000,000 rows is an index-only scan but not free. Tests see every
    change at once."""
    if current_app.testing:
        return _province_statistics()
    return cached("public_province_statistics", STATISTICS_SECONDS, _province_statistics)


def _province_statistics() -> list[dict[str, Any]]:
    active = dict(db.session.execute(select(Entity.province_code, func.count()).where(
        Entity.status == FilingStatus.ACTIVE).group_by(Entity.province_code)).all())
    left: dict[tuple[str, DisclosureKind], int] = {
        (province, kind): count for province, kind, count in db.session.execute(
            select(DisclosureEntry.province_code, DisclosureEntry.kind, func.count())
            .group_by(DisclosureEntry.province_code, DisclosureEntry.kind))}
    rows = [{"code": p.code, "name": p.name, "active": active.get(p.code, 0),
             **{kind.value: left.get((p.code, kind), 0) for kind in DisclosureKind}}
            for p in db.session.scalars(select(Province).where(Province.active).order_by(Province.sort_order))]
    return rows


def disclosure_page(page: int) -> tuple[list[DisclosureEntry], int]:
    total = db.session.scalar(select(func.count(DisclosureEntry.id))) or 0
    rows = db.session.scalars(select(DisclosureEntry).order_by(DisclosureEntry.happened_at.desc(),
                                                               DisclosureEntry.id.desc())
                              .offset((page - 1) * DISCLOSURE_PAGE_SIZE).limit(DISCLOSURE_PAGE_SIZE)).all()
    return list(rows), max(1, -(-total // DISCLOSURE_PAGE_SIZE))


# --- per-client rate limit of the lookups and the API --------------------------------------------------

def _lookup_rate_limit() -> int:
    return current_app.config["API_RATE_LIMIT_PER_MINUTE"]


@api.before_request
def _rate_limit() -> Response | None:
    """At most API_RATE_LIMIT_PER_MINUTE requests a minute per client address (with the HTML lookup)."""
    if (retry := security.retry_after("public", _lookup_rate_limit())) is None:
        return None
    return json_error(429, f"请求过于频繁，请 {retry} 秒后再试。", headers={"Retry-After": str(retry)})


# --- pages ---------------------------------------------------------------------------------------

def _query_error(query: str) -> str | None:
    """A lookup query longer than a domain name can be (253 characters) is refused, not cut."""
    if len(query) > MAX_QUERY:
        return str(_l("The query is too long: at most %(count)s characters.", count=MAX_QUERY))
    return None


@bp.route("/")
def home() -> str:
    query = request.args.get("q", "")
    error = _query_error(query)
    if query.strip() and not error:
        security.enforce_rate_limit("public", _lookup_rate_limit())  # the API's budget, shared
    results = lookup(query) if query.strip() and not error else None
    return render_template("public/home.html", query=query[:MAX_QUERY], results=results, query_error=error,
                           max_query=MAX_QUERY, latest=latest_notices() if results is None else {},
                           categories=NOTICE_CATEGORY_LABELS)


@bp.route("/favicon.ico")
def favicon() -> Response:
    return send_from_directory(current_app.static_folder or "static", "favicon.ico", mimetype="image/x-icon")


@bp.route("/notices/")
def notices_page() -> str:
    category, page = _category_arg(), _page_number()
    rows, pages = notice_list(category, page)
    return render_template("public/notices.html", notices=rows, page=page, pages=pages, category=category,
                           categories=NOTICE_CATEGORY_LABELS, provinces=PROVINCE_NAMES)


@bp.route("/notices/<int:notice_id>")
def notice_page(notice_id: int) -> str:
    return render_template("public/notice.html", notice=_published_notice(notice_id),
                           categories=NOTICE_CATEGORY_LABELS, provinces=PROVINCE_NAMES)


@bp.route("/notices/<int:notice_id>/attachments/<int:attachment_id>")
def notice_attachment(notice_id: int, attachment_id: int) -> Response:
    notice = _published_notice(notice_id)
    attachment = db.session.get(NoticeAttachment, attachment_id)
    if attachment is None or attachment.notice_id != notice.id:
        abort(404)
    return notices.download(attachment)


@bp.route("/disclosure/")
def disclosure() -> str:
    page = _page_number()
    entries, pages = disclosure_page(page)
    statistics = province_statistics()
    return render_template(
        "public/disclosure.html", entries=entries, page=page, pages=pages, statistics=statistics,
        active_max=max([r["active"] for r in statistics] + [1]),
        left_max=max([r["cancelled"] + r["revoked"] + r["licence_revoked"] for r in statistics] + [1]),
        kinds=DISCLOSURE_KIND_LABELS, provinces=PROVINCE_NAMES,
        notices=notice_list(NoticeCategory.DISCLOSURE.value, 1)[0])


@bp.route("/certificates/verify", methods=["GET", "POST"])
def verify_page() -> str:
    result, token = None, ""
    if request.method == "POST":
        upload = request.files.get("file")
        token = (upload.read(20000).decode("ascii", "replace") if upload and upload.filename
                 else request.form.get("certificate", ""))[:20000]
        result = verify_certificate(token.strip())
    return render_template("public/verify.html", result=result, token=token)


@bp.route("/code-tables/")
def code_tables_page() -> str:
    return render_template("public/code_tables.html", names=code_table_names(), current=None, rows=None)


@bp.route("/code-tables/<name>")
def code_table_page(name: str) -> str:
    rows = code_table_rows(name)
    if rows is None:
        abort(404)
    return render_template("public/code_tables.html", names=code_table_names(), current=name, rows=rows)


@bp.route("/code-tables/<name>.xlsx")
def code_table_download(name: str) -> Response:
    rows = code_table_rows(name)
    if rows is None:
        abort(404)
    title = code_table_names()[name]
    body = xlsx_bytes(list(rows[0]) if rows else ["code", "name"], [list(r.values()) for r in rows], title=title)
    return Response(body, mimetype=XLSX_MIME,
                    headers={"Content-Disposition": content_disposition(f"{title}.xlsx", f"{name}.xlsx")})


# --- JSON API --------------------------------------------------------------------------------------

def _json_response(body: str) -> Response:
    """JSON already written (the stored records), sent as `jsonify` sends its own."""
    return Response(f"{body}\n", mimetype=current_app.json.mimetype)


@api.route("/lookup")
def api_lookup() -> Response:
    query = request.args.get("q", "")
    if not query.strip():
        return json_error(400, "参数 q 不能为空。", "q")
    if error := _query_error(query):
        return json_error(400, error, "q")
    records = ",".join(lookup_json(query))
    return _json_response(f'{{"query":{current_app.json.dumps(query)},"results":[{records}]}}')


@api.route("/filings/<number>")
def api_filing(number: str) -> Response:
    records = _in_order(_BY_NUMBER.rows(number=number))
    if not records:
        return json_error(404, "没有该备案号的有效备案。", "number")
    return _json_response(records[0])


@api.route("/ping")
def api_ping() -> Response:
    """Liveness, without the database (the baseline of the lookup benchmark)."""
    return jsonify({"status": "ok"})


@api.route("/keys")
def api_keys() -> Response:
    return jsonify(certificates.keyring().jwks())


@api.route("/certificates/verify", methods=["POST"])
def api_verify() -> Response:
    return jsonify(verify_certificate(request.get_data(as_text=True)[:20000].strip()))


@api.route("/code-tables")
def api_code_tables() -> Response:
    return jsonify({"tables": [{"name": k, "title": v} for k, v in code_table_names().items()]})


@api.route("/code-tables/<name>")
def api_code_table(name: str) -> Response:
    rows = code_table_rows(name)
    if rows is None:
        return json_error(404, "没有这个代码表。", "name")
    return jsonify({"name": name, "title": code_table_names()[name], "values": rows})


@api.route("/notices")
def api_notices() -> Response:
    category = request.args.get("category") or None
    if category is not None and category not in {c.value for c in NoticeCategory}:
        return json_error(404, "没有这个公告类别。", "category", categories=[c.value for c in NoticeCategory])
    page = _page_number()
    rows, pages = notice_list(category, page)
    return jsonify({"category": category, "page": page, "pages": pages, "notices": [notice_json(n) for n in rows]})


@api.route("/notices/<int:notice_id>")
def api_notice(notice_id: int) -> Response:
    notice = db.session.scalar(_published().where(Notice.id == notice_id))
    if notice is None:
        return json_error(404, "没有这条公告。", "id")
    return jsonify(notice_json(notice, with_body=True))


@api.route("/audit/tree-head")
def api_audit_tree_head() -> Response:
    """The audit log's newest signed tree head (or the one at ?size=N), for witnesses to keep and check later
    with `flask audit verify --witness`."""
    size = request.args.get("size", type=int)
    if "size" in request.args and (size is None or not 1 <= size <= MAX_ID):
        return json_error(400, "参数 size 须为正整数。", "size")
    head = audit.published_tree_head(size)
    if head is None:
        return json_error(404, "没有该大小的已签名树头。" if size else "审计日志还没有已签名树头。", "size")
    return jsonify(head)


#: the public API's part of the OpenAPI document, which exchange_api/openapi.py serves with the data-exchange API's
OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "ICP与IP备案管理系统 公共查询接口", "version": "1"},
    "paths": {
        "/api/v1/public/lookup": {"get": {
            "summary": "是否备案查询: domain, URL, IP, filing number or unit-name prefix",
            "parameters": [{"name": "q", "in": "query", "required": True,
                            "schema": {"type": "string", "maxLength": MAX_QUERY}}],
            "responses": {"200": {"description": "matching filings (public data only)"},
                          "400": {"description": "empty or too long (over 253 characters) query"},
                          "429": {"description": "rate limited"}}}},
        "/api/v1/public/filings/{number}": {"get": {
            "summary": "one filing by its entity number",
            "parameters": [{"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the filing"}, "404": {"description": "no such active filing"}}}},
        "/api/v1/public/ping": {"get": {"summary": "liveness, without the database",
                                        "responses": {"200": {"description": "ok"}}}},
        "/api/v1/public/keys": {"get": {"summary": "JWKS of the certificate signing keys",
                                        "responses": {"200": {"description": "JWKS"}}}},
        "/api/v1/public/certificates/verify": {"post": {
            "summary": "verify a bazs.cert",
            "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}},
            "responses": {"200": {"description": "status valid | superseded | revoked | invalid"}}}},
        "/api/v1/public/audit/tree-head": {"get": {
            "summary": "the audit log's newest signed tree head (or the one at size), for witnesses",
            "parameters": [{"name": "size", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
            "responses": {"200": {"description": "tree_size, head_hash, at, kid, signature (compact JWS)"},
                          "400": {"description": "size is not a positive integer"},
                          "404": {"description": "no signed tree head (of that size)"}}}},
        "/api/v1/public/code-tables": {"get": {"summary": "the 11 code tables",
                                               "responses": {"200": {"description": "names"}}}},
        "/api/v1/public/code-tables/{name}": {"get": {
            "summary": "the values of one code table",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "values"}, "404": {"description": "unknown table"}}}},
        "/api/v1/public/notices": {"get": {
            "summary": "published notices, newest first, 20 per page",
            "parameters": [
                {"name": "category", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": [c.value for c in NoticeCategory]}},
                {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "notices with their attachments' download URLs"},
                          "404": {"description": "unknown category"}}}},
        "/api/v1/public/notices/{notice_id}": {"get": {
            "summary": "one published notice with its sanitised HTML body",
            "parameters": [{"name": "notice_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "the notice"}, "404": {"description": "no such published notice"}}}},
    },
}

