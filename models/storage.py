"""Files kept in the database (issue 15, `FILE_STORAGE = "database"`): a header row per file and its content in
chunks of at most 1 MiB, so that a 60 MB import never sits in one row, nor in memory at once. `storage.py` writes
and reads them; nothing else does."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import BigId, utcnow


class StoredFile(db.Model):
    """One file by its key ("attachments/<hex>", "imports/<hex>"); written in the same transaction as its chunks,
    so a file is visible whole or not at all."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class StoredFileChunk(db.Model):
    """The `seq`-th piece (from 0) of a file's content: PostgreSQL bytea, SQLite blob."""

    __tablename__ = "stored_file_chunks"

    file_id: Mapped[int] = mapped_column(BigId, ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
