"""The electronic certificate of a filing (SPEC §6): its public content, signed; the previous one superseded."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update

import certificates
from extensions import db
from models import Certificate, CertificateStatus, Entity, FilingStatus, Province, utcnow


def certificate_payload(entity: Entity, certificate_id: str, issued: datetime) -> dict[str, object]:
    province = db.session.get(Province, entity.province_code)
    return {
        "certificate_id": certificate_id,
        "kind": "licence" if entity.commercial else "filing",
        "entity_number": entity.number,
        "licence_number": entity.licence_number,
        "unit_name": entity.unit_name,
        "province": province.name,
        "websites": [{"number": w.number, "name": w.name, "domains": [d.name for d in w.domains],
                      "home_url": w.home_url} for w in entity.websites if w.status == FilingStatus.ACTIVE],
        "issuer": f"{province.name}通信管理局",
        "issued_at": issued.strftime("%Y-%m-%d"),
    }


def issue_certificates(entities: list[Entity]) -> dict[int, tuple[str, str]]:
    """A new bazs.cert per entity (the previous ones become superseded); entity id → (id, token)."""
    if not entities:
        return {}
    ring = certificates.keyring()
    ids = [entity.id for entity in entities]
    for start in range(0, len(ids), 1000):
        db.session.execute(update(Certificate).where(
            Certificate.entity_id.in_(ids[start:start + 1000]), Certificate.status == CertificateStatus.CURRENT,
        ).values(status=CertificateStatus.SUPERSEDED))
    issued, rows, tokens = utcnow(), [], {}
    for entity in entities:
        certificate_id = str(uuid.uuid4())
        kid, token = ring.signed(certificate_payload(entity, certificate_id, issued))  # a rotation may land mid-batch
        rows.append({"id": certificate_id, "entity_id": entity.id, "kid": kid, "token": token,
                     "status": CertificateStatus.CURRENT, "issued_at": issued})
        tokens[entity.id] = (certificate_id, token)
    db.session.execute(Certificate.__table__.insert(), rows)
    return tokens
