"""Expiry of POINTS by community policy; MERIT never expires.

Points are spent oldest first, so what is older than the cutoff and still unspent is the
balance less everything earned after the cutoff: expiring = max(0, balance - earned since
cutoff), never more than is available (points held for a redemption stay).
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from ledger import Account, Posting, Transaction
from pointsmall.core import audit, clock
from pointsmall.earning.models import EarningRules
from pointsmall.people.communities import expired_address
from pointsmall.people.models import Volunteer

EARNING_KINDS = ("award", "adjustment")


@dataclass(frozen=True)
class Expiring:
    volunteer_id: int
    amount: int
    on: date


def cutoff_for(rules: EarningRules, today: date) -> date | None:
    """Return the local date before which points earned have expired by `today`."""
    if rules.expiry_mode == "rolling":
        months = today.year * 12 + today.month - 1 - rules.expiry_months
        year, month = divmod(months, 12)
        day = min(today.day, _days_in(year, month + 1))
        return date(year, month + 1, day)
    if rules.expiry_mode == "annual":
        # Everything earned in year Y expires on (expiry_month, expiry_day) of year Y+1.
        this_year = _safe_date(today.year, rules.expiry_month, rules.expiry_day)
        return date(today.year, 1, 1) if today >= this_year else date(today.year - 1, 1, 1)
    return None


def expiring_amounts(session: so.Session, community_id: int, cutoff: date,
                     volunteer_ids: list[int] | None = None) -> dict[int, int]:
    """Return, per volunteer, the POINTS older than `cutoff` that are still unspent."""
    since = clock.utc_start_of(cutoff)
    volunteers = sa.select(Volunteer.id).where(Volunteer.community_id == community_id)
    if volunteer_ids is not None:
        volunteers = volunteers.where(Volunteer.id.in_(volunteer_ids))
    ids = list(session.scalars(volunteers))
    addresses = {f"volunteer:{v}:points": v for v in ids}
    if not addresses:
        return {}
    recent = dict(session.execute(
        sa.select(Account.address, sa.func.sum(Posting.amount))
        .join(Posting, Posting.account_id == Account.id)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Account.address.in_(addresses), Posting.amount > 0,
               Transaction.kind.in_(EARNING_KINDS), Transaction.created_at >= since)
        .group_by(Account.address)).all())
    result = {}
    for address, found in ledger.balances(session, list(addresses)).items():
        amount = min(found.posted - int(recent.get(address) or 0), found.available)
        if amount > 0:
            result[addresses[address]] = amount
    return result


def expire_points(session: so.Session, community_id: int, *, today: date | None = None) -> int:
    """Move expired POINTS to the community's expired account; safe to run twice at once.

    What moved is audited once for the community, as the system (no one signs in to the
    command line that runs it), with the counts; a run that moves nothing records nothing.
    """
    rules = session.get(EarningRules, community_id)
    today = today or clock.local_today()
    cutoff = cutoff_for(rules, today) if rules else None
    if cutoff is None:
        return 0
    ledger.open_account(session, expired_address(community_id), "POINTS")
    moved, people = 0, 0
    for volunteer_id in expiring_amounts(session, community_id, cutoff):
        address = f"volunteer:{volunteer_id}:points"
        with session.begin_nested():
            # Lock first, then work out what is old and unspent: a redemption between the
            # two would otherwise have its points taken from the recent ones.
            ledger.lock_account(session, address)
            amount = expiring_amounts(session, community_id, cutoff, [volunteer_id]).get(
                volunteer_id, 0)
            if amount <= 0:
                continue
            posted = ledger.balance(session, address).posted
            ledger.move(session, address, expired_address(community_id), amount,
                        key=f"expire:{volunteer_id}:{cutoff.isoformat()}:{posted}",
                        kind="expiry", memo=cutoff.isoformat(),
                        meta={"cutoff": cutoff.isoformat()})
        moved, people = moved + amount, people + 1
    if moved:
        audit.record(session, "points.expire", f"community:{community_id}",
                     community_id=community_id, people=people, points=moved,
                     cutoff=cutoff.isoformat())
    return moved


def upcoming_expiry(session: so.Session, volunteer: Volunteer, *,
                    days: int = 30) -> Expiring | None:
    """Return what will expire within `days` days for a volunteer, and when."""
    rules = session.get(EarningRules, volunteer.community_id)
    if rules is None or rules.expiry_mode == "never":
        return None
    today = clock.local_today()
    now_cut = cutoff_for(rules, today)
    for ahead in range(1, days + 1):
        day = today + timedelta(days=ahead)
        cut = cutoff_for(rules, day)
        if cut != now_cut:
            due = expiring_amounts(session, volunteer.community_id, cut, [volunteer.id])
            amount = due.get(volunteer.id, 0)
            already = expiring_amounts(session, volunteer.community_id, now_cut,
                                       [volunteer.id]).get(volunteer.id, 0) if now_cut else 0
            if amount - already > 0:
                return Expiring(volunteer.id, amount - already, day)
            if rules.expiry_mode == "annual":
                return None
    return None


def _days_in(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _safe_date(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _days_in(year, month)))


def expiry_moment(cutoff: date) -> datetime:
    return clock.utc_start_of(cutoff)
