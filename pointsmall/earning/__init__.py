"""Earning: activity types and rules, activities, attendance, awards, expiry, tiers."""

# Imported with any earning module: a new community then gets its default rules (see
# people.communities.WHEN_CREATED).
from pointsmall.earning import rules  # noqa: F401
