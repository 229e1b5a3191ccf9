"""SPEC §9, FAQ 38: notices in the console (scope, sanitised text, attachments) and on the public site."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

import workflow
from extensions import db
from models import AuditEvent, DisclosureEntry, DisclosureKind, Notice, NoticeAttachment
from tests.helpers import post, user_named

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HOSTILE_BODY = ('<p onclick="steal()">通知正文<script>alert(1)</script>'
                '<a href="javascript:alert(2)">点我</a><img src=x onerror="alert(3)">'
                '<a href="https://www.miit.gov.cn/">工信部</a></p><style>body{display:none}</style>')


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    return buffer.getvalue()


def _attachment_dir(app) -> Path:
    return Path(app.config["INSTANCE_PATH"]) / "attachments"


def _stored_files(app) -> list[Path]:
    folder = _attachment_dir(app)
    return sorted(folder.iterdir()) if folder.exists() else []


def create_notice(client, files=(), **fields):
    data = {"category": "bulletin", "title": "关于备案系统升级的通知", "body": "<p>正文</p>", **fields,
            "new_attachments": [(io.BytesIO(content), name) for name, content in files]}
    return post(client, "/admin/notices/new/", data, content_type="multipart/form-data")


def _notice(app) -> Notice | None:
    with app.app_context():
        notice = db.session.scalars(select(Notice).order_by(Notice.id.desc())).first()
        if notice is not None:
            notice.attachments  # noqa: B018 - loaded before the context closes
            db.session.expunge(notice)
        return notice


@pytest.fixture
def bureau_notice(app, as_user):
    """A 天津 bureau notice with a Chinese-named PDF and a .docx, not yet published."""
    client = as_user("bureau")
    response = create_notice(client, files=[("备案须知（2026年版）.pdf", PDF), ("申请表.docx", docx_bytes())],
                             body=HOSTILE_BODY)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client, _notice(app)


def test_body_is_sanitised(bureau_notice) -> None:
    _client, notice = bureau_notice
    assert "通知正文" in notice.body and 'href="https://www.miit.gov.cn/"' in notice.body
    for hostile in ("<script", "onclick", "onerror", "javascript:", "<img", "<style", "alert(1)"):
        assert hostile not in notice.body


def test_attachments_stored_outside_the_web_root_under_generated_names(app, bureau_notice) -> None:
    _client, notice = bureau_notice
    assert notice.province_code == "120000" and not notice.published
    assert [a.original_name for a in notice.attachments] == ["备案须知（2026年版）.pdf", "申请表.docx"]
    stored = _stored_files(app)
    assert sorted(p.name for p in stored) == sorted(a.stored_name for a in notice.attachments)
    assert all(len(p.name) == 32 and p.name.isalnum() for p in stored)
    assert PDF in [p.read_bytes() for p in stored]
    assert not str(_attachment_dir(app)).startswith(str(Path(app.static_folder)))
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.object_type == "notice")) == \
            "notice.create"


def test_unpublished_is_404_to_the_public_then_published_then_withdrawn(app, client, bureau_notice) -> None:
    console, notice = bureau_notice
    attachment = notice.attachments[0]
    public_urls = [f"/notices/{notice.id}", f"/notices/{notice.id}/attachments/{attachment.id}",
                   f"/api/v1/public/notices/{notice.id}"]
    assert [client.get(url).status_code for url in public_urls] == [404, 404, 404]
    assert notice.title not in client.get("/").get_data(as_text=True)

    response = post(console, "/admin/notices/row-action/publish/", {"id": notice.id})
    assert response.status_code == 302
    assert [client.get(url).status_code for url in public_urls] == [200, 200, 200]
    assert notice.title in client.get("/").get_data(as_text=True)
    assert notice.title in client.get("/notices/?category=bulletin").get_data(as_text=True)
    assert notice.title not in client.get("/notices/?category=laws").get_data(as_text=True)
    listed = client.get("/api/v1/public/notices?category=bulletin").get_json()["notices"]
    assert [n["title"] for n in listed] == [notice.title]
    assert listed[0]["attachments"][0]["name"] == "备案须知（2026年版）.pdf"
    page = client.get(f"/notices/{notice.id}").get_data(as_text=True)
    assert "备案须知（2026年版）.pdf" in page and "<script" not in page.split("notice-body")[1].split("</article>")[0]

    post(console, "/admin/notices/row-action/withdraw/", {"id": notice.id})
    assert [client.get(url).status_code for url in public_urls] == [404, 404, 404]


def test_download_keeps_the_chinese_name_and_never_renders(app, client, bureau_notice) -> None:
    console, notice = bureau_notice
    post(console, "/admin/notices/row-action/publish/", {"id": notice.id})
    pdf = notice.attachments[0]
    response = client.get(f"/notices/{notice.id}/attachments/{pdf.id}")
    disposition = response.headers["Content-Disposition"]
    assert response.data == PDF and response.mimetype == "application/pdf"
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('备案须知（2026年版）.pdf')}" in disposition
    assert disposition.encode("ascii")  # the header itself is ASCII (RFC 6266)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # an attachment id of another notice, and path tricks, are 404
    assert client.get(f"/notices/{notice.id + 1}/attachments/{pdf.id}").status_code == 404
    for path in ("..%2F..%2Fx", "../../x", "%2e%2e/secret_key"):
        assert client.get(f"/notices/{notice.id}/attachments/{path}").status_code == 404


@pytest.mark.parametrize(("name", "content", "message"), [
    ("恶意.pdf", b"<html><script>alert(1)</script></html>", "不是 .pdf 文件"),
    ("../../x", PDF, "只能上传"),
    ("照片.png", PDF, "不是 .png 文件"),
    ("程序.exe", b"MZ\x90\x00", "只能上传"),
    ("空.pdf", b"", "是空文件"),
])
def test_hostile_attachments_are_refused_and_nothing_is_saved(app, as_user, name, content, message) -> None:
    client = as_user("bureau")
    response = create_notice(client, files=[("好的.pdf", PDF), (name, content)])
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert _notice(app) is None and _stored_files(app) == []


def test_a_path_in_the_file_name_is_dropped(app, as_user) -> None:
    assert create_notice(as_user("bureau"), files=[("../../etc/通知.pdf", PDF)]).status_code == 302
    notice = _notice(app)
    assert notice.attachments[0].original_name == "通知.pdf"
    assert [p.parent for p in _stored_files(app)] == [_attachment_dir(app)]


def test_size_limit(app, as_user) -> None:
    app.config["ATTACHMENT_MAX_BYTES"] = 1024 * 1024
    response = create_notice(as_user("bureau"), files=[("大文件.pdf", PDF + b"0" * 1024 * 1024)])
    assert "大于 1 MB" in response.get_data(as_text=True) and _notice(app) is None


def test_files_written_then_rolled_back_are_removed(app, users) -> None:
    with app.app_context():
        bureau = user_named(users["bureau"])
        workflow.save_notice(bureau, None, workflow.NoticeData("laws", "标题", ""), [("a.pdf", io.BytesIO(PDF))])
        assert len(_stored_files(app)) == 1
        db.session.rollback()
    assert _stored_files(app) == []


def test_edit_adds_and_removes_attachments_and_delete_removes_files(app, bureau_notice) -> None:
    console, notice = bureau_notice
    response = post(console, f"/admin/notices/edit/?id={notice.id}",
                    {"category": "downloads", "title": "新标题", "body": "<p>改</p>",
                     "new_attachments": [(io.BytesIO(PDF), "附件三.pdf")]}, content_type="multipart/form-data")
    assert response.status_code == 302
    edited = _notice(app)
    assert edited.title == "新标题" and edited.category.value == "downloads" and len(edited.attachments) == 3
    assert "附件三.pdf" in console.get(f"/admin/notices/edit/?id={notice.id}").get_data(as_text=True)

    removed = edited.attachments[0]
    post(console, f"/admin/notices/attachment/{removed.id}/remove", {})
    assert len(_notice(app).attachments) == 2 and len(_stored_files(app)) == 2

    post(console, "/admin/notices/delete/", {"id": notice.id})
    assert _notice(app) is None and _stored_files(app) == []
    with app.app_context():
        assert db.session.scalar(select(NoticeAttachment.id)) is None


def test_a_bureau_cannot_touch_another_provinces_notice(app, as_user, bureau_notice) -> None:
    _console, notice = bureau_notice
    other = as_user("bureau_bj")
    attachment = notice.attachments[0]
    assert notice.title not in other.get("/admin/notices/").get_data(as_text=True)
    assert other.get(f"/admin/notices/edit/?id={notice.id}").status_code == 404
    assert post(other, f"/admin/notices/edit/?id={notice.id}", {"category": "laws", "title": "篡改"}
                ).status_code == 404
    assert post(other, "/admin/notices/row-action/publish/", {"id": notice.id}).status_code == 404
    assert post(other, f"/admin/notices/attachment/{attachment.id}/remove", {}).status_code == 404
    assert other.get(f"/admin/notices/attachment/{attachment.id}").status_code == 404
    post(other, "/admin/notices/delete/", {"id": notice.id})
    after = _notice(app)
    assert after.title == notice.title and not after.published and len(after.attachments) == 2
    with app.app_context(), pytest.raises(workflow.NotFound):  # the workflow refuses too, not only the view
        workflow.set_published(user_named("bj_bureau"), db.session.get(Notice, notice.id), True)


def test_miit_writes_national_notices_and_sees_all(app, as_user, bureau_notice) -> None:
    miit = as_user("miit")
    assert create_notice(miit, title="全国性公告").status_code == 302
    assert _notice(app).province_code is None
    listing = miit.get("/admin/notices/").get_data(as_text=True)
    assert "全国性公告" in listing and bureau_notice[1].title in listing
    assert "全国性公告" not in as_user("bureau").get("/admin/notices/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["icp", "isp", "content_admin", "special_query"])
def test_other_roles_have_no_notice_console(as_user, role) -> None:
    client = as_user(role)
    assert client.get("/admin/notices/").status_code == 403
    assert create_notice(client).status_code == 403


def test_post_without_csrf_token_is_refused(app, as_user) -> None:
    response = as_user("bureau").post("/admin/notices/new/", data={"category": "laws", "title": "x"})
    assert response.status_code == 400 and _notice(app) is None


def test_public_api_rejects_unknown_category(client) -> None:
    response = client.get("/api/v1/public/notices?category=secret")
    assert response.status_code == 404 and "message" in response.get_json()
    assert client.get("/notices/?category=secret").status_code == 404


def test_disclosure_lists_entries_with_chart_and_table(app, client) -> None:
    with app.app_context():
        db.session.add_all([
            DisclosureEntry(kind=DisclosureKind.REVOKED, number="津ICP备26000007号", unit_name="天津某撤销公司",
                            province_code="120000"),
            DisclosureEntry(kind=DisclosureKind.CANCELLED, number="京ICP备26000001号-1", unit_name="北京某注销公司",
                            province_code="110000")])
        db.session.commit()
    page = client.get("/disclosure/").get_data(as_text=True)
    assert "津ICP备26000007号" in page and "天津某撤销公司" in page and "撤销" in page and "主动注销" in page
    assert "<svg" in page and page.count('class="bar-left"') == page.count('class="bar-active"') >= 31


def test_footer_shows_the_registrys_own_number(app, client) -> None:
    page = client.get("/").get_data(as_text=True)
    number = app.config["REGISTRY_FILING_NUMBER"]
    assert number in page and f"/?q={quote(number)}" in page
