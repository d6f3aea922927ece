"""The task board's export tables: tasks with who took them, wishes, and service hours per
volunteer for the volunteer registration systems that count hours."""

from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.auth.models import User
from pointsmall.core.export_query import CHUNK, LocalTime, Period, Scope, keyset
from pointsmall.people import communities
from pointsmall.people.models import Volunteer
from pointsmall.tasks.hours import hours_by_volunteer
from pointsmall.tasks.labels import (
    STATE_LABELS,
    TASK_STATUS_LABELS,
    WISH_KIND_LABELS,
    WISH_STATUS_LABELS,
)
from pointsmall.tasks.models import Assignment, Task, Wish


def _say(labels: dict, value) -> str:
    return str(labels.get(value, value or ""))


def task_rows(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield the period's tasks, one row per volunteer who took one (or one for none)."""
    grids = {g.id: g.path for g in communities.community_grids(session, scope.community_id)}
    query = (sa.select(Task.id, sa.func.coalesce(Assignment.id, 0), Task.title, Task.grid_id,
                       Task.created_at, Task.deadline, Task.status, Task.points, Task.merit,
                       Task.hours, User.name, Assignment.state, Assignment.claimed_at,
                       Assignment.done_at, Assignment.checked_at, Assignment.rating,
                       Task.closed_at)
             .outerjoin(Assignment, Assignment.task_id == Task.id)
             .outerjoin(Volunteer, Volunteer.id == Assignment.volunteer_id)
             .outerjoin(User, User.id == Volunteer.user_id)
             .where(Task.community_id == scope.community_id, period.holds(Task.created_at)))
    local = LocalTime()
    for (task_id, _, title, grid_id, created, deadline, status, points, merit, hours, name,
         state, claimed, done, checked, rating, closed) in keyset(session, query, 2):
        yield [task_id, title, grids.get(grid_id, ""), local(created), local(deadline),
               _say(TASK_STATUS_LABELS, status), points, merit, hours, name or "",
               _say(STATE_LABELS, state) if state else "", local(claimed), local(done),
               local(checked), rating, local(closed)]


def wish_rows(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield the period's wishes and reports, with the resident's phone for follow-up."""
    grids = {g.id: g.path for g in communities.community_grids(session, scope.community_id)}
    query = (sa.select(Wish.id, Wish.created_at, Wish.kind, Wish.grid_id, Wish.name, Wish.phone,
                       Wish.text, Wish.status, Wish.task_id, Wish.merged_into_id,
                       Wish.close_reason, Wish.resident_rating)
             .where(Wish.community_id == scope.community_id, period.holds(Wish.created_at)))
    local = LocalTime()
    for (wish_id, created, kind, grid_id, name, phone, text, status, task_id, merged,
         reason, rating) in keyset(session, query):
        yield [wish_id, local(created), _say(WISH_KIND_LABELS, kind), grids.get(grid_id, ""),
               name, phone, text, _say(WISH_STATUS_LABELS, status), task_id, merged, reason,
               rating]


def hours_rows(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield each volunteer's service hours in the period: tasks, activities, total."""
    grids = {g.id: g.path for g in communities.community_grids(session, scope.community_id)}
    query = (sa.select(Volunteer.id, User.name, User.phone, Volunteer.grid_id)
             .join(User, User.id == Volunteer.user_id)
             .where(Volunteer.community_id == scope.community_id))
    chunk: list = []
    for row in keyset(session, query):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield from _hours_of(session, chunk, grids, period)
            chunk = []
    yield from _hours_of(session, chunk, grids, period)


def _hours_of(session, rows, grids, period: Period) -> Iterator[list]:
    if not rows:
        return
    found = hours_by_volunteer(session, [r[0] for r in rows], period.start, period.end)
    for volunteer_id, name, phone, grid_id in rows:
        tasks, activities = found[volunteer_id]
        yield [volunteer_id, name, phone, grids.get(grid_id, ""), tasks, activities,
               tasks + activities]
