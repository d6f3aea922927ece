"""The staff actions that move points, one function each: the office page and the API call
the same one. It finds what it acts on in the actor's community, checks the rules, writes,
records the audit entry naming the actor, or raises a domain error.

Each takes the session, the acting staff member and plain values; it flushes and never
commits: the request commits once. The grid platform's signed completions are awarded by
`platform.award_task`, and expiry by `expiry.expire_points` (the command line).
"""

from datetime import date

import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import User
from pointsmall.core import clock
from pointsmall.core.errors import NotFound
from pointsmall.earning import activities, awards, tiers
from pointsmall.earning.errors import invalid
from pointsmall.earning.models import Adjustment, Award, AwardBatch, Evaluation


def award_attendees(session: so.Session, actor: User, activity_id: int,
                    volunteer_ids: list[int] | None, *, key: str) -> AwardBatch:
    """Award an activity's points to everyone present (or the listed ones), once each."""
    activity = activities.get_activity(session, activity_id, actor.community_id)
    return awards.award_activity(session, activity, volunteer_ids, key=key, by=actor.id,
                                 actor=actor)


def decide_batch(session: so.Session, actor: User, batch_id: int,
                 verdict: str) -> AwardBatch:
    """Approve (and post) or reject a waiting batch another staff member made."""
    decide = {"approve": awards.approve_batch, "reject": awards.reject_batch}.get(verdict)
    if decide is None:
        raise NotFound("verdict")
    return decide(session, batch_id, actor.community_id, by=actor.id, actor=actor)


def reverse_award(session: so.Session, actor: User, award_id: int, *, reason: str,
                  only_what_is_left: bool = False) -> Award:
    """Take an award back with a reason; only the points left, if asked."""
    return awards.reverse_award(session, award_id, actor.community_id, reason=reason,
                                only_what_is_left=only_what_is_left, actor=actor)


def adjust_points(session: so.Session, actor: User, volunteer_id: int, points: int, *,
                  reason: str, key: str) -> Adjustment:
    """Grant or deduct a volunteer's POINTS with a reason; a grant over the approval limit
    waits for a second staff member."""
    return awards.adjust(session, actor.community_id, volunteer_id, points, reason=reason,
                         key=key, by=actor.id, actor=actor)


def decide_adjustment(session: so.Session, actor: User, adjustment_id: int,
                      verdict: str) -> Adjustment:
    """Approve (and post) or reject a waiting adjustment another staff member asked for."""
    decide = {"approve": awards.approve_adjustment,
              "reject": awards.reject_adjustment}.get(verdict)
    if decide is None:
        raise NotFound("verdict")
    return decide(session, adjustment_id, actor.community_id, by=actor.id, actor=actor)


def freeze_evaluation(session: so.Session, actor: User, name: str, start: date, end: date, *,
                      early: bool) -> Evaluation:
    """Freeze the ranking of a period; one not yet ended only when asked (`early`), since
    merit can still be earned in it."""
    if end >= clock.local_today() and not early:
        raise invalid("end", _("This period has not ended yet: its ranking can still change. "
                               "Tick the box below to freeze it anyway."))
    return tiers.evaluate(session, actor.community_id, name, start, end, by=actor.id,
                          actor=actor)
