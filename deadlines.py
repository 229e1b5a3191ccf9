"""The bureau's statutory deadline (MIIT Order No. 33, art. 11): a decision within 20 working days of a
complete submission. Pure date arithmetic, no database.

Working days are mainland China's: weekdays that are not public holidays, plus the weekend days worked in
lieu (调休), as published each year by the State Council and packaged by `chinese-calendar`. For a year the
package does not know yet, Monday to Friday count, and a warning is logged once per year.

Days are Beijing calendar days; stored times are naive UTC (like every time in the database). The day of
the submission is not counted (期间开始的日不计算在内): the deadline is the end of the 20th working day after it.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import cache, lru_cache

import chinese_calendar

STATUTORY_WORKING_DAYS = 20
#: an application due within this many working days stands out and is in the daily reminder
DUE_SOON_WORKING_DAYS = 3
BEIJING = timezone(timedelta(hours=8))
ONE_DAY = timedelta(days=1)
log = logging.getLogger(__name__)


@cache
def _warn_unknown_year(year: int) -> None:
    log.warning("chinese-calendar has no holiday data for %s: counting Monday to Friday as working days "
                "(upgrade chinese-calendar once the State Council publishes that year's holidays)", year)


def is_working_day(day: date) -> bool:
    """A working day in mainland China (holidays off, adjusted weekend working days on)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_unknown_year(day.year)
        return day.weekday() < 5


@lru_cache(maxsize=4096)
def add_working_days(start: date, count: int) -> date:
    """The count-th working day after `start` (`start` itself not counted); count ≥ 0."""
    day = start
    while count > 0:
        day += ONE_DAY
        count -= is_working_day(day)
    return day


def working_days_between(first: date, last: date) -> int:
    """How many working days lie in (first, last]; 0 when last ≤ first."""
    count, day = 0, first
    while day < last:
        day += ONE_DAY
        count += is_working_day(day)
    return count


def beijing_time(moment: datetime) -> datetime:
    """A stored (naive UTC) time in Beijing."""
    return moment.replace(tzinfo=UTC).astimezone(BEIJING)


def beijing_date(moment: datetime) -> date:
    """The Beijing calendar day of a stored (naive UTC) time."""
    return beijing_time(moment).date()


def end_of_day(day: date) -> datetime:
    """The moment a Beijing day ends (its following midnight), as a naive UTC time like the stored ones."""
    return datetime.combine(day + ONE_DAY, time.min, tzinfo=BEIJING).astimezone(UTC).replace(tzinfo=None)


def due_date(submitted: datetime) -> date:
    """The last day for the decision on a submission complete at `submitted` (naive UTC)."""
    return add_working_days(beijing_date(submitted), STATUTORY_WORKING_DAYS)


def due_at(submitted: datetime) -> datetime:
    """The moment the deadline passes (naive UTC): the end of `due_date` in Beijing."""
    return end_of_day(due_date(submitted))


def due_day(moment: datetime) -> date:
    """The due day of a stored `due_at` (the midnight that ends it)."""
    return beijing_date(moment) - ONE_DAY


def days_left(due: date, today: date) -> int:
    """Working days left after today until the due day (0 on the due day itself); negative once overdue:
    minus the working days past it (at least 1, a weekend right after the due day counts as -1)."""
    if today <= due:
        return working_days_between(today, due)
    return -max(1, working_days_between(due, today))


def due_soon_until(today: date) -> datetime:
    """Applications due at or before this moment (naive UTC) have ≤ DUE_SOON_WORKING_DAYS working days left."""
    return end_of_day(add_working_days(today, DUE_SOON_WORKING_DAYS))
