"""Tasks: staff (or the grid platform) publish them; volunteers claim, start, finish or
give them back. Places are kept by the database, so the last one goes to one claimant."""

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from ledger import utcnow
from pointsmall.core import audit
from pointsmall.core.errors import Conflict, NotFound, ValidationFailed
from pointsmall.core.photos import save_item_photo
from pointsmall.people.communities import Grid
from pointsmall.people.models import Volunteer
from pointsmall.tasks.errors import OutsideGrid, TaskFull, TaskNotOpen, WrongState, invalid
from pointsmall.tasks.labels import STATE_LABELS
from pointsmall.tasks.models import LIVE_STATES, Assignment, Task

MAX_POINTS = 10_000
MAX_PEOPLE = 500
MAX_PHOTOS = 3
BOARD_LIMIT = 50


def clean_task(session: so.Session, community_id: int, raw: dict, *,
               now: datetime | None = None) -> dict:
    """Check a task's fields; return them cleaned, or raise the errors by field."""
    now = now or utcnow()
    errors: dict[str, list[str]] = {}
    title = str(raw.get("title") or "").strip()
    if not title or len(title) > 100:
        errors["title"] = [_("A title of at most 100 characters is required.")]
    description = str(raw.get("description") or "").strip()
    if len(description) > 1000:
        errors["description"] = [_("At most 1000 characters.")]
    place = str(raw.get("place") or "").strip()
    if len(place) > 120:
        errors["place"] = [_("At most 120 characters.")]
    grid_id = raw.get("grid_id")
    grid = session.get(Grid, grid_id) if isinstance(grid_id, int) else None
    if grid is None or grid.community_id != community_id:
        errors["grid_id"] = [_("Choose a grid of your community.")]
    for field in ("points", "merit"):
        value = raw.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            errors[field] = [_("A whole number from 0 to %(n)d.", n=MAX_POINTS)]
    people = raw.get("people")
    if isinstance(people, bool) or not isinstance(people, int) or not 1 <= people <= MAX_PEOPLE:
        errors["people"] = [_("A whole number of people from 1 to %(n)d.", n=MAX_PEOPLE)]
    try:
        hours = Decimal(str(raw.get("hours") if raw.get("hours") is not None else "0"))
        if not hours.is_finite() or not Decimal(0) <= hours <= Decimal("99.9"):
            raise InvalidOperation
        hours = hours.quantize(Decimal("0.1"))
    except (InvalidOperation, ValueError):
        errors["hours"] = [_("Hours from 0 to 99.9.")]
        hours = Decimal(0)
    deadline = raw.get("deadline")
    if not isinstance(deadline, datetime):
        errors["deadline"] = [_("A deadline is required.")]
    elif deadline <= now:
        errors["deadline"] = [_("The deadline has passed: choose a time in the future.")]
    mode = raw.get("mode") or "open"
    if mode not in ("open", "dispatch"):
        errors["mode"] = [_("Open for claiming, or dispatched to named volunteers.")]
    start_within = raw.get("start_within_hours") or 24
    if isinstance(start_within, bool) or not isinstance(start_within, int) or not (
            1 <= start_within <= 168):
        errors["start_within_hours"] = [_("A whole number of hours from 1 to 168.")]
    if errors:
        raise ValidationFailed(errors)
    return {"title": title, "description": description, "place": place, "grid_id": grid.id,
            "points": raw["points"], "merit": raw["merit"], "people": people, "hours": hours,
            "deadline": deadline, "photo_required": bool(raw.get("photo_required")),
            "mode": mode, "start_within_hours": start_within}


def publish_task(session: so.Session, community_id: int, raw: dict, *, actor=None,
                 source: str = "staff", external_id: str | None = None,
                 body_hash: str | None = None, now: datetime | None = None) -> Task:
    """Publish a task for a grid of the community."""
    fields = clean_task(session, community_id, raw, now=now)
    task = Task(community_id=community_id, source=source, external_id=external_id,
                body_hash=body_hash, created_by=getattr(actor, "id", None),
                created_at=now or utcnow(), **fields)
    session.add(task)
    session.flush()
    audit.record(session, "task.publish", f"task:{task.id}", community_id=community_id,
                 actor=actor, title=task.title, points=task.points, source=source)
    return task


def publish_for_staff(session: so.Session, actor, raw: dict, *, key: str = "") -> Task:
    """Publish a staff member's task for a grid of their community; with a request `key`
    (a form's, or the API's Idempotency-Key), a retry answers the task it first made."""
    if not key:
        return publish_task(session, actor.community_id, raw, actor=actor)
    task, _new = publish_once(session, actor.community_id, raw, actor=actor,
                              external_id=f"key:{actor.id}:{key}")
    return task


def publish_once(session: so.Session, community_id: int, raw: dict, *, external_id: str,
                 actor=None, source: str = "staff", now: datetime | None = None,
                 retried: bool = False) -> tuple[Task, bool]:
    """Publish a task once per `external_id` (the platform's task id, or a client's request
    key); return it and whether it is new. The same id with other details is a conflict."""
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, ensure_ascii=False,
                                       default=str).encode()).hexdigest()
    earlier = session.scalar(sa.select(Task).where(Task.community_id == community_id,
                                                   Task.external_id == external_id))
    if earlier is not None:
        if earlier.body_hash != digest:
            raise Conflict(_("This task id was already used with different details."))
        return earlier, False
    try:
        with session.begin_nested():
            task = publish_task(session, community_id, raw, actor=actor, source=source,
                                external_id=external_id, body_hash=digest, now=now)
    except IntegrityError:
        # A twin of this request committed first: answer as a retry.
        if retried:
            raise
        return publish_once(session, community_id, raw, external_id=external_id, actor=actor,
                            source=source, now=now, retried=True)
    return task, True


def of_community(session: so.Session, model, row_id: int, community_id: int, *,
                 lock: bool = False):
    """Return the `model` row (a task, a wish) of `community_id`; another community's is
    not found. With `lock`, locked and read afresh."""
    query = sa.select(model).where(model.id == row_id)
    if lock:
        query = query.with_for_update(of=model).execution_options(populate_existing=True)
    found = session.scalar(query) if isinstance(row_id, int) else None
    if found is None or found.community_id != community_id:
        raise NotFound(model.__tablename__.rstrip("s"))
    return found


def get_task(session: so.Session, task_id: int, community_id: int, *,
             lock: bool = False) -> Task:
    """Return a task of `community_id`; another community's is not found."""
    return of_community(session, Task, task_id, community_id, lock=lock)


def grids_near(volunteer: Volunteer) -> list[int]:
    """Return the grids whose tasks a volunteer may claim: their own, then the one above."""
    grids = [volunteer.grid_id]
    if volunteer.grid.parent_id is not None:
        grids.append(volunteer.grid.parent_id)
    return grids


def open_tasks(session: so.Session, volunteer: Volunteer, *, now: datetime | None = None,
               limit: int = BOARD_LIMIT) -> list[Task]:
    """Return the tasks a volunteer may claim now, nearest grid first, then by deadline."""
    now = now or utcnow()
    grids = grids_near(volunteer)
    mine = sa.select(Assignment.task_id).where(Assignment.volunteer_id == volunteer.id,
                                               Assignment.state.in_(LIVE_STATES))
    return list(session.scalars(
        sa.select(Task).where(Task.grid_id.in_(grids), Task.status == "open",
                              Task.mode == "open", Task.deadline > now,
                              Task.taken < Task.people, Task.id.not_in(mine))
        .order_by(sa.case((Task.grid_id == grids[0], 0), else_=1), Task.deadline, Task.id)
        .limit(limit)))


def my_assignments(session: so.Session, volunteer: Volunteer,
                   limit: int = 50) -> list[Assignment]:
    """Return a volunteer's tasks: those in hand first, then the finished, newest first."""
    return list(session.scalars(
        sa.select(Assignment).where(Assignment.volunteer_id == volunteer.id)
        .order_by(sa.case((Assignment.state.in_(("claimed", "started", "done")), 0), else_=1),
                  Assignment.claimed_at.desc()).limit(limit)))


def _take_place(session: so.Session, task: Task, now: datetime, *, claiming: bool) -> bool:
    """Take one place of a task in one conditional UPDATE; False when none was free."""
    conditions = [Task.id == task.id, Task.taken < Task.people, Task.status == "open",
                  Task.deadline > now]
    if claiming:
        conditions.append(Task.mode == "open")
    taken = session.execute(
        sa.update(Task).where(*conditions)
        .values(taken=Task.taken + 1,
                first_claimed_at=sa.func.coalesce(Task.first_claimed_at, now))
        .returning(Task.id).execution_options(synchronize_session=False)).first()
    return taken is not None


def _why_not(session: so.Session, task: Task, now: datetime):
    session.refresh(task)
    if task.status != "open":
        return TaskNotOpen(_("This task is no longer open."))
    if task.deadline <= now:
        return TaskNotOpen(_("The deadline of this task has passed."))
    if task.mode != "open":
        return TaskNotOpen(_("This task is dispatched to named volunteers."))
    return TaskFull()


def claim_task(session: so.Session, volunteer: Volunteer, task_id: int, *,
               now: datetime | None = None) -> Assignment:
    """Claim a place on a task of my grid; claiming twice is once; a full task refuses."""
    now = now or utcnow()
    task = get_task(session, task_id, volunteer.community_id)
    if volunteer.status != "active":
        raise WrongState(_("Only active volunteers may claim tasks."))
    if task.grid_id not in grids_near(volunteer):
        raise OutsideGrid()
    return _assign(session, task, volunteer.id, now, claiming=True, actor=volunteer.user)


def _assign(session: so.Session, task: Task, volunteer_id: int, now: datetime, *,
            claiming: bool, actor) -> Assignment:
    earlier = _assignment_of(session, task.id, volunteer_id)
    if earlier is not None and earlier.state in LIVE_STATES:
        return earlier
    try:
        with session.begin_nested():
            if not _take_place(session, task, now, claiming=claiming):
                raise _why_not(session, task, now)
            if earlier is None:
                row = Assignment(task_id=task.id, community_id=task.community_id,
                                 volunteer_id=volunteer_id, claimed_at=now,
                                 dispatched=not claiming)
                session.add(row)
            else:
                row = earlier
                row.state, row.claimed_at, row.started_at, row.done_at = "claimed", now, None, None
                row.reason, row.dispatched = "", not claiming
            session.flush()
    except IntegrityError:
        # The same volunteer's twin request committed first: answer with its claim.
        session.expire(task)
        found = _assignment_of(session, task.id, volunteer_id)
        if found is None:
            raise
        return found
    session.expire(task)
    audit.record(session, "task.claim" if claiming else "task.dispatch", f"task:{task.id}",
                 community_id=task.community_id, actor=actor, volunteer_id=volunteer_id)
    return row


def dispatch_task(session: so.Session, actor, task_id: int, volunteer_ids: list[int], *,
                  now: datetime | None = None) -> list[Assignment]:
    """Let staff hand a task to named volunteers of the community, a place each."""
    now = now or utcnow()
    task = get_task(session, task_id, actor.community_id, lock=True)
    ids = sorted(set(volunteer_ids))
    if not ids:
        raise invalid("volunteer_ids", _("Choose at least one volunteer."))
    found = set(session.scalars(sa.select(Volunteer.id).where(
        Volunteer.id.in_(ids), Volunteer.community_id == task.community_id,
        Volunteer.status == "active")))
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise invalid("volunteer_ids", _("Unknown volunteers: %(ids)s.",
                                         ids=", ".join(map(str, unknown[:20]))))
    with session.begin_nested():
        rows = [_assign(session, task, v, now, claiming=False, actor=actor) for v in ids]
    return rows


def _assignment_of(session: so.Session, task_id: int, volunteer_id: int, *,
                   lock: bool = False) -> Assignment | None:
    query = sa.select(Assignment).where(Assignment.task_id == task_id,
                                        Assignment.volunteer_id == volunteer_id)
    if lock:
        query = query.with_for_update(of=Assignment).execution_options(populate_existing=True)
    return session.scalar(query)


def my_assignment(session: so.Session, volunteer: Volunteer, task_id: int) -> Assignment:
    """Return (locked) my assignment on a task; a task I have not taken is not found."""
    row = _assignment_of(session, task_id, volunteer.id, lock=True)
    if row is None:
        raise NotFound("assignment")
    return row


def start_task(session: so.Session, volunteer: Volunteer, task_id: int, *,
               now: datetime | None = None) -> Assignment:
    """Say I have started a task I claimed: it no longer goes back to the pool."""
    row = my_assignment(session, volunteer, task_id)
    if row.state == "started":
        return row
    if row.state != "claimed":
        raise WrongState(_("Only a claimed task can be started."))
    row.state, row.started_at = "started", now or utcnow()
    session.flush()
    return row


def finish_task(session: so.Session, volunteer: Volunteer, task_id: int, *, note: str,
                photos: list | None = None, now: datetime | None = None) -> Assignment:
    """Mark my task done with a note and photos (stored only once every check passed)."""
    row = my_assignment(session, volunteer, task_id)
    if row.state not in ("claimed", "started"):
        raise WrongState(_("This task is not in your hands: it is %(state)s.",
                           state=state_label(row.state)))
    note = (note or "").strip()
    photos = [p for p in (photos or []) if p]
    errors = {}
    if len(note) > 500:
        errors["note"] = [_("At most 500 characters.")]
    if row.task.photo_required and not photos:
        errors["photos"] = [_("This task needs a photo of the result.")]
    if len(photos) > MAX_PHOTOS:
        errors["photos"] = [_("At most %(n)d photos.", n=MAX_PHOTOS)]
    if errors:
        raise ValidationFailed(errors)
    names = [save_item_photo(p, _("This file is not a picture we can read.")) for p in photos]
    row.state, row.note, row.photos, row.done_at = "done", note, names, now or utcnow()
    row.started_at = row.started_at or row.done_at
    session.flush()
    audit.record(session, "task.done", f"task:{task_id}", community_id=row.community_id,
                 actor=volunteer.user, photos=len(names))
    return row


def give_back(session: so.Session, volunteer: Volunteer, task_id: int, *, reason: str,
              now: datetime | None = None) -> Assignment:
    """Give a task back with a reason; its place returns to the pool."""
    row = my_assignment(session, volunteer, task_id)
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise invalid("reason", _("Say why, in at most 200 characters."))
    if row.state not in ("claimed", "started"):
        raise WrongState(_("This task is not in your hands: it is %(state)s.",
                           state=state_label(row.state)))
    _free_place(session, row, "given_back", reason)
    audit.record(session, "task.give_back", f"task:{task_id}", community_id=row.community_id,
                 actor=volunteer.user, reason=reason)
    return row


def _free_place(session: so.Session, row: Assignment, state: str, reason: str) -> None:
    row.state, row.reason = state, reason
    session.execute(sa.update(Task).where(Task.id == row.task_id, Task.taken > 0)
                    .values(taken=Task.taken - 1).execution_options(synchronize_session=False))
    session.flush()
    session.expire(row.task)


def release_lapsed_claims(session: so.Session, *, now: datetime | None = None) -> int:
    """Return to the pool every claim not started within its task's time; return the count."""
    now = now or utcnow()
    rows = session.scalars(
        sa.select(Assignment).join(Task, Task.id == Assignment.task_id)
        .where(Assignment.state == "claimed",
               Assignment.claimed_at < now - timedelta(hours=1))  # the shortest wait
        .order_by(Assignment.id).with_for_update(of=Assignment, skip_locked=True)).all()
    lapsed = [r for r in rows
              if r.claimed_at + timedelta(hours=r.task.start_within_hours) < now]
    for row in lapsed:
        _free_place(session, row, "lapsed", "")
        audit.record(session, "task.lapse", f"task:{row.task_id}",
                     community_id=row.community_id, volunteer_id=row.volunteer_id)
    return len(lapsed)


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))
