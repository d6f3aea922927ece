"""What office staff see of one volunteer's points: balances, tier, history, holds and
adjustments, read the way the volunteer's own pages read them."""

from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from merchants.models import Redemption
from pointsmall.auth.models import User
from pointsmall.earning import tiers
from pointsmall.earning.models import Adjustment
from pointsmall.people.models import Volunteer


@dataclass
class PointsOverview:
    points: ledger.AccountBalance
    merit: ledger.AccountBalance
    standing: tiers.Standing
    history: ledger.HistoryPage
    holds: list[Redemption]
    adjustments: list[tuple[Adjustment, str, str]]


def points_overview(session: so.Session, volunteer: Volunteer, *,
                    before: int | None = None) -> PointsOverview:
    """Return a volunteer's balances, tier, a page of history, open holds and adjustments."""
    addresses = [volunteer.account("POINTS"), volunteer.account("MERIT")]
    found = ledger.balances(session, addresses)
    points, merit = (found.get(a) or ledger.AccountBalance(a, asset, 0, 0)
                     for a, asset in zip(addresses, ("POINTS", "MERIT"), strict=True))
    try:
        history = ledger.history(session, addresses[0], limit=20, before=before)
    except ledger.UnknownAccount:
        history = ledger.HistoryPage([], None)
    holds = session.scalars(sa.select(Redemption).where(
        Redemption.volunteer_id == volunteer.id, Redemption.status == "reserved")
        .order_by(Redemption.id.desc())).all()
    maker, checker = so.aliased(User), so.aliased(User)
    adjustments = session.execute(
        sa.select(Adjustment, sa.func.coalesce(maker.name, ""),
                  sa.func.coalesce(checker.name, ""))
        .outerjoin(maker, maker.id == Adjustment.created_by)
        .outerjoin(checker, checker.id == Adjustment.approved_by)
        .where(Adjustment.volunteer_id == volunteer.id)
        .order_by(Adjustment.id.desc()).limit(50)).all()
    return PointsOverview(points, merit, tiers.standing(session, volunteer), history,
                          list(holds), [tuple(row) for row in adjustments])
