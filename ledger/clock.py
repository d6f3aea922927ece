"""The ledger's notion of now: naive UTC, as its `timestamp` columns store it."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)
