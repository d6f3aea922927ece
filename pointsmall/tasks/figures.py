"""The task board's figures for the dashboards: tasks opened, claimed, done and accepted per
month; the share closed within 48 hours; median hours to claim and to close; the average
rating; overdue tasks per grid."""

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from ledger import utcnow
from pointsmall.core import clock
from pointsmall.people.communities import Grid
from pointsmall.tasks.models import Assignment, Task

WITHIN = timedelta(hours=48)


@dataclass(frozen=True)
class Month:
    month: date
    opened: int
    claimed: int
    done: int
    accepted: int


@dataclass(frozen=True)
class Summary:
    closed: int
    within_48h: float | None  # share of the closed tasks closed within 48 hours
    hours_to_claim: float | None  # medians
    hours_to_close: float | None
    rating: float | None
    overdue: int


def _count_by_month(session, column, community_id, bounds, *where) -> list[int]:
    """Count the rows whose `column` falls in each [bounds[i], bounds[i+1]): one query."""
    month = ledger.period_index(column, bounds)
    found = dict(session.execute(
        sa.select(month, sa.func.count())
        .where(column >= bounds[0], column < bounds[-1], *where)
        .group_by(month)).all())
    return [int(found.get(i, 0)) for i in range(len(bounds) - 1)]


def by_month(session: so.Session, community_id: int, months: list[date]) -> list[Month]:
    """Return the community's task counts for each month in `months`."""
    bounds = [clock.utc_start_of(m) for m in months] + [clock.utc_start_of(
        clock.next_month(months[-1]))]
    in_task = (Task.community_id == community_id,)
    mine = (Assignment.community_id == community_id,)
    opened = _count_by_month(session, Task.created_at, community_id, bounds, *in_task)
    claimed = _count_by_month(session, Assignment.claimed_at, community_id, bounds, *mine)
    done = _count_by_month(session, Assignment.done_at, community_id, bounds, *mine)
    accepted = _count_by_month(session, Assignment.checked_at, community_id, bounds, *mine,
                               Assignment.state == "accepted")
    return [Month(m, *row) for m, *row in zip(months, opened, claimed, done, accepted,
                                              strict=True)]


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def summary(session: so.Session, community_id: int, start: datetime, end: datetime,
            *, now: datetime | None = None) -> Summary:
    """Return the community's closure figures for tasks created in [start, end)."""
    now = now or utcnow()
    rows = session.execute(sa.select(Task.created_at, Task.first_claimed_at, Task.closed_at)
                           .where(Task.community_id == community_id, Task.created_at >= start,
                                  Task.created_at < end)).all()
    closed = [r.closed_at - r.created_at for r in rows if r.closed_at]
    claims = [_hours(r.first_claimed_at - r.created_at) for r in rows if r.first_claimed_at]
    rating = session.scalar(sa.select(sa.func.avg(Assignment.rating)).join(
        Task, Task.id == Assignment.task_id).where(
        Task.community_id == community_id, Task.created_at >= start, Task.created_at < end,
        Assignment.state == "accepted"))
    return Summary(
        closed=len(closed),
        within_48h=(sum(1 for c in closed if c <= WITHIN) / len(closed)) if closed else None,
        hours_to_claim=statistics.median(claims) if claims else None,
        hours_to_close=statistics.median(_hours(c) for c in closed) if closed else None,
        rating=float(rating) if rating is not None else None,
        overdue=sum(overdue_by_grid(session, community_id, now=now).values()))


def overdue_by_grid(session: so.Session, community_id: int, *,
                    now: datetime | None = None) -> dict[str, int]:
    """Return, per grid, the open tasks past their deadline."""
    now = now or utcnow()
    rows = session.execute(sa.select(Grid, sa.func.count(Task.id)).join(
        Task, Task.grid_id == Grid.id).where(Task.community_id == community_id,
                                             Task.status == "open", Task.deadline < now)
        .group_by(Grid.id).order_by(sa.func.count(Task.id).desc())).all()
    return {grid.path: count for grid, count in rows}
