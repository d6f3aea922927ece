"""Tiers (金银铜牌): gold, silver and bronze from recent MERIT plus years of service."""

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger.clock import utcnow
from ledger.models import Account, Posting, Transaction
from pointsmall.volunteers.models import Volunteer

WINDOW_DAYS = 365
# Default thresholds in MERIT; a community may set its own.
DEFAULT_THRESHOLDS = {"bronze": 100, "silver": 300, "gold": 600}
MERIT_PER_YEAR = 20
ORDER = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Standing:
    """A volunteer's tier now, what counted, and what is missing for the next."""

    tier: str | None
    merit_in_window: int
    service_bonus: int
    next_tier: str | None
    missing: int

    @property
    def score(self) -> int:
        return self.merit_in_window + self.service_bonus


def years_of_service(joined_on: date, today: date) -> int:
    years = today.year - joined_on.year
    if (today.month, today.day) < (joined_on.month, joined_on.day):
        years -= 1
    return max(0, years)


def merit_earned_since(session: so.Session, volunteer: Volunteer, since) -> int:
    """Sum the MERIT credited to a volunteer since a moment (earned, not spent: MERIT is never
    spent, and reversals of awards count against it)."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Posting.amount), 0))
        .join(Account, Account.id == Posting.account_id)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Account.address == volunteer.account("MERIT"), Transaction.created_at >= since))
    return int(total)


def standing(session: so.Session, volunteer: Volunteer, *, today: date,
             thresholds: dict[str, int] | None = None,
             window_days: int = WINDOW_DAYS) -> Standing:
    """Return a volunteer's tier from MERIT in the trailing window plus a service bonus."""
    thresholds = thresholds or DEFAULT_THRESHOLDS
    merit = merit_earned_since(session, volunteer, utcnow() - timedelta(days=window_days))
    bonus = years_of_service(volunteer.joined_on, today) * MERIT_PER_YEAR
    score = merit + bonus
    tier = None
    for name in ORDER:
        if score >= thresholds[name]:
            tier = name
    upcoming = [name for name in ORDER if score < thresholds[name]]
    next_tier = upcoming[0] if upcoming else None
    missing = thresholds[next_tier] - score if next_tier else 0
    return Standing(tier, merit, bonus, next_tier, missing)
