"""Local time: the deployment's time zone (ledger.DEFAULT_ZONE by default) for days and months.

The database keeps naive UTC; people think in local days. Period boundaries are local
midnights converted to UTC.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from ledger import DEFAULT_ZONE, utcnow


def zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", DEFAULT_ZONE))


def local_now() -> datetime:
    return datetime.now(zone())


def local_today() -> date:
    return local_now().date()


def to_local(moment: datetime | None) -> datetime | None:
    """Return a stored naive-UTC moment in local time."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone(zone())


def utc_start_of(day: date) -> datetime:
    """Return the naive-UTC moment at which the local `day` begins."""
    return datetime.combine(day, time.min, zone()).astimezone(UTC).replace(tzinfo=None)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def local_month_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the naive-UTC start and end of the local month containing `day`."""
    return utc_start_of(month_start(day)), utc_start_of(next_month(day))


__all__ = ["local_month_bounds", "local_now", "local_today", "month_start", "next_month",
           "to_local", "utc_start_of", "utcnow", "zone"]
