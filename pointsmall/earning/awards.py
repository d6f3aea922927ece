"""Awards: whole lists at once, each (activity, volunteer) once, with caps and maker-checker.

A batch is one database transaction: every award in it posts, or none does. Batches over
the community's threshold (points or people) wait for a second staff member.
"""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import ngettext

import ledger
from ledger import utcnow
from pointsmall.core import audit, clock
from pointsmall.core.errors import Conflict, NotFound
from pointsmall.earning.errors import (
    AlreadyReversed,
    BatchNotPending,
    MakerCannotApprove,
    PointsAlreadySpent,
    invalid,
)
from pointsmall.earning.models import Activity, Adjustment, Attendance, Award, AwardBatch
from pointsmall.earning.rules import ensure_rules
from pointsmall.people.communities import issuance_address
from pointsmall.people.models import Volunteer, volunteer_address

MAX_BATCH = 5000
_AWARDS = Award.__table__
_BATCH_KEY_LEN = AwardBatch.__table__.c.idempotency_key.type.length
# What the adjustment keeps: a client's key (REQUEST_KEY_LEN) with the API's "<user id>:" in front.
_ADJUSTMENT_KEY_LEN = Adjustment.__table__.c.idempotency_key.type.length
MAX_AWARD = 100_000


@dataclass(frozen=True)
class Line:
    """What one volunteer should get."""

    volunteer_id: int
    points: int
    merit: int


def award_activity(session: so.Session, activity: Activity, volunteer_ids: list[int] | None, *,
                   key: str, by: int | None, actor=None,
                   now: datetime | None = None) -> AwardBatch:
    """Award an activity's points to its present attendees (or the ticked ones), once each."""
    # One award run per activity at a time: concurrent presses queue here, and the second
    # finds everyone already awarded.
    session.execute(sa.select(Activity.id).where(Activity.id == activity.id).with_for_update())
    key = f"activity:{activity.id}:{key}"
    earlier = _batch_by_key(session, activity.community_id, key)
    if earlier is not None:
        listed = set(session.scalars(sa.select(Award.volunteer_id).where(
            Award.batch_id == earlier.id)))
        if volunteer_ids is not None and set(volunteer_ids) != listed:
            # The key answers the request it was first used for, not another list.
            raise Conflict(_("This request key was already used to award other volunteers."))
        return earlier
    present = set(session.scalars(sa.select(Attendance.volunteer_id).where(
        Attendance.activity_id == activity.id, Attendance.present)))
    chosen = present if volunteer_ids is None else set(volunteer_ids)
    absent = chosen - present
    if absent:
        raise invalid("volunteer_ids", ngettext(
            "%(num)d of these volunteers was not marked present.",
            "%(num)d of these volunteers were not marked present.", len(absent)))
    done = set(session.scalars(sa.select(Award.volunteer_id).where(
        Award.activity_id == activity.id)))
    lines = [Line(v, activity.points, activity.merit) for v in sorted(chosen - done)]
    if not lines:
        raise invalid("volunteer_ids", _("Everyone listed has already been awarded."))
    return create_batch(session, activity.community_id, lines, key=key, by=by, actor=actor,
                        activity=activity, title=activity.title, type_code=activity.type.code,
                        now=now)


def create_batch(session: so.Session, community_id: int, lines: list[Line], *, key: str,
                 by: int | None, title: str, type_code: str, actor=None,
                 activity: Activity | None = None, now: datetime | None = None,
                 audit_detail: dict | None = None) -> AwardBatch:
    """Record a batch of awards and post it, unless it is big enough to need a checker.

    The audit entry names `actor` (None: the signed-in user, or no one for the grid
    platform and the command line), with `audit_detail` added to what it says.
    """
    earlier = _batch_by_key(session, community_id, key)
    if earlier is not None:
        return earlier
    _check_lines(session, community_id, lines)
    rules = ensure_rules(session, community_id)
    total = sum(line.points for line in lines)
    batch = AwardBatch(community_id=community_id, activity_id=activity.id if activity else None,
                       idempotency_key=_scoped(community_id, key), people=len(lines),
                       requested_points=total, created_by=by, status="pending")
    session.add(batch)
    session.flush()
    # One multi-row INSERT, not a thousand objects through the unit of work.
    session.connection().execute(_AWARDS.insert(), [
        {"batch_id": batch.id, "community_id": community_id,
         "activity_id": activity.id if activity else None, "volunteer_id": line.volunteer_id,
         "title": title[:100], "type_code": type_code, "requested_points": line.points,
         "points": 0, "merit": line.merit, "reversed_points": 0, "reversed_merit": 0,
         "reversal_reason": ""} for line in lines])
    audit.record(session, "award.batch", f"batch:{batch.id}", community_id=community_id,
                 actor=actor, people=len(lines), points=total, activity_id=batch.activity_id,
                 **(audit_detail or {}))
    if needs_approval(rules, total, len(lines)):
        return batch
    return post_batch(session, batch, now=now)


def approve_batch(session: so.Session, batch_id: int, community_id: int, *,
                  by: int, actor=None) -> AwardBatch:
    """Let a second staff member post a waiting batch; the maker cannot."""
    batch = _lock_batch(session, batch_id, community_id, by)
    batch.approved_by = by
    audit.record(session, "award.approve", f"batch:{batch.id}", community_id=community_id,
                 actor=actor)
    return post_batch(session, batch)


def reject_batch(session: so.Session, batch_id: int, community_id: int, *,
                 by: int, actor=None) -> AwardBatch:
    """Turn down a waiting batch; its volunteers may be awarded by a new one."""
    batch = _lock_batch(session, batch_id, community_id, by)
    batch.status, batch.approved_by, batch.decided_at = "rejected", by, utcnow()
    # Free the (activity, volunteer) pairs for a corrected batch.
    for award in session.scalars(sa.select(Award).where(Award.batch_id == batch.id)):
        session.delete(award)
    audit.record(session, "award.reject", f"batch:{batch.id}", community_id=community_id,
                 actor=actor)
    session.flush()
    return batch


def post_batch(session: so.Session, batch: AwardBatch, *,
               now: datetime | None = None) -> AwardBatch:
    """Post every award of a batch to the ledger, cutting each at the volunteer's caps."""
    now = now or utcnow()
    rules = ensure_rules(session, batch.community_id)
    a = _AWARDS.c
    awards = session.connection().execute(
        sa.select(a.id, a.volunteer_id, a.requested_points, a.merit, a.title, a.activity_id,
                  a.type_code)
        .where(a.batch_id == batch.id).order_by(a.id)).all()
    # Lock the volunteers (in id order) so that two batches cannot both spend the same room
    # under a cap.
    session.execute(sa.select(Volunteer.id).where(
        Volunteer.id.in_([w.volunteer_id for w in awards])).order_by(Volunteer.id)
        .with_for_update())
    room = _room_under_caps(session, [w.volunteer_id for w in awards], rules.daily_cap,
                            rules.monthly_cap)
    requests, outcome = [], {}
    for award in awards:
        points, capped = award.requested_points, None
        for cap_name in ("daily", "monthly"):
            left = room.get((award.volunteer_id, cap_name))
            if left is not None and points > left:
                points, capped = max(0, left), cap_name
        outcome[award.id] = (points, capped)
        legs = _legs(batch.community_id, award.volunteer_id, points, award.merit)
        if legs:
            requests.append(ledger.TransferRequest(
                legs, key=f"award:{award.id}", kind="award", memo=award.title,
                meta={"award_id": award.id, "activity_id": award.activity_id,
                      "type": award.type_code}))
    transactions = ledger.transfer_many(session, requests, now=now)
    by_key = {tx.idempotency_key: tx.id for tx in transactions}
    _record_outcomes(session, [
        (award_id, points, capped, by_key.get(f"award:{award_id}"))
        for award_id, (points, capped) in outcome.items()], now)
    batch.status, batch.decided_at = "posted", now
    session.flush()
    return batch


_RECORD_OUTCOMES = sa.text(
    "UPDATE awards SET points = given.points, capped_by = given.capped_by,"
    " transaction_id = given.transaction_id, awarded_at = :now"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:points AS bigint[]),"
    " CAST(:capped AS varchar[]), CAST(:txs AS bigint[]))"
    " AS given (id, points, capped_by, transaction_id)"
    " WHERE awards.id = given.id")


def _record_outcomes(session: so.Session, rows: list[tuple[int, int, str | None, int | None]],
                     now: datetime) -> None:
    """Write each award's points, cap and transaction: one statement from arrays, whatever
    the count (NULLs travel inside them)."""
    session.connection().execute(_RECORD_OUTCOMES, {
        "ids": [r[0] for r in rows], "points": [r[1] for r in rows],
        "capped": [r[2] for r in rows], "txs": [r[3] for r in rows], "now": now})
    # Award objects the session holds are stale now.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Award):
            session.expire(obj)


def _legs(community_id: int, volunteer_id: int, points: int, merit: int) -> list[ledger.Leg]:
    legs = []
    if points:
        legs += [ledger.Leg(issuance_address(community_id, "POINTS"), -points),
                 ledger.Leg(volunteer_address(volunteer_id, "POINTS"), points)]
    if merit:
        legs += [ledger.Leg(issuance_address(community_id, "MERIT"), -merit),
                 ledger.Leg(volunteer_address(volunteer_id, "MERIT"), merit)]
    return legs


def _room_under_caps(session: so.Session, volunteer_ids: list[int], daily: int | None,
                     monthly: int | None) -> dict[tuple[int, str], int]:
    """Return how many more points each volunteer may earn today and this (local) month."""
    room: dict[tuple[int, str], int] = {}
    today = clock.local_today()
    for name, cap, start in (
        ("daily", daily, clock.utc_start_of(today)),
        ("monthly", monthly, clock.local_month_bounds(today)[0]),
    ):
        if cap is None:
            continue
        earned = dict(session.execute(
            sa.select(Award.volunteer_id,
                      sa.func.sum(Award.points - Award.reversed_points))
            .where(Award.volunteer_id.in_(volunteer_ids), Award.awarded_at >= start)
            .group_by(Award.volunteer_id)).all())
        for volunteer_id in volunteer_ids:
            room[(volunteer_id, name)] = cap - int(earned.get(volunteer_id) or 0)
    return room


def _check_lines(session: so.Session, community_id: int, lines: list[Line]) -> None:
    if not lines:
        raise invalid("volunteer_ids", _("Choose at least one volunteer."))
    if len(lines) > MAX_BATCH:
        raise invalid("volunteer_ids", _("At most %(n)d volunteers in one batch.", n=MAX_BATCH))
    ids = [line.volunteer_id for line in lines]
    if len(set(ids)) != len(ids):
        raise invalid("volunteer_ids", _("A volunteer appears twice."))
    for line in lines:
        for value in (line.points, line.merit):
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    0 <= value <= MAX_AWARD):
                raise invalid("points", _("Points are whole numbers from 0 to %(n)d.",
                                          n=MAX_AWARD))
        if line.points == 0 and line.merit == 0:
            raise invalid("points", _("An award gives points, merit or both."))
    found = dict(session.execute(sa.select(Volunteer.id, Volunteer.status).where(
        Volunteer.id.in_(ids), Volunteer.community_id == community_id)).all())
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise invalid("volunteer_ids", _("Unknown volunteers: %(ids)s.",
                                         ids=", ".join(map(str, unknown[:20]))))
    inactive = [i for i in ids if found[i] != "active"]
    if inactive:
        raise invalid("volunteer_ids", _("Not active: %(ids)s.",
                                         ids=", ".join(map(str, inactive[:20]))))


def _scoped(community_id: int, key: str) -> str:
    """Keys are per community: another community's key never answers for this one."""
    return f"{community_id}:{key}"


def _batch_by_key(session: so.Session, community_id: int, key: str) -> AwardBatch | None:
    # `key` is scoped already (`activity:7:<the client's key>`); scoped once more, it must fit
    # the column that stores it.
    if not isinstance(key, str) or not key or len(_scoped(community_id, key)) > _BATCH_KEY_LEN:
        raise invalid("key", _("A request key is required."))
    return session.scalar(sa.select(AwardBatch).where(
        AwardBatch.idempotency_key == _scoped(community_id, key)))


def _lock_batch(session: so.Session, batch_id: int, community_id: int, by: int) -> AwardBatch:
    """Lock a waiting batch that staff member `by` may decide (not its maker)."""
    batch = session.scalar(sa.select(AwardBatch).where(AwardBatch.id == batch_id)
                           .with_for_update().execution_options(populate_existing=True))
    if batch is None or batch.community_id != community_id:
        raise NotFound("batch")
    if batch.status != "pending":
        raise BatchNotPending()
    if batch.created_by == by:
        raise MakerCannotApprove()
    return batch


def reverse_award(session: so.Session, award_id: int, community_id: int, *, reason: str,
                  only_what_is_left: bool = False, actor=None,
                  now: datetime | None = None) -> Award:
    """Take back an award (recorded by mistake), with a reason.

    Refused where the volunteer has spent some of the points, unless staff choose to take
    back only what is left; MERIT is always taken back in full.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise invalid("reason", _("A reason is required."))
    award = session.scalar(sa.select(Award).where(Award.id == award_id).with_for_update()
                           .execution_options(populate_existing=True))
    if award is None or award.community_id != community_id or award.transaction_id is None:
        raise NotFound("award")
    if award.reversal_transaction_id is not None:
        raise AlreadyReversed()
    account = volunteer_address(award.volunteer_id, "POINTS")
    with session.begin_nested():
        available = ledger.balance(session, account).available
        points = award.points
        if points > available:
            if not only_what_is_left:
                raise PointsAlreadySpent(available, points)
            points = max(0, available)
        legs = [ledger.Leg(leg.address, -leg.amount)
                for leg in _legs(community_id, award.volunteer_id, points, award.merit)]
        tx = None
        if legs:
            tx = ledger.transfer(session, legs, key=f"award:{award.id}:reversal",
                                 kind="reversal", memo=reason, now=now,
                                 meta={"award_id": award.id, "partial": points != award.points})
        award.reversed_points, award.reversed_merit = points, award.merit
        award.reversal_transaction_id = tx.id if tx else None
        award.reversal_reason = reason
        session.flush()
    audit.record(session, "award.reverse", f"award:{award.id}", community_id=community_id,
                 actor=actor, reason=reason, points=points, merit=award.merit)
    return award


def capped_in(session: so.Session, batch: AwardBatch) -> int:
    """Count the awards of a batch that the earning caps cut."""
    return session.scalar(sa.select(sa.func.count()).select_from(Award).where(
        Award.batch_id == batch.id, Award.capped_by.is_not(None)))


def needs_approval(rules, points: int, people: int = 1) -> bool:
    """Tell whether a credit this big (a batch or an adjustment) waits for a second staff
    member: the one approval rule of a community."""
    return points > rules.approval_points or people > rules.approval_people


def adjust(session: so.Session, community_id: int, volunteer_id: int, points: int, *,
           reason: str, key: str, by: int | None = None, actor=None,
           now: datetime | None = None) -> Adjustment:
    """Grant (points > 0) or deduct (points < 0) POINTS with a reason; never overdraws.

    A grant over the community's approval limit waits, like a batch, for another staff
    member (status pending): no points move until then. A retry with the same key answers
    the first request.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise invalid("reason", _("A reason is required."))
    if isinstance(points, bool) or not isinstance(points, int) or points == 0 or abs(
            points) > MAX_AWARD:
        raise invalid("points", _("Points are whole numbers from 0 to %(n)d.", n=MAX_AWARD))
    if not isinstance(key, str) or not key or len(key) > _ADJUSTMENT_KEY_LEN:
        raise invalid("key", _("A request key is required."))
    volunteer = session.get(Volunteer, volunteer_id)
    if volunteer is None or volunteer.community_id != community_id:
        raise NotFound("volunteer")
    earlier = session.scalar(sa.select(Adjustment).where(
        Adjustment.community_id == community_id, Adjustment.idempotency_key == key))
    if earlier is not None:
        if (earlier.volunteer_id, earlier.points, earlier.reason) != (volunteer_id, points,
                                                                      reason):
            raise Conflict(_("This request key was already used for another adjustment."))
        return earlier
    adjustment = Adjustment(community_id=community_id, volunteer_id=volunteer_id,
                            points=points, reason=reason, idempotency_key=key, created_by=by,
                            status="pending")
    session.add(adjustment)
    session.flush()
    if points > 0 and needs_approval(ensure_rules(session, community_id), points):
        audit.record(session, "points.adjust_request", f"volunteer:{volunteer_id}",
                     community_id=community_id, actor=actor, points=points, reason=reason,
                     adjustment_id=adjustment.id)
        return adjustment
    return _post_adjustment(session, adjustment, actor=actor, now=now)


def _post_adjustment(session: so.Session, adjustment: Adjustment, *, actor=None,
                     now: datetime | None = None) -> Adjustment:
    community_id, points = adjustment.community_id, adjustment.points
    tx = ledger.transfer(session, [
        ledger.Leg(issuance_address(community_id, "POINTS"), -points),
        ledger.Leg(volunteer_address(adjustment.volunteer_id, "POINTS"), points),
    ], key=f"adjust:{community_id}:{adjustment.idempotency_key}", kind="adjustment",
        memo=adjustment.reason, meta={"volunteer_id": adjustment.volunteer_id}, now=now)
    adjustment.status, adjustment.transaction_id = "posted", tx.id
    adjustment.decided_at = now or utcnow()
    audit.record(session, "points.adjust", f"volunteer:{adjustment.volunteer_id}",
                 community_id=community_id, actor=actor, points=points,
                 reason=adjustment.reason)
    session.flush()
    return adjustment


def _lock_adjustment(session: so.Session, adjustment_id: int, community_id: int,
                     by: int) -> Adjustment:
    """Lock a waiting adjustment that staff member `by` may decide (not its maker)."""
    found = session.scalar(sa.select(Adjustment).where(Adjustment.id == adjustment_id)
                           .with_for_update().execution_options(populate_existing=True))
    if found is None or found.community_id != community_id:
        raise NotFound("adjustment")
    if found.status != "pending":
        raise BatchNotPending(adjustment=True)
    if found.created_by == by:
        raise MakerCannotApprove(adjustment=True)
    return found


def approve_adjustment(session: so.Session, adjustment_id: int, community_id: int, *,
                       by: int, actor=None) -> Adjustment:
    """Let a second staff member post a waiting adjustment; the maker cannot."""
    found = _lock_adjustment(session, adjustment_id, community_id, by)
    found.approved_by = by
    audit.record(session, "points.adjust_approve", f"volunteer:{found.volunteer_id}",
                 community_id=community_id, actor=actor, points=found.points,
                 adjustment_id=found.id)
    return _post_adjustment(session, found, actor=actor)


def reject_adjustment(session: so.Session, adjustment_id: int, community_id: int, *,
                      by: int, actor=None) -> Adjustment:
    """Turn down a waiting adjustment: no points move."""
    found = _lock_adjustment(session, adjustment_id, community_id, by)
    found.status, found.approved_by, found.decided_at = "rejected", by, utcnow()
    audit.record(session, "points.adjust_reject", f"volunteer:{found.volunteer_id}",
                 community_id=community_id, actor=actor, points=found.points,
                 adjustment_id=found.id)
    session.flush()
    return found
