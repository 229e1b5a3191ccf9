"""The managers' statistics (issue 12): per province and for the nation, computed by the worker's `statistics`
step every DASHBOARD_STATISTICS_SECONDS and stored one row per scope (`dashboard_statistics`).

Counting a scope takes seconds at 5,000,000 websites (the nation's 7 s, 天津's 1.2 s on PostgreSQL), so no request
should wait for it: the dashboard reads its scope's row. The worker counts every province at once (each query grouped by
province: the cost of counting the nation) and adds them up for the nation (`Figures.__add__`): every figure is
a count, the average comes from summed hours, the 90th percentile from merged hour histograms, the chart from
per-day counts. Without a row, or with one left old by a stopped worker, the request computes its
scope and stores it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Integer, and_, cast, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

import deadlines
from extensions import begin_write, db, write_intent
from models import (
    Application,
    ApplicationState,
    DashboardStatistics,
    Entity,
    FilingStatus,
    Province,
    Role,
    User,
    utcnow,
)

NATION = "nation"
WINDOW_DAYS = 90  # processing times and the chart look back this far
CHART_WIDTH, CHART_HEIGHT = 720, 160
#: a row older than this many intervals was left by a stopped worker: the request recomputes it
STALE_INTERVALS = 2


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Chart:
    """Applications submitted per Beijing day, drawn as SVG bars by the template (no script, no style)."""

    bars: list[Bar]
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    bar_width: float = CHART_WIDTH / WINDOW_DAYS


@dataclass(frozen=True)
class Statistics:
    at: datetime  # when they were computed (stored time, UTC)
    in_force: int
    isp_review: int
    bureau_review: int
    overdue: int
    due_soon: int
    approved_week: int
    approved_month: int
    decided: int  # decisions (approved or rejected) in the window
    average_days: float | None
    p90_days: float | None
    chart: Chart


@dataclass(frozen=True)
class Figures:
    """A scope's statistics in a form that adds up across provinces (what is stored, as JSON)."""

    in_force: int
    isp_review: int
    bureau_review: int
    overdue: int
    due_soon: int
    approved_week: int
    approved_month: int
    #: processing times of the window's decisions: [whole hours, decisions, their hours summed], by whole hours
    hours: list[list[Any]]
    #: submissions per Beijing day (ISO date) over the window; days without any are left out
    per_day: dict[str, int]

    def __add__(self, other: Figures) -> Figures:
        counts = {name: getattr(self, name) + getattr(other, name) for name in _COUNTS}
        histogram: dict[int, list[Any]] = {}
        for whole_hours, decisions, summed in self.hours + other.hours:
            bucket = histogram.setdefault(whole_hours, [whole_hours, 0, 0.0])
            bucket[1] += decisions
            bucket[2] += summed
        return Figures(**counts, hours=sorted(histogram.values()),
                       per_day=dict(Counter(self.per_day) + Counter(other.per_day)))


_COUNTS = ("in_force", "isp_review", "bureau_review", "overdue", "due_soon", "approved_week", "approved_month")


# --- counting a scope ---------------------------------------------------------------------------------------

def scope_of(user: User) -> str:
    """The nation for MIIT, the province for a bureau."""
    return NATION if user.role == Role.MIIT else user.province_code


def _provinces(scope: str) -> list[str]:
    """A province, or every province for the nation: an explicit list, so that each query seeks the
    (province_code, …) indexes instead of scanning them."""
    if scope != NATION:
        return [scope]
    return list(db.session.scalars(select(Province.code).order_by(Province.code)))


def _day_start(day: date) -> datetime:
    """Midnight starting a Beijing day, as a stored (naive UTC) time."""
    return deadlines.end_of_day(day - timedelta(days=1))


def _sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def _hours(start: ColumnElement[datetime], end: ColumnElement[datetime]) -> tuple[ColumnElement, ColumnElement]:
    """The hours from start to end, and the whole hours (a histogram bucket), in the database's dialect."""
    if _sqlite():
        hours = (func.julianday(end) - func.julianday(start)) * 24.0
        return hours, cast(hours, Integer)
    hours = func.extract("epoch", end - start) / 3600.0
    return hours, cast(func.floor(hours), Integer)


def _by_province(province: ColumnElement[str], *criteria: object) -> dict[str, int]:
    """The rows matching, counted per province: one grouped query."""
    return dict(db.session.execute(select(province, func.count()).where(*criteria).group_by(province)).all())


def _processing_hours(in_scope: ColumnElement[bool], since: datetime) -> dict[str, list[list[Any]]]:
    """Per province, the decisions since `since` as a histogram of whole hours from submission to decision."""
    hours, bucket = _hours(Application.submitted_at, Application.decided_at)
    histograms: dict[str, list[list[Any]]] = {}
    for province, whole, count, summed in db.session.execute(
            select(Application.province_code, bucket, func.count(), func.sum(hours)).where(
                in_scope, Application.state.in_((ApplicationState.APPROVED, ApplicationState.REJECTED)),
                Application.decided_at >= since, Application.submitted_at.is_not(None))
            .group_by(Application.province_code, bucket)):
        histograms.setdefault(province, []).append([int(whole), int(count), float(summed)])
    return {province: sorted(histogram) for province, histogram in histograms.items()}


def _submitted_per_day(in_scope: ColumnElement[bool], today: date) -> dict[str, dict[str, int]]:
    """Per province, the applications submitted per Beijing day over the last WINDOW_DAYS days (today included)."""
    first = today - timedelta(days=WINDOW_DAYS - 1)
    day = func.date(Application.submitted_at, "+8 hours") if _sqlite() \
        else func.date(Application.submitted_at + text("interval '8 hours'"))
    per_day: dict[str, dict[str, int]] = {}
    for province, submitted_on, count in db.session.execute(
            select(Application.province_code, day, func.count()).where(
                in_scope, Application.submitted_at >= _day_start(first)).group_by(Application.province_code, day)):
        per_day.setdefault(province, {})[str(submitted_on)] = count
    return per_day


def figures_by_province(provinces: list[str], now: datetime) -> dict[str, Figures]:
    """What a manager asks (issue 12) about each of these provinces: the filings in force, the queues, the
    deadlines, the throughput and the processing times. Every figure is one query grouped by province, so that
    all the provinces cost what the nation costs counted at once."""
    today = deadlines.beijing_date(now)
    province, in_scope = Application.province_code, Application.province_code.in_(provinces)
    in_bureau = and_(in_scope, Application.state == ApplicationState.BUREAU_REVIEW)
    approved = and_(in_scope, Application.state == ApplicationState.APPROVED)
    counts = {
        "in_force": _by_province(Entity.province_code, Entity.province_code.in_(provinces),
                                 Entity.status == FilingStatus.ACTIVE),
        "isp_review": _by_province(province, in_scope, Application.state == ApplicationState.ISP_REVIEW),
        "bureau_review": _by_province(province, in_bureau),
        "overdue": _by_province(province, in_bureau, Application.due_at < now),
        "due_soon": _by_province(province, in_bureau, Application.due_at >= now,
                                 Application.due_at <= deadlines.due_soon_until(today)),
        "approved_week": _by_province(province, approved, Application.decided_at >= _day_start(
            today - timedelta(days=today.weekday()))),
        "approved_month": _by_province(province, approved,
                                       Application.decided_at >= _day_start(today.replace(day=1))),
    }
    hours = _processing_hours(in_scope, now - timedelta(days=WINDOW_DAYS))
    per_day = _submitted_per_day(in_scope, today)
    return {code: Figures(**{name: found.get(code, 0) for name, found in counts.items()},
                          hours=hours.get(code, []), per_day=per_day.get(code, {})) for code in provinces}


def _summed(by_province: dict[str, Figures]) -> Figures:
    return reduce(Figures.__add__, by_province.values())


def figures_for(scope: str, now: datetime) -> Figures:
    """A province's figures, or the nation's: the sum of its provinces'."""
    return _summed(figures_by_province(_provinces(scope), now))


def _counted_then_writing(scope: str, now: datetime) -> dict[str, Figures]:
    """The scope's provinces counted in a reading transaction, ended before the caller stores: on SQLite the
    seconds of counting hold no write lock (`extensions.write_intent`), only the short store does."""
    with write_intent(False):
        counted = figures_by_province(_provinces(scope), now)
    begin_write()
    return counted


# --- figures → what the page shows ------------------------------------------------------------------------

def _percentile_hours(hours: list[list[Any]], total: int, share: float) -> int:
    """The nearest-rank percentile of a histogram of whole hours, rounded up to the next whole hour."""
    rank, seen = math.ceil(share * total), 0
    for whole_hours, count, _summed in hours:
        seen += count
        if seen >= rank:
            return whole_hours + 1
    raise AssertionError("the counts add up to the total")


def _chart(per_day: dict[str, int], today: date) -> Chart:
    days = [today - timedelta(days=WINDOW_DAYS - 1 - i) for i in range(WINDOW_DAYS)]
    counts = [per_day.get(str(d), 0) for d in days]
    peak = max([*counts, 1])
    bar_width = CHART_WIDTH / WINDOW_DAYS
    heights = [CHART_HEIGHT * count / peak for count in counts]
    return Chart(bars=[Bar(d, count, i * bar_width, CHART_HEIGHT - h, h)
                       for i, (d, count, h) in enumerate(zip(days, counts, heights, strict=True))], peak=peak)


def statistics_from(figures: Figures, at: datetime) -> Statistics:
    """The page's statistics: the average (days) from the summed hours, the 90th percentile from the histogram."""
    decided = sum(count for _w, count, _s in figures.hours)
    average = sum(summed for _w, _c, summed in figures.hours) / decided / 24 if decided else None
    p90 = _percentile_hours(figures.hours, decided, 0.9) / 24 if decided else None
    return Statistics(at=at, **{name: getattr(figures, name) for name in _COUNTS}, decided=decided,
                      average_days=average, p90_days=p90,
                      chart=_chart(figures.per_day, deadlines.beijing_date(at)))


def statistics_for(scope: str, now: datetime | None = None) -> Statistics:
    """A scope counted now."""
    now = now or utcnow()
    return statistics_from(figures_for(scope, now), now)


# --- stored: the worker's step and the page's read ---------------------------------------------------------

def _store(rows: dict[str, Figures], at: datetime) -> None:
    """Insert or replace the scopes' rows, in the caller's transaction (both databases: ON CONFLICT)."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(DashboardStatistics).values(
        [{"scope": scope, "computed_at": at, "payload": json.dumps(asdict(figures))}
         for scope, figures in rows.items()])
    db.session.execute(statement.on_conflict_do_update(
        index_elements=["scope"], set_={"computed_at": statement.excluded.computed_at,
                                        "payload": statement.excluded.payload}))


def compute_all(now: datetime | None = None) -> int:
    """Every province counted, the nation their sum, all stored in one transaction; how many scopes."""
    now = now or utcnow()
    provinces = _counted_then_writing(NATION, now)
    rows = provinces | {NATION: _summed(provinces)}
    _store(rows, now)
    db.session.commit()
    return len(rows)


def _interval() -> timedelta:
    return timedelta(seconds=current_app.config["DASHBOARD_STATISTICS_SECONDS"])


def refresh_if_due(now: datetime | None = None) -> int | None:
    """The worker's step: recompute every scope when the nation's row is DASHBOARD_STATISTICS_SECONDS old (or
    missing); how many scopes, or None when not due."""
    now = now or utcnow()
    with write_intent(False):
        computed = db.session.scalar(select(DashboardStatistics.computed_at)
                                     .where(DashboardStatistics.scope == NATION))
    db.session.commit()  # the reading transaction ends here, due or not
    return compute_all(now) if computed is None or computed <= now - _interval() else None


def stored_statistics(scope: str, now: datetime | None = None) -> Statistics:
    """The scope's stored row (one primary-key read); computed and stored here when there is none yet (a fresh
    install) or the worker has left it STALE_INTERVALS old."""
    now = now or utcnow()
    row = db.session.get(DashboardStatistics, scope)
    if row is not None and row.computed_at > now - STALE_INTERVALS * _interval():
        return statistics_from(Figures(**json.loads(row.payload)), row.computed_at)
    figures = _summed(_counted_then_writing(scope, now))
    _store({scope: figures}, now)
    db.session.commit()
    return statistics_from(figures, now)
