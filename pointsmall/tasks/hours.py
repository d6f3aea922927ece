"""Service hours (志愿时长): accepted tasks and attended activities, and the star level."""

import os
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from pointsmall.core import clock
from pointsmall.earning.models import Activity, Attendance
from pointsmall.tasks.models import Assignment, Task

DEFAULT_STARS = (100, 300, 600, 1000, 1500)


@dataclass(frozen=True)
class Hours:
    total: Decimal
    this_year: Decimal
    stars: int
    next_at: int | None  # hours needed for the next star, None at five stars

    @property
    def missing(self) -> Decimal:
        return Decimal(self.next_at) - self.total if self.next_at else Decimal(0)


def star_thresholds() -> tuple[int, ...]:
    """Return the deployment's hours for one to five stars (config STAR_HOURS, or the
    POINTSMALL_STAR_HOURS environment variable as "100,300,600,1000,1500")."""
    found = current_app.config.get("STAR_HOURS") or os.environ.get("POINTSMALL_STAR_HOURS")
    if isinstance(found, str):
        try:
            found = tuple(int(part) for part in found.split(","))
        except ValueError:
            found = None
    if not found or len(found) != 5 or list(found) != sorted(found):
        return DEFAULT_STARS
    return tuple(found)


def stars_for(hours: Decimal, thresholds: tuple[int, ...]) -> int:
    return sum(1 for at in thresholds if hours >= at)


def _task_hours(volunteer_ids: list[int], start: datetime | None, end: datetime | None):
    query = (sa.select(Assignment.volunteer_id, sa.func.coalesce(sa.func.sum(Task.hours), 0))
             .join(Task, Task.id == Assignment.task_id)
             .where(Assignment.volunteer_id.in_(volunteer_ids), Assignment.state == "accepted"))
    if start is not None:
        query = query.where(Assignment.checked_at >= start)
    if end is not None:
        query = query.where(Assignment.checked_at < end)
    return query.group_by(Assignment.volunteer_id)


def _activity_rows(volunteer_ids: list[int], start: datetime | None, end: datetime | None):
    query = (sa.select(Attendance.volunteer_id, Activity.starts_at, Activity.ends_at)
             .join(Activity, Activity.id == Attendance.activity_id)
             .where(Attendance.volunteer_id.in_(volunteer_ids), Attendance.present,
                    ~Activity.cancelled))
    if start is not None:
        query = query.where(Activity.starts_at >= start)
    if end is not None:
        query = query.where(Activity.starts_at < end)
    return query


def _length(starts: datetime, ends: datetime) -> Decimal:
    """An attended activity counts its length, to the tenth of an hour."""
    return Decimal(str(round((ends - starts).total_seconds() / 3600, 1)))


def hours_by_volunteer(session: so.Session, volunteer_ids: list[int],
                       start: datetime | None = None,
                       end: datetime | None = None) -> dict[int, tuple[Decimal, Decimal]]:
    """Return each volunteer's (task hours, activity hours) in the period."""
    found = {v: [Decimal(0), Decimal(0)] for v in volunteer_ids}
    for volunteer_id, hours in session.execute(_task_hours(volunteer_ids, start, end)):
        found[volunteer_id][0] = Decimal(hours).quantize(Decimal("0.1"))
    for volunteer_id, starts, ends in session.execute(_activity_rows(volunteer_ids, start, end)):
        found[volunteer_id][1] += _length(starts, ends)
    return {v: (a, b) for v, (a, b) in found.items()}


def service_hours(session: so.Session, volunteer_id: int) -> Hours:
    """Return a volunteer's total hours, this (local) year's and their star level."""
    year_start = clock.utc_start_of(clock.local_today().replace(month=1, day=1))
    # Two queries for both figures: the moments decide which count this year.
    dated = [(checked, Decimal(hours)) for checked, hours in session.execute(
        sa.select(Assignment.checked_at, Task.hours).join(Task, Task.id == Assignment.task_id)
        .where(Assignment.volunteer_id == volunteer_id, Assignment.state == "accepted"))]
    dated += [(starts, _length(starts, ends)) for _, starts, ends in session.execute(
        _activity_rows([volunteer_id], None, None))]
    total = sum((hours for _, hours in dated), Decimal(0))
    year = sum((hours for moment, hours in dated if moment and moment >= year_start),
               Decimal(0))
    thresholds = star_thresholds()
    stars = stars_for(total, thresholds)
    return Hours(total.quantize(Decimal("0.1")), year.quantize(Decimal("0.1")), stars,
                 thresholds[stars] if stars < len(thresholds) else None)
