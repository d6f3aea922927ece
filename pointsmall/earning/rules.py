"""A community's earning rules and activity types, with the defaults a new community gets."""

import secrets

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.earning.models import DEFAULT_TYPES, ActivityType, EarningRules
from pointsmall.people import communities


def ensure_rules(session: so.Session, community_id: int) -> EarningRules:
    """Return the community's rules, creating the defaults (and activity types) if missing."""
    rules = session.get(EarningRules, community_id)
    if rules is None:
        rules = EarningRules(community_id=community_id, platform_secret=secrets.token_hex(32))
        session.add(rules)
        for code, name, points, merit in DEFAULT_TYPES:
            session.add(ActivityType(community_id=community_id, code=code, name=name,
                                     points=points, merit=merit))
        session.flush()
    return rules


# A new community starts with the default rules, in the transaction that creates it.
communities.WHEN_CREATED.append(ensure_rules)


def activity_types(session: so.Session, community_id: int) -> list[ActivityType]:
    return list(session.scalars(sa.select(ActivityType)
                                .where(ActivityType.community_id == community_id)
                                .order_by(ActivityType.id)))


def activity_type(session: so.Session, community_id: int, code: str) -> ActivityType | None:
    return session.scalar(sa.select(ActivityType).where(
        ActivityType.community_id == community_id, ActivityType.code == code))
