"""The task board's use cases: publish, claim, start, finish, give back, check and rate,
with every refusal saying why and writing nothing; service hours and stars."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from PIL import Image

from ledger import utcnow
from pointsmall.core.audit import AuditEntry
from pointsmall.core.errors import Forbidden, NotFound, ValidationFailed
from pointsmall.earning.models import Award, AwardBatch
from pointsmall.earning.rules import ensure_rules
from pointsmall.extensions import db
from pointsmall.people import communities
from pointsmall.tasks import board, checks, hours
from pointsmall.tasks.errors import AlreadyAccepted, NotDone, OutsideGrid, TaskFull
from pointsmall.tasks.models import Assignment, Task
from tests.builders import merit, points


def photo() -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def snapshot(place) -> list:
    return [db.session.execute(sa.select(table).where(table.c.community_id == place.id)
                               .order_by(table.c.id)).all()
            for table in (Task.__table__, Assignment.__table__, Award.__table__)]


@pytest.fixture
def world(make_community, make_staff, make_volunteer):
    place = make_community()
    return place, make_staff(place), make_staff(place), make_volunteer(place)


def test_a_volunteer_claims_finishes_and_staff_accepts_with_points_merit_and_hours(
        world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff, points=20, merit=15, hours="2.5")

    assert [t.id for t in board.open_tasks(db.session, volunteer)] == [task.id]
    board.claim_task(db.session, volunteer, task.id)
    board.start_task(db.session, volunteer, task.id)
    row = board.finish_task(db.session, volunteer, task.id, note="已清理")
    accepted = checks.accept_task(db.session, staff, row.id, rating=5, comment="很好")
    db.session.commit()

    assert (accepted.state, accepted.rating) == ("accepted", 5)
    assert (points(volunteer), merit(volunteer)) == (20, 15)
    assert db.session.get(Task, task.id).status == "closed"
    assert hours.service_hours(db.session, volunteer.id).total == Decimal("2.5")
    actions = set(db.session.scalars(sa.select(AuditEntry.action).where(
        AuditEntry.community_id == place.id)))
    assert {"task.publish", "task.claim", "task.done", "task.accept"} <= actions


def test_accepting_twice_awards_once_and_says_so(world, make_task, make_done):
    place, staff, other_staff, volunteer = world
    row = make_done(make_task(place, staff, points=30), volunteer)
    checks.accept_task(db.session, staff, row.id, rating=4)
    db.session.commit()

    with pytest.raises(AlreadyAccepted):
        checks.accept_task(db.session, other_staff, row.id, rating=5)

    assert points(volunteer) == 30
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Award).where(
        Award.volunteer_id == volunteer.id)) == 1


def test_acceptance_goes_through_the_daily_cap_of_activity_awards(world, make_task, make_done):
    place, staff, _, volunteer = world
    ensure_rules(db.session, place.id).daily_cap = 25
    first = make_done(make_task(place, staff, points=20, title="第一件"), volunteer)
    second = make_done(make_task(place, staff, points=20, title="第二件"), volunteer)

    checks.accept_task(db.session, staff, first.id, rating=5)
    checks.accept_task(db.session, staff, second.id, rating=5)
    db.session.commit()

    assert points(volunteer) == 25
    award = db.session.get(Award, db.session.get(Assignment, second.id).award_id)
    assert (award.points, award.capped_by) == (5, "daily")


def test_a_big_acceptance_waits_for_a_second_staff_member(world, make_task, make_done):
    place, staff, checker, volunteer = world
    ensure_rules(db.session, place.id).approval_points = 50
    row = make_done(make_task(place, staff, points=80), volunteer)

    checks.accept_task(db.session, staff, row.id, rating=5)
    db.session.commit()

    assert points(volunteer) == 0
    award = db.session.get(Award, db.session.get(Assignment, row.id).award_id)
    batch = db.session.get(AwardBatch, award.batch_id)
    assert batch.status == "pending"
    from pointsmall.earning import awards
    awards.approve_batch(db.session, batch.id, place.id, by=checker.id)
    db.session.commit()
    assert points(volunteer) == 80


def test_accepting_a_task_that_is_not_done_is_refused(world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff)
    row = board.claim_task(db.session, volunteer, task.id)
    db.session.commit()
    before = snapshot(place)

    with pytest.raises(NotDone):
        checks.accept_task(db.session, staff, row.id, rating=5)

    db.session.rollback()
    assert snapshot(place) == before
    assert points(volunteer) == 0


@pytest.mark.parametrize("rating", [0, 6, "5", None, True])
def test_a_rating_outside_one_to_five_is_refused(world, make_task, make_done, rating):
    place, staff, _, volunteer = world
    row = make_done(make_task(place, staff), volunteer)

    with pytest.raises(ValidationFailed) as refused:
        checks.accept_task(db.session, staff, row.id, rating=rating)

    assert "rating" in refused.value.errors
    assert db.session.get(Assignment, row.id).state == "done"


def test_staff_send_a_done_task_back_with_a_reason_and_it_can_be_finished_again(
        world, make_task, make_done):
    place, staff, _, volunteer = world
    task = make_task(place, staff)
    row = make_done(task, volunteer)

    checks.send_back(db.session, staff, row.id, reason="照片看不清")
    again = board.finish_task(db.session, volunteer, task.id, note="重新拍了")
    db.session.commit()

    assert (again.state, again.reason) == ("done", "照片看不清")


def test_claiming_a_full_task_is_refused_and_writes_nothing(
        world, make_task, make_volunteer):
    place, staff, _, volunteer = world
    task = make_task(place, staff, people=1)
    board.claim_task(db.session, volunteer, task.id)
    db.session.commit()
    late = make_volunteer(place)
    before = snapshot(place)

    with pytest.raises(TaskFull) as refused:
        board.claim_task(db.session, late, task.id)

    assert refused.value.message in ("Every place on this task is taken.", "这个任务的名额已满。")
    db.session.rollback()
    assert snapshot(place) == before


def test_claiming_twice_is_one_claim(world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff, people=3)

    first = board.claim_task(db.session, volunteer, task.id)
    second = board.claim_task(db.session, volunteer, task.id)
    db.session.commit()

    assert first.id == second.id
    assert db.session.get(Task, task.id).taken == 1


def test_a_task_of_another_grid_is_refused_and_another_communitys_is_not_found(
        world, make_task, make_community, make_staff):
    place, staff, _, volunteer = world
    other_grid = communities.create_grid(db.session, place.id, "另一网格")
    elsewhere = make_task(place, staff, grid=other_grid)
    other = make_community()
    foreign = make_task(other, make_staff(other))

    with pytest.raises(OutsideGrid):
        board.claim_task(db.session, volunteer, elsewhere.id)
    with pytest.raises(NotFound):
        board.claim_task(db.session, volunteer, foreign.id)
    assert isinstance(OutsideGrid(), Forbidden)
    assert board.open_tasks(db.session, volunteer) == []


def test_the_board_lists_my_micro_grid_first_then_the_grid_above(world, make_task):
    place, staff, _, volunteer = world
    upper = make_task(place, staff, grid=place.grid, title="网格任务",
                      deadline=utcnow() + timedelta(hours=3))
    mine = make_task(place, staff, title="微网格任务", deadline=utcnow() + timedelta(days=5))
    make_task(place, staff, title="派单任务", mode="dispatch")

    listed = board.open_tasks(db.session, volunteer)

    assert [t.id for t in listed] == [mine.id, upper.id]


def test_marking_done_without_the_required_photo_is_refused(world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff, photo_required=True)
    board.claim_task(db.session, volunteer, task.id)
    db.session.commit()

    with pytest.raises(ValidationFailed) as refused:
        board.finish_task(db.session, volunteer, task.id, note="做完了")
    db.session.rollback()

    assert "photos" in refused.value.errors
    assert db.session.scalar(sa.select(Assignment.state).where(
        Assignment.task_id == task.id)) == "claimed"
    row = board.finish_task(db.session, volunteer, task.id, note="做完了", photos=[photo()])
    assert row.state == "done" and len(row.photos) == 1


def test_a_deadline_in_the_past_is_refused(world):
    place, staff, _, _ = world

    with pytest.raises(ValidationFailed) as refused:
        board.publish_task(db.session, place.id, {
            "title": "过期任务", "grid_id": place.micro.id, "points": 10, "merit": 10,
            "people": 1, "deadline": utcnow() - timedelta(minutes=1)}, actor=staff)

    assert "deadline" in refused.value.errors
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.community_id == place.id)) == 0


def test_giving_back_frees_the_place_and_needs_a_reason(world, make_task, make_volunteer):
    place, staff, _, volunteer = world
    task = make_task(place, staff, people=1)
    board.claim_task(db.session, volunteer, task.id)
    db.session.commit()

    with pytest.raises(ValidationFailed):
        board.give_back(db.session, volunteer, task.id, reason="  ")
    row = board.give_back(db.session, volunteer, task.id, reason="临时有事")
    db.session.commit()

    assert row.state == "given_back"
    assert db.session.get(Task, task.id).taken == 0
    assert board.claim_task(db.session, make_volunteer(place), task.id).state == "claimed"


def test_a_claim_not_started_in_time_goes_back_to_the_pool(world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff)
    claimed = board.claim_task(db.session, volunteer, task.id)
    db.session.commit()

    assert board.release_lapsed_claims(db.session, now=utcnow() + timedelta(hours=23)) == 0
    released = board.release_lapsed_claims(db.session, now=utcnow() + timedelta(hours=25))
    db.session.commit()

    assert released >= 1
    assert db.session.get(Assignment, claimed.id).state == "lapsed"
    assert db.session.get(Task, task.id).taken == 0


def test_a_started_claim_stays(world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff)
    board.claim_task(db.session, volunteer, task.id)
    board.start_task(db.session, volunteer, task.id)
    db.session.commit()

    board.release_lapsed_claims(db.session, now=utcnow() + timedelta(hours=48))

    assert db.session.get(Task, task.id).taken == 1


def test_staff_dispatch_to_named_volunteers_of_their_community_only(
        world, make_task, make_volunteer, make_community):
    place, staff, _, volunteer = world
    task = make_task(place, staff, people=2, mode="dispatch")
    stranger = make_volunteer(make_community())

    with pytest.raises(ValidationFailed):
        board.dispatch_task(db.session, staff, task.id, [volunteer.id, stranger.id])
    db.session.rollback()
    rows = board.dispatch_task(db.session, staff, task.id, [volunteer.id])
    db.session.commit()

    assert [(r.volunteer_id, r.dispatched) for r in rows] == [(volunteer.id, True)]
    assert db.session.get(Task, task.id).taken == 1


def test_hours_count_accepted_tasks_and_attended_activities_and_give_stars(
        app, world, make_task, make_done, monkeypatch):
    from pointsmall.earning import activities
    from pointsmall.earning.rules import activity_types

    place, staff, _, volunteer = world
    row = make_done(make_task(place, staff, hours="3"), volunteer)
    checks.accept_task(db.session, staff, row.id, rating=5)
    kind = activity_types(db.session, place.id)[0]
    activity = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": "培训", "starts_at": utcnow() - timedelta(hours=3),
        "ends_at": utcnow() - timedelta(hours=1)}, by=staff.id)
    activities.mark_present(db.session, activity, [volunteer.id])
    db.session.commit()
    monkeypatch.setitem(app.config, "STAR_HOURS", (4, 10, 20, 30, 40))

    found = hours.service_hours(db.session, volunteer.id)

    assert (found.total, found.this_year, found.stars, found.next_at) == (
        Decimal("5.0"), Decimal("5.0"), 1, 10)


def test_the_default_stars_are_100_300_600_1000_1500_hours(app):
    assert hours.star_thresholds() == (100, 300, 600, 1000, 1500)
    assert [hours.stars_for(Decimal(h), hours.DEFAULT_STARS)
            for h in (99, 100, 299, 300, 1500)] == [0, 1, 1, 2, 5]


def test_the_cron_command_returns_lapsed_claims_to_the_pool(app, world, make_task):
    place, staff, _, volunteer = world
    task = make_task(place, staff)
    claimed = board.claim_task(db.session, volunteer, task.id,
                               now=utcnow() - timedelta(hours=30))
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["tasks", "release-lapsed"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("released ")
    assert db.session.get(Assignment, claimed.id).state == "lapsed"
    assert [t.id for t in board.open_tasks(db.session, volunteer)] == [task.id]
