"""Earning's figures on the staff's volunteer table: each volunteer's tier, hours at
activities attended and last activity (handed to people.figures)."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.earning import tiers
from pointsmall.earning.models import Activity, Attendance
from pointsmall.people.figures import Standing


def standings(session: so.Session, community_id: int, volunteer_ids: list[int]
              ) -> dict[int, Standing]:
    """Return the tier, hours and last activity of each of `volunteer_ids`."""
    found = tiers.standings(session, community_id, volunteer_ids=volunteer_ids)
    hours, last = _attendance(session, community_id)
    return {volunteer_id: Standing(found[volunteer_id].tier if volunteer_id in found else None,
                                   hours.get(volunteer_id, 0.0), last.get(volunteer_id))
            for volunteer_id in volunteer_ids}


def _attendance(session: so.Session, community_id: int
                ) -> tuple[dict[int, float], dict[int, datetime]]:
    """Return each volunteer's hours at activities they attended, and their last one."""
    hours: dict[int, float] = {}
    last: dict[int, datetime] = {}
    for volunteer_id, starts, ends in session.execute(
            sa.select(Attendance.volunteer_id, Activity.starts_at, Activity.ends_at)
            .join(Activity, Activity.id == Attendance.activity_id)
            .where(Activity.community_id == community_id, Attendance.present,
                   sa.not_(Activity.cancelled))):
        hours[volunteer_id] = hours.get(volunteer_id, 0.0) + (ends - starts).total_seconds() / 3600
        if volunteer_id not in last or starts > last[volunteer_id]:
            last[volunteer_id] = starts
    return hours, last
