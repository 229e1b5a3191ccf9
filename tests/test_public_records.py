"""The public lookup's stored records (`public_records`, issue 15): written by the transaction that changes a filing,
whatever its path; gone with the filing; a code's new name carried into every record by the worker; checked and
written again from the command line. (Every test of the suite also ends by checking that every stored record is what
its filing says: tests/conftest.py.)"""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

import public_records
import workers
import workflow
from extensions import db
from models import CodeItem, CodeTable, Domain, Entity, PublicName, PublicRecord, PublicRecordRebuild, Website
from tests.filing_factories import filed_by_isp
from tests.helpers import user_named

PERSONAL = ("张三", "11010519491231002X", "13912345678", "@example.cn", "某路")


def _approved(users: dict[str, str], n: int) -> int:
    application = filed_by_isp(user_named(users["isp"]), n)
    workflow.approve(user_named(users["bureau"]), application)
    db.session.commit()
    return application.entity_id


def _stored(entity_id: int) -> dict | None:
    text = db.session.scalar(select(PublicRecord.record).where(PublicRecord.entity_id == entity_id))
    return json.loads(text) if text is not None else None


def _website(entity_id: int) -> Website:
    return db.session.scalars(select(Website).where(Website.entity_id == entity_id)).one()


def test_the_approval_writes_the_record_and_the_lookup_sends_it_as_stored(app, users, client) -> None:
    with app.app_context():
        entity_id = _approved(users, 1)
        text = db.session.scalar(select(PublicRecord.record).where(PublicRecord.entity_id == entity_id))
        entity = db.session.get(Entity, entity_id)
        number = entity.number
    record = json.loads(text)
    assert record["unit_name"] == "天津测试科技有限公司1" and record["entity_number"] == number
    assert record["websites"][0]["domains"] == ["www.site1.cn", "site1.cn"]
    assert not any(word in text for word in PERSONAL)  # nothing personal is stored, so none can be sent
    response = client.get("/api/v1/public/lookup?q=http://WWW.Site1.cn/")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"query": "http://WWW.Site1.cn/", "results": [record]}
    assert text in response.get_data(as_text=True)  # the stored text itself, not assembled again
    assert client.get(f"/api/v1/public/filings/{number}").get_json() == record


def test_a_website_edit_changes_the_record_only_once_approved(app, users) -> None:
    with app.app_context():
        entity_id = _approved(users, 2)
        isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
        application = workflow.propose_website_edit(isp, _website(entity_id), "新名称网站", "http://www.site2.cn/new",
                                                    "2")
        db.session.commit()
        assert _stored(entity_id)["websites"][0]["name"] == "site2网站"  # proposed, not approved
        workflow.approve(bureau, application)
        db.session.commit()
        site = _stored(entity_id)["websites"][0]
        assert (site["name"], site["home_url"]) == ("新名称网站", "http://www.site2.cn/new")


def test_new_domains_join_the_record_when_approved(app, users, client) -> None:
    with app.app_context():
        entity_id = _approved(users, 3)
        isp = user_named(users["isp"])
        application = workflow.propose_domains(isp, _website(entity_id), ["extra3.cn"])
        workflow.approve(user_named(users["bureau"]), application)
        db.session.commit()
        assert _stored(entity_id)["websites"][0]["domains"] == ["www.site3.cn", "site3.cn", "extra3.cn"]
    (found,) = client.get("/api/v1/public/lookup?q=extra3.cn").get_json()["results"]
    assert found["unit_name"] == "天津测试科技有限公司3"


def test_a_revoked_filing_has_no_record_and_is_not_found(app, users, client) -> None:
    with app.app_context():
        entity_id = _approved(users, 4)
        number = db.session.get(Entity, entity_id).number
        assert _stored(entity_id) is not None
        workflow.revoke_by_number(user_named(users["bureau"]), number, "违规")
        db.session.commit()
        assert _stored(entity_id) is None
    assert client.get("/api/v1/public/lookup?q=site4.cn").get_json()["results"] == []
    assert client.get(f"/api/v1/public/filings/{number}").status_code == 404


def test_a_change_rolled_back_writes_nothing_and_leaves_nothing_noted(app, users) -> None:
    with app.app_context():
        entity_id = _approved(users, 5)
        before = _stored(entity_id)
        _website(entity_id).name = "未提交的名称"
        db.session.flush()
        assert db.session.info.get("public_records.entities")
        db.session.rollback()
        assert not db.session.info.get("public_records.entities")
        assert _stored(entity_id) == before


def test_a_write_past_the_orm_is_written_when_touched(app, users) -> None:
    """The approval's set-based UPDATEs (and the demo's COPY) name their entities: without that, no record."""
    with app.app_context():
        entity_id = _approved(users, 6)
        db.session.execute(PublicRecord.__table__.delete())
        public_records.touch([entity_id])
        db.session.commit()
        assert _stored(entity_id)["unit_name"] == "天津测试科技有限公司6"


def _rename_unit_nature(name: str) -> None:
    db.session.scalars(select(CodeItem).where(CodeItem.table == CodeTable.UNIT_NATURE, CodeItem.code == "4")).one() \
        .name = name
    db.session.commit()


def _rebuild_from() -> int | None:
    return db.session.scalar(select(PublicRecordRebuild.next_entity_id))


def test_a_code_s_new_name_reaches_every_record_through_the_worker(app, users) -> None:
    with app.app_context():
        ids = [_approved(users, n) for n in (7, 8, 9)]
        old = _stored(ids[0])["unit_nature"]
        _rename_unit_nature("企业（新名称）")
        assert _rebuild_from() == 0 and _stored(ids[0])["unit_nature"] == old  # marked, left to the worker
        db.session.commit()
        step = next(step for step in workers.STEPS if step.name == "public_records")
        assert step.singleton and workers.run_step(step) == 3
        assert {_stored(i)["unit_nature"] for i in ids} == {"企业（新名称）"} and _rebuild_from() is None
        db.session.commit()
        assert workers.run_step(step) == 0  # nothing due


def test_a_new_name_during_a_rebuild_starts_it_over(app, users, monkeypatch) -> None:
    with app.app_context():
        ids = [_approved(users, n) for n in (10, 11, 12)]
        monkeypatch.setattr(public_records, "CHUNK", 1)
        _rename_unit_nature("第一次改名")
        assert public_records.rebuild_due(chunks=2) == 2 and _rebuild_from() == ids[1] + 1
        _rename_unit_nature("第二次改名")  # the first record was written with the first name: start over
        assert _rebuild_from() == 0
        public_records.rebuild_due(chunks=10)
        assert {_stored(i)["unit_nature"] for i in ids} == {"第二次改名"} and _rebuild_from() is None


def test_names_of_tables_no_record_shows_mark_nothing(app, users) -> None:
    with app.app_context():
        _approved(users, 13)
        item = db.session.scalars(select(CodeItem).where(CodeItem.table == CodeTable.ACCESS_METHOD)).first()
        item.name = "其他方式"
        db.session.commit()
        assert _rebuild_from() is None


@pytest.mark.parametrize("tamper", ["changed", "deleted", "extra", "name", "moved"])
def test_verify_names_what_differs_and_rebuild_mends_it(app, users, tamper, monkeypatch) -> None:
    monkeypatch.setattr(public_records, "CHUNK", 1)  # the rebuild's transactions one entity each
    runner = app.test_cli_runner()
    with app.app_context():
        entity_id, other = _approved(users, 14), _approved(users, 15)
        table = PublicRecord.__table__
        if tamper == "changed":
            db.session.execute(table.update().where(table.c.entity_id == entity_id).values(record="{}"))
        elif tamper == "deleted":
            db.session.execute(table.delete().where(table.c.entity_id == entity_id))
        elif tamper == "name":  # the record as it should be, but not found by one of its domains
            db.session.execute(PublicName.__table__.delete().where(PublicName.name == "site14.cn"))
        elif tamper == "moved":  # one of its domains held by another record: rewriting this one takes it back
            db.session.execute(PublicName.__table__.update().where(PublicName.name == "site14.cn")
                               .values(entity_id=other))
        else:  # a record for a filing that has none: a draft
            draft = filed_by_isp(user_named(users["isp"]), 16).entity_id
            db.session.commit()  # (its commit writes the draft's record, i.e. none)
            db.session.execute(table.insert().values(entity_id=draft, unit_name="x", record="{}"))
            entity_id = draft
        db.session.commit()
    result = runner.invoke(args=["public-records", "verify"])
    named = result.output.split("first ids [", 1)[1].split("]", 1)[0].split(", ")
    assert result.exit_code == 1 and str(entity_id) in named
    result = runner.invoke(args=["public-records", "rebuild"])
    assert result.exit_code == 0 and "public records written again" in result.output
    assert runner.invoke(args=["public-records", "verify"]).exit_code == 0
    with app.app_context():
        assert _stored(other)["unit_name"] == "天津测试科技有限公司15"


def test_two_transactions_changing_one_filing_write_its_record_one_after_the_other(app, users) -> None:
    """A renames the website and has written the record, not yet committed; B takes a domain off the same filing. B's
    record must be read after A commits — else it lacks A's name (or collides with A's row on PostgreSQL)."""
    with app.app_context():
        entity_id = _approved(users, 20)
        _website(entity_id).name = "甲改的名称"
        db.session.flush()
        public_records.refresh(db.session.connection(), [entity_id])
        done, failed = threading.Event(), []

        def other_transaction() -> None:
            with app.app_context():
                try:
                    db.session.scalars(select(Domain).where(Domain.name == "site20.cn")).one().live = False
                    db.session.commit()
                except Exception as error:  # reported by the assertion below
                    failed.append(error)
                done.set()

        thread = threading.Thread(target=other_transaction)
        thread.start()
        assert not done.wait(0.5)  # B waits for A
        db.session.commit()
        thread.join(20)
        assert not failed
        site = _stored(entity_id)["websites"][0]
        assert (site["name"], site["domains"]) == ("甲改的名称", ["www.site20.cn"])


def test_a_code_value_added_marks_nothing(app, users) -> None:
    """A new value is named by no filing yet (its code was not valid before): no rebuild of every record."""
    with app.app_context():
        _approved(users, 21)
        db.session.add(CodeItem(table=CodeTable.UNIT_NATURE, code="99", name="新增的性质", sort_order=99))
        db.session.commit()
        assert _rebuild_from() is None
