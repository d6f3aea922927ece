"""Counting failed attempts (sign-ins, typed redemption codes) and refusing after too many.

Kept in the database, not in a worker's memory, so the limit holds across app servers.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import Base, utcnow


class ThrottleEvent(Base):
    """A failed attempt counted against a scope and key."""

    __tablename__ = "throttle_events"
    __table_args__ = (sa.Index("ix_throttle_events_lookup", "scope", "key", "at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    scope: so.Mapped[str] = so.mapped_column(sa.String(20))
    key: so.Mapped[str] = so.mapped_column(sa.String(120))
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class AttemptsExceeded(Exception):
    """Too many failures: try again in `retry_after` seconds."""

    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"too many failed {scope} attempts; retry in {retry_after}s")
        self.scope = scope
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, (self.retry_after + 59) // 60)


def check(session: so.Session, scope: str, key: str, limit: int, window: timedelta) -> None:
    """Raise AttemptsExceeded when `key` has `limit` failures in `scope` within `window`."""
    now = utcnow()
    times = session.scalars(
        sa.select(ThrottleEvent.at)
        .where(ThrottleEvent.scope == scope, ThrottleEvent.key == key,
               ThrottleEvent.at > now - window)
        .order_by(ThrottleEvent.at.desc()).limit(limit)
    ).all()
    if len(times) >= limit:
        # Locked until the oldest of the last `limit` failures leaves the window.
        raise AttemptsExceeded(scope, int((min(times) + window - now).total_seconds()) + 1)


def recent(scope: str, key: str, window: timedelta) -> sa.ScalarSelect:
    """The number of `key`'s failures in `scope` within `window`, as a scalar subquery.

    For a statement that reads something else in the same round trip; `check` says
    whether that number locks `key` out, and until when.
    """
    return (sa.select(sa.func.count()).select_from(ThrottleEvent)
            .where(ThrottleEvent.scope == scope, ThrottleEvent.key == key,
                   ThrottleEvent.at > utcnow() - window)
            .scalar_subquery())


def record_failure(session: so.Session, scope: str, key: str) -> None:
    """Count one failed attempt against `key`."""
    session.add(ThrottleEvent(scope=scope, key=key[:120]))
    session.flush()
