"""Tiers (金银铜牌): gold, silver and bronze from MERIT earned in a trailing window plus years
of service; leaderboards; evaluations that freeze a ranking for good.

MERIT comes only from awards (and their reversals), so it is read from the awards table,
where one grouped query covers a whole community.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.core import audit, clock
from pointsmall.core.errors import ValidationFailed
from pointsmall.earning.models import Award, EarningRules, Evaluation, EvaluationEntry
from pointsmall.earning.rules import ensure_rules
from pointsmall.people.communities import Grid
from pointsmall.people.models import Volunteer

ORDER = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Standing:
    """A volunteer's tier, what counted, and what is missing for the next tier."""

    volunteer_id: int
    tier: str | None
    merit_in_window: int
    service_bonus: int
    next_tier: str | None
    missing: int

    @property
    def score(self) -> int:
        return self.merit_in_window + self.service_bonus


def years_of_service(joined_on: date, today: date) -> int:
    years = today.year - joined_on.year
    if (today.month, today.day) < (joined_on.month, joined_on.day):
        years -= 1
    return max(0, years)


def tier_for(score: int, thresholds: dict[str, int]) -> tuple[str | None, str | None, int]:
    """Return (tier, next tier, points missing for it) for a score; reaching a threshold counts."""
    tier = None
    for name in ORDER:
        if score >= thresholds[name]:
            tier = name
    upcoming = [name for name in ORDER if score < thresholds[name]]
    next_tier = upcoming[0] if upcoming else None
    return tier, next_tier, (thresholds[next_tier] - score) if next_tier else 0


def merit_between(session: so.Session, start: datetime, end: datetime, *,
                  community_id: int | None = None,
                  volunteer_ids: list[int] | None = None) -> dict[int, int]:
    """Return MERIT earned (less reversals) per volunteer in [start, end)."""
    query = (sa.select(Award.volunteer_id, sa.func.sum(Award.merit - Award.reversed_merit))
             .where(Award.awarded_at >= start, Award.awarded_at < end)
             .group_by(Award.volunteer_id))
    if community_id is not None:
        query = query.where(Award.community_id == community_id)
    if volunteer_ids is not None:
        query = query.where(Award.volunteer_id.in_(volunteer_ids))
    return {v: int(m) for v, m in session.execute(query)}


def standings(session: so.Session, community_id: int, *, today: date | None = None,
              thresholds: dict[str, int] | None = None, at: datetime | None = None,
              volunteer_ids: list[int] | None = None) -> dict[int, Standing]:
    """Return the standing of every volunteer of a community (or of `volunteer_ids`)."""
    rules = ensure_rules(session, community_id)
    thresholds = thresholds or rules.thresholds
    today = today or clock.local_today()
    end = at or clock.utc_start_of(today + timedelta(days=1))
    start = end - timedelta(days=rules.tier_window_days)
    merit = merit_between(session, start, end, community_id=community_id,
                          volunteer_ids=volunteer_ids)
    query = sa.select(Volunteer.id, Volunteer.joined_on).where(
        Volunteer.community_id == community_id)
    if volunteer_ids is not None:
        query = query.where(Volunteer.id.in_(volunteer_ids))
    result = {}
    for volunteer_id, joined_on in session.execute(query):
        earned = merit.get(volunteer_id, 0)
        bonus = years_of_service(joined_on, today) * rules.merit_per_year
        tier, next_tier, missing = tier_for(earned + bonus, thresholds)
        result[volunteer_id] = Standing(volunteer_id, tier, earned, bonus, next_tier, missing)
    return result


def standing(session: so.Session, volunteer: Volunteer, *, today: date | None = None) -> Standing:
    """Return one volunteer's standing."""
    return standings(session, volunteer.community_id, today=today,
                     volunteer_ids=[volunteer.id])[volunteer.id]


def mask(name: str) -> str:
    name = (name or "").strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else "*"


@dataclass(frozen=True)
class BoardRow:
    rank: int
    volunteer_id: int
    name: str
    grid: str
    merit: int


def leaderboard(session: so.Session, community_id: int, start: datetime, end: datetime, *,
                grid_id: int | None = None, limit: int = 50) -> list[BoardRow]:
    """Rank a community's (or a grid's) volunteers by MERIT earned in [start, end)."""
    merit = merit_between(session, start, end, community_id=community_id)
    query = sa.select(Volunteer).where(Volunteer.id.in_(list(merit)))
    if grid_id:
        query = query.where(sa.or_(Volunteer.grid_id == grid_id, Volunteer.grid_id.in_(
            sa.select(Grid.id).where(Grid.parent_id == grid_id))))
    people = list(session.scalars(query))
    people.sort(key=lambda v: (-merit[v.id], v.id))
    rows, rank, previous = [], 0, None
    for position, volunteer in enumerate(people[:limit], start=1):
        if merit[volunteer.id] != previous:
            rank, previous = position, merit[volunteer.id]
        name = volunteer.name if volunteer.show_on_leaderboard else mask(volunteer.name)
        rows.append(BoardRow(rank, volunteer.id, name, volunteer.grid.path, merit[volunteer.id]))
    return rows


def evaluate(session: so.Session, community_id: int, name: str, start: date, end: date, *,
             by: int | None, actor=None) -> Evaluation:
    """Freeze who was gold, silver and bronze at the end of a period; it never changes after."""
    name = (name or "").strip()
    if not name or len(name) > 40:
        raise ValidationFailed({"name": [_("A name like 2026 H1 is required.")]})
    if end < start:
        raise ValidationFailed({"end": [_("The end is after the start.")]})
    if session.scalar(sa.select(Evaluation.id).where(Evaluation.community_id == community_id,
                                                    Evaluation.name == name)):
        raise ValidationFailed({"name": [_("This name is taken.")]})
    rules = ensure_rules(session, community_id)
    period_end = clock.utc_start_of(end + timedelta(days=1))
    evaluation = Evaluation(community_id=community_id, name=name,
                            period_start=clock.utc_start_of(start), period_end=period_end,
                            thresholds=rules.thresholds, created_by=by)
    session.add(evaluation)
    session.flush()
    ranked = sorted(standings(session, community_id, today=end, at=period_end).values(),
                    key=lambda s: (-s.score, s.volunteer_id))
    people = {v.id: v for v in session.scalars(
        sa.select(Volunteer).where(Volunteer.community_id == community_id))}
    rank, previous = 0, None
    entries = []
    for position, found in enumerate(ranked, start=1):
        if found.score != previous:
            rank, previous = position, found.score
        volunteer = people[found.volunteer_id]
        entries.append(EvaluationEntry(
            evaluation_id=evaluation.id, volunteer_id=volunteer.id, name=volunteer.name,
            grid=volunteer.grid.path, merit=found.merit_in_window,
            service_bonus=found.service_bonus, score=found.score, tier=found.tier, rank=rank))
    session.add_all(entries)
    session.flush()
    audit.record(session, "tiers.evaluate", f"evaluation:{evaluation.id}",
                 community_id=community_id, actor=actor, name=name, people=len(entries))
    return evaluation


Move = tuple[Volunteer, str | None, str | None]


Move = tuple[Volunteer, str | None, str | None]


def preview_thresholds(session: so.Session, community_id: int,
                       thresholds: dict[str, int]) -> list[Move]:
    """Return who would move up or down under new thresholds: (volunteer, now, then)."""
    check_thresholds(thresholds)
    now = standings(session, community_id)
    then = standings(session, community_id, thresholds=thresholds)
    moved = [v for v in now if now[v].tier != then[v].tier]
    people = {v.id: v for v in session.scalars(sa.select(Volunteer).where(
        Volunteer.id.in_(moved)))}
    return [(people[v], now[v].tier, then[v].tier) for v in moved]


def save_thresholds(session: so.Session, community_id: int, thresholds: dict[str, int]) -> None:
    check_thresholds(thresholds)
    rules = session.get(EarningRules, community_id)
    before = rules.thresholds
    rules.bronze_at, rules.silver_at, rules.gold_at = (
        thresholds["bronze"], thresholds["silver"], thresholds["gold"])
    session.flush()
    audit.record(session, "tiers.thresholds", f"community:{community_id}",
                 community_id=community_id, before=before, after=thresholds)


def check_thresholds(thresholds: dict[str, int]) -> None:
    values = [thresholds.get(name) for name in ORDER]
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10_000_000
           for v in values) or not values[0] <= values[1] <= values[2]:
        raise ValidationFailed({"thresholds": [
            _("Whole numbers with bronze ≤ silver ≤ gold.")]})
