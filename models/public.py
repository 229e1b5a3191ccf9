"""The public record of each filing in force (`public_records`): what the public lookup answers, stored as the JSON
it sends, so that a lookup is a few index probes and no assembly (issue 15: the lookup at 5,000,000 websites)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import BigId


class PublicRecord(db.Model):
    """备案公共信息 of one entity in force: the lookup's answer for it (`public_records.render`), written in the
    transaction that changes the filing. No row for an entity with nothing public (a draft, an ended filing)."""

    __tablename__ = "public_records"

    entity_id: Mapped[int] = mapped_column(BigId, ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True)
    #: the results' order (unit name, then entity), read without parsing the record
    unit_name: Mapped[str] = mapped_column(String(128))
    record: Mapped[str] = mapped_column(Text)


class PublicName(db.Model):
    """A domain of a public record (a live domain of a website in force): the lookup by domain is one probe here and
    one in `public_records`, instead of domains, websites and their filters."""

    __tablename__ = "public_names"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    entity_id: Mapped[int] = mapped_column(BigId, ForeignKey("public_records.entity_id", ondelete="CASCADE"),
                                           index=True)


class PublicRecordRebuild(db.Model):
    """One row: the entity id from which the worker still has to write the records again (a code table's name
    changed: every record naming it); NULL when none is due."""

    __tablename__ = "public_record_rebuild"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_entity_id: Mapped[int | None] = mapped_column(BigInteger)
