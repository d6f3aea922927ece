"""The rows of each community or merchant table, read in keyset chunks, as cells in order."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from merchants.models import Item, Merchant, Redemption, Statement
from pointsmall.auth.models import User
from pointsmall.core.export_query import LocalTime, Period, Scope, keyset
from pointsmall.core.labels import BATCH_LABELS, MARKET_STATUS_LABELS
from pointsmall.earning.models import Activity, ActivityType, Attendance, Award, AwardBatch
from pointsmall.people import communities
from pointsmall.people.models import Volunteer

SOURCE_LABELS = {"signup": _l("Signed up"), "qr": _l("Checked in by QR code"),
                 "staff": _l("Marked by staff")}
CAP_LABELS = {"daily": _l("Daily cap"), "monthly": _l("Monthly cap")}


def _label(labels: dict, value) -> str:
    return str(labels.get(value, value or ""))


def _yes_no() -> tuple[str, str]:
    return _("Yes"), _("No")


def _grid_paths(session: so.Session, community_id: int) -> dict[int, str]:
    return {g.id: g.path for g in communities.community_grids(session, community_id)}


def activities(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield the community's activities that start in the period, with their attendance."""
    signed_up = (sa.select(sa.func.count()).where(Attendance.activity_id == Activity.id)
                 .scalar_subquery())
    present = (sa.select(sa.func.count()).where(Attendance.activity_id == Activity.id,
                                                Attendance.present).scalar_subquery())
    query = (sa.select(Activity.starts_at, Activity.id, Activity.title, ActivityType.name,
                       Activity.place, Activity.ends_at, Activity.capacity, Activity.points,
                       Activity.merit, Activity.cancelled, signed_up, present)
             .join(ActivityType, ActivityType.id == Activity.type_id)
             .where(Activity.community_id == scope.community_id,
                    period.holds(Activity.starts_at)))
    local, (yes, no) = LocalTime(), _yes_no()
    for (starts, id_, title, kind, place, ends, capacity, points, merit, cancelled,
         people, came) in keyset(session, query, 2):
        yield [id_, title, kind, place, local(starts), local(ends), capacity, points, merit,
               yes if cancelled else no, people, came]


def attendance(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield who signed up, checked in or was present at the period's activities."""
    query = (sa.select(Activity.starts_at, Activity.id, Attendance.id, Activity.title,
                       User.name, User.phone, Volunteer.grid_id, Attendance.signed_up_at,
                       Attendance.checked_in_at, Attendance.present, Attendance.source)
             .join(Activity, Activity.id == Attendance.activity_id)
             .join(Volunteer, Volunteer.id == Attendance.volunteer_id)
             .join(User, User.id == Volunteer.user_id)
             .where(Activity.community_id == scope.community_id,
                    period.holds(Activity.starts_at)))
    local, (yes, no) = LocalTime(), _yes_no()
    paths = _grid_paths(session, scope.community_id)
    for (starts, activity_id, _id, title, name, phone, grid_id, signed_up, checked_in,
         present, source) in keyset(session, query, 3):
        yield [activity_id, title, local(starts), name, phone, paths.get(grid_id, ""),
               local(signed_up), local(checked_in), yes if present else no,
               _label(SOURCE_LABELS, source)]


def awards(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield each volunteer's award posted (or asked for, while pending) in the period."""
    when = sa.func.coalesce(Award.awarded_at, AwardBatch.created_at)
    query = (sa.select(Award.id, Award.batch_id, AwardBatch.status, Award.awarded_at,
                       AwardBatch.created_at, User.name, User.phone, Award.title,
                       Award.type_code, Award.requested_points, Award.points, Award.merit,
                       Award.capped_by, Award.reversed_points, Award.reversed_merit,
                       Award.reversal_reason)
             .join(AwardBatch, AwardBatch.id == Award.batch_id)
             .join(Volunteer, Volunteer.id == Award.volunteer_id)
             .join(User, User.id == Volunteer.user_id)
             .where(Award.community_id == scope.community_id, period.holds(when)))
    types = dict(session.execute(sa.select(ActivityType.code, ActivityType.name).where(
        ActivityType.community_id == scope.community_id)).all())
    local = LocalTime()
    for (id_, batch_id, status, awarded_at, asked_at, name, phone, title, type_code, requested,
         points, merit, capped_by, reversed_points, reversed_merit, reason) in keyset(
            session, query):
        yield [id_, batch_id, _label(BATCH_LABELS, status), local(awarded_at or asked_at),
               name, phone, title, types.get(type_code, type_code), requested, points, merit,
               _label(CAP_LABELS, capped_by), reversed_points, reversed_merit, reason]


def redemptions(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield redemptions: at the community's merchants made in the period, or the ones a
    merchant handed over in the period (what its counter pages and settlement count)."""
    query = (sa.select(Redemption.id, Redemption.created_at, Merchant.name, Item.name,
                       Redemption.quantity, Redemption.unit_price, Redemption.points,
                       Redemption.volunteer_label, Redemption.status, Redemption.fulfilled_at,
                       Redemption.closed_at, Redemption.refund_reason)
             .join(Item, Item.id == Redemption.item_id)
             .join(Merchant, Merchant.id == Redemption.merchant_id))
    if scope.merchant_id is not None:
        query = query.where(Redemption.merchant_id == scope.merchant_id,
                            Redemption.fulfilled_at.is_not(None),
                            period.holds(Redemption.fulfilled_at))
    else:
        query = query.where(Merchant.community_id == scope.community_id,
                            period.holds(Redemption.created_at))
    local = LocalTime()
    for (id_, created_at, merchant, item, quantity, unit_price, points, volunteer, status,
         fulfilled_at, closed_at, reason) in keyset(session, query):
        yield [id_, local(created_at), merchant, item, quantity, unit_price, points, volunteer,
               _label(MARKET_STATUS_LABELS, status), local(fulfilled_at), local(closed_at), reason]


def statements(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield the frozen settlement statements whose period overlaps the export's."""
    query = (sa.select(Statement.id, Merchant.name, Statement.period_start,
                       Statement.period_end, Statement.redeemed_points,
                       Statement.refunded_points, Statement.net_points,
                       Statement.fen_per_point, Statement.amount_fen, Statement.closed_at)
             .join(Merchant, Merchant.id == Statement.merchant_id))
    if scope.merchant_id is not None:
        query = query.where(Statement.merchant_id == scope.merchant_id)
    else:
        query = query.where(Merchant.community_id == scope.community_id)
    if period.start is not None:
        query = query.where(Statement.period_end > period.start)
    if period.end is not None:
        query = query.where(Statement.period_start < period.end)
    local = LocalTime()
    for (id_, merchant, start, end, redeemed, refunded, net, rate, fen,
         closed_at) in keyset(session, query):
        # A statement covers local days [start, end): its last day is the one before end.
        yield [id_, merchant, local(start).date(), (local(end) - timedelta(days=1)).date(),
               redeemed, refunded, net, rate, Decimal(fen).scaleb(-2), local(closed_at)]
