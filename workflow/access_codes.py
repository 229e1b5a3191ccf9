"""接入授权码: the owner's consent to a new access (新增接入) by an ISP that does not serve the filing yet.

The original interface checks the filing's password; here the owner gives the ISP a single-use code:
made in the owner's console (备案信息 › 接入授权码), or sent by the registry to the filing's responsible
person (mobile and e-mail) when an ISP asks — the ISP never sees it, and the message names the ISP.
12 symbols of a 32-symbol alphabet (60 bits), valid ACCESS_CODE_TTL_HOURS: at 1,000 guesses a second for
72 hours an attacker's chance is about 2×10⁻¹⁰, so wrong guesses need no counter. Only an HMAC is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

import audit
import notify
import permissions
from extensions import db
from models import AccessAuthorisation, Entity, Role, User, utcnow
from permissions import Action
from workflow.checks import require_live
from workflow.errors import NotFound, WorkflowError

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
LENGTH = 12
SENT_PER_ENTITY_PER_HOUR = 3
SENT_PER_ISP_PER_HOUR = 30


def _digest(entity_id: int, code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"{entity_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _normalised(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _shown(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def _new_code(entity: Entity, requested_by: User | None) -> str:
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    now = utcnow()
    db.session.add(AccessAuthorisation(
        entity_id=entity.id, code_hash=_digest(entity.id, code), created_at=now,
        requested_by_id=requested_by.id if requested_by else None,
        expires_at=now + timedelta(hours=current_app.config["ACCESS_CODE_TTL_HOURS"])))
    db.session.flush()
    return _shown(code)


def owner_access_code(actor: User, entity: Entity) -> str:
    """The owner makes a code in its console and gives it to the ISP it chose; shown once."""
    if actor.role != Role.ICP or entity.owner_id != actor.id or not permissions.can(actor, Action.FILING_LIST):
        raise NotFound()
    require_live(entity)
    code = _new_code(entity, None)
    audit.record("access_code.issued", object_type="entity", object_id=entity.id,
                 province_code=entity.province_code, actor=actor)
    return code


def _recent(*criteria: object) -> int:
    since = utcnow() - timedelta(hours=1)
    return db.session.scalar(select(func.count()).select_from(AccessAuthorisation).where(
        AccessAuthorisation.created_at >= since, *criteria)) or 0


def send_access_code(actor: User, entity: Entity) -> None:
    """An ISP asks the registry to send a code to the filing's responsible person, naming the ISP."""
    if actor.role != Role.ISP or not permissions.can(actor, Action.FILING_CHANGE):
        raise NotFound()
    require_live(entity)
    if (_recent(AccessAuthorisation.entity_id == entity.id) >= SENT_PER_ENTITY_PER_HOUR
            or _recent(AccessAuthorisation.requested_by_id == actor.id) >= SENT_PER_ISP_PER_HOUR):
        raise WorkflowError(_l("An authorisation code was sent to this filing's owner a short while ago; "
                               "try again in an hour."))
    code = _new_code(entity, actor)
    hours = current_app.config["ACCESS_CODE_TTL_HOURS"]
    text = (f"{actor.organisation or actor.username} 申请为您的备案（{entity.number}，{entity.unit_name}）"
            f"提供接入服务。如您同意，请将接入授权码 {code} 告知该接入商（{hours} 小时内有效，仅可使用一次）；"
            "如不同意，请忽略本消息。")
    if entity.responsible_mobile:
        notify.queue_sms(entity.responsible_mobile, text, sensitive=True)
    if entity.responsible_email:
        notify.queue_email(entity.responsible_email, "ICP备案接入授权码", text, sensitive=True)
    audit.record("access_code.sent", object_type="entity", object_id=entity.id,
                 province_code=entity.province_code, actor=actor)


def consume_access_code(actor: User, entity: Entity, code: str) -> None:
    """A valid code of this filing, unused, unexpired, and — if an ISP had it sent — sent for this ISP."""
    wanted = _normalised(code)
    if not wanted:
        raise WorkflowError(_l("Type the access authorisation code the filing's owner gave you."), "code")
    row = db.session.scalar(select(AccessAuthorisation).where(
        AccessAuthorisation.entity_id == entity.id, AccessAuthorisation.code_hash == _digest(entity.id, wanted),
        AccessAuthorisation.used_at.is_(None), AccessAuthorisation.expires_at > utcnow()).with_for_update())
    if row is None or row.requested_by_id not in (None, actor.id):
        raise WorkflowError(_l("The access authorisation code is wrong, used or expired."), "code")
    row.used_at, row.used_by_id = utcnow(), actor.id
