"""seed-demo (demo.py, bulkcopy.py): the rows it writes — by COPY from worker processes on PostgreSQL, by Core
inserts on SQLite — are ones the registry itself would accept and act on."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

import bulkcopy
import certificates
import demo
import workflow
from certificates import jws
from extensions import db
from models import (
    Application,
    ApplicationKind,
    ApplicationState,
    Certificate,
    Domain,
    Entity,
    NumberCounter,
    PreapprovalItem,
    User,
    Website,
)
from tests.helpers import TIANJIN

PASSWORD = "Demo-pass-2026"


def _workers() -> int:
    """Two writer processes where the seed uses them (PostgreSQL), so that the test covers them."""
    return 2 if db.engine.dialect.name == "postgresql" else 1


def test_seeded_filings_are_valid_rows(app, client) -> None:
    """Are 2,000 seeded filings unique where the registry says so, signed, counted and found by the lookup?"""
    with app.app_context():
        summary = demo.seed(2000, PASSWORD, workers=_workers())
        assert db.session.scalar(select(func.count()).select_from(Entity)) == 2000
        assert db.session.scalar(select(func.count()).select_from(Website)) == 2000
        assert db.session.scalar(select(func.count()).select_from(Domain)) == 4000
        numbers = list(db.session.scalars(select(Entity.number).where(Entity.number.is_not(None))))
        assert len(numbers) == len(set(numbers)) > 1000  # ~70 % approved, each its own number
        counters = dict(db.session.execute(select(NumberCounter.province_code, NumberCounter.last)
                                           .where(NumberCounter.kind == "filing")).all())
        per_province = Counter(db.session.scalars(select(Entity.province_code).where(Entity.number.is_not(None))))
        assert counters == dict(per_province)  # the counters continue after the last number given
        jwks = certificates.keyring().jwks()
        tokens = list(db.session.scalars(select(Certificate.token)))
        assert len(tokens) == len(numbers)
        assert {jws.verify(token, jwks)["entity_number"] for token in tokens} == set(numbers)
        assert summary["domain_reports"] == 2000 * 98 // 100
        filed = db.session.scalar(select(Entity).where(Entity.number.is_not(None)).order_by(Entity.id.desc()))
        domain = f"demo{filed.id}.cn"
    response = client.get(f"/api/v1/public/lookup?q={domain}")
    assert response.status_code == 200 and filed.number in response.get_data(as_text=True)


def test_a_second_seed_continues_ids_and_numbers(app) -> None:
    """Does a second run add to the first (no number, id or credit code twice)?"""
    with app.app_context():
        demo.seed(300, PASSWORD, workers=_workers())
        demo.seed(300, PASSWORD, workers=_workers())
        assert db.session.scalar(select(func.count(func.distinct(Entity.certificate_number)))) == 600
        numbers = list(db.session.scalars(select(Entity.number).where(Entity.number.is_not(None))))
        assert len(numbers) == len(set(numbers))
        assert db.session.scalar(select(func.count(func.distinct(Domain.name)))) == 1200


def test_the_workflow_approves_a_seeded_application(app) -> None:
    """Can 天津's bureau approve an application seed-demo queued, with the next number and a certificate?"""
    with app.app_context():
        demo.seed(60, PASSWORD, ApplicationState.BUREAU_REVIEW, TIANJIN, workers=_workers())
        without_preapproval = select(Website.entity_id).join(PreapprovalItem)
        application = db.session.scalar(select(Application).where(
            Application.state == ApplicationState.BUREAU_REVIEW, Application.entity_id.not_in(without_preapproval))
            .order_by(Application.id))
        assert application.kind == ApplicationKind.NEW_FILING
        bureau = db.session.scalar(select(User).where(User.username == "demo_bureau_12"))
        workflow.approve(bureau, application)
        db.session.commit()
        entity = db.session.get(Entity, application.entity_id)
        assert application.state == ApplicationState.APPROVED and entity.number.endswith("000001号")
        token = db.session.scalar(select(Certificate.token).where(Certificate.entity_id == entity.id))
        assert jws.verify(token, certificates.keyring().jwks())["entity_number"] == entity.number


@pytest.mark.parametrize("rows", [[], [{"entity_id": None}]])
def test_insert_rows_fills_the_python_side_defaults(app, rows) -> None:
    """Does a COPY (or Core insert) leave no column with a Python-side default empty?"""
    with app.app_context():
        demo.seed(1, PASSWORD, ApplicationState.APPROVED, TIANJIN, workers=1)  # no open application left
        entity_id = db.session.scalar(select(Entity.id))
        rows = [{**row, "entity_id": entity_id, "province_code": TIANJIN, "kind": ApplicationKind.CHANGE}
                for row in rows]
        bulkcopy.insert_rows(Application.__table__, rows)
        db.session.commit()
        added = db.session.scalars(select(Application).where(Application.kind == ApplicationKind.CHANGE)).all()
        assert len(added) == len(rows)
        assert all(a.state == ApplicationState.DRAFT and a.proposal == "{}" and a.reasons == "{}" for a in added)
