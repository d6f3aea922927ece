"""The earning API with bearer tokens: every endpoint for its role, and each refusal with its
status and error shape (401, 403, 404, 409, 422); the grid platform's signed endpoint; the
OpenAPI document."""

import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from pointsmall.core import clock
from pointsmall.earning import activities, awards, platform, tiers
from pointsmall.earning.models import Activity, Attendance, Award, AwardBatch, Evaluation
from pointsmall.earning.rules import activity_type, ensure_rules
from pointsmall.extensions import db
from tests.builders import bearer, count, enter_session, mark_present, merit, points

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture(autouse=True)
def english(client):
    """Messages are read in English (the API speaks the language the cookie chose)."""
    client.set_cookie("lang", "en")


@pytest.fixture
def as_staff(staff):
    return bearer(staff)


@pytest.fixture
def as_checker(place, make_staff):
    """A second staff member of the same community."""
    return bearer(make_staff(place))


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, name="张伟")


@pytest.fixture
def as_volunteer(volunteer):
    return bearer(volunteer.user)


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"code", "message", "errors"} and body["message"], body
    assert isinstance(body["errors"], dict)
    if code:
        assert body["code"] == code, body
    return body


def keyed(headers, key):
    return {**headers, "Idempotency-Key": key}


# Every endpoint, who may call it


ROUTES = [
    # method, path, role
    ("get", "/api/v1/me/history", "volunteer"),
    ("get", "/api/v1/me/tier", "volunteer"),
    ("get", "/api/v1/activities", "volunteer"),
    ("post", "/api/v1/activities/1/sign-up", "volunteer"),
    ("post", "/api/v1/check-ins", "volunteer"),
    ("get", "/api/v1/staff/activities", "staff"),
    ("post", "/api/v1/staff/activities", "staff"),
    ("get", "/api/v1/staff/activities/1/attendance", "staff"),
    ("post", "/api/v1/staff/activities/1/attendance", "staff"),
    ("post", "/api/v1/staff/activities/1/award", "staff"),
    ("get", "/api/v1/staff/award-batches", "staff"),
    ("post", "/api/v1/staff/award-batches/1/approve", "staff"),
    ("post", "/api/v1/staff/award-batches/1/reject", "staff"),
    ("post", "/api/v1/staff/awards/1/reverse", "staff"),
    ("post", "/api/v1/staff/adjustments", "staff"),
    ("post", "/api/v1/staff/adjustments/1/approve", "staff"),
    ("post", "/api/v1/staff/adjustments/1/reject", "staff"),
    ("post", "/api/v1/staff/tiers/preview", "staff"),
    ("put", "/api/v1/staff/tiers/thresholds", "staff"),
    ("get", "/api/v1/staff/leaderboard", "staff"),
    ("post", "/api/v1/staff/evaluations", "staff"),
    ("get", "/api/v1/staff/evaluations/1", "staff"),
]


def test_the_route_list_here_covers_every_earning_endpoint(app):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api_earning."):
            path = re.sub(r"<(?:int|id):\w+>", "1", rule.rule)
            served |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == {(method, path) for method, path, _ in ROUTES}


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
def test_every_earning_endpoint_answers_401_without_a_token(client, method, path, role):
    assert_error(getattr(client, method)(path, json={}), 401)


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
def test_every_earning_endpoint_answers_403_to_the_wrong_role(
        client, place, staff, volunteer, make_admin, make_merchant_staff, method, path, role):
    others = [make_admin(), make_merchant_staff(place), volunteer.user if role == "staff"
              else staff]
    for user in others:
        answer = getattr(client, method)(path, json={}, headers=bearer(user))
        assert_error(answer, 403)
    assert count(Activity, place) == count(AwardBatch, place) == 0


def test_a_session_cookie_is_no_token_for_the_api(client, staff):
    enter_session(client, staff)

    assert_error(client.get("/api/v1/staff/activities"), 401)


# The volunteer


def test_a_volunteer_lists_coming_activities_signs_up_and_twice_is_once(
        client, place, as_volunteer, volunteer, make_activity, make_community):
    coming = make_activity(starts=utcnow() + timedelta(days=2), title="植树活动")
    make_activity(starts=utcnow() - timedelta(days=3), title="已结束")
    make_activity(community=make_community(), title="别的社区")

    listed = client.get("/api/v1/activities", headers=as_volunteer)
    first = client.post(f"/api/v1/activities/{coming.id}/sign-up", headers=as_volunteer)
    second = client.post(f"/api/v1/activities/{coming.id}/sign-up", headers=as_volunteer)

    assert [a["title"] for a in listed.get_json()] == ["植树活动"]
    assert listed.get_json()[0]["type"] == "service"
    assert first.status_code == second.status_code == 200
    assert first.get_json()["present"] is False and first.get_json()["source"] == "signup"
    assert count(Attendance, place) == 1


def test_signing_up_for_a_full_activity_is_refused(
        client, place, as_volunteer, make_volunteer, make_activity):
    full = make_activity(starts=utcnow() + timedelta(days=1), capacity=1)
    activities.sign_up(db.session, full, make_volunteer(place))
    db.session.commit()

    answer = client.post(f"/api/v1/activities/{full.id}/sign-up", headers=as_volunteer)

    body = assert_error(answer, 422, "validation_failed")
    assert body["errors"] == {"activity": ["This activity is full."]}
    assert count(Attendance, place) == 1


def test_a_volunteer_checks_in_with_the_venue_token_once(
        client, as_volunteer, volunteer, activity):
    token = activities.check_in_token(activity)

    first = client.post("/api/v1/check-ins", json={"token": token}, headers=as_volunteer)
    again = client.post("/api/v1/check-ins", json={"token": token}, headers=as_volunteer)

    assert first.status_code == 201
    assert first.get_json()["present"] is True and first.get_json()["source"] == "qr"
    assert_error(again, 422, "check_in_refused")


@pytest.mark.parametrize(("body", "code", "field"), [
    ({}, "validation_failed", "token"),
    ({"token": "forged.token"}, "check_in_refused", None),
    ({"token": 7}, "validation_failed", "token"),
])
def test_a_bad_check_in_is_refused_and_writes_nothing(
        client, place, as_volunteer, activity, body, code, field):
    answer = assert_error(client.post("/api/v1/check-ins", json=body, headers=as_volunteer),
                          422, code)

    if field:
        assert field in answer["errors"]
    assert count(Attendance, place) == 0


def test_checking_in_outside_the_window_or_at_another_community_is_refused(
        client, place, as_volunteer, make_activity, make_community):
    later = make_activity(starts=utcnow() + timedelta(hours=3))
    elsewhere = make_activity(community=make_community())

    for activity, message in ((later, "Check-in opens 30 minutes before the start."),
                              (elsewhere, "This activity belongs to another community.")):
        answer = client.post("/api/v1/check-ins", json={
            "token": activities.check_in_token(activity)}, headers=as_volunteer)
        assert assert_error(answer, 422, "check_in_refused")["message"] == message
    assert count(Attendance, place) == count(Attendance, elsewhere.community_id) == 0


def test_a_volunteer_reads_history_with_reasons_in_pages(
        client, place, as_volunteer, volunteer):
    for n in range(3):
        awards.adjust(db.session, place.id, volunteer.id, 10 + n, reason=f"奖励{n}",
                      key=f"k{n}")
    db.session.commit()

    first = client.get("/api/v1/me/history?limit=2", headers=as_volunteer).get_json()
    rest = client.get(f"/api/v1/me/history?limit=2&before={first['next_cursor']}",
                      headers=as_volunteer).get_json()

    assert [(e["memo"], e["amount"], e["balance_after"]) for e in first["entries"]] == [
        ("奖励2", 12, 33), ("奖励1", 11, 21)]
    assert [e["memo"] for e in rest["entries"]] == ["奖励0"] and rest["next_cursor"] is None
    body = assert_error(client.get("/api/v1/me/history?limit=0", headers=as_volunteer), 422)
    assert "limit" in body["errors"]


def test_a_volunteer_reads_the_tier_and_what_is_missing(
        client, place, as_volunteer, volunteer):
    ensure_rules(db.session, place.id).merit_per_year = 0
    awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 0, 120)], key="m",
                        by=None, title="志愿服务", type_code="service")
    db.session.commit()

    answer = client.get("/api/v1/me/tier", headers=as_volunteer).get_json()

    assert answer == {"tier": "bronze", "merit_in_window": 120, "service_bonus": 0,
                      "score": 120, "next_tier": "silver", "missing": 180}


# Staff: activities and attendance


def test_staff_create_an_activity_with_utc_or_zoned_times(client, place, as_staff):
    kind = activity_type(db.session, place.id, "training")

    answer = client.post("/api/v1/staff/activities", headers=as_staff, json={
        "type_id": kind.id, "title": "急救培训", "starts_at": "2030-05-01T09:00:00+08:00",
        "ends_at": "2030-05-01T03:00:00", "capacity": 40})

    assert answer.status_code == 201
    body = answer.get_json()
    assert (body["starts_at"], body["ends_at"]) == ("2030-05-01T01:00:00+00:00",
                                                    "2030-05-01T03:00:00+00:00")
    assert (body["points"], body["merit"], body["type"]) == (kind.points, kind.merit,
                                                             "training")
    listed = client.get("/api/v1/staff/activities", headers=as_staff).get_json()
    assert [a["title"] for a in listed] == ["急救培训"]


def test_a_retried_activity_create_with_the_same_key_answers_the_first_activity(
        client, place, as_staff):
    # Issue 7's fault run: a create whose answer was lost (server killed, client timeout)
    # was sent again and made a second, third, fourth copy of the activity.
    kind = activity_type(db.session, place.id, "meeting")
    body = {"type_id": kind.id, "title": "网格员例会", "starts_at": "2030-05-01T09:00:00",
            "ends_at": "2030-05-01T10:00:00"}
    keyed = {**as_staff, "Idempotency-Key": "meeting-0501"}

    first = client.post("/api/v1/staff/activities", headers=keyed, json=body)
    again = client.post("/api/v1/staff/activities", headers=keyed, json=body)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count(Activity, place) == 1
    other = client.post("/api/v1/staff/activities", headers=keyed,
                        json={**body, "title": "另一个例会"})
    assert other.status_code == 409
    assert count(Activity, place) == 1
    # Without a key every create is a new activity, as before.
    assert client.post("/api/v1/staff/activities", headers=as_staff,
                       json=body).status_code == 201
    assert count(Activity, place) == 2


@pytest.mark.parametrize(("change", "field"), [
    ({"title": ""}, "title"),
    ({"title": None}, "title"),
    ({"ends_at": "2030-05-01T00:30:00"}, "ends_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"points": 1.5}, "points"),
    ({"points": -1}, "points"),
    ({"capacity": 0}, "capacity"),
    ({"type_id": 999999}, "type_id"),
    ({"type_id": "1"}, "type_id"),
])
def test_a_bad_activity_body_gets_field_errors_and_writes_nothing(
        client, place, as_staff, change, field):
    kind = activity_type(db.session, place.id, "training")
    body = {"type_id": kind.id, "title": "急救培训", "starts_at": "2030-05-01T01:00:00",
            "ends_at": "2030-05-01T03:00:00", **change}

    answer = client.post("/api/v1/staff/activities", headers=as_staff, json=body)

    assert field in assert_error(answer, 422, "validation_failed")["errors"]
    assert count(Activity, place) == 0


def test_staff_use_only_their_own_communitys_activity_types(
        client, place, as_staff, make_community):
    foreign = activity_type(db.session, make_community().id, "training")

    answer = client.post("/api/v1/staff/activities", headers=as_staff, json={
        "type_id": foreign.id, "title": "急救培训", "starts_at": "2030-05-01T01:00:00",
        "ends_at": "2030-05-01T03:00:00"})

    assert "type_id" in assert_error(answer, 422)["errors"]
    assert count(Activity, place) == 0


def test_staff_mark_attendance_and_list_it(client, place, as_staff, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    url = f"/api/v1/staff/activities/{activity.id}/attendance"

    marked = client.post(url, headers=as_staff, json={"volunteer_ids": [a.id, b.id]})
    unmarked = client.post(url, headers=as_staff, json={"volunteer_ids": [b.id],
                                                        "present": False})
    listed = client.get(url, headers=as_staff)

    assert marked.status_code == unmarked.status_code == listed.status_code == 200
    assert {(r["volunteer_id"], r["present"]) for r in listed.get_json()} == {
        (a.id, True), (b.id, False)}


@pytest.mark.parametrize("body", [
    {}, {"volunteer_ids": []}, {"volunteer_ids": ["x"]}, {"volunteer_ids": [1.5]},
    {"volunteer_ids": "1"}, {"volunteer_ids": [99999]}, "other"])
def test_bad_attendance_bodies_are_refused_and_mark_nobody(
        client, place, as_staff, activity, body, make_community, make_volunteer):
    if body == "other":  # a volunteer of another community
        body = {"volunteer_ids": [make_volunteer(make_community()).id]}

    answer = client.post(f"/api/v1/staff/activities/{activity.id}/attendance",
                         headers=as_staff, json=body)

    assert "volunteer_ids" in assert_error(answer, 422, "validation_failed")["errors"]
    assert count(Attendance, place) == 0


# Staff: awards


def award_api(client, headers, activity, key="key-1", **body):
    return client.post(f"/api/v1/staff/activities/{activity.id}/award", json=body,
                       headers=keyed(headers, key) if key else headers)


def test_staff_award_everyone_present_and_the_same_key_awards_once(
        client, place, as_staff, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    mark_present(activity, a, b)

    first = award_api(client, as_staff, activity)
    again = award_api(client, as_staff, activity)

    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    batch = first.get_json()
    assert (batch["status"], batch["people"], batch["requested_points"]) == ("posted", 2, 40)
    assert {(w["volunteer_id"], w["points"], w["merit"]) for w in batch["awards"]} == {
        (a.id, 20, 20), (b.id, 20, 20)}
    assert (points(a), points(b), merit(a)) == (20, 20, 20)
    assert count(AwardBatch, place) == 1


def test_a_new_key_for_an_activity_already_awarded_awards_nothing_more(
        client, place, as_staff, activity, volunteer):
    mark_present(activity, volunteer)
    award_api(client, as_staff, activity, key="first")

    answer = award_api(client, as_staff, activity, key="second")

    assert "volunteer_ids" in assert_error(answer, 422)["errors"]
    assert points(volunteer) == 20


def test_the_same_key_for_another_list_of_volunteers_is_a_conflict(
        client, place, as_staff, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    mark_present(activity, a, b)
    award_api(client, as_staff, activity, volunteer_ids=[a.id])

    answer = award_api(client, as_staff, activity, volunteer_ids=[b.id])

    assert_error(answer, 409, "conflict")
    assert (points(a), points(b)) == (20, 0)


@pytest.mark.parametrize(("key", "body", "field"), [
    (None, {}, "Idempotency-Key"),
    ("x" * 65, {}, "Idempotency-Key"),
    ("k", {"volunteer_ids": ["1"]}, "volunteer_ids"),
    ("k", {"volunteer_ids": []}, "volunteer_ids"),
    ("k", {"volunteer_ids": "absent"}, "volunteer_ids"),
])
def test_a_bad_award_request_is_refused_and_awards_nothing(
        client, place, as_staff, activity, make_volunteer, key, body, field):
    present, absent = make_volunteer(place), make_volunteer(place)
    mark_present(activity, present)
    if body.get("volunteer_ids") == "absent":
        body = {"volunteer_ids": [present.id, absent.id]}

    answer = award_api(client, as_staff, activity, key=key, **body)

    assert field in assert_error(answer, 422, "validation_failed")["errors"]
    assert count(AwardBatch, place) == 0 and points(present) == 0


def test_the_daily_cap_cuts_an_award_and_the_batch_says_so(
        client, place, as_staff, make_activity, volunteer):
    ensure_rules(db.session, place.id).daily_cap = 25
    morning, afternoon = make_activity(), make_activity(title="下午活动")
    for each in (morning, afternoon):
        mark_present(each, volunteer)
    award_api(client, as_staff, morning, key="morning")

    answer = award_api(client, as_staff, afternoon, key="afternoon").get_json()

    assert [(w["requested_points"], w["points"], w["capped_by"]) for w in answer["awards"]] == [
        (20, 5, "daily")]
    assert points(volunteer) == 25


@pytest.fixture
def pending(client, place, as_staff, activity, make_volunteer):
    """A batch of two over the community's approval threshold of 30 points, made by `staff`."""
    ensure_rules(db.session, place.id).approval_points = 30
    people = make_volunteer(place), make_volunteer(place)
    mark_present(activity, *people)
    batch = award_api(client, as_staff, activity).get_json()
    assert batch["status"] == "pending"
    return batch, people


def test_a_batch_over_the_threshold_waits_and_its_maker_cannot_approve_or_reject_it(
        client, as_staff, pending):
    batch, people = pending

    for verdict in ("approve", "reject"):
        answer = client.post(f"/api/v1/staff/award-batches/{batch['id']}/{verdict}",
                             headers=as_staff)
        assert_error(answer, 403, "maker_cannot_approve")

    listed = client.get("/api/v1/staff/award-batches", headers=as_staff).get_json()
    assert [(b["id"], b["status"]) for b in listed] == [(batch["id"], "pending")]
    assert [points(v) for v in people] == [0, 0]


def test_a_second_staff_member_approves_and_approving_again_is_a_conflict(
        client, as_checker, pending):
    batch, people = pending
    url = f"/api/v1/staff/award-batches/{batch['id']}"

    approved = client.post(f"{url}/approve", headers=as_checker)

    assert approved.status_code == 200 and approved.get_json()["status"] == "posted"
    assert [points(v) for v in people] == [20, 20]
    assert_error(client.post(f"{url}/approve", headers=as_checker), 409, "batch_not_pending")
    assert_error(client.post(f"{url}/reject", headers=as_checker), 409, "batch_not_pending")
    assert [points(v) for v in people] == [20, 20]


def test_a_second_staff_member_rejects_and_a_corrected_batch_may_follow(
        client, place, as_staff, as_checker, activity, pending):
    batch, people = pending

    rejected = client.post(f"/api/v1/staff/award-batches/{batch['id']}/reject",
                           headers=as_checker)

    assert rejected.get_json()["status"] == "rejected"
    assert [points(v) for v in people] == [0, 0]
    assert_error(client.post(f"/api/v1/staff/award-batches/{batch['id']}/approve",
                             headers=as_checker), 409, "batch_not_pending")
    corrected = award_api(client, as_staff, activity, key="corrected",
                          volunteer_ids=[people[0].id]).get_json()
    assert corrected["status"] == "posted" and points(people[0]) == 20


# Staff: reversals and adjustments


@pytest.fixture
def award(client, place, as_staff, activity, volunteer):
    mark_present(activity, volunteer)
    return award_api(client, as_staff, activity).get_json()["awards"][0]


def reverse_api(client, headers, award_id, **body):
    return client.post(f"/api/v1/staff/awards/{award_id}/reverse", headers=headers, json=body)


def test_staff_reverse_an_award_with_a_reason_once(client, as_staff, award, volunteer):
    first = reverse_api(client, as_staff, award["id"], reason="误记签到")

    assert first.status_code == 200
    assert (first.get_json()["reversed_points"], first.get_json()["reversal_reason"]) == (
        20, "误记签到")
    assert (points(volunteer), merit(volunteer)) == (0, 0)
    assert_error(reverse_api(client, as_staff, award["id"], reason="误记签到"), 409,
                 "award_already_reversed")
    assert points(volunteer) == 0


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 201},
                                  {"reason": "误记", "only_what_is_left": "maybe"}])
def test_a_reversal_without_a_good_reason_is_refused(client, as_staff, award, volunteer, body):
    answer = reverse_api(client, as_staff, award["id"], **body)

    assert_error(answer, 422, "validation_failed")
    assert points(volunteer) == 20


def test_reversing_spent_points_is_refused_unless_only_what_is_left(
        client, place, as_staff, award, volunteer):
    awards.adjust(db.session, place.id, volunteer.id, -15, reason="兑换大米", key="spent")
    db.session.commit()

    refused = reverse_api(client, as_staff, award["id"], reason="误记签到")
    assert assert_error(refused, 409, "points_already_spent")["errors"] == {"points": ["5"]}
    assert points(volunteer) == 5

    partial = reverse_api(client, as_staff, award["id"], reason="误记签到",
                          only_what_is_left=True)
    assert partial.get_json()["reversed_points"] == 5
    assert (points(volunteer), merit(volunteer)) == (0, 0)


def adjust_api(client, headers, key="adj-1", **body):
    return client.post("/api/v1/staff/adjustments", json=body,
                       headers=keyed(headers, key) if key else headers)


def test_staff_grant_and_deduct_with_a_reason_and_the_same_key_adjusts_once(
        client, as_staff, as_volunteer, make_volunteer, place):
    volunteer = make_volunteer(place, points=10)
    body = {"volunteer_id": volunteer.id, "points": 8, "reason": "协助疫苗接种登记"}

    first = adjust_api(client, as_staff, **body)
    again = adjust_api(client, as_staff, **body)
    deducted = adjust_api(client, as_staff, key="adj-2", volunteer_id=volunteer.id,
                          points=-3, reason="重复发放")

    assert first.status_code == again.status_code == deducted.status_code == 201
    assert first.get_json() == again.get_json()
    assert first.get_json()["kind"] == "adjustment"
    assert first.get_json()["memo"] == "协助疫苗接种登记"
    assert first.get_json()["status"] == "posted"
    assert points(volunteer) == 15
    history = client.get("/api/v1/me/history", headers=bearer(volunteer.user)).get_json()
    assert [(e["memo"], e["amount"]) for e in history["entries"][:2]] == [
        ("重复发放", -3), ("协助疫苗接种登记", 8)]


def test_an_adjustment_takes_the_longest_key_the_api_allows(
        client, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, points=10)
    key = "k" * ledger.REQUEST_KEY_LEN

    first = adjust_api(client, as_staff, key=key, volunteer_id=volunteer.id, points=5,
                       reason="奖励")
    again = adjust_api(client, as_staff, key=key, volunteer_id=volunteer.id, points=5,
                       reason="奖励")

    assert first.status_code == again.status_code == 201
    assert points(volunteer) == 15


def test_the_same_adjustment_key_with_another_amount_is_a_conflict(
        client, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, points=10)
    adjust_api(client, as_staff, volunteer_id=volunteer.id, points=8, reason="奖励")

    answer = adjust_api(client, as_staff, volunteer_id=volunteer.id, points=9, reason="奖励")

    assert_error(answer, 409)
    assert points(volunteer) == 18


def test_a_deduction_over_the_balance_is_refused_and_the_balance_stays(
        client, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, points=10)

    answer = adjust_api(client, as_staff, volunteer_id=volunteer.id, points=-11,
                        reason="重复发放")

    body = assert_error(answer, 422, "insufficient_funds")
    assert body["message"] == "Not enough points: 10 available, 11 needed."
    assert points(volunteer) == 10


@pytest.mark.parametrize(("key", "change", "field"), [
    (None, {}, "Idempotency-Key"),
    ("", {}, "Idempotency-Key"),
    ("k", {"reason": ""}, "reason"),
    ("k", {"reason": None}, "reason"),
    ("k", {"points": 0}, "points"),
    ("k", {"points": 2.5}, "points"),
    ("k", {"points": "5"}, "points"),
    ("k", {"points": 100_001}, "points"),
    ("k", {"volunteer_id": None}, "volunteer_id"),
])
def test_a_bad_adjustment_gets_a_field_error_and_writes_nothing(
        client, as_staff, place, make_volunteer, key, change, field):
    volunteer = make_volunteer(place, points=10)
    body = {"volunteer_id": volunteer.id, "points": 5, "reason": "奖励", **change}

    answer = adjust_api(client, as_staff, key=key, **body)

    assert field in assert_error(answer, 422, "validation_failed")["errors"]
    assert points(volunteer) == 10


# Staff: tiers, leaderboards and evaluations


@pytest.fixture
def ranked(place, make_volunteer):
    """王芳 has 350 merit (silver), 李娜 150 (bronze); no service bonus."""
    ensure_rules(db.session, place.id).merit_per_year = 0
    wang, li = make_volunteer(place, name="王芳"), make_volunteer(place, name="李娜")
    for volunteer, amount in ((wang, 350), (li, 150)):
        awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 0, amount)],
                            key=f"merit-{volunteer.id}", by=None, title="志愿服务",
                            type_code="service")
    db.session.commit()
    return wang, li


def test_a_threshold_preview_says_who_moves_and_saves_nothing(client, place, as_staff, ranked):
    wang, _ = ranked

    answer = client.post("/api/v1/staff/tiers/preview", headers=as_staff,
                         json={"bronze": 100, "silver": 400, "gold": 600})

    assert answer.get_json() == [{"volunteer_id": wang.id, "name": "王芳", "now": "silver",
                                  "then": "bronze"}]
    assert ensure_rules(db.session, place.id).silver_at == 300


def test_staff_save_thresholds(client, place, as_staff, ranked):
    answer = client.put("/api/v1/staff/tiers/thresholds", headers=as_staff,
                        json={"bronze": 100, "silver": 400, "gold": 600})

    assert answer.status_code == 200
    db.session.expire_all()
    assert ensure_rules(db.session, place.id).thresholds == {"bronze": 100, "silver": 400,
                                                             "gold": 600}


@pytest.mark.parametrize("body", [
    {"bronze": 100, "silver": 400, "gold": 300},
    {"bronze": -1, "silver": 400, "gold": 600},
    {"bronze": 100, "silver": 400},
    {"bronze": 100, "silver": "400", "gold": 600},
])
@pytest.mark.parametrize(("method", "path"), [("post", "/api/v1/staff/tiers/preview"),
                                              ("put", "/api/v1/staff/tiers/thresholds")])
def test_bad_thresholds_are_refused(client, place, as_staff, method, path, body):
    answer = getattr(client, method)(path, headers=as_staff, json=body)

    assert_error(answer, 422, "validation_failed")
    db.session.expire_all()
    assert ensure_rules(db.session, place.id).thresholds == {"bronze": 100, "silver": 300,
                                                             "gold": 600}


def test_the_leaderboard_ranks_by_merit_and_masks_those_who_opted_out(
        client, place, as_staff, ranked):
    wang, li = ranked
    li.show_on_leaderboard = False
    db.session.commit()
    today = clock.local_today().isoformat()

    answer = client.get(f"/api/v1/staff/leaderboard?start={today}&end={today}",
                        headers=as_staff)

    assert [(r["rank"], r["name"], r["merit"]) for r in answer.get_json()] == [
        (1, "王芳", 350), (2, "李*", 150)]
    by_grid = client.get(f"/api/v1/staff/leaderboard?start={today}&end={today}"
                         f"&grid_id={place.grid.id}", headers=as_staff).get_json()
    assert len(by_grid) == 2
    body = assert_error(client.get("/api/v1/staff/leaderboard?start=soon", headers=as_staff),
                        422)
    assert {"start", "end"} <= set(body["errors"])


def test_staff_freeze_an_evaluation_that_later_awards_do_not_change(
        client, place, as_staff, ranked):
    wang, li = ranked
    today = clock.local_today().isoformat()

    made = client.post("/api/v1/staff/evaluations", headers=as_staff,
                       json={"name": "2026 H2", "start": "2026-07-01", "end": today})
    awards.create_batch(db.session, place.id, [awards.Line(li.id, 0, 900)], key="later",
                        by=None, title="志愿服务", type_code="service")
    db.session.commit()
    shown = client.get(f"/api/v1/staff/evaluations/{made.get_json()['id']}", headers=as_staff)

    assert made.status_code == 201
    assert shown.get_json() == made.get_json()
    assert [(e["rank"], e["name"], e["tier"]) for e in shown.get_json()["entries"]] == [
        (1, "王芳", "silver"), (2, "李娜", "bronze")]
    again = client.post("/api/v1/staff/evaluations", headers=as_staff,
                        json={"name": "2026 H2", "start": "2026-07-01", "end": today})
    assert "name" in assert_error(again, 422)["errors"]


@pytest.mark.parametrize("body", [
    {"start": "2026-01-01", "end": "2026-06-30"},
    {"name": "", "start": "2026-01-01", "end": "2026-06-30"},
    {"name": "2026 H1", "start": "2026-07-01", "end": "2026-06-30"},
    {"name": "2026 H1", "start": "January", "end": "2026-06-30"},
])
def test_a_bad_evaluation_request_is_refused(client, place, as_staff, body):
    assert_error(client.post("/api/v1/staff/evaluations", headers=as_staff, json=body), 422)
    assert count(Evaluation, place) == 0


# Another community's things are not found


@pytest.fixture
def elsewhere(make_community, make_staff, make_volunteer, make_activity):
    """An activity, a posted award, a pending batch and an evaluation of another community."""
    other = make_community()
    volunteer = make_volunteer(other)
    activity = make_activity(community=other, starts=utcnow() + timedelta(minutes=5))
    mark_present(activity, volunteer)
    posted = awards.award_activity(db.session, activity, None, key="k", by=None)
    award = db.session.scalar(sa.select(Award).where(Award.batch_id == posted.id))
    waiting = awards.create_batch(db.session, other.id, [awards.Line(volunteer.id, 9000, 0)],
                                  key="big", by=make_staff(other).id, title="大批",
                                  type_code="service")
    evaluation = tiers.evaluate(db.session, other.id, "2026 H1", clock.local_today(),
                                clock.local_today(), by=None)
    db.session.commit()
    return {"activity": activity.id, "award": award.id, "batch": waiting.id,
            "evaluation": evaluation.id, "volunteer": volunteer.id, "community": other.id}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/v1/staff/activities/{activity}/attendance", None),
    ("post", "/api/v1/staff/activities/{activity}/attendance", {"volunteer_ids": ["volunteer"]}),
    ("post", "/api/v1/staff/activities/{activity}/award", {}),
    ("post", "/api/v1/staff/award-batches/{batch}/approve", None),
    ("post", "/api/v1/staff/award-batches/{batch}/reject", None),
    ("post", "/api/v1/staff/awards/{award}/reverse", {"reason": "误记"}),
    ("get", "/api/v1/staff/evaluations/{evaluation}", None),
])
def test_another_communitys_things_are_not_found_for_staff(
        client, as_staff, elsewhere, method, path, body):
    if body and body.get("volunteer_ids"):
        body = {"volunteer_ids": [elsewhere["volunteer"]]}
    other = elsewhere["community"]
    before = (count(Attendance, other), count(AwardBatch, other), ledger.balance(
        db.session, f"volunteer:{elsewhere['volunteer']}:points").posted)

    answer = getattr(client, method)(path.format(**elsewhere), json=body,
                                     headers=keyed(as_staff, "k"))

    assert_error(answer, 404, "not_found")
    db.session.expire_all()
    assert db.session.get(AwardBatch, elsewhere["batch"]).status == "pending"
    assert (count(Attendance, other), count(AwardBatch, other), ledger.balance(
        db.session, f"volunteer:{elsewhere['volunteer']}:points").posted) == before


def test_another_communitys_activity_is_not_found_for_a_volunteer(
        client, as_volunteer, elsewhere):
    answer = client.post(f"/api/v1/activities/{elsewhere['activity']}/sign-up",
                         headers=as_volunteer)

    assert_error(answer, 404, "not_found")


def test_adjusting_another_communitys_volunteer_is_not_found(client, as_staff, elsewhere):
    answer = adjust_api(client, as_staff, volunteer_id=elsewhere["volunteer"], points=5,
                        reason="奖励")

    assert_error(answer, 404, "not_found")


# The grid platform


def signed(place, data, *, secret=None, at=None, raw: bytes | None = None) -> dict:
    body = raw if raw is not None else json.dumps(data).encode()
    stamp = str(int(at if at is not None else time.time()))
    secret = secret or ensure_rules(db.session, place.id).platform_secret
    return {"data": body, "content_type": "application/json", "headers": {
        "X-Timestamp": stamp, "X-Signature": platform.signature(secret, stamp, body)}}


TASKS = "/api/v1/platform/task-completions"


def task(place, volunteer, **change) -> dict:
    return {"community_id": place.id, "task_id": "T-100", "volunteer_id": volunteer.id,
            "points": 12, "title": "上报占道经营", **change}


def test_a_signed_task_is_awarded_once_with_201_then_200(client, place, volunteer):
    first = client.post(TASKS, **signed(place, task(place, volunteer)))
    again = client.post(TASKS, **signed(place, task(place, volunteer)))

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["new"] is True and again.get_json()["new"] is False
    assert first.get_json()["award_id"] == again.get_json()["award_id"]
    assert (points(volunteer), merit(volunteer)) == (12, 12)
    history = client.get("/api/v1/me/history", headers=bearer(volunteer.user)).get_json()
    assert history["entries"][0]["memo"] == "上报占道经营"


def test_a_replayed_task_id_with_a_changed_body_is_a_conflict(client, place, volunteer):
    client.post(TASKS, **signed(place, task(place, volunteer)))

    answer = client.post(TASKS, **signed(place, task(place, volunteer, points=99)))

    assert_error(answer, 409, "conflict")
    assert points(volunteer) == 12


@pytest.mark.parametrize("tamper", ["secret", "stale", "future", "signature", "stamp",
                                    "community"])
def test_a_badly_signed_or_stale_task_is_refused_with_401(
        client, place, volunteer, make_community, tamper):
    data = task(place, volunteer)
    request = {
        "secret": lambda: signed(place, data, secret="0" * 64),
        "stale": lambda: signed(place, data, at=time.time() - 301),
        "future": lambda: signed(place, data, at=time.time() + 301),
        "signature": lambda: {**signed(place, data), "headers": {
            "X-Timestamp": str(int(time.time())), "X-Signature": "00"}},
        "stamp": lambda: {**signed(place, data), "headers": {}},
        "community": lambda: signed(place, dict(data, community_id=99999), secret="0" * 64),
    }[tamper]()

    answer = client.post(TASKS, **request)

    assert_error(answer, 401, "bad_signature")
    assert points(volunteer) == 0 and count(Award, place) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"points": -1}, "points"),
    ({"points": 10_001}, "points"),
    ({"points": 2.5}, "points"),
    ({"points": "12"}, "points"),
    ({"merit": -1}, "merit"),
    ({"task_id": ""}, "task_id"),
    ({"task_id": "x" * 65}, "task_id"),
    ({"volunteer_id": "7"}, "volunteer_id"),
    ({"volunteer_id": 99999}, "volunteer_ids"),
])
def test_a_signed_task_with_bad_fields_gets_422_and_awards_nothing(
        client, place, volunteer, change, field):
    answer = client.post(TASKS, **signed(place, task(place, volunteer, **change)))

    assert field in assert_error(answer, 422, "validation_failed")["errors"]
    assert points(volunteer) == 0 and count(Award, place) == 0


def test_a_body_that_is_no_json_gets_422(client, place):
    answer = client.post(TASKS, **signed(place, None, raw=b"not json"))

    assert "community_id" in assert_error(answer, 422)["errors"]


def test_a_task_for_another_communitys_volunteer_awards_nothing(
        client, place, make_community, make_volunteer):
    stranger = make_volunteer(make_community())

    answer = client.post(TASKS, **signed(place, task(place, stranger)))

    assert "volunteer_ids" in assert_error(answer, 422)["errors"]
    assert points(stranger) == 0


# The OpenAPI document


def test_every_earning_path_is_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()

    for method, path, _ in [*ROUTES, ("post", TASKS, "platform")]:
        documented = re.sub(r"/1(/|$)", lambda m: "/{id}" + m.group(1), path)
        found = next((p for p in spec["paths"]
                      if re.sub(r"\{\w+\}", "{id}", p) == documented), None)
        assert found, f"{path} is missing"
        assert spec["paths"][found][method]["summary"], (method, path)


@pytest.mark.parametrize("path", ["/api/v1/staff/activities/{activity_id}/award",
                                  "/api/v1/staff/adjustments"])
def test_the_openapi_document_says_award_and_adjust_need_an_idempotency_key(client, path):
    operation = client.get("/api/openapi.json").get_json()["paths"][path]["post"]

    headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
    assert [(h["name"], h["required"]) for h in headers] == [("Idempotency-Key", True)]
    assert {"409", "422"} <= set(operation["responses"])


def test_the_openapi_document_lists_the_conflicts_of_deciding_a_batch(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    for verdict in ("approve", "reject"):
        responses = paths[f"/api/v1/staff/award-batches/{{batch_id}}/{verdict}"]["post"][
            "responses"]
        assert {"200", "403", "404", "409"} <= set(responses)


def test_an_adjustment_over_the_approval_limit_waits_and_moves_nothing_until_a_checker_approves(
        client, as_staff, as_checker, place, make_volunteer):
    volunteer = make_volunteer(place, points=10)
    body = {"volunteer_id": volunteer.id, "points": 6000, "reason": "年度表彰"}

    asked = adjust_api(client, as_staff, key="big-1", **body)

    assert asked.status_code == 202 and asked.get_json()["status"] == "pending"
    assert points(volunteer) == 10
    adjustment_id = asked.get_json()["id"]
    own = client.post(f"/api/v1/staff/adjustments/{adjustment_id}/approve", headers=as_staff)
    assert_error(own, 403, "maker_cannot_approve")
    assert points(volunteer) == 10

    approved = client.post(f"/api/v1/staff/adjustments/{adjustment_id}/approve",
                           headers=as_checker)

    assert approved.status_code == 200 and approved.get_json()["status"] == "posted"
    assert points(volunteer) == 6010
    twice = client.post(f"/api/v1/staff/adjustments/{adjustment_id}/approve",
                        headers=as_checker)
    assert_error(twice, 409)
    assert points(volunteer) == 6010


def test_a_rejected_adjustment_moves_no_points(client, as_staff, as_checker, place,
                                               make_volunteer):
    volunteer = make_volunteer(place, points=10)
    asked = adjust_api(client, as_staff, key="big-2", volunteer_id=volunteer.id, points=5001,
                       reason="年度表彰")

    rejected = client.post(f"/api/v1/staff/adjustments/{asked.get_json()['id']}/reject",
                           headers=as_checker)

    assert rejected.get_json()["status"] == "rejected"
    assert points(volunteer) == 10


def test_an_adjustment_at_the_limit_and_a_large_deduction_post_at_once(
        client, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, points=10)
    at_limit = adjust_api(client, as_staff, key="lim", volunteer_id=volunteer.id, points=5000,
                          reason="补录")
    taken = adjust_api(client, as_staff, key="ded", volunteer_id=volunteer.id, points=-5010,
                       reason="误发")
    assert (at_limit.status_code, taken.status_code) == (201, 201)
    assert points(volunteer) == 0
