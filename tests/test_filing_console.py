"""The whole filing path as each role would live it, through the console over HTTP."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import certificates
from extensions import db
from models import Application, ApplicationState, MessageChannel, OutboxMessage, PreapprovalItem, Role
from tests.filing_factories import credit_code, filed_by_isp
from tests.helpers import TIANJIN, YY, make_user, post, sign_in, user_named

ENTITY = {"province_code": TIANJIN, "unit_name": "天津某某科技有限公司", "unit_nature": "4", "certificate_type": "1",
          "certificate_number": credit_code(900), "address": "天津市河西区某路8号", "responsible_name": "周八",
          "responsible_id_number": "11010519491231002X", "responsible_mobile": "13611112222",
          "responsible_email": "owner@example.cn"}


def _website(name: str, **extra: str) -> dict[str, str]:
    return {"name": f"{name}网", "domains": f"www.{name}.cn\n{name}.cn", "home_url": f"http://www.{name}.cn/",
            "service_content": "2", "languages": "1", "preapproval_category": "", "preapproval_document": "",
            "bbs_sections": "", **extra}


@pytest.fixture
def isp2(app):
    with app.app_context():
        make_user("tj_isp2", Role.ISP, TIANJIN, organisation="天津第二网络公司")
    return "tj_isp2"


def _application_id(app) -> int:
    with app.app_context():
        return db.session.query(Application).one().id


def test_whole_path_through_the_console(app, as_user, users, isp2) -> None:
    owner = as_user("icp")
    wizard = "/admin/filing/"
    # 1. entity — a mistake first: the message stands beside the field, in Chinese
    wrong = post(owner, wizard, {**ENTITY, "certificate_number": "91350100M000100Y44"}).get_data(as_text=True)
    assert "统一社会信用代码的校验码不正确" in wrong
    assert post(owner, wizard, ENTITY).headers["Location"] == "/admin/filing/websites/"
    # 2. two websites, one with a news pre-approval
    post(owner, wizard + "websites/", _website("alpha", preapproval_category="1",
                                               preapproval_document="津新闻[2026]001号"))
    post(owner, wizard + "websites/", _website("beta"))
    # 3. access: find each ISP by two characters of its name
    page = owner.get(wizard + "access/?q=第二").get_data(as_text=True)
    assert "天津第二网络公司" in page
    with app.app_context():
        isp_ids = [user_named(users["isp"]).id, user_named(isp2).id]
    for site, isp_id in ((0, isp_ids[0]), (0, isp_ids[1]), (1, isp_ids[0])):
        response = post(owner, wizard + "access/", {"q": "网络", "website": site, "isp_id": isp_id, "method": "2",
                                                    "server_province_code": TIANJIN, "ip_start": "203.0.113.5",
                                                    "ip_end": "203.0.113.9"})
        assert response.status_code == 302, response.get_data(as_text=True)
    assert "alpha网" in owner.get(wizard + "preview/").get_data(as_text=True)
    assert post(owner, wizard + "submit/").status_code == 302
    application_id = _application_id(app)
    # 4. one ISP verifies: still ISP review; the bureau has nothing to audit
    post(as_user("isp"), "/admin/isp_queue/row-action/verify/", {"id": application_id})
    bureau = as_user("bureau")
    assert f"/admin/bureau_queue/approve/?id={application_id}" not in bureau.get("/admin/bureau_queue/").get_data(
        as_text=True)
    progress = owner.get(f"/admin/applications/details/?id={application_id}").get_data(as_text=True)
    assert "天津第二网络公司" in progress and "待处理" in progress and "已确认" in progress
    again = post(as_user("isp"), "/admin/isp_queue/row-action/verify/", {"id": application_id})
    assert again.status_code == 404  # verified once; no longer in this ISP's queue
    isp2_client = app.test_client()
    sign_in(isp2_client, isp2)
    post(isp2_client, "/admin/isp_queue/row-action/verify/", {"id": application_id})
    with app.app_context():
        assert db.session.get(Application, application_id).state == ApplicationState.BUREAU_REVIEW
    # 5. the bureau cannot approve before the pre-approval authority confirms
    blocked = bureau.get(f"/admin/bureau_queue/approve/?id={application_id}").get_data(as_text=True)
    assert "津新闻[2026]001号" in blocked
    with app.app_context():
        item_id = db.session.query(PreapprovalItem).one().id
    post(as_user("preapproval"), "/admin/preapproval_queue/row-action/confirm/", {"id": item_id})
    approved = post(bureau, f"/admin/bureau_queue/approve/?id={application_id}", {"number": ""})
    assert approved.status_code == 302
    # 6. the e-mail with the certificate is queued; the owner downloads bazs.cert
    with app.app_context():
        mail = db.session.query(OutboxMessage).filter_by(channel=MessageChannel.EMAIL,
                                                         recipient="owner@example.cn").one()
        assert f"津ICP备{YY}000001号" in mail.body and mail.attachment_name == "bazs.cert"
        entity_id = db.session.get(Application, application_id).entity_id
        jwks = certificates.keyring().jwks()
    download = owner.get(f"/admin/filings/certificate/?id={entity_id}")
    assert download.headers["Content-Disposition"] == 'attachment; filename="bazs.cert"'
    head, body, signature = download.get_data(as_text=True).split(".")
    kid = certificates.decode(download.get_data(as_text=True))[0]["kid"]
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
    Ed25519PublicKey.from_public_bytes(certificates.b64url_decode(jwk["x"])).verify(
        certificates.b64url_decode(signature), f"{head}.{body}".encode())
    details = owner.get(f"/admin/filings/details/?id={entity_id}").get_data(as_text=True)
    assert f"津ICP备{YY}000001号-1" in details and f"津ICP备{YY}000001号-2" in details


def test_certificate_before_approval_gives_faq40_message(app, as_user, users) -> None:
    owner = as_user("icp")
    post(owner, "/admin/filing/", ENTITY)
    with app.app_context():
        from tests.filing_factories import entity_data, website_data
        from workflow import save_filing_draft

        application = save_filing_draft(user_named(users["icp"]), entity_data(901),
                                        [website_data("gamma", [user_named(users["isp"]).id])])
        db.session.commit()
        entity_id = application.entity_id
    page = owner.get(f"/admin/filings/certificate/?id={entity_id}", follow_redirects=True).get_data(as_text=True)
    assert "您的备案信息尚未通过审核！无法进行证书下载！" in page


def test_batch_approve_lists_exactly_what_it_approves(app, as_user, users) -> None:
    with app.app_context():
        isp = user_named(users["isp"])
        ids = [filed_by_isp(isp, 910 + n).id for n in range(3)]
        other = filed_by_isp(user_named(users["isp_bj"]), 920, province="110000").id
        db.session.commit()
    bureau = as_user("bureau")
    chosen = ",".join(str(i) for i in [*ids, other])
    page = bureau.get(f"/admin/bureau_queue/batch-approve/?ids={chosen}").get_data(as_text=True)
    assert all(f"天津测试科技有限公司{910 + n}" in page for n in range(3))
    assert "920" not in re.sub(r'value="[^"]*"', "", page.split("<tbody>")[1].split("</tbody>")[0])
    post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": chosen})
    with app.app_context():
        states = {a.id: a.state for a in db.session.query(Application)}
    assert all(states[i] == ApplicationState.APPROVED for i in ids)
    assert states[other] == ApplicationState.BUREAU_REVIEW  # another province: never touched


def test_queues_are_scoped(app, as_user, users) -> None:
    with app.app_context():
        filed_by_isp(user_named(users["isp_bj"]), 930, province="110000")
        db.session.commit()
    assert "天津测试科技有限公司930" not in as_user("bureau").get("/admin/bureau_queue/").get_data(as_text=True)
    assert "天津测试科技有限公司930" in as_user("bureau_bj").get("/admin/bureau_queue/").get_data(as_text=True)
    assert "天津测试科技有限公司930" not in as_user("icp").get("/admin/applications/").get_data(as_text=True)


def test_dashboards_count_the_queues(app, as_user, users) -> None:
    with app.app_context():
        filed_by_isp(user_named(users["isp"]), 940)
        db.session.commit()
    body = as_user("bureau").get("/admin/").get_data(as_text=True)
    assert "待审核备案" in body and '<div class="console-card-count">1</div>' in body


def test_content_admin_blacklists_a_domain_and_filing_is_refused(app, as_user, users) -> None:
    response = post(as_user("content_admin"), "/admin/blacklist/new/",
                    {"kind": "domain", "value": "WWW.Banned.CN.", "reason": "违法内容"})
    assert response.status_code == 302
    owner = as_user("icp")
    post(owner, "/admin/filing/", ENTITY)
    body = post(owner, "/admin/filing/websites/", _website("banned")).get_data(as_text=True)
    assert "已列入黑名单" in body
    assert as_user("bureau").get("/admin/blacklist/").status_code == 403
