"""备案公共信息 stored per filing (`models.PublicRecord`): what the public lookup answers for an entity, kept as the
JSON it sends (issue 15 — at 5,000,000 websites on PostgreSQL, assembling the answer from five tables on every
lookup cost the worker and the server more than everything else a request does).

The records are kept in step with the filings by the session, whatever the code path:

- every flush that adds, changes or deletes an entity, a website, a domain or a pre-approval item notes the entity
  (`_note_changes`); the transaction writes those entities' records again just before it commits
  (`_write_noted`), so a record is never seen out of step with its filing;
- a write that bypasses the ORM (the approval's set-based UPDATEs, the demo's COPY) names its entities (`touch`);
- a new name of a unit nature or a pre-approval category changes records of many filings: the commit only marks a
  rebuild (`models.PublicRecordRebuild`), which the worker's `public_records` step carries out in short
  transactions (`rebuild_due`); `flask public-records rebuild` does it at once, `… verify` compares every record
  with the filings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

from sqlalchemy import ARRAY, and_, any_, delete, event, insert, inspect, literal, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

import leases
from extensions import db
from models import (
    CodeItem,
    CodeTable,
    Domain,
    Entity,
    FilingStatus,
    PreapprovalItem,
    PublicName,
    PublicRecord,
    PublicRecordRebuild,
    Website,
)
from rawsql import copy_rows

#: the code tables whose names a record carries
NAMED_CODE_TABLES = (CodeTable.UNIT_NATURE, CodeTable.PREAPPROVAL_CATEGORY)
CHUNK = 1000  # entities per statement (bound parameters: SQLite takes 32,766)
REBUILD_ROW = 1
_ENTITIES, _WEBSITES, _REBUILD = "public_records.entities", "public_records.websites", "public_records.rebuild"


def _batched(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --- the record of an entity ------------------------------------------------------------------------------

def _code_name(table: CodeTable, code: Any) -> Any:
    """The name of a code-table value, as a correlated scalar (served by the table's unique index)."""
    return select(CodeItem.name).where(CodeItem.table == table, CodeItem.code == code).scalar_subquery()


def _records_statement(of_entities: Any) -> Any:
    """A row per (website, domain) and per (website, pre-approval item) of the entities in force, each carrying
    its entity's and website's public columns."""
    website = (select(Entity.id, Entity.unit_name, _code_name(CodeTable.UNIT_NATURE, Entity.unit_nature),
                      Entity.number, Entity.licence_number, Entity.approved_at,
                      Website.id, Website.number, Website.name, Website.home_url)
               .join(Website, Website.entity_id == Entity.id)
               .where(of_entities, Entity.status == FilingStatus.ACTIVE,
                      Website.status == FilingStatus.ACTIVE))
    return union_all(
        website.add_columns(literal("domain"), Domain.name, Domain.id).join(
            Domain, and_(Domain.website_id == Website.id, Domain.live)),
        website.add_columns(literal("preapproval"), _code_name(CodeTable.PREAPPROVAL_CATEGORY,
                                                               PreapprovalItem.category), PreapprovalItem.id)
        .join(PreapprovalItem, PreapprovalItem.website_id == Website.id))


def _among(connection: Connection, column: Any, ids: list[Any]) -> Any:
    """`column IN ids` — on PostgreSQL `= ANY` of one array parameter: a thousand placeholders cost the driver more
    to convert than the statement cost the server."""
    if connection.dialect.name == "postgresql":
        return column == any_(literal(ids, ARRAY(column.type)))
    return column.in_(ids)


def _insert(connection: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert these rows (same keys) in the connection's transaction: a COPY on PostgreSQL."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        columns = list(rows[0])
        copy_rows(connection, table, columns, ([row[column] for column in columns] for row in rows))
    else:
        connection.execute(insert(table), rows)


def _fold(rows: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """The rows of the records statement as one object per entity: websites and domains in the order filed, the
    pre-approval categories sorted. Only public data: unit name and nature, numbers, websites, domains, home URLs,
    approval date, pre-approval categories — never a phone number, ID number, e-mail or address."""
    records: dict[int, dict[str, Any]] = {}
    websites: dict[int, dict[str, Any]] = {}
    for (entity_id, unit, nature, number, licence, approved, website_id, w_number, w_name, home_url,
         kind, value, _id) in sorted(rows, key=lambda row: (row[0], row[6], row[10], row[12])):
        record = records.setdefault(entity_id, {
            "unit_name": unit, "unit_nature": nature or "", "entity_number": number, "licence_number": licence,
            "approved_at": str(approved)[:10] if approved else None, "websites": []})  # SQLite gives text
        if website_id not in websites:
            websites[website_id] = {"number": w_number, "name": w_name, "domains": [], "home_url": home_url,
                                    "preapproval_categories": set()}
            record["websites"].append(websites[website_id])
        if kind == "domain":
            websites[website_id]["domains"].append(value)
        else:
            websites[website_id]["preapproval_categories"].add(value or "")
    for site in websites.values():
        site["preapproval_categories"] = sorted(site["preapproval_categories"])
    return records


def render(record: dict[str, Any]) -> str:
    """The record as stored and sent: JSON, keys sorted (as Flask's `jsonify`), UTF-8 text as it is."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def computed(connection: Connection, entity_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The public records of these entities as the filings say now (none for an entity with nothing public)."""
    if not entity_ids:
        return {}
    return _fold(connection.execute(_records_statement(_among(connection, Entity.id, entity_ids))).all())


def refresh(connection: Connection, entity_ids: Iterable[int]) -> None:
    """Write the records (and their domains) of these entities again from their filings, in the connection's
    transaction: every old one removed before any new one is written (a domain may pass from one to another).

    The entities' rows are locked first (in id order; FOR NO KEY UPDATE on PostgreSQL, SQLite has one writer): two
    transactions changing one filing at once write its record one after the other, the second reading its filing
    after the first committed — else each would write a record missing the other's change (or the second's insert
    would collide with the first's)."""
    chunks = list(_batched(sorted(set(entity_ids))))
    for ids in chunks:
        connection.execute(select(Entity.id).where(_among(connection, Entity.id, ids)).order_by(Entity.id)
                           .with_for_update(key_share=True))
    for ids in chunks:
        connection.execute(delete(PublicName).where(_among(connection, PublicName.entity_id, ids)))
        connection.execute(delete(PublicRecord).where(_among(connection, PublicRecord.entity_id, ids)))
    for ids in chunks:
        records = computed(connection, ids)
        _insert(connection, PublicRecord.__table__, [
            {"entity_id": entity_id, "unit_name": record["unit_name"], "record": render(record)}
            for entity_id, record in records.items()])
        names = {name: entity_id for entity_id, record in records.items() for name in _names(record)}
        for taken in _batched(names):  # held by a record out of step (a repair): the filings say whose it is
            connection.execute(delete(PublicName).where(_among(connection, PublicName.name, taken)))
        _insert(connection, PublicName.__table__, [{"name": name, "entity_id": entity_id}
                                                   for name, entity_id in names.items()])


def _names(record: dict[str, Any]) -> set[str]:
    return {name for website in record["websites"] for name in website["domains"]}


def _entity_ids_from(connection: Connection, first: int, count: int) -> list[int]:
    return list(connection.scalars(select(Entity.id).where(Entity.id >= first).order_by(Entity.id).limit(count)))


def rebuild(connection: Connection) -> int:
    """Write every record again, in the connection's transaction (the migration that adds the tables); how many
    entities were read."""
    done, first = 0, 0
    while ids := _entity_ids_from(connection, first, CHUNK):
        refresh(connection, ids)
        done, first = done + len(ids), ids[-1] + 1
    return done


def differences(connection: Connection) -> list[int]:
    """The entities whose stored record, or the domains it is found by, are not what their filings say now
    (missing, extra or different)."""
    wrong: list[int] = []
    first = 0
    while ids := _entity_ids_from(connection, first, CHUNK):
        stored = dict(connection.execute(select(PublicRecord.entity_id, PublicRecord.record)
                                         .where(_among(connection, PublicRecord.entity_id, ids))).all())
        names: dict[int, set[str]] = {}
        for name, entity_id in connection.execute(select(PublicName.name, PublicName.entity_id)
                                                  .where(_among(connection, PublicName.entity_id, ids))):
            names.setdefault(entity_id, set()).add(name)
        expected = computed(connection, ids)
        wrong += [entity_id for entity_id in ids
                  if stored.get(entity_id) != (render(expected[entity_id]) if entity_id in expected else None)
                  or names.get(entity_id, set()) != (_names(expected[entity_id]) if entity_id in expected else set())]
        first = ids[-1] + 1
    return wrong


# --- kept in step by the session ------------------------------------------------------------------------------

def touch(entity_ids: Iterable[int], session: Session | None = None) -> None:
    """These entities' records are to be written again when the transaction commits (for writes that bypass the
    ORM: set-based UPDATEs, COPY)."""
    (session or db.session()).info.setdefault(_ENTITIES, set()).update(entity_ids)


def _names_changed(session: Session) -> bool:
    """Whether this flush gave a value of a code table the records name a new name, or removed one (a value added
    is named by no filing yet: its code was not valid before)."""
    return any(isinstance(item, CodeItem) and item.table in NAMED_CODE_TABLES
               and (item in session.deleted or inspect(item).attrs.name.history.has_changes())
               for item in chain(session.dirty, session.deleted))


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    """Note the entities whose public data this flush may have changed (the flush's objects keep their state
    and history until the flush ends)."""
    entities, websites = set(), set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Entity):
            entities.add(obj.id)
        elif isinstance(obj, (Website, PreapprovalItem)):
            entities.add(obj.entity_id)
        elif isinstance(obj, Domain):
            websites.add(obj.website_id)
    if _names_changed(session):
        session.info[_REBUILD] = True
    if entities:
        session.info.setdefault(_ENTITIES, set()).update(entities)
    if websites:
        session.info.setdefault(_WEBSITES, set()).update(websites)


@event.listens_for(Session, "before_commit")
def _write_noted(session: Session) -> None:
    """Write the noted entities' records in the committing transaction (a savepoint's release included)."""
    session.flush()
    entities, websites = session.info.pop(_ENTITIES, set()), session.info.pop(_WEBSITES, set())
    rebuild_marked = session.info.pop(_REBUILD, False)
    if not (entities or websites or rebuild_marked):
        return
    connection = session.connection()
    for chunk in _batched(sorted(websites)):
        entities.update(connection.scalars(select(Website.entity_id).where(_among(connection, Website.id, chunk))))
    refresh(connection, entities)
    if rebuild_marked:
        mark_rebuild(connection)


@event.listens_for(Session, "after_transaction_end")
def _forget_noted(session: Session, transaction: Any) -> None:
    """A transaction rolled back leaves nothing to write (a savepoint's noted entities stay: writing a record
    again from its filing is never wrong)."""
    if transaction.parent is None:
        for key in (_ENTITIES, _WEBSITES, _REBUILD):
            session.info.pop(key, None)


# --- the rebuild after a code's new name --------------------------------------------------------------------------

def mark_rebuild(connection: Connection) -> None:
    """Every record is to be written again, from the first entity (a rebuild under way starts over); nothing to
    do while no record exists."""
    if connection.scalar(select(PublicRecord.entity_id).limit(1)) is not None:
        _rebuild_from(connection, 0)


def _rebuild_from(connection: Connection, first: int) -> None:
    if not connection.execute(update(PublicRecordRebuild).where(PublicRecordRebuild.id == REBUILD_ROW)
                              .values(next_entity_id=first)).rowcount:
        connection.execute(insert(PublicRecordRebuild).values(id=REBUILD_ROW, next_entity_id=first))


def rebuild_all() -> int:
    """Every record written again now (`flask public-records rebuild`): a rebuild marked from the first entity and
    carried out as the worker does, one transaction per CHUNK entities. How many entities were read."""
    _rebuild_from(db.session.connection(), 0)
    db.session.commit()
    done = 0
    while count := rebuild_due():
        done += count
    return done


def rebuild_due(chunks: int = 50) -> int:
    """The worker's step: up to `chunks` × CHUNK entities of a marked rebuild, one transaction per chunk; how many
    entities were written. A rebuild marked again meanwhile starts over: the position is advanced only if it is
    still the one this transaction read."""
    done = 0
    for _ in range(chunks):
        leases.fence()  # still this worker's step, or nothing written
        connection = db.session.connection()
        first = connection.scalar(select(PublicRecordRebuild.next_entity_id)
                                  .where(PublicRecordRebuild.id == REBUILD_ROW).with_for_update())
        if first is None:
            break
        ids = _entity_ids_from(connection, first, CHUNK)
        refresh(connection, ids)
        connection.execute(update(PublicRecordRebuild).where(PublicRecordRebuild.id == REBUILD_ROW,
                                                             PublicRecordRebuild.next_entity_id == first)
                           .values(next_entity_id=ids[-1] + 1 if len(ids) == CHUNK else None))
        db.session.commit()
        done += len(ids)
    db.session.commit()
    return done
