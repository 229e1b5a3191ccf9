"""4 processes approving 250 applications each at the same time: 1,000 distinct numbers, no failure."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sqlalchemy import select

import workflow
from app import create_app
from extensions import db
from models import Application, ApplicationState, Entity
from tests.conftest import _config
from tests.filing_factories import filed_by_isp
from tests.helpers import YY, user_named

WORKERS, EACH = 4, 250


def _approve_slice(tmp: str, url: str, ids: list[int], bureau: str, queue) -> None:
    app = create_app(_config(Path(tmp), url) | {"SQLITE_BUSY_TIMEOUT_MS": 60000})
    failures = 0
    with app.app_context():
        for application_id in ids:
            try:
                workflow.approve(user_named(bureau), db.session.get(Application, application_id))
                db.session.commit()
            except Exception:  # counted: the test demands none
                db.session.rollback()
                failures += 1
    queue.put(failures)


def test_parallel_auditors_never_share_a_number(app, users, database_url, tmp_path) -> None:
    with app.app_context():
        isp = user_named(users["isp"])
        ids = [filed_by_isp(isp, 1000 + n).id for n in range(WORKERS * EACH)]
        db.session.commit()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_approve_slice, args=(str(tmp_path), database_url,
                                                            ids[i::WORKERS], users["bureau"], queue))
               for i in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    failures = sum(queue.get(timeout=10) for _ in workers)
    with app.app_context():
        numbers = list(db.session.scalars(select(Entity.number).where(Entity.number.is_not(None))))
        approved = db.session.query(Application).filter_by(state=ApplicationState.APPROVED).count()
    assert failures == 0
    assert approved == len(numbers) == len(set(numbers)) == WORKERS * EACH
    assert sorted(numbers) == [f"津ICP备{YY}{n:06d}号" for n in range(1, WORKERS * EACH + 1)]
