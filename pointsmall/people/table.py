"""The office's volunteer table: each volunteer with points, tier, merit, hours and last
activity, filtered and sorted; the same filters choose what the exports write."""

import math
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from pypinyin import lazy_pinyin

from pointsmall.people import figures, service
from pointsmall.people.models import Volunteer

TIERS = ("gold", "silver", "bronze", "none")
SORTS = ("name", "points", "merit", "tier", "hours", "last")
TIER_RANK = {"gold": 3, "silver": 2, "bronze": 1, None: 0}
PER_PAGE = 50


@dataclass(frozen=True)
class Filters:
    """What the list page was asked for: the search, grid and status of the plain list, and
    tier and points of the table; `sort` names a column, "-" in front for descending."""

    q: str = ""
    grid_id: int | None = None
    status: str | None = None
    tier: str | None = None
    min_points: int | None = None
    max_points: int | None = None
    sort: str = "name"

    @classmethod
    def from_args(cls, args) -> "Filters":
        tier = args.get("tier") or None
        sort = args.get("sort") or "name"
        return cls(q=args.get("q", ""), grid_id=args.get("grid", type=int),
                   status=args.get("status") or None, tier=tier if tier in TIERS else None,
                   min_points=args.get("min_points", type=int),
                   max_points=args.get("max_points", type=int),
                   sort=sort if sort.lstrip("-") in SORTS else "name")

    def args(self, **changes) -> dict:
        """Return the filters as URL arguments (empty ones left out), with `changes`."""
        found = {"q": self.q or None, "grid": self.grid_id, "status": self.status,
                 "tier": self.tier, "min_points": self.min_points,
                 "max_points": self.max_points,
                 "sort": self.sort if self.sort != "name" else None, **changes}
        return {k: v for k, v in found.items() if v not in (None, "")}

    @property
    def needs_figures(self) -> bool:
        return bool(self.tier or self.min_points is not None or self.max_points is not None)


@dataclass
class Row:
    volunteer: Volunteer
    points: int
    held: int
    merit: int
    tier: str | None
    hours: float
    last_activity: datetime | None


@dataclass
class Page:
    """One page of rows, shaped like Flask-SQLAlchemy's pagination for the pager macro."""

    items: list[Row]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    has_prev = property(lambda self: self.page > 1)
    has_next = property(lambda self: self.page < self.pages)
    prev_num = property(lambda self: self.page - 1)
    next_num = property(lambda self: self.page + 1)


def name_key(name: str) -> tuple:
    """Sort Chinese names as a reader expects: by pinyin, then by the characters."""
    return (" ".join(lazy_pinyin(name)).lower(), name)


def rows(session: so.Session, community_id: int, filters: Filters) -> list[Row]:
    """Return every volunteer the filters choose, with their figures, in the asked order."""
    volunteers = list(session.scalars(service.search_volunteers(
        session, community_id, q=filters.q, grid_id=filters.grid_id, status=filters.status)))
    balances = service.volunteer_balances(session, volunteers)
    standings = figures.standings(session, community_id, [v.id for v in volunteers])
    nobody = figures.Standing(None, 0.0, None)
    found = []
    for volunteer in volunteers:
        points, merit = balances[volunteer.id]
        standing = standings.get(volunteer.id, nobody)
        row = Row(volunteer, points.available, points.pending, merit.posted, standing.tier,
                  round(standing.hours, 1), standing.last_activity)
        if filters.tier and (row.tier or "none") != filters.tier:
            continue
        if filters.min_points is not None and row.points < filters.min_points:
            continue
        if filters.max_points is not None and row.points > filters.max_points:
            continue
        found.append(row)
    column, descending = filters.sort.lstrip("-"), filters.sort.startswith("-")
    found.sort(key=lambda r: name_key(r.volunteer.name))
    if column != "name":
        keys = {"points": lambda r: r.points, "merit": lambda r: r.merit,
                "tier": lambda r: TIER_RANK[r.tier], "hours": lambda r: r.hours,
                "last": lambda r: (r.last_activity is not None, r.last_activity or 0)}
        found.sort(key=keys[column], reverse=descending)  # stable: names stay in order
    elif descending:
        found.reverse()
    return found


def page(session: so.Session, community_id: int, filters: Filters, number: int) -> Page:
    """Return one page of the table."""
    found = rows(session, community_id, filters)
    number = max(1, number)
    start = (number - 1) * PER_PAGE
    return Page(found[start:start + PER_PAGE], number, PER_PAGE, len(found))


def export_query(session: so.Session, community_id: int, filters: Filters) -> sa.Select:
    """Return the query the exports write: the same volunteers the table shows."""
    query = service.search_volunteers(session, community_id, q=filters.q,
                                      grid_id=filters.grid_id, status=filters.status)
    if filters.needs_figures:
        ids = [row.volunteer.id for row in rows(session, community_id, filters)]
        query = query.where(Volunteer.id.in_(ids))
    return query
