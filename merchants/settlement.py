"""Statements and settlement: what a merchant received in a period, frozen once closed."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from ledger import utcnow
from merchants.errors import InvalidPeriod, PeriodAlreadyClosed
from merchants.models import Merchant, Redemption, Statement, StatementLine


@dataclass(frozen=True)
class Line:
    """A redemption handed over (+points) or refunded (-points) at a moment."""

    redemption: Redemption
    kind: str
    points: int
    at: datetime


def period_lines(session: so.Session, merchant_id: int, start: datetime,
                 end: datetime) -> list[Line]:
    """Return what happened at a merchant in [start, end): hand-overs and refunds."""
    _check_period(start, end)
    fulfilled = session.scalars(
        sa.select(Redemption).where(Redemption.merchant_id == merchant_id,
                                    Redemption.fulfilled_at >= start,
                                    Redemption.fulfilled_at < end)
        .order_by(Redemption.fulfilled_at, Redemption.id))
    refunded = session.scalars(
        sa.select(Redemption).where(Redemption.merchant_id == merchant_id,
                                    Redemption.status == "refunded",
                                    Redemption.closed_at >= start, Redemption.closed_at < end)
        .order_by(Redemption.closed_at, Redemption.id))
    lines = [Line(r, "fulfilled", r.points, r.fulfilled_at) for r in fulfilled]
    lines += [Line(r, "refund", -r.points, r.closed_at) for r in refunded]
    return sorted(lines, key=lambda line: (line.at, line.redemption.id))


def unsettled_lines(session: so.Session, merchant_id: int, end: datetime) -> list[Line]:
    """Return every hand-over and refund before `end` that no statement has counted yet."""
    stated = sa.select(StatementLine.redemption_id, StatementLine.kind).subquery()
    fulfilled = session.scalars(
        sa.select(Redemption).where(
            Redemption.merchant_id == merchant_id, Redemption.fulfilled_at < end,
            ~sa.exists().where(stated.c.redemption_id == Redemption.id,
                               stated.c.kind == "fulfilled")))
    refunded = session.scalars(
        sa.select(Redemption).where(
            Redemption.merchant_id == merchant_id, Redemption.status == "refunded",
            Redemption.closed_at < end,
            ~sa.exists().where(stated.c.redemption_id == Redemption.id,
                               stated.c.kind == "refund")))
    lines = [Line(r, "fulfilled", r.points, r.fulfilled_at) for r in fulfilled]
    lines += [Line(r, "refund", -r.points, r.closed_at) for r in refunded]
    return sorted(lines, key=lambda line: (line.at, line.redemption.id))


def close_period(session: so.Session, merchant_id: int, start: datetime, end: datetime, *,
                 fen_per_point: int, closed_by: int | None,
                 now: datetime | None = None) -> Statement:
    """Freeze a merchant's statement for [start, end) and move its points to settlement.

    It counts every hand-over and refund before `end` not yet in a statement, so a refund
    of an already settled redemption lands in the next statement. A charity supermarket
    settles with no money.
    """
    now = now or utcnow()
    _check_period(start, end)
    if end > now:
        raise InvalidPeriod("a period can be closed only after it has ended")
    if isinstance(fen_per_point, bool) or not isinstance(fen_per_point, int) or not (
            0 <= fen_per_point <= 100_000):
        raise InvalidPeriod("fen per point is a whole number from 0 to 100000")
    merchant = session.scalar(sa.select(Merchant).where(Merchant.id == merchant_id)
                              .with_for_update())
    overlapping = session.scalar(sa.select(Statement.id).where(
        Statement.merchant_id == merchant_id, Statement.period_start < end,
        Statement.period_end > start))
    if overlapping is not None:
        raise PeriodAlreadyClosed(merchant_id, overlapping)
    lines = unsettled_lines(session, merchant_id, end)
    redeemed = sum(line.points for line in lines if line.kind == "fulfilled")
    refunded = -sum(line.points for line in lines if line.kind == "refund")
    net = redeemed - refunded
    rate = 0 if merchant.kind == "charity" else fen_per_point
    with session.begin_nested():
        statement = Statement(
            merchant_id=merchant_id, period_start=start, period_end=end,
            redeemed_points=redeemed, refunded_points=refunded, net_points=net,
            fen_per_point=rate, amount_fen=net * rate, closed_by=closed_by, closed_at=now)
        session.add(statement)
        session.flush()
        if net:
            ledger.open_account(session, merchant.settlement_account(), "POINTS",
                                allow_negative=True)
            source, target = merchant.account(), merchant.settlement_account()
            if net < 0:
                source, target = target, source
            tx = ledger.move(session, source, target, abs(net),
                             key=f"statement:{statement.id}", kind="settlement",
                             memo=f"{start:%Y-%m-%d} – {end:%Y-%m-%d}",
                             meta={"statement_id": statement.id}, now=now)
            statement.transaction_id = tx.id
        session.add_all(StatementLine(statement_id=statement.id, redemption_id=line.redemption.id,
                                      kind=line.kind, points=line.points, at=line.at)
                        for line in lines)
        session.flush()
    return statement


def statement_lines(session: so.Session, statement: Statement) -> list[StatementLine]:
    return list(session.scalars(
        sa.select(StatementLine).where(StatementLine.statement_id == statement.id)
        .order_by(StatementLine.at, StatementLine.id)))


def merchant_statements(session: so.Session, merchant_id: int) -> list[Statement]:
    return list(session.scalars(
        sa.select(Statement).where(Statement.merchant_id == merchant_id)
        .order_by(Statement.period_start.desc())))


def _check_period(start: datetime, end: datetime) -> None:
    if not isinstance(start, datetime) or not isinstance(end, datetime) or end <= start:
        raise InvalidPeriod("a period ends after it starts")
