"""The workers' shared state: one lease per singleton step (`workers.py`), so N workers on N nodes run each
such step in one of them at a time, and another takes it over when the holder dies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import utcnow


class WorkerLease(db.Model):
    """A step's lease: held by `holder` (host:pid) until `lease_until`, renewed while the step runs."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    lease_until: Mapped[datetime] = mapped_column(DateTime)
    #: when the holder last claimed or renewed it: a stuck step shows as an old heartbeat
    heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
