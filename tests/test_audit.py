"""The audit log: every change recorded, chained, tamper-evident, scoped."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import audit
from extensions import db
from models import AuditEvent
from tests.helpers import TIANJIN, post


def _edit_session(as_user) -> None:
    """A bureau and MIIT at work: creations, edits, a disable, a code-table edit."""
    bureau, miit = as_user("bureau"), as_user("miit")
    post(bureau, "/admin/filing_users/new/", {
        "username": "audited_isp", "password": "Init-pass-9", "role": "isp", "province_code": TIANJIN,
        "contact_name": "王五", "mobile": "13812345678", "email": "a@example.cn"})
    post(miit, f"/admin/provinces/edit/?id={TIANJIN}", {
        "name": "天津市", "abbr": "津", "sort_order": "1", "active": "y"})
    post(miit, "/admin/code_items/new/", {"table": "language", "code": "50", "name": "世界语",
                                          "sort_order": "50", "active": "y"})


def test_chain_intact_after_a_session_of_edits(app, as_user) -> None:
    _edit_session(as_user)
    with app.app_context():
        actions = set(db.session.scalars(db.select(AuditEvent.action)))
        assert {"user.create", "province.edit", "code_item.create", "auth.sign_in"} <= actions
        report = audit.verify_chain()
        assert report.intact and report.checked >= 6


def _second_event_id(app) -> int:
    with app.app_context():
        return db.session.scalars(db.select(AuditEvent.id).order_by(AuditEvent.id)).all()[1]


@pytest.mark.parametrize("tamper", [
    "UPDATE audit_events SET actor_username = 'someone' WHERE id = :id",
    "UPDATE audit_events SET changes = '{}' WHERE id = :id",
    "DELETE FROM audit_events WHERE id = :id",
])
def test_altered_row_breaks_the_chain_and_is_named(app, as_user, tamper: str) -> None:
    """Can an integrated event be altered or removed unnoticed?"""
    _edit_session(as_user)
    target = _second_event_id(app)
    with app.app_context():
        audit.sequence_pending()
        db.session.execute(text(tamper), {"id": target})
        db.session.commit()
        report = audit.verify_chain()
    assert not report.intact
    assert report.broken_id in (target, target + 1)  # the altered row, or the one after a removal


def test_truncated_tail_is_detected(app, as_user) -> None:
    _edit_session(as_user)
    with app.app_context():
        audit.sequence_pending()
        last = db.session.scalar(db.select(db.func.max(AuditEvent.id)))
        db.session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
        db.session.commit()
        assert not audit.verify_chain().intact


def test_cli_audit_verify_exit_codes(app, as_user) -> None:
    """The CLI sequences first: an event altered while waiting for the sequencer is named."""
    _edit_session(as_user)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    target = _second_event_id(app)
    with app.app_context():
        db.session.execute(text("UPDATE audit_events SET ip = '6.6.6.6' WHERE id = :id"), {"id": target})
        db.session.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1 and f"event id {target}" in broken.output


def test_application_cannot_update_events(app, as_user) -> None:
    _edit_session(as_user)
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent)).first()
        event.ip = "1.2.3.4"
        with pytest.raises(PermissionError):
            db.session.flush()
        db.session.rollback()


def test_failed_sign_in_is_recorded(app, client, users) -> None:
    from tests.helpers import sign_in

    sign_in(client, users["isp"], "Wrong-pass-1")
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).filter_by(action="auth.sign_in_failed")).one()
        assert event.actor_username == users["isp"] and event.ip == "127.0.0.1"


def test_bureau_sees_only_its_province_events(as_user, users) -> None:
    _edit_session(as_user)
    as_user("bureau_bj")  # a sign-in event in 北京
    tianjin = as_user("bureau").get("/admin/audit_log/").get_data(as_text=True)
    assert users["bureau"] in tianjin and "audited_isp" not in users["bureau_bj"]
    assert users["bureau_bj"] not in tianjin
    assert users["bureau_bj"] in as_user("miit").get("/admin/audit_log/").get_data(as_text=True)


def test_audit_filters_and_export(as_user, users) -> None:
    import io

    from openpyxl import load_workbook

    client = as_user("miit")
    _edit_session(as_user)
    listing = client.get("/admin/audit_log/?flt0_0=" + users["bureau"]).get_data(as_text=True)
    assert "user.create" in listing
    exported = client.get("/admin/audit_log/export/xlsx/?flt0_1=user.create")
    assert exported.mimetype.startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(exported.data)).active.iter_rows(min_row=2, values_only=True))
    assert rows and all(row[5] == "创建账号" for row in rows)
