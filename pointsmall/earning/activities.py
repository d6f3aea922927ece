"""Activities: staff create them, volunteers sign up and check in by scanning the venue's QR."""

from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.exc import IntegrityError

from ledger import utcnow
from pointsmall.core import audit
from pointsmall.core.errors import Conflict, NotFound, ValidationFailed
from pointsmall.earning.errors import CheckInRefused, invalid
from pointsmall.earning.models import Activity, ActivityType, Attendance
from pointsmall.people.models import Volunteer

CHECK_IN_MARGIN = timedelta(minutes=30)
MAX_POINTS = 100_000


def create_activity(session: so.Session, community_id: int, raw: dict, *,
                    by: int | None, key: str | None = None) -> Activity:
    """Create an activity; points and merit default to its type's rule.

    With a `key`, the same key again answers the activity it first created (a client's
    retry after a lost answer); the key with another title or times is a conflict.
    """
    if key is not None:
        earlier = _activity_by_key(session, community_id, key, raw)
        if earlier is not None:
            return earlier
    errors: dict[str, list[str]] = {}
    kind = session.get(ActivityType, raw.get("type_id") or 0)
    if kind is None or kind.community_id != community_id or not kind.active:
        errors["type_id"] = [_("Choose an activity type.")]
    title = str(raw.get("title") or "").strip()
    if not title or len(title) > 100:
        errors["title"] = [_("A title of at most 100 characters is required.")]
    starts, ends = raw.get("starts_at"), raw.get("ends_at")
    if not isinstance(starts, datetime):
        errors["starts_at"] = [_("A start time is required.")]
    if not isinstance(ends, datetime):
        errors["ends_at"] = [_("An end time is required.")]
    elif isinstance(starts, datetime) and ends <= starts:
        errors["ends_at"] = [_("The end is after the start.")]
    capacity = raw.get("capacity")
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                 or not 1 <= capacity <= 100_000):
        errors["capacity"] = [_("A whole number of places, or empty for no limit.")]
    amounts = {}
    for field in ("points", "merit"):
        value = raw.get(field)
        if value is None and kind is not None:
            value = getattr(kind, field)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            errors[field] = [_("A whole number from 0 to %(n)d.", n=MAX_POINTS)]
        amounts[field] = value
    if errors:
        raise invalid_many(errors)
    activity = Activity(community_id=community_id, type_id=kind.id, title=title,
                        place=str(raw.get("place") or "")[:120], starts_at=starts, ends_at=ends,
                        capacity=capacity, points=amounts["points"], merit=amounts["merit"],
                        created_by=by, idempotency_key=key)
    try:
        with session.begin_nested():
            session.add(activity)
            session.flush()
    except IntegrityError:
        # A concurrent twin with the same key committed first: answer with its activity.
        earlier = _activity_by_key(session, community_id, key, raw) if key else None
        if earlier is None:
            raise
        return earlier
    audit.record(session, "activity.create", f"activity:{activity.id}",
                 community_id=community_id, title=title, points=activity.points)
    return activity


def _activity_by_key(session: so.Session, community_id: int, key: str,
                     raw: dict) -> Activity | None:
    earlier = session.scalar(sa.select(Activity).where(
        Activity.community_id == community_id, Activity.idempotency_key == key))
    if earlier is not None and (
            earlier.title != str(raw.get("title") or "").strip()
            or earlier.starts_at != raw.get("starts_at") or earlier.ends_at != raw.get("ends_at")):
        raise Conflict(_("This request key was already used for another activity."))
    return earlier


def invalid_many(errors: dict[str, list[str]]):
    return ValidationFailed(errors)


def get_activity(session: so.Session, activity_id: int, community_id: int) -> Activity:
    """Return an activity of `community_id`; another community's is not found."""
    activity = session.get(Activity, activity_id) if isinstance(activity_id, int) else None
    if activity is None or activity.community_id != community_id:
        raise NotFound("activity")
    return activity


def upcoming(session: so.Session, community_id: int, *, now: datetime | None = None,
             limit: int = 50) -> list[Activity]:
    """Return the community's activities that have not ended, soonest first."""
    now = now or utcnow()
    return list(session.scalars(
        sa.select(Activity).where(Activity.community_id == community_id,
                                  Activity.ends_at >= now, ~Activity.cancelled)
        .order_by(Activity.starts_at).limit(limit)))


def sign_up(session: so.Session, activity: Activity, volunteer: Volunteer, *,
            now: datetime | None = None) -> Attendance:
    """Put a volunteer on an activity's list; capacity is enforced; twice is once."""
    now = now or utcnow()
    if activity.community_id != volunteer.community_id:
        raise NotFound("activity")
    if activity.cancelled or activity.ends_at < now:
        raise invalid("activity", _("This activity is over."))
    # Lock the activity so that two sign-ups cannot both take the last place.
    session.execute(sa.select(Activity.id).where(Activity.id == activity.id).with_for_update())
    existing = _attendance(session, activity.id, volunteer.id)
    if existing is not None:
        return existing
    if activity.capacity is not None:
        taken = session.scalar(sa.select(sa.func.count()).select_from(Attendance)
                               .where(Attendance.activity_id == activity.id))
        if taken >= activity.capacity:
            raise invalid("activity", _("This activity is full."))
    return _insert_attendance(session, activity.id, volunteer.id, signed_up_at=now,
                              source="signup")


def check_in_token(activity: Activity) -> str:
    """Return the signed token of an activity's venue QR code."""
    return _serializer().dumps({"a": activity.id})


def activity_for_token(session: so.Session, token: str) -> Activity:
    """Return the activity a check-in token was signed for; a forged token is refused."""
    try:
        payload = _serializer().loads(token or "")
    except BadSignature:
        raise CheckInRefused(_("This check-in code is not valid.")) from None
    activity = session.get(Activity, payload.get("a") if isinstance(payload, dict) else None)
    if activity is None:
        raise CheckInRefused(_("This check-in code is not valid."))
    return activity


def check_in_refusal(activity: Activity, volunteer: Volunteer, now: datetime,
                     attendance: Attendance | None = None) -> str | None:
    """Say why `volunteer` may not check in at `activity` at `now`; None if they may."""
    if activity.community_id != volunteer.community_id:
        return _("This activity belongs to another community.")
    if activity.cancelled:
        return _("This activity was cancelled.")
    if now < activity.starts_at - CHECK_IN_MARGIN:
        return _("Check-in opens 30 minutes before the start.")
    if now > activity.ends_at + CHECK_IN_MARGIN:
        return _("Check-in closed 30 minutes after the end.")
    if attendance is not None and attendance.checked_in_at is not None:
        return _("You have already checked in.")
    return None


def check_in(session: so.Session, activity: Activity, volunteer: Volunteer, *,
             now: datetime | None = None) -> Attendance:
    """Mark a volunteer present by the venue QR: own community, in the window, once."""
    now = now or utcnow()
    refusal = check_in_refusal(activity, volunteer, now)
    if refusal:
        raise CheckInRefused(refusal)
    row = _attendance(session, activity.id, volunteer.id, lock=True)
    if row is None:
        row = _insert_attendance(session, activity.id, volunteer.id)
    refusal = check_in_refusal(activity, volunteer, now, row)
    if refusal:
        raise CheckInRefused(refusal)
    row.present, row.checked_in_at, row.source = True, now, "qr"
    session.flush()
    return row


def _insert_attendance(session: so.Session, activity_id: int, volunteer_id: int,
                       **values) -> Attendance:
    """Add an attendance row, or lock the one a concurrent request added first."""
    try:
        with session.begin_nested():
            row = Attendance(activity_id=activity_id, volunteer_id=volunteer_id, **values)
            session.add(row)
            session.flush()
            return row
    except IntegrityError:
        return _attendance(session, activity_id, volunteer_id, lock=True)


def mark_present(session: so.Session, activity: Activity, volunteer_ids: list[int],
                 present: bool = True) -> int:
    """Let staff mark volunteers of the activity's community present (or not); return count."""
    found = set(session.scalars(sa.select(Volunteer.id).where(
        Volunteer.id.in_(volunteer_ids), Volunteer.community_id == activity.community_id)))
    missing = set(volunteer_ids) - found
    if missing:
        raise invalid("volunteer_ids", _("Unknown volunteers: %(ids)s.",
                                         ids=", ".join(map(str, sorted(missing)[:20]))))
    rows = {r.volunteer_id: r for r in session.scalars(sa.select(Attendance).where(
        Attendance.activity_id == activity.id, Attendance.volunteer_id.in_(found)))}
    for volunteer_id in found:
        row = rows.get(volunteer_id)
        if row is None:
            row = _insert_attendance(session, activity.id, volunteer_id, source="staff")
        row.present = present
    session.flush()
    audit.record(session, "attendance.mark", f"activity:{activity.id}",
                 community_id=activity.community_id, count=len(found), present=present)
    return len(found)


def attendance(session: so.Session, activity_id: int) -> list[tuple[Attendance, Volunteer]]:
    return list(session.execute(
        sa.select(Attendance, Volunteer).join(Volunteer, Volunteer.id == Attendance.volunteer_id)
        .where(Attendance.activity_id == activity_id).order_by(Attendance.id)).all())


def _attendance(session: so.Session, activity_id: int, volunteer_id: int,
                lock: bool = False) -> Attendance | None:
    query = sa.select(Attendance).where(Attendance.activity_id == activity_id,
                                        Attendance.volunteer_id == volunteer_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="activity-check-in")
