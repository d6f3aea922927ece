"""Builders for the task board's tests: a published task, a task done by a volunteer."""

from datetime import timedelta

import pytest

from ledger import utcnow
from pointsmall.extensions import db
from pointsmall.tasks import board


def build_task(place, staff, *, grid=None, points=20, merit=None, people=1, hours="2",
               photo_required=False, mode="open", deadline=None, title="清理楼道杂物"):
    """Publish a task for the community's micro-grid (or `grid`)."""
    task = board.publish_task(db.session, place.id, {
        "title": title, "description": "三楼楼道", "place": "1栋",
        "grid_id": (grid or place.micro).id,
        "points": points, "merit": points if merit is None else merit, "people": people,
        "hours": hours, "deadline": deadline or utcnow() + timedelta(days=2),
        "photo_required": photo_required, "mode": mode}, actor=staff)
    db.session.commit()
    return task


def build_done(task, volunteer, note="清理完毕"):
    """Have `volunteer` claim and finish `task`; return the assignment."""
    board.claim_task(db.session, volunteer, task.id)
    row = board.finish_task(db.session, volunteer, task.id, note=note)
    db.session.commit()
    return row


@pytest.fixture
def make_task(app):
    return build_task


@pytest.fixture
def make_done(app):
    return build_done
