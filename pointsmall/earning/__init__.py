"""Earning: activity types and rules, activities and attendance, awards, expiry, platform tasks."""
