"""Races of the earning half on PostgreSQL: one activity awarded by many requests at once,
and an award racing its reversal. The books must agree afterwards."""

import itertools
import random
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from pointsmall.earning import activities, awards
from pointsmall.earning.models import Award
from pointsmall.earning.rules import activity_type
from pointsmall.people import communities
from pointsmall.people import service as volunteers
from tests.racing import race

pytestmark = [pytest.mark.postgres]
_phones = itertools.count(random.randrange(10**7))


@pytest.fixture
def activity_with_attendees(base_app, racing):
    def build(people: int, points: int = 20):
        tag = uuid.uuid4().hex[:8]
        with base_app.app_context(), racing() as s:
            community = communities.create_community(s, f"奖励竞争{tag}")
            grid = communities.create_grid(s, community.id, f"网格{tag}")
            kind = activity_type(s, community.id, "service")
            activity = activities.create_activity(s, community.id, {
                "type_id": kind.id, "title": "清扫", "points": points, "merit": points,
                "starts_at": utcnow() - timedelta(hours=1),
                "ends_at": utcnow() + timedelta(hours=1)}, by=None)
            ids = []
            for _ in range(people):
                volunteer, _ = volunteers.create_volunteer(
                    s, community.id, {"name": "李四", "phone": f"157{next(_phones):08d}",
                                      "grid_id": grid.id, "joined_on": "2024-01-01"},
                    password_hash="unusable", audit_it=False)
                ids.append(volunteer.id)
            activities.mark_present(s, activity, ids)
            s.commit()
            return community.id, activity.id, ids
    return build


def _books_agree(Session) -> None:
    with Session() as s:
        report = ledger.verify(s)
        assert report.ok, [str(v) for v in report.violations]


def test_twenty_concurrent_award_requests_award_each_volunteer_once(
        base_app, racing, activity_with_attendees):
    community_id, activity_id, ids = activity_with_attendees(30)

    def award(n):
        def job(s):
            activity = activities.get_activity(s, activity_id, community_id)
            return awards.award_activity(s, activity, None, key=f"press-{n}", by=None).id
        return job

    outcomes = race(base_app, racing, [award(n) for n in range(20)])
    posted = [value for value, error in outcomes if error is None]
    assert len(posted) == 1  # the others find everyone already awarded
    assert all(type(error).__name__ == "ValidationFailed"
               for value, error in outcomes if error is not None)
    with racing() as s:
        per_volunteer = dict(s.execute(
            sa.select(Award.volunteer_id, sa.func.count()).where(
                Award.activity_id == activity_id).group_by(Award.volunteer_id)).all())
        assert per_volunteer == {v: 1 for v in ids}
        for volunteer_id in ids:
            assert ledger.balance(s, f"volunteer:{volunteer_id}:points").posted == 20
    _books_agree(racing)


def test_an_award_and_its_reversal_racing_leave_the_ledger_consistent(
        base_app, racing, activity_with_attendees):
    community_id, activity_id, ids = activity_with_attendees(1)
    with base_app.app_context(), racing() as s:
        activity = activities.get_activity(s, activity_id, community_id)
        batch = awards.award_activity(s, activity, None, key="first", by=None)
        award_id = s.scalar(sa.select(Award.id).where(Award.batch_id == batch.id))
        s.commit()
    account = f"volunteer:{ids[0]}:points"

    def reverse(s):
        return awards.reverse_award(s, award_id, community_id, reason="误记").id

    def spend(s):
        return ledger.move(s, account, communities.issuance_address(community_id, "POINTS"),
                           15, key=f"spend-{uuid.uuid4().hex}", kind="redemption").id

    outcomes = race(base_app, racing, [reverse, spend, reverse, spend])
    with racing() as s:
        balance = ledger.balance(s, account).posted
        reversed_points = s.scalar(sa.select(Award.reversed_points).where(Award.id == award_id))
    successes = sum(1 for _, error in outcomes if error is None)
    assert balance >= 0
    # Either the reversal won (20 back, nothing spent) or one spend won (5 left, no reversal).
    assert (balance, reversed_points, successes) in {(0, 20, 1), (5, 0, 1)}
    _books_agree(racing)


def test_expiry_racing_a_redemption_takes_only_old_unspent_points(base_app, racing):
    from pointsmall.earning import expiry
    from pointsmall.earning.rules import ensure_rules

    tag = uuid.uuid4().hex[:8]
    with base_app.app_context(), racing() as s:
        community = communities.create_community(s, f"过期竞争{tag}")
        grid = communities.create_grid(s, community.id, f"网格{tag}")
        rules = ensure_rules(s, community.id)
        rules.expiry_mode, rules.expiry_months = "rolling", 12
        volunteer, _ = volunteers.create_volunteer(
            s, community.id, {"name": "王五", "phone": f"156{next(_phones):08d}",
                              "grid_id": grid.id, "joined_on": "2024-01-01"},
            password_hash="unusable", audit_it=False)
        account = volunteer.account("POINTS")
        issuance = communities.issuance_address(community.id, "POINTS")
        ledger.move(s, issuance, account, 100, key=f"old-{tag}", kind="award",
                    now=utcnow() - timedelta(days=400))
        ledger.move(s, issuance, account, 280, key=f"new-{tag}", kind="award")
        s.commit()
        community_id = community.id

    outcomes = race(base_app, racing, [
        lambda s: expiry.expire_points(s, community_id),
        lambda s: ledger.move(s, account, issuance, 60, key=f"spend-{tag}",
                              kind="redemption").id,
    ])
    assert all(error is None for _, error in outcomes), outcomes
    with racing() as s:
        rows = ledger.history(s, account, limit=10).entries
        kinds = [e.kind for e in rows]  # newest first
        expired = -next(e.amount for e in rows if e.kind == "expiry")
        # Oldest first: expiring before the spend takes all 100 old points; after it, the
        # spend used 60 of them and only 40 are left to expire.
        expected = 40 if kinds.index("redemption") > kinds.index("expiry") else 100
        assert expired == expected
        assert ledger.balance(s, account).posted == 380 - 60 - expired
    _books_agree(racing)
