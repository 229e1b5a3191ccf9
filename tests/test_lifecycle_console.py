"""The console pages of SPEC §4 (after approval) and §7, as each role uses them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from extensions import db
from models import (
    CLOSED_APPLICATION_STATES,
    Application,
    ApplicationKind,
    ApplicationState,
    DisclosureEntry,
    Entity,
    FilingStatus,
    RequestState,
    RevocationRequest,
    Website,
)
from tests.helpers import post
from tests.test_lifecycle import approved_filing


@pytest.fixture
def filing(app, people):
    with app.app_context():
        entity = approved_filing(people, sites=2)
        db.session.commit()
        return {"id": entity.id, "number": entity.number, "websites": [(w.id, w.number) for w in entity.websites]}


def _open_application(app, entity_id: int) -> Application | None:
    with app.app_context():
        row = db.session.scalar(select(Application).where(Application.entity_id == entity_id,
                                                           Application.state.not_in(CLOSED_APPLICATION_STATES)))
        if row is not None:
            db.session.expunge(row)
        return row


def _entity(app, entity_id: int) -> Entity:
    with app.app_context():
        entity = db.session.get(Entity, entity_id)
        entity.websites  # noqa: B018
        for website in entity.websites:
            website.domains  # noqa: B018
        db.session.expunge_all()
        return entity


def test_isp_adds_a_domain_bureau_approves_owner_gets_new_certificate(app, as_user, filing) -> None:
    isp = as_user("isp")
    page = isp.get(f"/admin/filings/change/?id={filing['id']}")
    assert page.status_code == 200 and "添加域名" in page.get_data(as_text=True)
    website_id = filing["websites"][0][0]
    response = post(isp, f"/admin/filings/change/?id={filing['id']}",
                    {"type": "add_domains", "website_id": website_id, "domains": "shop.example-new.cn"})
    assert response.status_code == 302
    application = _open_application(app, filing["id"])
    assert application.kind == ApplicationKind.CHANGE and application.state == ApplicationState.BUREAU_REVIEW

    bureau = as_user("bureau")
    details = bureau.get(f"/admin/bureau_queue/details/?id={application.id}").get_data(as_text=True)
    assert "shop.example-new.cn" in details and "申请内容" in details
    assert post(bureau, f"/admin/bureau_queue/approve/?id={application.id}", {"number": ""}).status_code == 302
    assert "shop.example-new.cn" in [d.name for d in _entity(app, filing["id"]).websites[0].domains]
    owner = as_user("icp")
    certificate = owner.get(f"/admin/filings/certificate/?id={filing['id']}")
    assert certificate.status_code == 200 and certificate.headers["Content-Disposition"].endswith('"bazs.cert"')


def test_a_bad_change_shows_the_error_and_changes_nothing(app, as_user, filing) -> None:
    response = post(as_user("isp"), f"/admin/filings/change/?id={filing['id']}",
                    {"type": "add_domains", "website_id": filing["websites"][0][0], "domains": "not a domain"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "invalid-feedback" in body and ">not a domain<" in body  # kept
    assert _open_application(app, filing["id"]) is None


def test_owner_asks_cancellation_bureau_approves_public_list_shows_it(app, as_user, client, filing) -> None:
    owner = as_user("icp")
    assert post(owner, f"/admin/filings/cancellation/?id={filing['id']}",
                {"website_id": "", "reason": "公司注销"}).status_code == 302
    application = _open_application(app, filing["id"])
    assert application.kind == ApplicationKind.CANCEL_ENTITY
    assert post(as_user("bureau"), f"/admin/bureau_queue/approve/?id={application.id}", {}).status_code == 302
    assert _entity(app, filing["id"]).status == FilingStatus.CANCELLED
    page = client.get("/disclosure/").get_data(as_text=True)
    assert filing["number"] in page and "主动注销" in page


def test_isp_cancels_access_then_another_isp_adds_access(app, as_user, filing) -> None:
    isp = as_user("isp")
    website_id, website_number = filing["websites"][1]
    assert "取消我的接入" in isp.get(f"/admin/filings/access/?id={filing['id']}").get_data(as_text=True)
    post(isp, f"/admin/filings/access/?id={filing['id']}", {"website_id": website_id})
    application = _open_application(app, filing["id"])
    assert application.kind == ApplicationKind.CANCEL_ACCESS
    post(as_user("bureau"), f"/admin/bureau_queue/approve/?id={application.id}", {})
    with app.app_context():
        assert db.session.get(Website, website_id).status == FilingStatus.NO_ACCESS

    newcomer = as_user("isp_bj")
    found = newcomer.get("/admin/new-access/", query_string={"number": website_number}).get_data(as_text=True)
    assert "无接入" in found
    fields = {"number": website_number, "confirm": "1", "method": "2", "server_province_code": "110000",
              "ip_start": "198.51.100.1"}
    refused = post(newcomer, "/admin/new-access/", {**fields, "code": "AAAA-BBBB-CCCC"}).get_data(as_text=True)
    assert "授权码" in refused and _open_application(app, filing["id"]) is None
    shown = post(as_user("icp"), f"/admin/filings/access-code/?id={filing['id']}", {}).get_data(as_text=True)
    code = re.search(r'id="access-code">([A-Z0-9-]+)<', shown).group(1)
    post(newcomer, "/admin/new-access/", {**fields, "code": code.lower()})
    application = _open_application(app, filing["id"])
    assert application.kind == ApplicationKind.NEW_ACCESS
    post(as_user("bureau"), f"/admin/bureau_queue/approve/?id={application.id}", {})
    with app.app_context():
        assert db.session.get(Website, website_id).status == FilingStatus.ACTIVE


def test_revocation_request_goes_to_the_bureau_queue_and_batch_revokes(app, as_user, filing) -> None:
    owner = as_user("icp")
    post(owner, f"/admin/filings/revocation-request/?id={filing['id']}", {"website_id": "", "reason": "被冒用"})
    with app.app_context():
        request_id = db.session.scalar(select(RevocationRequest.id))
    assert "被冒用" in owner.get("/admin/revocation_requests/").get_data(as_text=True)
    assert owner.get("/admin/revocation_queue/").status_code == 403
    assert "被冒用" not in as_user("bureau_bj").get("/admin/revocation_queue/").get_data(as_text=True)
    assert "被冒用" not in as_user("miit").get("/admin/revocation_queue/").get_data(as_text=True)
    bureau = as_user("bureau")
    assert "被冒用" in bureau.get("/admin/revocation_queue/").get_data(as_text=True)
    dashboard = bureau.get("/admin/").get_data(as_text=True)
    card = '<div class="console-card-count">1</div>\n        <div class="console-card-title">待处理撤销申请'
    assert card in dashboard
    confirmation = bureau.get(f"/admin/revocation_queue/batch/?ids={request_id}").get_data(as_text=True)
    assert filing["number"] in confirmation and _entity(app, filing["id"]).status == FilingStatus.ACTIVE
    assert post(bureau, "/admin/revocation_queue/batch/", {"ids": str(request_id)}).status_code == 302
    assert _entity(app, filing["id"]).status == FilingStatus.REVOKED
    with app.app_context():
        assert db.session.get(RevocationRequest, request_id).state == RequestState.DONE


def test_requester_edits_its_pending_request(app, as_user, filing) -> None:
    owner = as_user("icp")
    post(owner, f"/admin/filings/revocation-request/?id={filing['id']}", {"website_id": "", "reason": "旧理由"})
    with app.app_context():
        request_id = db.session.scalar(select(RevocationRequest.id))
    post(owner, f"/admin/revocation_requests/edit/?id={request_id}", {"reason": "新理由"})
    assert post(as_user("bureau"), f"/admin/revocation_requests/edit/?id={request_id}",
                {"reason": "篡改"}).status_code == 404
    post(owner, "/admin/revocation_requests/row-action/delete_request/", {"id": request_id})
    with app.app_context():
        assert db.session.get(RevocationRequest, request_id) is None


def test_direct_revocation_shows_what_then_revokes(app, as_user, filing) -> None:
    bureau = as_user("bureau")
    preview = post(bureau, "/admin/revoke/", {"number": filing["number"], "reason": "违法违规"})
    text = preview.get_data(as_text=True)
    assert "将被撤销" in text and filing["websites"][1][1] in text
    assert _entity(app, filing["id"]).status == FilingStatus.ACTIVE  # nothing yet
    other = post(as_user("bureau_bj"), "/admin/revoke/", {"number": filing["number"], "reason": "x", "confirm": "1"})
    assert "没有有效备案" in other.get_data(as_text=True)
    post(bureau, "/admin/revoke/", {"number": filing["number"], "reason": "违法违规", "confirm": "1"})
    assert _entity(app, filing["id"]).status == FilingStatus.REVOKED
    with app.app_context():
        assert db.session.scalar(select(DisclosureEntry.number)) == filing["number"]


@pytest.mark.parametrize(("role", "path", "status"), [
    ("icp", "/admin/revoke/", 403), ("isp", "/admin/revoke/", 403), ("isp", "/admin/revocation_queue/", 403),
    ("icp", "/admin/new-access/", 403), ("bureau", "/admin/new-access/", 403),
    ("bureau", "/admin/filings/change/?id={id}", 404), ("icp", "/admin/filings/change/?id={id}", 404),
    ("bureau_bj", "/admin/filings/cancellation/?id={id}", 404), ("isp_bj", "/admin/filings/access/?id={id}", 404),
])
def test_pages_refuse_the_wrong_roles(as_user, filing, role: str, path: str, status: int) -> None:
    assert as_user(role).get(path.format(id=filing["id"])).status_code == status
