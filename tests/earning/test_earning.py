"""Earning: awards once and all-or-nothing, caps, maker-checker, reversals, adjustments,
check-in, platform tasks, tiers, evaluations, leaderboards and expiry."""

import json
import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from pointsmall.core import clock
from pointsmall.core.errors import Conflict, ValidationFailed
from pointsmall.earning import activities, awards, expiry, platform, tiers
from pointsmall.earning.errors import (
    CheckInRefused,
    MakerCannotApprove,
    PointsAlreadySpent,
    SignatureRefused,
)
from pointsmall.earning.models import Activity, Award, AwardBatch, EvaluationEntry
from pointsmall.earning.rules import ensure_rules
from pointsmall.extensions import db
from tests.builders import mark_present, merit, points


def test_an_award_credits_points_and_merit_to_everyone_present_once(
        place, make_activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    activity = make_activity(points=20, merit=15)
    mark_present(activity, a, b)
    batch = awards.award_activity(db.session, activity, None, key="k1", by=None)
    assert batch.status == "posted"
    assert (points(a), merit(a), points(b), merit(b)) == (20, 15, 20, 15)
    again = awards.award_activity(db.session, activity, None, key="k1", by=None)
    assert again.id == batch.id
    with pytest.raises(ValidationFailed):
        awards.award_activity(db.session, activity, None, key="k2", by=None)
    assert (points(a), points(b)) == (20, 20)
    assert ledger.verify(db.session).ok


def test_a_volunteer_marked_present_later_is_awarded_alone(place, make_activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    activity = make_activity()
    mark_present(activity, a)
    awards.award_activity(db.session, activity, None, key="first", by=None)
    mark_present(activity, b)
    batch = awards.award_activity(db.session, activity, None, key="second", by=None)
    assert batch.people == 1 and (points(a), points(b)) == (20, 20)


def test_a_batch_with_one_bad_volunteer_writes_nothing(place, make_activity, make_volunteer,
                                                        make_community):
    a = make_volunteer(place)
    stranger = make_volunteer(make_community())
    with pytest.raises(ValidationFailed) as refused:
        awards.create_batch(db.session, place.id, [awards.Line(a.id, 10, 10),
                                                   awards.Line(stranger.id, 10, 10)],
                            key="mixed", by=None, title="x", type_code="service")
    assert "volunteer_ids" in refused.value.errors
    assert points(a) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AwardBatch).where(
        AwardBatch.community_id == place.id)) == 0


def test_awarding_volunteers_not_marked_present_is_refused(place, make_activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    activity = make_activity()
    mark_present(activity, a)
    with pytest.raises(ValidationFailed):
        awards.award_activity(db.session, activity, [a.id, b.id], key="k", by=None)
    assert points(a) == 0


@pytest.mark.parametrize(("earned_before", "award", "given", "capped"), [
    (30, 20, 20, None),      # exactly reaches the cap of 50
    (30, 21, 20, "daily"),   # one over: cut to what is left
    (50, 10, 0, "daily"),    # at the cap: nothing more today
])
def test_the_daily_cap_cuts_an_award_and_says_so(place, make_activity, make_volunteer,
                                                  earned_before, award, given, capped):
    ensure_rules(db.session, place.id).daily_cap = 50
    volunteer = make_volunteer(place)
    first = make_activity(points=earned_before, merit=5)
    mark_present(first, volunteer)
    awards.award_activity(db.session, first, None, key="first", by=None)
    second = make_activity(points=award, merit=5)
    mark_present(second, volunteer)
    batch = awards.award_activity(db.session, second, None, key="second", by=None)
    row = db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))
    assert (row.points, row.capped_by) == (given, capped)
    assert points(volunteer) == earned_before + given
    assert merit(volunteer) == 10  # merit is never capped
    assert ledger.verify(db.session).ok


def test_a_request_key_of_another_community_never_answers_for_this_one(
        place, make_activity, make_volunteer, make_community):
    other = make_community()
    theirs = awards.create_batch(db.session, other.id, [awards.Line(
        make_volunteer(other).id, 5, 5)], key="same", by=None, title="x", type_code="service")
    volunteer = make_volunteer(place)
    ours = awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 7, 7)],
                               key="same", by=None, title="y", type_code="service")
    assert ours.id != theirs.id and points(volunteer) == 7


def test_the_monthly_cap_counts_the_whole_local_month(place, make_activity, make_volunteer):
    ensure_rules(db.session, place.id).monthly_cap = 25
    volunteer = make_volunteer(place)
    for n in range(2):
        activity = make_activity(points=20)
        mark_present(activity, volunteer)
        awards.award_activity(db.session, activity, None, key=f"m{n}", by=None)
    assert points(volunteer) == 25


def test_a_big_batch_waits_for_a_second_staff_member(place, make_activity, make_volunteer,
                                                      make_staff):
    ensure_rules(db.session, place.id).approval_people = 1
    maker, checker = make_staff(place), make_staff(place)
    a, b = make_volunteer(place), make_volunteer(place)
    activity = make_activity()
    mark_present(activity, a, b)
    batch = awards.award_activity(db.session, activity, None, key="big", by=maker.id)
    assert batch.status == "pending" and points(a) == 0
    with pytest.raises(MakerCannotApprove):
        awards.approve_batch(db.session, batch.id, place.id, by=maker.id)
    assert points(a) == 0
    awards.approve_batch(db.session, batch.id, place.id, by=checker.id)
    assert batch.status == "posted" and (points(a), points(b)) == (20, 20)


def test_a_rejected_batch_frees_its_volunteers_for_a_corrected_one(
        place, make_activity, make_volunteer, make_staff):
    ensure_rules(db.session, place.id).approval_people = 0
    maker, checker = make_staff(place), make_staff(place)
    volunteer = make_volunteer(place)
    activity = make_activity()
    mark_present(activity, volunteer)
    batch = awards.award_activity(db.session, activity, None, key="a", by=maker.id)
    awards.reject_batch(db.session, batch.id, place.id, by=checker.id)
    again = awards.award_activity(db.session, activity, None, key="b", by=maker.id)
    awards.approve_batch(db.session, again.id, place.id, by=checker.id)
    assert points(volunteer) == 20


def test_reversing_an_award_whose_points_were_spent_is_refused_unless_partial(
        place, make_activity, make_volunteer):
    volunteer = make_volunteer(place)
    activity = make_activity(points=30, merit=30)
    mark_present(activity, volunteer)
    batch = awards.award_activity(db.session, activity, None, key="k", by=None)
    award = db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))
    ledger.move(db.session, volunteer.account("POINTS"), place.community.account("POINTS"), 20,
                key="spend", kind="redemption")
    with pytest.raises(PointsAlreadySpent):
        awards.reverse_award(db.session, award.id, place.id, reason="误记")
    assert (points(volunteer), merit(volunteer)) == (10, 30)
    awards.reverse_award(db.session, award.id, place.id, reason="误记", only_what_is_left=True)
    assert (points(volunteer), merit(volunteer)) == (0, 0)
    assert award.reversed_points == 10
    with pytest.raises(Conflict):
        awards.reverse_award(db.session, award.id, place.id, reason="again")
    assert ledger.verify(db.session).ok


def test_a_reversal_needs_a_reason(place, make_activity, make_volunteer):
    volunteer = make_volunteer(place)
    activity = make_activity()
    mark_present(activity, volunteer)
    batch = awards.award_activity(db.session, activity, None, key="k", by=None)
    award = db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))
    with pytest.raises(ValidationFailed):
        awards.reverse_award(db.session, award.id, place.id, reason="  ")
    assert points(volunteer) == 20


def test_a_deduction_never_overdraws_and_its_reason_shows_in_history(place, make_volunteer):
    volunteer = make_volunteer(place, points=10)
    awards.adjust(db.session, place.id, volunteer.id, -4, reason="重复登记", key="a")
    with pytest.raises(ledger.InsufficientFunds):
        awards.adjust(db.session, place.id, volunteer.id, -7, reason="超扣", key="b")
    assert points(volunteer) == 6
    entry = ledger.history(db.session, volunteer.account("POINTS")).entries[0]
    assert (entry.amount, entry.memo, entry.kind) == (-4, "重复登记", "adjustment")


def test_check_in_works_only_in_the_window_once_and_for_the_own_community(
        place, make_activity, make_volunteer, make_community):
    volunteer = make_volunteer(place)
    stranger = make_volunteer(make_community())
    now = utcnow()
    activity = make_activity(starts=now + timedelta(minutes=20))
    token = activities.check_in_token(activity)
    found = activities.activity_for_token(db.session, token)
    assert found.id == activity.id
    with pytest.raises(CheckInRefused):
        activities.check_in(db.session, found, stranger)
    early = make_activity(starts=now + timedelta(minutes=31))
    with pytest.raises(CheckInRefused):
        activities.check_in(db.session, early, volunteer)
    late = make_activity(starts=now - timedelta(hours=3), hours=2)  # ended 61 minutes ago
    with pytest.raises(CheckInRefused):
        activities.check_in(db.session, late, volunteer)
    row = activities.check_in(db.session, found, volunteer)
    assert row.present
    with pytest.raises(CheckInRefused):
        activities.check_in(db.session, found, volunteer)


def test_a_forged_check_in_link_is_refused(place, make_activity):
    activity = make_activity()
    token = activities.check_in_token(activity)
    payload, _, signature = token.partition(".")
    other = activities.check_in_token(make_activity())
    forged = other.partition(".")[0] + "." + signature
    for bad in (forged, payload + ".x", "nonsense", ""):
        with pytest.raises(CheckInRefused):
            activities.activity_for_token(db.session, bad)


def test_sign_up_respects_capacity(place, make_activity, make_volunteer):
    activity = make_activity(starts=utcnow() + timedelta(days=1), capacity=1)
    a, b = make_volunteer(place), make_volunteer(place)
    activities.sign_up(db.session, activity, a)
    activities.sign_up(db.session, activity, a)  # twice is once
    with pytest.raises(ValidationFailed):
        activities.sign_up(db.session, activity, b)


def _signed(rules, data, *, at=None, secret=None):
    body = json.dumps(data).encode()
    stamp = str(int(at if at is not None else time.time()))
    return body, stamp, platform.signature(secret or rules.platform_secret, stamp, body)


def test_a_signed_platform_task_is_awarded_once_per_task_id(place, make_volunteer):
    volunteer = make_volunteer(place)
    rules = ensure_rules(db.session, place.id)
    data = {"community_id": place.id, "task_id": "T-1", "volunteer_id": volunteer.id,
            "points": 12}
    body, stamp, sig = _signed(rules, data)
    parsed = platform.verify_request(db.session, body, stamp, sig)
    award, new = platform.award_task(db.session, parsed, body)
    assert new and points(volunteer) == 12 and merit(volunteer) == 12
    again, new = platform.award_task(db.session, parsed, body)
    assert not new and again.id == award.id and points(volunteer) == 12
    changed = dict(data, points=13)
    body, stamp, sig = _signed(rules, changed)
    with pytest.raises(Conflict):
        platform.award_task(db.session, platform.verify_request(db.session, body, stamp, sig),
                            body)
    assert points(volunteer) == 12


def test_a_bad_signature_or_a_stale_timestamp_is_refused(place, make_volunteer):
    volunteer = make_volunteer(place)
    rules = ensure_rules(db.session, place.id)
    data = {"community_id": place.id, "task_id": "T-2", "volunteer_id": volunteer.id,
            "points": 5}
    body, stamp, _ = _signed(rules, data, secret="not-the-secret")
    with pytest.raises(SignatureRefused):
        platform.verify_request(db.session, body, stamp, "00" * 32)
    body, stamp, sig = _signed(rules, data, at=time.time() - 301)
    with pytest.raises(SignatureRefused):
        platform.verify_request(db.session, body, stamp, sig)
    body, stamp, sig = _signed(rules, data)
    tampered = body.replace(b'"points": 5', b'"points": 500')
    with pytest.raises(SignatureRefused):
        platform.verify_request(db.session, tampered, stamp, sig)
    assert points(volunteer) == 0


def test_the_platform_endpoint_answers_201_then_200_then_409(client, place, make_volunteer):
    volunteer = make_volunteer(place)
    rules = ensure_rules(db.session, place.id)
    data = {"community_id": place.id, "task_id": "T-9", "volunteer_id": volunteer.id,
            "points": 7}

    def send(payload, **over):
        body, stamp, sig = _signed(rules, payload, **over)
        return client.post("/api/v1/platform/task-completions", data=body,
                           content_type="application/json",
                           headers={"X-Timestamp": stamp, "X-Signature": sig})

    first = send(data)
    assert first.status_code == 201 and first.get_json()["points"] == 7
    assert send(data).status_code == 200
    conflict = send(dict(data, points=8))
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "conflict"
    stale = send(dict(data, task_id="T-10"), at=time.time() - 600)
    assert stale.status_code == 401 and stale.get_json()["code"] == "bad_signature"
    assert points(volunteer) == 7


@pytest.mark.parametrize(("score", "tier"), [(99, None), (100, "bronze"), (299, "bronze"),
                                             (300, "silver"), (600, "gold")])
def test_a_tier_is_reached_exactly_at_its_threshold(score, tier):
    found, _, _ = tiers.tier_for(score, {"bronze": 100, "silver": 300, "gold": 600})
    assert found == tier


def test_the_volunteer_standing_says_what_is_missing_and_spending_keeps_the_tier(
        place, make_activity, make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.merit_per_year = 0
    volunteer = make_volunteer(place)
    activity = make_activity(points=100, merit=100)
    mark_present(activity, volunteer)
    awards.award_activity(db.session, activity, None, key="k", by=None)
    standing = tiers.standing(db.session, volunteer)
    assert (standing.tier, standing.next_tier, standing.missing) == ("bronze", "silver", 200)
    ledger.move(db.session, volunteer.account("POINTS"), place.community.account("POINTS"), 100,
                key="spend", kind="redemption")
    assert tiers.standing(db.session, volunteer).tier == "bronze"


def test_an_evaluation_is_frozen_and_later_awards_do_not_change_it(
        place, make_activity, make_volunteer):
    volunteer = make_volunteer(place)
    activity = make_activity(points=10, merit=150)
    mark_present(activity, volunteer)
    awards.award_activity(db.session, activity, None, key="k", by=None)
    today = clock.local_today()
    evaluation = tiers.evaluate(db.session, place.id, "2026 H2", today.replace(day=1), today,
                                by=None)
    entry = db.session.scalar(sa.select(EvaluationEntry).where(
        EvaluationEntry.evaluation_id == evaluation.id,
        EvaluationEntry.volunteer_id == volunteer.id))
    frozen = (entry.merit, entry.tier, entry.rank)
    more = make_activity(points=10, merit=500)
    mark_present(more, volunteer)
    awards.award_activity(db.session, more, None, key="k2", by=None)
    db.session.expire_all()
    entry = db.session.get(EvaluationEntry, entry.id)
    assert (entry.merit, entry.tier, entry.rank) == frozen
    with pytest.raises(ValidationFailed):
        tiers.evaluate(db.session, place.id, "2026 H2", today, today, by=None)


def test_the_leaderboard_masks_volunteers_who_opted_out(place, make_activity, make_volunteer):
    shown = make_volunteer(place, name="王小明")
    hidden = make_volunteer(place, name="李秀英")
    hidden.show_on_leaderboard = False
    activity = make_activity(points=5, merit=40)
    mark_present(activity, shown, hidden)
    awards.award_activity(db.session, activity, None, key="k", by=None)
    now = utcnow()
    rows = tiers.leaderboard(db.session, place.id, now - timedelta(days=1),
                             now + timedelta(days=1))
    assert {r.name for r in rows} == {"王小明", "李**"}


def test_rolling_expiry_moves_only_old_unspent_points_and_runs_once(place, make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_months = "rolling", 12
    volunteer = make_volunteer(place)
    account, issuance = volunteer.account("POINTS"), place.community.account("POINTS")
    old = utcnow() - timedelta(days=400)
    ledger.move(db.session, issuance, account, 50, key="old", kind="award", now=old)
    ledger.move(db.session, issuance, account, 30, key="new", kind="award")
    ledger.move(db.session, account, issuance, 20, key="spent", kind="redemption")
    assert expiry.expire_points(db.session, place.id) == 30  # 50 old - 20 spent oldest first
    assert points(volunteer) == 30
    assert expiry.expire_points(db.session, place.id) == 0
    assert points(volunteer) == 30
    assert ledger.verify(db.session).ok


def test_annual_expiry_clears_last_years_points_after_the_date(place, make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_month, rules.expiry_day = "annual", 3, 31
    assert expiry.cutoff_for(rules, date(2027, 3, 30)) == date(2026, 1, 1)
    assert expiry.cutoff_for(rules, date(2027, 3, 31)) == date(2027, 1, 1)
    rules.expiry_mode = "never"
    assert expiry.cutoff_for(rules, date(2027, 4, 1)) is None


def test_expiry_never_takes_points_held_for_a_redemption(place, make_volunteer, app):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_months = "rolling", 1
    volunteer = make_volunteer(place)
    account, issuance = volunteer.account("POINTS"), place.community.account("POINTS")
    ledger.move(db.session, issuance, account, 40, key="old", kind="award",
                now=utcnow() - timedelta(days=90))
    ledger.hold(db.session, account, issuance, 25, key="held", kind="redemption")
    assert expiry.expire_points(db.session, place.id) == 15
    assert ledger.balance(db.session, account).available == 0
    assert ledger.verify(db.session).ok


def test_activities_of_another_community_are_not_found(place, make_activity, make_community):
    activity = make_activity()
    other = make_community()
    from pointsmall.core.errors import NotFound

    with pytest.raises(NotFound):
        activities.get_activity(db.session, activity.id, other.id)
    assert db.session.get(Activity, activity.id) is not None


def test_a_request_key_reused_for_another_list_of_volunteers_is_a_conflict(
        place, make_activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    activity = make_activity()
    mark_present(activity, a, b)
    awards.award_activity(db.session, activity, [a.id], key="k", by=None)
    with pytest.raises(Conflict):
        awards.award_activity(db.session, activity, [b.id], key="k", by=None)
    assert (points(a), points(b)) == (20, 0)
    again = awards.award_activity(db.session, activity, [a.id], key="k", by=None)
    assert again.people == 1 and points(a) == 20


def test_checking_in_after_signing_up_uses_the_same_attendance(
        place, make_activity, make_volunteer):
    volunteer = make_volunteer(place)
    activity = make_activity()
    activities.sign_up(db.session, activity, volunteer)
    row = activities.check_in(db.session, activity, volunteer)
    assert row.present and row.signed_up_at is not None
