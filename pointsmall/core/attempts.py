"""Counting attempts (sign-ins, typed redemption codes) and refusing after too many.

Kept in the database, not in a worker's memory, so the limit holds across app servers. An
attempt is counted *before* it is checked, by one conditional UPDATE that the database
serialises on the counter's row: of any number of parallel attempts exactly as many as the
limit allows get through, whatever their timing. An attempt that turns out right gives its
count back (`release`).

A counter's window opens with its first attempt and lasts `window`; the attempts counted in
it lock the key out until it ends, and the next attempt after that opens a new window.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql

from ledger import Base, utcnow

KEY_MAX = 120


class AttemptCounter(Base):
    """How many attempts a key made in `scope` since `window_start`."""

    __tablename__ = "attempt_counters"

    scope: so.Mapped[str] = so.mapped_column(sa.String(20), primary_key=True)
    key: so.Mapped[str] = so.mapped_column(sa.String(KEY_MAX), primary_key=True)
    window_start: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    count: so.Mapped[int] = so.mapped_column(default=0)


class AttemptsExceeded(Exception):
    """Too many attempts: try again in `retry_after` seconds."""

    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"too many failed {scope} attempts; retry in {retry_after}s")
        self.scope = scope
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, (self.retry_after + 59) // 60)


_COUNTERS = AttemptCounter.__table__
# Open a key's counter (empty) unless it is open already.
_OPEN = postgresql.insert(_COUNTERS).on_conflict_do_nothing(index_elements=["scope", "key"])


def reserve(session: so.Session, scope: str, key: str, limit: int, window: timedelta) -> int:
    """Count one attempt of `key` before it is checked; return how many are now counted.

    Raise AttemptsExceeded, counting nothing, when `limit` attempts are already counted in
    the window. The UPDATE holds the counter's row until the transaction ends: commit soon
    (before slow work) so that the key's other attempts need not wait.
    """
    key, now = key[:KEY_MAX], utcnow()
    cutoff = now - window
    session.execute(_OPEN, {"scope": scope, "key": key, "window_start": now, "count": 0})
    expired = _COUNTERS.c.window_start <= cutoff
    counted = session.execute(
        sa.update(_COUNTERS)
        .where(_COUNTERS.c.scope == scope, _COUNTERS.c.key == key,
               sa.or_(expired, _COUNTERS.c.count < limit))
        .values(count=sa.case((expired, 1), else_=_COUNTERS.c.count + 1),
                window_start=sa.case((expired, now), else_=_COUNTERS.c.window_start))
        .returning(_COUNTERS.c.count)
    ).scalar()
    if counted is None:
        raise AttemptsExceeded(scope, _seconds_left(session, scope, key, window))
    return counted


def release(session: so.Session, scope: str, key: str) -> None:
    """Give back an attempt `reserve` counted (it was right, or never checked)."""
    session.execute(
        sa.update(_COUNTERS)
        .where(_COUNTERS.c.scope == scope, _COUNTERS.c.key == key[:KEY_MAX],
               _COUNTERS.c.count > 0)
        .values(count=_COUNTERS.c.count - 1))


def counted(scope: str, key: str, window: timedelta) -> sa.ScalarSelect:
    """The number of `key`'s attempts counted in `scope` in its open window, as a subquery.

    For a statement that reads something else in the same round trip; `check` says
    whether that number locks `key` out, and until when.
    """
    return sa.func.coalesce(
        sa.select(_COUNTERS.c.count)
        .where(_COUNTERS.c.scope == scope, _COUNTERS.c.key == key[:KEY_MAX],
               _COUNTERS.c.window_start > utcnow() - window)
        .scalar_subquery(), 0)


def check(session: so.Session, scope: str, key: str, limit: int, window: timedelta) -> None:
    """Raise AttemptsExceeded when `key` has `limit` attempts counted in its open window."""
    row = session.execute(
        sa.select(_COUNTERS.c.count, _COUNTERS.c.window_start)
        .where(_COUNTERS.c.scope == scope, _COUNTERS.c.key == key[:KEY_MAX])).first()
    if row is not None and row.count >= limit and row.window_start > utcnow() - window:
        raise AttemptsExceeded(scope, _seconds_left(session, scope, key, window))


def _seconds_left(session: so.Session, scope: str, key: str, window: timedelta) -> int:
    start = session.scalar(sa.select(_COUNTERS.c.window_start)
                           .where(_COUNTERS.c.scope == scope, _COUNTERS.c.key == key[:KEY_MAX]))
    left = (start + window - utcnow()).total_seconds() if start else 0
    return max(1, int(left) + 1)
