"""The dashboards' statistics, computed by the worker (`dashboard_statistics`) and read by the console: one row
per scope, so that a manager's page reads one row instead of counting a province, or the nation, per request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db


class DashboardStatistics(db.Model):
    """A scope's figures (`dashboard_statistics.Figures` as JSON) and when they were computed."""

    __tablename__ = "dashboard_statistics"

    #: a province's code, or "nation"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime)
    payload: Mapped[str] = mapped_column(Text)
