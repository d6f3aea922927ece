"""Races of the task board on PostgreSQL, with real threads and committed sessions: two
volunteers for the last place, two staff accepting the same task at once."""

import itertools
import random
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger import utcnow
from pointsmall.auth.models import User
from pointsmall.earning.models import Award
from pointsmall.people import communities
from pointsmall.people import service as volunteers
from pointsmall.people.models import Volunteer
from pointsmall.tasks import board, checks
from pointsmall.tasks.errors import AlreadyAccepted, TaskFull
from pointsmall.tasks.models import Assignment, Task
from tests.racing import race

pytestmark = pytest.mark.postgres
_phones = itertools.count(random.randrange(10**7))


@pytest.fixture
def board_world(base_app, racing):
    """A community with two staff, `people` volunteers and a task of `places` places."""
    def build(people: int, places: int, points: int = 20):
        tag = uuid.uuid4().hex[:8]
        with base_app.app_context(), racing() as s:
            community = communities.create_community(s, f"任务竞争{tag}")
            grid = communities.create_grid(s, community.id, f"网格{tag}")
            staff = []
            for n in range(2):
                user = User(username=f"task-staff-{tag}-{n}", name="工作人员", role="staff",
                            community_id=community.id, password_hash="unusable")
                s.add(user)
                staff.append(user)
            s.flush()
            ids = []
            for _ in range(people):
                volunteer, _ = volunteers.create_volunteer(
                    s, community.id, {"name": "赵六", "phone": f"155{next(_phones):08d}",
                                      "grid_id": grid.id, "joined_on": "2024-01-01"},
                    password_hash="unusable", audit_it=False)
                ids.append(volunteer.id)
            task = board.publish_task(s, community.id, {
                "title": "搬运物资", "grid_id": grid.id, "points": points, "merit": points,
                "people": places, "deadline": utcnow() + timedelta(days=1)}, actor=staff[0])
            s.commit()
            return community.id, task.id, ids, [u.id for u in staff]
    return build


def test_two_volunteers_claiming_the_last_place_at_once_one_wins_the_other_is_told(
        base_app, racing, board_world):
    _, task_id, ids, _ = board_world(people=2, places=1)

    def claim(volunteer_id):
        def job(s):
            volunteer = s.get(Volunteer, volunteer_id)
            return board.claim_task(s, volunteer, task_id).id
        return job

    outcomes = race(base_app, racing, [claim(v) for v in ids])

    won = [value for value, error in outcomes if error is None]
    refused = [error for _, error in outcomes if error is not None]
    assert len(won) == 1 and len(refused) == 1
    assert isinstance(refused[0], TaskFull), refused
    with racing() as s:
        assert s.get(Task, task_id).taken == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(Assignment).where(
            Assignment.task_id == task_id)) == 1


def test_ten_volunteers_for_three_places_fill_exactly_three(
        base_app, racing, board_world):
    _, task_id, ids, _ = board_world(people=10, places=3)

    def claim(volunteer_id):
        return lambda s: board.claim_task(s, s.get(Volunteer, volunteer_id), task_id).id

    outcomes = race(base_app, racing, [claim(v) for v in ids])

    assert sum(1 for _, error in outcomes if error is None) == 3
    assert all(isinstance(error, TaskFull) for _, error in outcomes if error is not None)
    with racing() as s:
        assert s.get(Task, task_id).taken == 3


def test_two_staff_accepting_at_once_award_once(base_app, racing, board_world):
    community_id, task_id, ids, staff_ids = board_world(people=1, places=1, points=25)
    with base_app.app_context(), racing() as s:
        volunteer = s.get(Volunteer, ids[0])
        board.claim_task(s, volunteer, task_id)
        row = board.finish_task(s, volunteer, task_id, note="完成")
        assignment_id = row.id
        s.commit()

    def accept(staff_id):
        def job(s):
            return checks.accept_task(s, s.get(User, staff_id), assignment_id, rating=5).id
        return job

    outcomes = race(base_app, racing, [accept(staff_ids[0]), accept(staff_ids[1])])

    assert sum(1 for _, error in outcomes if error is None) == 1
    assert [type(error) for _, error in outcomes if error is not None] == [AlreadyAccepted]
    with racing() as s:
        assert ledger.balance(s, f"volunteer:{ids[0]}:points").posted == 25
        assert ledger.balance(s, f"volunteer:{ids[0]}:merit").posted == 25
        assert s.scalar(sa.select(sa.func.count()).select_from(Award).where(
            Award.volunteer_id == ids[0])) == 1
        report = ledger.verify(s)
        assert report.ok, [str(v) for v in report.violations]
