"""What people do in the earning half, one function per action: the page, the API and the
grid platform call the same one. It finds what it acts on in the actor's community, checks
the rules, writes, records the audit entry naming the actor, or raises a domain error.

Each takes the session, the acting user and plain values, and owns its transaction: it runs
inside `committed`, so it commits with its audit entry, or a refusal rolls everything back
and is raised. Expiry runs as `expiry.expire_points` (the command line and the jobs).
"""

import secrets
from datetime import date

import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import User
from pointsmall.core import audit, clock
from pointsmall.core.errors import NotFound
from pointsmall.core.transactions import committed
from pointsmall.earning import activities, awards, platform, sheets, tiers
from pointsmall.earning.errors import invalid
from pointsmall.earning.models import (
    Activity,
    Adjustment,
    Attendance,
    Award,
    AwardBatch,
    EarningRules,
    Evaluation,
)
from pointsmall.earning.rules import activity_types, ensure_rules
from pointsmall.people.models import Volunteer


def award_attendees(session: so.Session, actor: User, activity_id: int,
                    volunteer_ids: list[int] | None, *, key: str) -> AwardBatch:
    """Award an activity's points to everyone present (or the listed ones), once each."""
    with committed(session):
        activity = activities.get_activity(session, activity_id, actor.community_id)
        return awards.award_activity(session, activity, volunteer_ids, key=key, by=actor.id,
                                     actor=actor)


def decide_batch(session: so.Session, actor: User, batch_id: int,
                 verdict: str) -> AwardBatch:
    """Approve (and post) or reject a waiting batch another staff member made."""
    decide = {"approve": awards.approve_batch, "reject": awards.reject_batch}.get(verdict)
    if decide is None:
        raise NotFound("verdict")
    with committed(session):
        return decide(session, batch_id, actor.community_id, by=actor.id, actor=actor)


def reverse_award(session: so.Session, actor: User, award_id: int, *, reason: str,
                  only_what_is_left: bool = False) -> Award:
    """Take an award back with a reason; only the points left, if asked."""
    with committed(session):
        return awards.reverse_award(session, award_id, actor.community_id, reason=reason,
                                    only_what_is_left=only_what_is_left, actor=actor)


def adjust_points(session: so.Session, actor: User, volunteer_id: int, points: int, *,
                  reason: str, key: str) -> Adjustment:
    """Grant or deduct a volunteer's POINTS with a reason; a grant over the approval limit
    waits for a second staff member."""
    with committed(session):
        return awards.adjust(session, actor.community_id, volunteer_id, points, reason=reason,
                             key=key, by=actor.id, actor=actor)


def decide_adjustment(session: so.Session, actor: User, adjustment_id: int,
                      verdict: str) -> Adjustment:
    """Approve (and post) or reject a waiting adjustment another staff member asked for."""
    decide = {"approve": awards.approve_adjustment,
              "reject": awards.reject_adjustment}.get(verdict)
    if decide is None:
        raise NotFound("verdict")
    with committed(session):
        return decide(session, adjustment_id, actor.community_id, by=actor.id, actor=actor)


def freeze_evaluation(session: so.Session, actor: User, name: str, start: date, end: date, *,
                      early: bool) -> Evaluation:
    """Freeze the ranking of a period; one not yet ended only when asked (`early`), since
    merit can still be earned in it."""
    if end >= clock.local_today() and not early:
        raise invalid("end", _("This period has not ended yet: its ranking can still change. "
                               "Tick the box below to freeze it anyway."))
    with committed(session):
        return tiers.evaluate(session, actor.community_id, name, start, end, by=actor.id,
                              actor=actor)


def save_thresholds(session: so.Session, actor: User, thresholds: dict[str, int]) -> None:
    """Set the merit at which the community's volunteers become bronze, silver and gold."""
    with committed(session):
        tiers.save_thresholds(session, actor.community_id, thresholds)


# ---- activities and attendance -------------------------------------------------------------

def create_activity(session: so.Session, actor: User, raw: dict, *,
                    key: str | None = None) -> Activity:
    """Create an activity of the staff's community; the same `key` again answers it."""
    with committed(session):
        return activities.create_activity(session, actor.community_id, raw, by=actor.id,
                                          key=key)


def mark_attendance(session: so.Session, actor: User, activity_id: int,
                    volunteer_ids: list[int], *, present: bool = True) -> int:
    """Mark volunteers of the staff's community present at an activity (or not)."""
    with committed(session):
        activity = activities.get_activity(session, activity_id, actor.community_id)
        return activities.mark_present(session, activity, volunteer_ids, present)


def mark_sheet_present(session: so.Session, actor: User, activity_id: int, upload) -> int:
    """Mark present everyone on an uploaded sign-in sheet; say how many."""
    with committed(session):
        activity = activities.get_activity(session, activity_id, actor.community_id)
        ids = sheets.read_sign_in_sheet(session, actor.community_id, upload)
        return activities.mark_present(session, activity, ids)


def sign_up(session: so.Session, volunteer: Volunteer, activity_id: int) -> Attendance:
    """Sign a volunteer up for an activity of their community; twice is once."""
    with committed(session):
        activity = activities.get_activity(session, activity_id, volunteer.community_id)
        return activities.sign_up(session, activity, volunteer)


def check_in(session: so.Session, volunteer: Volunteer, token: str) -> Attendance:
    """Check a volunteer in with the token of the venue's QR link."""
    with committed(session):
        activity = activities.activity_for_token(session, token)
        return activities.check_in(session, activity, volunteer)


# ---- the admin's rules and the grid platform -----------------------------------------------

def update_rules(session: so.Session, actor: User, community_id: int, values: dict,
                 types: dict[int, tuple[int, int, bool]]) -> EarningRules:
    """Set a community's earning rules and, by type id, each activity type's points, merit
    and whether it is offered; points or merit out of 0-100000 are left as they were."""
    with committed(session):
        rules = ensure_rules(session, community_id)
        before = {name: getattr(rules, name) for name in values}
        for name, value in values.items():
            setattr(rules, name, value)
        changed = {}
        for kind in activity_types(session, community_id):
            if kind.id not in types:
                continue
            points, merit, active = types[kind.id]
            if 0 <= points <= 100_000 and 0 <= merit <= 100_000:
                if (points, merit) != (kind.points, kind.merit):
                    changed[kind.code] = [points, merit]
                kind.points, kind.merit = points, merit
            kind.active = active
        audit.record(session, "rules.update", f"community:{community_id}",
                     community_id=community_id, actor=actor, before=before,
                     after={name: getattr(rules, name) for name in values}, types=changed)
        return rules


def rotate_platform_secret(session: so.Session, actor: User, community_id: int) -> None:
    """Give the grid platform a new signing secret (the old one stops working)."""
    with committed(session):
        ensure_rules(session, community_id).platform_secret = secrets.token_hex(32)
        audit.record(session, "rules.rotate_secret", f"community:{community_id}",
                     community_id=community_id, actor=actor)


def award_platform_task(session: so.Session, data: dict, body: bytes) -> tuple[Award, bool]:
    """Award a verified task completion once per task id; return it and whether it is new."""
    with committed(session):
        return platform.award_task(session, data, body)
