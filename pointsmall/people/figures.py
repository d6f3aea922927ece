"""What other features know of a volunteer, for people's staff pages.

The staff's volunteer table and a volunteer's card show points, tier, merit and hours,
which earning keeps; earning builds on people (who the volunteers are), so people may not
import it. Earning hands its two readers in here when it is imported (earning/__init__.py),
as it hands in a new community's rules (communities.WHEN_CREATED).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy.orm as so


@dataclass(frozen=True)
class Standing:
    """A volunteer's tier and service, as the staff's table shows them."""

    tier: str | None
    hours: float
    last_activity: datetime | None


# standings(session, community_id, volunteer_ids) -> {volunteer_id: Standing}
TableReader = Callable[[so.Session, int, list[int]], dict[int, Standing]]
# card(session, volunteer, before=history_cursor) -> what the card template shows
CardReader = Callable[..., Any]

_readers: dict[str, Callable] = {}


def provide(*, standings: TableReader, card: CardReader) -> None:
    """Hand in the readers (earning does, once)."""
    _readers.update(standings=standings, card=card)


def standings(session: so.Session, community_id: int, volunteer_ids: list[int]
              ) -> dict[int, Standing]:
    return _readers["standings"](session, community_id, volunteer_ids)


def card(session: so.Session, volunteer, **options) -> Any:
    return _readers["card"](session, volunteer, **options)
