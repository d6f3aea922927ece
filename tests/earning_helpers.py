"""Helpers the earning page and API tests share: balances, scoped counts, attendance."""

import sqlalchemy as sa

import ledger
from pointsmall.earning import activities
from pointsmall.earning.models import Activity, Attendance
from pointsmall.extensions import db


def points(volunteer) -> int:
    return ledger.balance(db.session, volunteer.account("POINTS")).posted


def merit(volunteer) -> int:
    return ledger.balance(db.session, volunteer.account("MERIT")).posted


def count(model, place) -> int:
    """Count a community's rows (committed rows of other tests may share the database)."""
    community_id = getattr(place, "id", place)
    query = sa.select(sa.func.count()).select_from(model)
    if model is Attendance:
        query = query.join(Activity, Activity.id == Attendance.activity_id)
        model = Activity
    return db.session.scalar(query.where(model.community_id == community_id))


def mark_present(activity, *volunteers):
    activities.mark_present(db.session, activity, [v.id for v in volunteers])
    db.session.commit()
