"""Checking a done task (核实评价): staff accept with a rating, which awards once through
the activity awards' path (caps, two-person rule), or send it back with a reason."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from ledger import utcnow
from pointsmall.core import audit
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.earning import awards
from pointsmall.earning.models import Award
from pointsmall.tasks.errors import AlreadyAccepted, NotDone, invalid
from pointsmall.tasks.models import Assignment, Task


def _locked(session: so.Session, assignment_id: int, community_id: int) -> Assignment:
    row = session.scalar(
        sa.select(Assignment).where(Assignment.id == assignment_id)
        .with_for_update(of=Assignment).execution_options(populate_existing=True)
    ) if isinstance(assignment_id, int) else None
    if row is None or row.community_id != community_id:
        raise NotFound("assignment")
    return row


def accept_task(session: so.Session, actor, assignment_id: int, *, rating: int,
                comment: str = "", now: datetime | None = None) -> Assignment:
    """Accept a done task with a rating of 1 to 5 and award its points and merit once."""
    errors = {}
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        errors["rating"] = [_("Rate from 1 to 5.")]
    comment = (comment or "").strip()
    if len(comment) > 200:
        errors["comment"] = [_("At most 200 characters.")]
    if errors:
        raise ValidationFailed(errors)
    # Two staff accepting at once queue here; the second finds it accepted.
    row = _locked(session, assignment_id, actor.community_id)
    if row.state == "accepted":
        raise AlreadyAccepted()
    if row.state != "done":
        raise NotDone()
    now = now or utcnow()
    task = row.task
    if task.points or task.merit:
        batch = awards.create_batch(
            session, task.community_id,
            [awards.Line(row.volunteer_id, task.points, task.merit)],
            key=f"task-assignment:{row.id}", by=actor.id, actor=actor, title=task.title,
            type_code="task", now=now)
        row.award_id = session.scalar(sa.select(Award.id).where(Award.batch_id == batch.id))
    row.state, row.rating, row.comment = "accepted", rating, comment
    row.checked_at, row.checked_by = now, actor.id
    session.flush()
    accepted = session.scalar(sa.select(sa.func.count()).select_from(Assignment).where(
        Assignment.task_id == task.id, Assignment.state == "accepted"))
    if accepted >= task.people:
        session.execute(sa.update(Task).where(Task.id == task.id, Task.status == "open")
                        .values(status="closed", closed_at=now)
                        .execution_options(synchronize_session=False))
        session.expire(task)
    audit.record(session, "task.accept", f"task:{task.id}", community_id=task.community_id,
                 actor=actor, volunteer_id=row.volunteer_id, rating=rating,
                 points=task.points, merit=task.merit)
    return row


def send_back(session: so.Session, actor, assignment_id: int, *, reason: str,
              now: datetime | None = None) -> Assignment:
    """Send a done task back to the volunteer with a reason; they finish it again."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise invalid("reason", _("Say why, in at most 200 characters."))
    row = _locked(session, assignment_id, actor.community_id)
    if row.state == "accepted":
        raise AlreadyAccepted()
    if row.state != "done":
        raise NotDone()
    row.state, row.reason, row.done_at = "started", reason, None
    row.checked_at, row.checked_by = now or utcnow(), actor.id
    session.flush()
    audit.record(session, "task.send_back", f"task:{row.task_id}",
                 community_id=row.community_id, actor=actor, reason=reason)
    return row


def assignments_of(session: so.Session, task_id: int) -> list[Assignment]:
    return list(session.scalars(sa.select(Assignment).where(Assignment.task_id == task_id)
                                .order_by(Assignment.id)))


def waiting_for_check(session: so.Session, community_id: int,
                      limit: int = 100) -> list[Assignment]:
    """Return the community's done tasks waiting for a check, oldest first."""
    return list(session.scalars(sa.select(Assignment).where(
        Assignment.community_id == community_id, Assignment.state == "done")
        .order_by(Assignment.done_at).limit(limit)))
