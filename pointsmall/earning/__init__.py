"""Earning: activity types and rules, activities, attendance, awards, expiry, tiers.

Imported with any earning module, it hands people what people may not import (earning
builds on people): a new community's default rules (people.communities.WHEN_CREATED,
filled by earning.rules) and the readers of the staff's volunteer table and card.
"""

from pointsmall.earning import overview, roster, rules  # noqa: F401  (rules: see above)
from pointsmall.people import figures

figures.provide(standings=roster.standings, card=overview.points_overview)
