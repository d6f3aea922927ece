"""The figures of the dashboards: points from the ledger's daily flows, the rest from the app.

Points issued, redeemed and expired are what the ledger moved on a community's volunteer
accounts, summed per local day as it was written (ledger.flows); outstanding is the running
total, which must equal what the accounts hold now. By kind of transaction:

- issued: awards, less their reversals, plus staff adjustments (either sign);
- redeemed: redemptions posted at the counter, less refunds;
- expired: points expired under the community's rules.

So issued - redeemed - expired = the change in outstanding, month by month, by construction;
`Reconciliation` checks the end of the chain against the balances themselves.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from merchants.models import Item, Merchant, Redemption, merchant_address, merchant_scope
from pointsmall.core import clock
from pointsmall.earning.models import (
    Activity,
    ActivityType,
    Attendance,
    Award,
    AwardBatch,
    Evaluation,
    EvaluationEntry,
)
from pointsmall.earning.tiers import ORDER, mask, standings
from pointsmall.people.communities import Community, community_scope
from pointsmall.people.models import Volunteer

ISSUED = ("award", "reversal", "adjustment")
REDEEMED = ("redemption", "refund")
EXPIRED = ("expiry",)


@dataclass
class MonthPoints:
    """One month of a community's points: what moved, and what volunteers held at its end."""

    month: date
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    other: int = 0
    outstanding: int = 0


@dataclass
class Reconciliation:
    """issued - redeemed - expired over all time, against what the accounts hold."""

    issued: int
    redeemed: int
    expired: int
    other: int
    outstanding: int
    held: int

    @property
    def ok(self) -> bool:
        return (self.issued - self.redeemed - self.expired + self.other == self.outstanding
                == self.held)


def months_ending(last: date, count: int) -> list[date]:
    """Return the first days of `count` months, oldest first, ending with `last`'s month."""
    months = [clock.month_start(last)]
    while len(months) < count:
        months.insert(0, clock.month_start(months[0] - timedelta(days=1)))
    return months


def points_by_month(session: so.Session, community_ids: list[int], months: list[date]
                    ) -> dict[int, list[MonthPoints]]:
    """Return each community's points per month of `months` (consecutive month starts)."""
    bounds = [*months, clock.next_month(months[-1])]
    scopes = {community_scope(c): c for c in community_ids}
    sums = ledger.period_flows(session, list(scopes), bounds, asset="POINTS")
    result = {c: [MonthPoints(m) for m in months] for c in community_ids}
    opening = dict.fromkeys(community_ids, 0)
    for (scope, _asset, kind, period), (credits, debits) in sums.items():
        community, net = scopes[scope], credits - debits
        if period == -1:
            opening[community] += net
            continue
        row = result[community][period]
        if kind in ISSUED:
            row.issued += net
        elif kind in REDEEMED:
            row.redeemed -= net
        elif kind in EXPIRED:
            row.expired -= net
        else:
            row.other += net
    for community, rows in result.items():
        running = opening[community]
        for row in rows:
            running += row.issued - row.redeemed - row.expired + row.other
            row.outstanding = running
    return result


def reconciliation(session: so.Session, community_ids: list[int]) -> dict[int, Reconciliation]:
    """Return, per community, all-time flows against the POINTS its volunteers hold now."""
    scopes = {community_scope(c): c for c in community_ids}
    totals = {c: Counter() for c in community_ids}
    f = ledger.Flow.__table__.c
    for scope, kind, net in session.execute(
            sa.select(f.scope, f.kind, sa.func.sum(f.credits - f.debits))
            .where(f.scope.in_(list(scopes)), f.asset_code == "POINTS")
            .group_by(f.scope, f.kind)):
        bucket = ("issued" if kind in ISSUED else "redeemed" if kind in REDEEMED
                  else "expired" if kind in EXPIRED else "other")
        totals[scopes[scope]][bucket] += int(net)
    held = dict.fromkeys(community_ids, 0)
    for scope, total in session.execute(
            sa.select(ledger.Account.scope, sa.func.sum(ledger.Balance.posted))
            .join(ledger.Balance, ledger.Balance.account_id == ledger.Account.id)
            .where(ledger.Account.scope.in_(list(scopes)), ledger.Account.asset_code == "POINTS")
            .group_by(ledger.Account.scope)):
        held[scopes[scope]] = int(total or 0)
    result = {}
    for community, t in totals.items():
        # Redemptions and expiries take points away: their net is negative.
        outstanding = t["issued"] + t["redeemed"] + t["expired"] + t["other"]
        result[community] = Reconciliation(t["issued"], -t["redeemed"], -t["expired"],
                                           t["other"], outstanding, held[community])
    return result


def _utc_bounds(months: list[date]) -> list[datetime]:
    return [clock.utc_start_of(m) for m in [*months, clock.next_month(months[-1])]]


@dataclass
class People:
    total: int
    active_30: int
    active_90: int
    new_by_month: list[int]


def people(session: so.Session, community_id: int, months: list[date],
           now: datetime | None = None) -> People:
    """Volunteers of a community: how many, how many earned lately, how many joined when."""
    return people_of(session, [community_id], months, now)[community_id]


def people_of(session: so.Session, community_ids: list[int], months: list[date],
              now: datetime | None = None) -> dict[int, People]:
    """`people` for several communities at once: three grouped queries in all."""
    now = now or clock.utcnow()
    found = {c: People(0, 0, 0, [0] * len(months)) for c in community_ids}
    for community, total in session.execute(
            sa.select(Volunteer.community_id, sa.func.count())
            .where(Volunteer.community_id.in_(community_ids), Volunteer.status == "active")
            .group_by(Volunteer.community_id)):
        found[community].total = total
    recent = now - timedelta(days=30)
    for community, active_30, active_90 in session.execute(
            sa.select(Award.community_id,
                      sa.func.count(sa.distinct(sa.case((Award.awarded_at >= recent,
                                                         Award.volunteer_id)))),
                      sa.func.count(sa.distinct(Award.volunteer_id)))
            .where(Award.community_id.in_(community_ids),
                   Award.awarded_at >= now - timedelta(days=90), Award.points > 0)
            .group_by(Award.community_id)):
        found[community].active_30, found[community].active_90 = active_30, active_90
    bounds = [*months, clock.next_month(months[-1])]
    period = ledger.period_index(Volunteer.joined_on, bounds)
    for community, index, count in session.execute(
            sa.select(Volunteer.community_id, period, sa.func.count())
            .where(Volunteer.community_id.in_(community_ids),
                   Volunteer.joined_on >= bounds[0], Volunteer.joined_on < bounds[-1])
            .group_by(Volunteer.community_id, period)):
        found[community].new_by_month[index] = count
    return found


@dataclass
class MonthActivities:
    month: date
    held: int = 0
    attended: int = 0


def activities_by_month(session: so.Session, community_id: int, months: list[date]
                        ) -> list[MonthActivities]:
    """Activities that started in each month, and the attendees marked present at them."""
    return activities_of(session, [community_id], months)[community_id]


def activities_of(session: so.Session, community_ids: list[int], months: list[date]
                  ) -> dict[int, list[MonthActivities]]:
    """`activities_by_month` for several communities at once: two grouped queries."""
    bounds = _utc_bounds(months)
    found = {c: [MonthActivities(m) for m in months] for c in community_ids}
    period = ledger.period_index(Activity.starts_at, bounds)
    in_range = (Activity.community_id.in_(community_ids), Activity.starts_at >= bounds[0],
                Activity.starts_at < bounds[-1])
    for community, index, held in session.execute(
            sa.select(Activity.community_id, period, sa.func.count())
            .where(*in_range).group_by(Activity.community_id, period)):
        found[community][index].held = held
    # count(*), not count(id): the index of those present by activity answers it alone.
    for community, index, attended in session.execute(
            sa.select(Activity.community_id, period, sa.func.count())
            .join(Attendance, Attendance.activity_id == Activity.id)
            .where(*in_range, Attendance.present.is_(True))
            .group_by(Activity.community_id, period)):
        found[community][index].attended = attended
    return found


@dataclass(frozen=True)
class Share:
    """A line of a breakdown: a label, how many redemptions and how many points."""

    key: str
    label: str
    count: int
    points: int


def redemptions_by(session: so.Session, community_id: int, start: datetime, end: datetime
                   ) -> tuple[list[Share], list[Share]]:
    """Fulfilled redemptions of the community's volunteers in [start, end): by merchant, by
    item category."""
    def grouped(*columns, join=None):
        query = (sa.select(*columns, sa.func.count(Redemption.id),
                           sa.func.sum(Redemption.points))
                 .join(Volunteer, Volunteer.id == Redemption.volunteer_id))
        if join is not None:
            query = query.join(*join)
        return session.execute(
            query.where(Volunteer.community_id == community_id,
                        Redemption.status == "fulfilled",
                        Redemption.fulfilled_at >= start, Redemption.fulfilled_at < end)
            .group_by(*columns))

    merchants = [Share(str(mid), name, count, int(points or 0)) for mid, name, count, points
                 in grouped(Merchant.id, Merchant.name,
                            join=(Merchant, Merchant.id == Redemption.merchant_id))]
    categories = [Share(category, category, count, int(points or 0))
                  for category, count, points
                  in grouped(Item.category, join=(Item, Item.id == Redemption.item_id))]
    merchants.sort(key=lambda s: (-s.points, s.label))
    categories.sort(key=lambda s: (-s.points, s.key))
    return merchants, categories


@dataclass(frozen=True)
class TopVolunteer:
    rank: int
    name: str
    merit: int


@dataclass
class Tiers:
    counts: dict[str | None, int]
    top: list[TopVolunteer] = field(default_factory=list)


def tiers(session: so.Session, community_id: int, *, limit: int = 10) -> Tiers:
    """How many volunteers hold each tier now, and the top of the tier window by MERIT.

    Names of volunteers who opted out of the leaderboard are masked.
    """
    standing = standings(session, community_id)
    counts = Counter(s.tier for s in standing.values())
    # The standings summed each volunteer's MERIT in this same window (up to the end of
    # today): rank from them rather than sum the community's awards a second time.
    best = sorted(((s.merit_in_window, v) for v, s in standing.items()
                   if s.merit_in_window > 0), key=lambda x: (-x[0], x[1]))
    best = best[:limit]
    names = dict(session.execute(
        sa.select(Volunteer.id, Volunteer).where(Volunteer.id.in_([v for _m, v in best])))
        .all()) if best else {}
    top, rank, previous = [], 0, None
    for position, (amount, volunteer_id) in enumerate(best, start=1):
        if amount != previous:
            rank, previous = position, amount
        volunteer = names[volunteer_id]
        name = volunteer.name if volunteer.show_on_leaderboard else mask(volunteer.name)
        top.append(TopVolunteer(rank, name, amount))
    return Tiers({t: counts.get(t, 0) for t in (*reversed(ORDER), None)}, top)


@dataclass(frozen=True)
class Waiting:
    batches: int
    batch_points: int
    reserved: int
    reserved_points: int


def waiting(session: so.Session, community_id: int) -> Waiting:
    """Award batches waiting for a second staff member; redemptions reserved, not collected."""
    batches, batch_points = session.execute(
        sa.select(sa.func.count(AwardBatch.id), sa.func.sum(AwardBatch.requested_points))
        .where(AwardBatch.community_id == community_id, AwardBatch.status == "pending")).one()
    reserved, reserved_points = session.execute(
        sa.select(sa.func.count(Redemption.id), sa.func.sum(Redemption.points))
        .join(Volunteer, Volunteer.id == Redemption.volunteer_id)
        .where(Volunteer.community_id == community_id, Redemption.status == "reserved")).one()
    return Waiting(batches, int(batch_points or 0), reserved, int(reserved_points or 0))


def communities(session: so.Session) -> list[Community]:
    return list(session.scalars(sa.select(Community).order_by(Community.id)))


@dataclass
class MerchantDay:
    day: date
    redemptions: int = 0
    points: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class ItemShare:
    name: str
    count: int
    quantity: int
    points: int


@dataclass
class MerchantFigures:
    days: list[MerchantDay]
    items: list[ItemShare]
    received: int
    settled: int
    unsettled: int

    @property
    def reconciles(self) -> bool:
        return self.received - self.settled == self.unsettled


def merchant_figures(session: so.Session, merchant_id: int, *, days: int = 30,
                     today: date | None = None) -> MerchantFigures:
    """A merchant's last `days` local days from its till's daily flows, its most redeemed
    items, and its points received (all time), settled and not yet settled."""
    today = today or clock.local_today()
    first = today - timedelta(days=days - 1)
    by_day = {first + timedelta(days=i): MerchantDay(first + timedelta(days=i))
              for i in range(days)}
    scope = merchant_scope(merchant_id)
    for flow in ledger.daily_flows(session, [scope], start=first, end=today + timedelta(days=1),
                            asset="POINTS"):
        row = by_day[flow.day]
        if flow.kind == "redemption":
            row.redemptions += flow.postings
            row.points += flow.net
        elif flow.kind == "refund":
            row.refunded -= flow.net
    items = [
        ItemShare(name, count, int(quantity or 0), int(points or 0))
        for name, count, quantity, points in session.execute(
            sa.select(Item.name, sa.func.count(Redemption.id), sa.func.sum(Redemption.quantity),
                      sa.func.sum(Redemption.points))
            .join(Item, Item.id == Redemption.item_id)
            .where(Redemption.merchant_id == merchant_id, Redemption.status == "fulfilled",
                   Redemption.fulfilled_at >= clock.utc_start_of(first))
            .group_by(Item.id, Item.name)
            .order_by(sa.func.count(Redemption.id).desc(), Item.name)
            .limit(10))]
    totals = Counter()
    f = ledger.Flow.__table__.c
    for kind, net in session.execute(
            sa.select(f.kind, sa.func.sum(f.credits - f.debits))
            .where(f.scope == scope, f.asset_code == "POINTS").group_by(f.kind)):
        totals[kind] += int(net)
    unsettled = ledger.balance(session, merchant_address(merchant_id)).posted
    return MerchantFigures(list(by_day.values()), items,
                           received=totals["redemption"] + totals["refund"],
                           settled=-totals["settlement"], unsettled=unsettled)


@dataclass(frozen=True)
class EarnedBy:
    type_code: str
    name: str
    awards: int
    points: int
    merit: int


@dataclass(frozen=True)
class Redeemed:
    name: str
    merchant: str
    count: int
    points: int


@dataclass(frozen=True)
class TierHistory:
    name: str
    period_start: datetime
    period_end: datetime
    tier: str | None
    rank: int
    score: int


@dataclass
class YearInReview:
    year: int
    earned: list[EarnedBy]
    redeemed: list[Redeemed]
    tiers: list[TierHistory]
    points_in: int
    points_out: int


def year_in_review(session: so.Session, volunteer: Volunteer, year: int) -> YearInReview:
    """One volunteer's year: points and merit by activity type, what they redeemed, their
    tiers in the evaluations, and what came in and went out of their points account."""
    start = clock.utc_start_of(date(year, 1, 1))
    end = clock.utc_start_of(date(year + 1, 1, 1))
    names = dict(session.execute(sa.select(ActivityType.code, ActivityType.name).where(
        ActivityType.community_id == volunteer.community_id)).all())
    earned = [
        EarnedBy(code or "", names.get(code, code or ""), count, int(points or 0),
                 int(merit or 0))
        for code, count, points, merit in session.execute(
            sa.select(Award.type_code, sa.func.count(Award.id),
                      sa.func.sum(Award.points - Award.reversed_points),
                      sa.func.sum(Award.merit - Award.reversed_merit))
            .where(Award.volunteer_id == volunteer.id, Award.awarded_at >= start,
                   Award.awarded_at < end)
            .group_by(Award.type_code))]
    earned.sort(key=lambda e: (-e.points, e.type_code))
    redeemed = [
        Redeemed(item, merchant, count, int(points or 0))
        for item, merchant, count, points in session.execute(
            sa.select(Item.name, Merchant.name, sa.func.count(Redemption.id),
                      sa.func.sum(Redemption.points))
            .join(Item, Item.id == Redemption.item_id)
            .join(Merchant, Merchant.id == Redemption.merchant_id)
            .where(Redemption.volunteer_id == volunteer.id,
                   Redemption.status == "fulfilled",
                   Redemption.fulfilled_at >= start, Redemption.fulfilled_at < end)
            .group_by(Item.id, Item.name, Merchant.name)
            .order_by(sa.func.sum(Redemption.points).desc()))]
    history = [
        TierHistory(name, period_start, period_end, tier, rank, int(score))
        for name, period_start, period_end, tier, rank, score in session.execute(
            sa.select(Evaluation.name, Evaluation.period_start, Evaluation.period_end,
                      EvaluationEntry.tier, EvaluationEntry.rank, EvaluationEntry.score)
            .join(Evaluation, Evaluation.id == EvaluationEntry.evaluation_id)
            .where(EvaluationEntry.volunteer_id == volunteer.id,
                   Evaluation.period_end > start, Evaluation.period_start < end)
            .order_by(Evaluation.period_start))]
    account = session.scalar(sa.select(ledger.Account.id).where(
        ledger.Account.address == volunteer.account("POINTS")))
    p = ledger.Posting
    points_in, points_out = session.execute(
        sa.select(sa.func.sum(sa.case((p.amount > 0, p.amount), else_=0)),
                  sa.func.sum(sa.case((p.amount < 0, -p.amount), else_=0)))
        .join(ledger.Transaction, ledger.Transaction.id == p.transaction_id)
        .where(p.account_id == account, ledger.Transaction.created_at >= start,
               ledger.Transaction.created_at < end)).one()
    return YearInReview(year, earned, redeemed, history, int(points_in or 0),
                        int(points_out or 0))
