"""What people do with redemptions, one function per action, whichever way it comes in.

The mall page and the API, the counter page and the API, the staff pages and the CLI call
these functions: each checks that the actor may act (their own redemption, their merchant's,
their community's), calls the marketplace (`merchants/`), records the audit entry and
commits; a refusal rolls everything back and is raised. Every action here moves points
(holds, posts, voids or reverses them), so every one is audited.

An audit entry names the community that manages the merchant: its staff refund, settle and
read the log of what happened at their merchants.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

import ledger
from merchants import redemptions
from merchants.errors import UnknownRedemption
from merchants.models import Merchant, Redemption
from pointsmall.auth.models import User
from pointsmall.core import attempts, audit, clock
from pointsmall.core.errors import Forbidden
from pointsmall.core.transactions import committed
from pointsmall.earning import tiers
from pointsmall.extensions import db
from pointsmall.people.models import Volunteer

CODE_LIMIT = 10  # wrong codes a merchant user may type in CODE_WINDOW before entry locks
CODE_WINDOW = timedelta(minutes=10)


def mask_name(name: str) -> str:
    """Show a name as the counter sees it: the surname, then stars (张*, 欧***)."""
    name = (name or "").strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else "*"


def redeemer_for(volunteer: Volunteer, session: so.Session | None = None
                 ) -> redemptions.Redeemer:
    """Describe a volunteer to the marketplace: id, account, masked name, tier.

    The tier is worked out only if the item asks for one: most items do not, and it
    costs three queries.
    """
    def tier() -> str | None:
        return tiers.standing(session or db.session, volunteer,
                              today=clock.local_today()).tier

    return redemptions.Redeemer(volunteer.id, volunteer.account("POINTS"),
                                mask_name(volunteer.name), volunteer.community_id,
                                tier_of=tier)


def _volunteer(actor: User | None) -> Volunteer:
    volunteer = actor.volunteer if actor is not None and actor.role == "volunteer" else None
    if volunteer is None:
        raise Forbidden()
    return volunteer


def _merchant_id(actor: User | None) -> int:
    if actor is None or actor.role != "merchant" or not actor.merchant_id:
        raise Forbidden()
    return actor.merchant_id


def _refund_scope(actor: User | None) -> dict[str, int]:
    """Merchant staff refund their merchant's redemptions; staff those their community's."""
    if actor is not None and actor.role == "staff" and actor.community_id:
        return {"community_id": actor.community_id}
    return {"merchant_id": _merchant_id(actor)}


def _community_of(redemption: Redemption) -> int:
    return redemption.item.merchant.community_id


def redeem(session: so.Session, actor: User | None, item_id: int, quantity: int, *,
           key: str) -> Redemption:
    """Hold the volunteer's points and reserve the item; the same key answers it again."""
    volunteer = _volunteer(actor)
    now = clock.utcnow()
    today = clock.to_local(now).date()
    with committed(session):
        redemption = redemptions.reserve(
            session, redeemer_for(volunteer, session), item_id, quantity, key=key,
            hold_days=current_app.config["REDEMPTION_HOLD_DAYS"], today=today,
            month_start=clock.local_month_bounds(today)[0], now=now)
        # A repeated key answers the first redemption, made at another moment: it was
        # audited then.
        if redemption.created_at == now:
            audit.record(session, "redemption.reserve", f"redemption:{redemption.id}",
                         community_id=_community_of(redemption), actor=actor,
                         name=redemption.item.name, quantity=redemption.quantity,
                         points=redemption.points)
    return redemption


def cancel(session: so.Session, actor: User | None, redemption_id: int) -> Redemption:
    """Take back the volunteer's reserved redemption: the points and the item return."""
    volunteer = _volunteer(actor)
    with committed(session):
        redemption = redemptions.cancel(session, volunteer.id, redemption_id)
        audit.record(session, "redemption.cancel", f"redemption:{redemption.id}",
                     community_id=_community_of(redemption), actor=actor,
                     points=redemption.points)
    return redemption


def find_counted(session: so.Session, merchant_id: int, user_id: int, code: str, *,
                 lock: bool = False) -> Redemption:
    """Find the merchant's redemption by code, counting wrong codes against the user.

    The counter page and the API count towards one lock. With `lock`, as
    `redemptions.find_by_code`. A wrong code is counted by `attempts.reserve` before it
    is answered, so parallel guesses get exactly CODE_LIMIT answers; a right code costs
    nothing but is refused while the user is locked out.
    """
    key = str(user_id)
    # The code and the user's counted wrong codes in one round trip; the lock is checked
    # (and its end worked out) in a second only when it may apply.
    row = session.execute(redemptions.by_code(code, lock=lock).add_columns(
        attempts.counted("code", key, CODE_WINDOW))).first()
    if row is not None and row[0].merchant_id == merchant_id:
        if row[1] >= CODE_LIMIT:
            attempts.check(session, "code", key, CODE_LIMIT, CODE_WINDOW)
        return row[0]
    attempts.reserve(session, "code", key, CODE_LIMIT, CODE_WINDOW)
    session.commit()  # the wrong code counts even though the request fails
    raise UnknownRedemption()


def look_up(session: so.Session, actor: User | None, code: str) -> Redemption:
    """Show merchant staff what a code of their merchant is for; wrong codes count."""
    return find_counted(session, _merchant_id(actor), actor.id, code)


def confirm(session: so.Session, actor: User | None, code: str) -> Redemption:
    """Hand the item over at the counter: the held points post to the merchant, once."""
    merchant_id = _merchant_id(actor)
    with committed(session):
        found = find_counted(session, merchant_id, actor.id, code, lock=True)
        redemptions.confirm_found(session, found, confirmed_by=actor.id)
        audit.record(session, "redemption.confirm", f"redemption:{found.id}",
                     community_id=_community_of(found), actor=actor,
                     name=found.item.name, quantity=found.quantity, points=found.points)
    return found


def refund(session: so.Session, actor: User | None, redemption_id: int, *,
           reason: str) -> Redemption:
    """Give a handed-over redemption back with a reason: points and stock return.

    Community staff refund at their community's merchants, merchant staff at their own.
    """
    scope = _refund_scope(actor)
    with committed(session):
        redemption = redemptions.refund(session, redemption_id, reason=reason, **scope)
        audit.record(session, "redemption.refund", f"redemption:{redemption.id}",
                     community_id=_community_of(redemption), actor=actor,
                     reason=redemption.refund_reason, points=redemption.points)
    return redemption


def refund_by_code(session: so.Session, actor: User | None, code: str, *,
                   reason: str) -> Redemption:
    """Refund the merchant's redemption with this code (a wrong code counts), as `refund`."""
    found = find_counted(session, _merchant_id(actor), actor.id, code)
    return refund(session, actor, found.id, reason=reason)


def expire_redemptions(session: so.Session, *, actor: User | None = None, batch: int = 500,
                       now: datetime | None = None) -> int:
    """Expire reserved redemptions past their deadline; return how many. Safe in parallel.

    Each batch commits with one audit entry per community whose merchants' redemptions it
    expired, saying how many and how many points went back. Per batch, not per run: what a
    batch commits is audited in the same transaction, even if a later batch fails. Per
    community, not per redemption: the command runs every minute, and a thousand lapsed
    codes would bury the staff's log; the redemptions themselves say which expired and when.
    A run that finds nothing due writes nothing.
    """
    total = 0
    while True:
        done = ledger.run_in_transaction(
            session, lambda s: _expire_batch(s, actor=actor, batch=batch, now=now))
        total += done
        if done < batch:
            return total


def _expire_batch(session: so.Session, *, actor: User | None, batch: int,
                  now: datetime | None) -> int:
    expired = redemptions.expire_due(session, limit=batch, now=now)
    if expired:
        for community_id, count, points in session.execute(
                sa.select(Merchant.community_id, sa.func.count(), sa.func.sum(Redemption.points))
                .join(Merchant, Merchant.id == Redemption.merchant_id)
                .where(Redemption.id.in_(expired))
                .group_by(Merchant.community_id).order_by(Merchant.community_id)):
            audit.record(session, "redemption.expire", f"community:{community_id}",
                         community_id=community_id, actor=actor, count=count,
                         points=int(points))
    return len(expired)
