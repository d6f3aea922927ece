"""What every export reads with: the caller's scope, the period, keyset chunks, local time."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.core import clock

# Rows per query: big enough that a million rows are a few hundred round trips, small
# enough that a chunk is a few megabytes at most.
CHUNK = 5000


@dataclass(frozen=True)
class Scope:
    """Whose rows an export holds: a community's (staff, admin) or a merchant's."""

    community_id: int | None = None
    merchant_id: int | None = None


@dataclass(frozen=True)
class Period:
    """Naive-UTC bounds: from `start` (inclusive) to `end` (exclusive); None is open."""

    start: datetime | None = None
    end: datetime | None = None

    def holds(self, column) -> sa.ColumnElement[bool]:
        """A condition: `column` falls in the period."""
        conditions = [sa.true()]
        if self.start is not None:
            conditions.append(column >= self.start)
        if self.end is not None:
            conditions.append(column < self.end)
        return sa.and_(*conditions)


def keyset(session: so.Session, query: sa.Select, width: int = 1,
           size: int = CHUNK) -> Iterator[sa.Row]:
    """Yield the rows of `query` in the order of its first `width` columns, a chunk a query.

    Each chunk starts after the last key of the one before (keyset pagination), so no
    query reads more than `size` rows however large the export, and none skips or repeats
    a row. The key columns must be unique together and never NULL.
    """
    keys = list(query.selected_columns)[:width]
    ordered = query.order_by(None).order_by(*keys).limit(size)
    last = None
    while True:
        page = ordered
        if last is not None:
            page = page.where(keys[0] > last[0] if width == 1
                              else sa.tuple_(*keys) > sa.tuple_(*last))
        rows = session.execute(page).all()
        yield from rows
        if len(rows) < size:
            return
        last = tuple(rows[-1][:width])


class LocalTime:
    """Convert stored naive-UTC moments to naive local time (spreadsheets know no zones)."""

    def __init__(self) -> None:
        self.zone = clock.zone()

    def __call__(self, moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return moment.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None)
