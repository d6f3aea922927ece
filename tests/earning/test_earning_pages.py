"""The earning pages as their users drive them: staff make activities with a venue QR, mark
attendance, award, approve, reverse and adjust, set tiers and freeze evaluations; volunteers
check in and see their tier and expiring points; admins set the rules. Pages are read in
English."""

import base64
import io
import json
import re
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

import ledger
from ledger.clock import utcnow
from pointsmall.core import clock
from pointsmall.earning import activities, awards, platform
from pointsmall.earning.models import (
    Activity,
    Adjustment,
    Attendance,
    Award,
    AwardBatch,
    Evaluation,
)
from pointsmall.earning.rules import activity_type, ensure_rules
from pointsmall.extensions import db
from pointsmall.people.communities import expired_address
from tests.builders import (
    PASSWORD,
    count,
    csrf_token,
    enter_as,
    mark_present,
    merit,
    points,
    text,
)

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
def checker(place, make_staff):
    """A second staff member of the same community."""
    return make_staff(place)


def token_of(client, url: str) -> str:
    return csrf_token(text(client.get(url)))


def present_ids(activity) -> set[int]:
    return set(db.session.scalars(sa.select(Attendance.volunteer_id).where(
        Attendance.activity_id == activity.id, Attendance.present)))


def award_key(html: str) -> str:
    return re.search(r'name="key" value="([0-9a-f]+)"', html).group(1)


# Activities, the venue QR and check-in


def test_staff_create_an_activity_in_local_time_and_it_is_stored_in_utc(client, place, staff):
    token = token_of(enter_as(client, staff), "/staff/activities")
    kind = activity_type(db.session, place.id, "training")

    answer = client.post("/staff/activities", data={
        "csrf_token": token, "type_id": kind.id, "title": "消防安全培训", "place": "社区活动室",
        "day": "2030-05-01", "start": "09:00", "end": "11:30", "capacity": "30"})

    assert answer.status_code == 302
    created = db.session.scalar(sa.select(Activity).where(Activity.community_id == place.id))
    assert (created.starts_at, created.ends_at) == (datetime(2030, 5, 1, 1, 0),
                                                    datetime(2030, 5, 1, 3, 30))
    assert (created.points, created.merit, created.capacity) == (kind.points, kind.merit, 30)
    page = text(client.get(answer.location))
    assert "2030-05-01 09:00 – 11:30" in page
    listing = text(client.get("/staff/activities"))
    assert "消防安全培训" in listing and "2030-05-01 09:00" in listing


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"title": ""}, "title", "A title of at most 100 characters is required."),
    ({"end": "08:00"}, "end", "The end is after the start."),
    ({"day": ""}, "day", "Not a valid date value."),
    ({"points": "-5"}, "points", "A whole number from 0 to 100000."),
])
def test_a_bad_activity_form_shows_field_errors_and_writes_nothing(
        client, place, staff, change, field, message):
    token = token_of(enter_as(client, staff), "/staff/activities")
    kind = activity_type(db.session, place.id, "meeting")
    form = {"csrf_token": token, "type_id": kind.id, "title": "居民议事会", "place": "",
            "day": "2030-05-01", "start": "09:00", "end": "10:00", **change}

    answer = client.post("/staff/activities", data=form)

    assert answer.status_code == 422
    html = text(answer)
    errors = re.findall(r'name="(\w+)"[^>]*>\s*<small class="error">([^<]+)</small>', html)
    assert (field, message) in errors, errors
    assert count(Activity, place) == 0


def test_the_activity_page_shows_a_venue_qr_and_a_check_in_link(client, staff, activity):
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))

    assert re.search(r'<img class="venue-qr" src="data:image/svg\+xml;base64,[^"]+"', page)
    link = re.search(r'data-testid="check-in-link">([^<]+)<', page).group(1)
    assert link.startswith("http://localhost/check-in/")


def check_in_path(client, staff, activity) -> str:
    staff_client = client.application.test_client()
    page = text(enter_as(staff_client, staff).get(f"/staff/activities/{activity.id}"))
    link = re.search(r'data-testid="check-in-link">([^<]+)<', page).group(1)
    return link.removeprefix("http://localhost")


def test_a_volunteer_opens_the_venue_link_and_checks_in(
        client, place, staff, activity, make_volunteer):
    volunteer = make_volunteer(place)
    path = check_in_path(client, staff, activity)
    enter_as(client, volunteer.user)

    page = client.get(path)
    assert page.status_code == 200 and "环境整治" in text(page)
    checked = client.post(path, data={"csrf_token": csrf_token(text(page))},
                          follow_redirects=True)

    assert "Checked in at 环境整治. Points follow once staff confirm." in text(checked)
    assert present_ids(activity) == {volunteer.id}
    again = client.post(path, data={"csrf_token": csrf_token(text(page))})
    assert again.status_code == 422 and "You have already checked in." in text(again)


def test_a_volunteer_not_yet_signed_in_signs_in_and_comes_back_to_check_in(
        client, place, staff, activity, make_volunteer):
    make_volunteer(place, username="wangfang")
    path = check_in_path(client, staff, activity)
    client.set_cookie("lang", "en")

    sent = client.get(path)
    assert sent.status_code == 302 and sent.location.startswith("/login?next=")
    login = client.get(sent.location)
    signed_in = client.post(sent.location, data={
        "csrf_token": csrf_token(text(login)), "login": "wangfang", "password": PASSWORD})

    assert signed_in.status_code == 302 and signed_in.location == path
    page = client.get(path)
    checked = client.post(path, data={"csrf_token": csrf_token(text(page))})
    assert checked.status_code == 302 and len(present_ids(activity)) == 1


def test_a_volunteer_of_another_community_cannot_check_in(
        client, place, staff, activity, make_volunteer, make_community):
    stranger = make_volunteer(make_community())
    path = check_in_path(client, staff, activity)

    answer = enter_as(client, stranger.user).get(path)

    assert answer.status_code == 422
    assert "This activity belongs to another community." in text(answer)
    assert count(Attendance, place) == 0


def test_checking_in_outside_the_window_says_so_and_writes_nothing(
        client, place, staff, make_activity, make_volunteer):
    tomorrow = make_activity(starts=utcnow() + timedelta(days=1))
    volunteer = make_volunteer(place)
    path = check_in_path(client, staff, tomorrow)
    enter_as(client, volunteer.user)

    refused = client.post(path, data={"csrf_token": token_of(client, path)})

    assert refused.status_code == 422
    assert "Check-in opens 30 minutes before the start." in text(refused)
    assert count(Attendance, place) == 0


def test_a_tampered_check_in_link_is_refused(
        client, place, staff, make_activity, make_volunteer):
    first, second = make_activity(), make_activity(title="另一个活动")
    volunteer = make_volunteer(place)
    path = check_in_path(client, staff, first)
    signature = path.rsplit(".", 1)[1]
    other = base64.urlsafe_b64encode(json.dumps({"a": second.id}).replace(" ", "").encode())
    forged = f"/check-in/{other.decode().rstrip('=')}.{signature}"  # first's signature
    enter_as(client, volunteer.user)

    for url in (forged, path[:-3] + "AAA", "/check-in/nonsense"):
        answer = client.get(url)
        assert answer.status_code == 422, url
        assert "This check-in code is not valid." in text(answer)
    assert count(Attendance, place) == 0


# Attendance


def test_staff_tick_signed_up_volunteers_present(client, place, staff, activity, make_volunteer):
    came, stayed_home = make_volunteer(place, name="王芳"), make_volunteer(place, name="刘洋")
    for volunteer in (came, stayed_home):
        activities.sign_up(db.session, activity, volunteer)
    db.session.commit()
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))
    # The ticks that belong to the attendance form (the award form's carry form="award-form").
    ticks = re.findall(r'<input type="checkbox" name="volunteer_id" value="(\d+)">', page)
    assert ticks == [str(came.id), str(stayed_home.id)]

    saved = client.post(f"/staff/activities/{activity.id}/attendance", data={
        "csrf_token": csrf_token(page), "volunteer_id": [str(came.id)]}, follow_redirects=True)

    assert "Attendance saved." in text(saved)
    assert present_ids(activity) == {came.id}


def test_staff_mark_present_by_pasted_phone_numbers(
        client, place, staff, activity, make_volunteer):
    a = make_volunteer(place, phone="13911110001")
    b = make_volunteer(place, phone="13911110002")
    token = token_of(enter_as(client, staff), f"/staff/activities/{activity.id}")

    saved = client.post(f"/staff/activities/{activity.id}/attendance", data={
        "csrf_token": token, "phones": "13911110001\r\n 139-1111-0002 \r\n"},
        follow_redirects=True)

    assert "Attendance saved." in text(saved)
    assert present_ids(activity) == {a.id, b.id}


def test_an_unknown_phone_number_is_named_and_nobody_is_marked(
        client, place, staff, activity, make_volunteer, make_community):
    make_volunteer(place, phone="13911110001")
    make_volunteer(make_community(), phone="13911119999")  # of another community
    token = token_of(enter_as(client, staff), f"/staff/activities/{activity.id}")

    refused = client.post(f"/staff/activities/{activity.id}/attendance", data={
        "csrf_token": token, "phones": "13911110001\n13911119999"})

    assert refused.status_code == 422
    assert "Not volunteers of this community: 13911119999." in text(refused)
    assert present_ids(activity) == set()


def test_saving_attendance_with_nobody_ticked_or_typed_says_so(client, staff, activity):
    token = token_of(enter_as(client, staff), f"/staff/activities/{activity.id}")

    answer = client.post(f"/staff/activities/{activity.id}/attendance",
                         data={"csrf_token": token, "phones": "  "})

    assert answer.status_code == 422 and "Choose at least one volunteer." in text(answer)


def test_importing_without_a_file_says_so(client, staff, activity):
    token = token_of(enter_as(client, staff), f"/staff/activities/{activity.id}")

    answer = client.post(f"/staff/activities/{activity.id}/sheet", data={"csrf_token": token},
                         follow_redirects=True)

    assert '<p class="flash flash-error" role="status">Choose a file.</p>' in text(answer)


def sheet_upload(client, activity, data: bytes, filename: str):
    token = token_of(client, f"/staff/activities/{activity.id}")
    return client.post(f"/staff/activities/{activity.id}/sheet",
                       content_type="multipart/form-data", follow_redirects=True,
                       data={"csrf_token": token, "file": (io.BytesIO(data), filename)})


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk"])
def test_staff_import_a_csv_sign_in_sheet_in_utf8_or_gbk(
        client, place, staff, activity, make_volunteer, encoding):
    a = make_volunteer(place, name="张伟", phone="13911110001")
    b = make_volunteer(place, name="李娜", phone="13911110002")
    sheet = "姓名,手机号,签到时间\r\n张伟,13911110001,09:05\r\n李娜,13911110002,09:10\r\n"

    answer = sheet_upload(enter_as(client, staff), activity, sheet.encode(encoding), "签到表.csv")

    assert "2 volunteers marked present from the sheet." in text(answer)
    assert present_ids(activity) == {a.id, b.id}


def test_staff_import_an_xlsx_sign_in_sheet_with_numeric_phone_cells(
        client, place, staff, activity, make_volunteer):
    a = make_volunteer(place, phone="13911110001")
    b = make_volunteer(place, phone="13911110002")
    book = Workbook()
    book.active.append(["序号", "姓名", "手机号"])
    book.active.append([1, "张伟", 13911110001])
    book.active.append([2, "李娜", "13911110002"])
    buffer = io.BytesIO()
    book.save(buffer)

    answer = sheet_upload(enter_as(client, staff), activity, buffer.getvalue(), "签到表.xlsx")

    assert "2 volunteers marked present from the sheet." in text(answer)
    assert present_ids(activity) == {a.id, b.id}


def test_a_sign_in_sheet_without_a_phone_column_is_refused(
        client, place, staff, activity, make_volunteer):
    make_volunteer(place, phone="13911110001")

    answer = sheet_upload(enter_as(client, staff), activity, "姓名\r\n张伟\r\n".encode(),
                          "签到表.csv")

    assert "The sheet needs a column named 手机号 (phone)." in text(answer)
    assert present_ids(activity) == set()


# Awards


def test_staff_award_everyone_present_and_pressing_again_awards_nothing_more(
        client, place, staff, make_activity, make_volunteer):
    activity = make_activity(points=20, merit=15)
    a, b = make_volunteer(place), make_volunteer(place)
    mark_present(activity, a, b)
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))
    form = {"csrf_token": csrf_token(page), "key": award_key(page)}

    first = client.post(f"/staff/activities/{activity.id}/award", data=form,
                        follow_redirects=True)
    again = client.post(f"/staff/activities/{activity.id}/award", data=form)

    assert "Awarded 2 volunteers." in text(first)
    assert text(first).count("Awarded +20") == 2
    assert again.status_code == 302
    assert (points(a), merit(a), points(b), merit(b)) == (20, 15, 20, 15)
    assert count(AwardBatch, place) == 1


def test_a_new_press_after_everyone_was_awarded_says_so(
        client, place, staff, activity, make_volunteer):
    volunteer = make_volunteer(place)
    mark_present(activity, volunteer)
    enter_as(client, staff)
    for _ in range(2):
        page = text(client.get(f"/staff/activities/{activity.id}"))
        answer = client.post(f"/staff/activities/{activity.id}/award", data={
            "csrf_token": csrf_token(page), "key": award_key(page)})

    assert answer.status_code == 422
    assert "Everyone listed has already been awarded." in text(answer)
    assert points(volunteer) == 20


def test_the_daily_cap_cuts_an_award_and_the_batch_page_says_so(
        client, place, staff, make_activity, make_volunteer):
    ensure_rules(db.session, place.id).daily_cap = 25
    morning, afternoon = make_activity(points=20), make_activity(title="下午活动", points=20)
    volunteer = make_volunteer(place, name="王芳")
    mark_present(morning, volunteer)
    mark_present(afternoon, volunteer)
    awards.award_activity(db.session, morning, None, key="morning", by=staff.id)
    db.session.commit()
    page = text(enter_as(client, staff).get(f"/staff/activities/{afternoon.id}"))

    answer = client.post(f"/staff/activities/{afternoon.id}/award", data={
        "csrf_token": csrf_token(page), "key": award_key(page)}, follow_redirects=True)

    assert "1 award was cut by the earning caps; see the list." in text(answer)
    assert points(volunteer) == 25
    batch = db.session.scalar(sa.select(AwardBatch).where(
        AwardBatch.activity_id == afternoon.id))
    shown = text(client.get(f"/staff/awards/{batch.id}"))
    assert "王芳" in shown and "Asked 20 · Given 5 · cut by the daily cap" in shown


def big_batch(place, staff, activity, *volunteers):
    """Make the community's approval threshold 30 points and award over it."""
    ensure_rules(db.session, place.id).approval_points = 30
    mark_present(activity, *volunteers)
    batch = awards.award_activity(db.session, activity, None, key="big", by=staff.id)
    db.session.commit()
    assert batch.status == "pending"
    return batch


def test_a_batch_over_the_threshold_waits_and_its_maker_cannot_approve_it(
        client, place, staff, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    mark_present(activity, a, b)
    ensure_rules(db.session, place.id).approval_points = 30
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))

    made = client.post(f"/staff/activities/{activity.id}/award", data={
        "csrf_token": csrf_token(page), "key": award_key(page)}, follow_redirects=True)

    assert "This batch needs a second staff member&#39;s approval before it posts." in text(
        made)
    assert text(made).count("Waiting for approval") == 2 and "Awarded +" not in text(made)
    batch = db.session.scalar(sa.select(AwardBatch).where(AwardBatch.community_id == place.id))
    listing = text(client.get("/staff/awards"))
    assert "Waiting for another staff member" in listing
    assert f"/staff/awards/{batch.id}/approve" not in listing
    refused = client.post(f"/staff/awards/{batch.id}/approve",
                          data={"csrf_token": csrf_token(listing)})
    assert refused.status_code == 403
    assert "The staff member who made a batch cannot approve it." in text(refused)
    db.session.expire_all()
    assert db.session.get(AwardBatch, batch.id).status == "pending"
    assert (points(a), points(b)) == (0, 0)


def test_a_second_staff_member_approves_and_the_points_arrive(
        client, place, staff, checker, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    batch = big_batch(place, staff, activity, a, b)
    listing = text(enter_as(client, checker).get("/staff/awards"))
    assert f"/staff/awards/{batch.id}/approve" not in listing  # decided on the batch's page
    assert "Open to approve or reject" in listing
    assert f"/staff/awards/{batch.id}/approve" in text(client.get(f"/staff/awards/{batch.id}"))

    approved = client.post(f"/staff/awards/{batch.id}/approve",
                           data={"csrf_token": csrf_token(listing)}, follow_redirects=True)

    assert "Approved and posted." in text(approved)
    assert (points(a), points(b)) == (20, 20)
    assert text(client.get(f"/staff/activities/{activity.id}")).count("Awarded +20") == 2
    twice = client.post(f"/staff/awards/{batch.id}/approve",
                        data={"csrf_token": csrf_token(listing)})
    assert twice.status_code == 409 and "This batch has already been decided." in text(twice)
    assert (points(a), points(b)) == (20, 20)


def test_a_second_staff_member_rejects_and_nothing_arrives(
        client, place, staff, checker, activity, make_volunteer):
    a, b = make_volunteer(place), make_volunteer(place)
    batch = big_batch(place, staff, activity, a, b)
    listing = text(enter_as(client, checker).get("/staff/awards"))

    rejected = client.post(f"/staff/awards/{batch.id}/reject",
                           data={"csrf_token": csrf_token(listing)}, follow_redirects=True)

    assert "Rejected." in text(rejected)
    db.session.expire_all()
    assert db.session.get(AwardBatch, batch.id).status == "rejected"
    assert (points(a), points(b)) == (0, 0)


# Reversals


def awarded(place, staff, activity, volunteer) -> Award:
    mark_present(activity, volunteer)
    batch = awards.award_activity(db.session, activity, None, key="award", by=staff.id)
    db.session.commit()
    return db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))


def reverse_from_batch_page(client, award, **form):
    page = text(client.get(f"/staff/awards/{award.batch_id}"))
    assert f'action="/staff/award-items/{award.id}/reverse"' in page
    return client.post(f"/staff/award-items/{award.id}/reverse",
                       data={"csrf_token": csrf_token(page), **form}, follow_redirects=True)


def test_staff_reverse_an_award_with_a_reason_from_the_batch_page(
        client, place, staff, activity, make_volunteer):
    volunteer = make_volunteer(place)
    award = awarded(place, staff, activity, volunteer)

    answer = reverse_from_batch_page(enter_as(client, staff), award, reason="误记签到")

    assert "Reversed 20 points and 20 merit." in text(answer)
    assert "Reversed 20: 误记签到" in text(answer)
    assert (points(volunteer), merit(volunteer)) == (0, 0)
    activity_page = text(client.get(f"/staff/activities/{activity.id}"))
    assert "Awarded +" not in activity_page and "Reversed" in activity_page


def test_a_reversal_without_a_reason_is_refused(client, place, staff, activity, make_volunteer):
    volunteer = make_volunteer(place)
    award = awarded(place, staff, activity, volunteer)

    answer = reverse_from_batch_page(enter_as(client, staff), award, reason="  ")

    assert answer.status_code == 422 and "A reason is required." in text(answer)
    assert points(volunteer) == 20


def test_reversing_spent_points_is_refused_unless_only_what_is_left_is_ticked(
        client, place, staff, activity, make_volunteer):
    volunteer = make_volunteer(place)
    award = awarded(place, staff, activity, volunteer)
    awards.adjust(db.session, place.id, volunteer.id, -15, reason="兑换大米", key="spent")
    db.session.commit()
    enter_as(client, staff)

    refused = reverse_from_batch_page(client, award, reason="误记签到")
    assert refused.status_code == 409
    assert "The volunteer has spent some of these points: 5 of 20 are left." in text(refused)
    assert (points(volunteer), merit(volunteer)) == (5, 20)

    partial = reverse_from_batch_page(client, award, reason="误记签到", partial="1")
    assert "Reversed 5 points and 20 merit." in text(partial)
    assert (points(volunteer), merit(volunteer)) == (0, 0)


# Adjustments


def adjust_form(client, **fields):
    page = text(client.get("/staff/awards"))
    form = {"adj-csrf_token": csrf_token(page), **{f"adj-{k}": v for k, v in fields.items()}}
    key = re.search(r'name="key" value="([0-9a-f]+)"', page)
    if key:
        form["key"] = key.group(1)
    return form


def test_staff_grant_points_with_a_reason_and_the_volunteer_sees_it_in_history(
        client, app, place, staff, make_volunteer):
    volunteer = make_volunteer(place, phone="13911110001", points=10)
    enter_as(client, staff)

    answer = client.post("/staff/adjustments", follow_redirects=True, data=adjust_form(
        client, phone="13911110001", points="8", reason="协助疫苗接种登记"))

    assert "Adjusted." in text(answer)
    assert points(volunteer) == 18
    history = text(enter_as(app.test_client(), volunteer.user).get("/history"))
    assert "协助疫苗接种登记" in history and "+8" in history


def test_pressing_save_twice_on_the_same_adjustment_form_adjusts_once(
        client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, phone="13911110001", points=10)
    form = adjust_form(enter_as(client, staff), phone="13911110001", points="8", reason="奖励")

    client.post("/staff/adjustments", data=form)
    client.post("/staff/adjustments", data=form)

    assert points(volunteer) == 18


def test_deducting_more_than_the_balance_is_refused_and_the_balance_stays(
        client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, phone="13911110001", points=10)
    form = adjust_form(enter_as(client, staff), phone="13911110001", points="-11",
                       reason="重复发放")

    answer = client.post("/staff/adjustments", data=form, follow_redirects=True)

    assert "Not enough points: 10 available, 11 needed." in text(answer)
    assert points(volunteer) == 10


@pytest.mark.parametrize(("fields", "message"), [
    ({"phone": "13911110001", "points": "5", "reason": ""}, "A reason is required."),
    ({"phone": "13911110001", "points": "", "reason": "奖励"}, "Points are whole numbers"),
    ({"phone": "13911110001", "points": "5.5", "reason": "奖励"}, "Not a valid integer value."),
    ({"phone": "13911110001", "points": "一百", "reason": "奖励"}, "Not a valid integer value."),
    ({"phone": "13900000000", "points": "5", "reason": "奖励"},
     "Not volunteers of this community: 13900000000."),
])
def test_a_bad_adjustment_says_why_and_writes_nothing(
        client, place, staff, make_volunteer, fields, message):
    volunteer = make_volunteer(place, phone="13911110001", points=10)

    answer = client.post("/staff/adjustments", data=adjust_form(enter_as(client, staff), **fields))

    assert answer.status_code == 422 and message in text(answer)
    assert points(volunteer) == 10


# Tiers, leaderboards, evaluations


def give_merit(place, volunteer, amount: int, key: str):
    awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 0, amount)], key=key,
                        by=None, title="志愿服务", type_code="service")
    db.session.commit()


@pytest.fixture
def ranked(place, make_volunteer):
    """王芳 has 350 merit (silver), 李娜 150 (bronze); no service bonus."""
    ensure_rules(db.session, place.id).merit_per_year = 0
    wang, li = make_volunteer(place, name="王芳"), make_volunteer(place, name="李娜")
    give_merit(place, wang, 350, "wang")
    give_merit(place, li, 150, "li")
    return wang, li


def tier_form(page: str, bronze, silver, gold, **extra) -> dict:
    return {"t-csrf_token": csrf_token(page), "t-bronze": str(bronze), "t-silver": str(silver),
            "t-gold": str(gold), **extra}


def test_a_threshold_preview_shows_who_moves_and_confirming_saves(
        client, place, staff, ranked):
    page = text(enter_as(client, staff).get("/staff/tiers"))

    preview = text(client.post("/staff/tiers", data=tier_form(page, 100, 400, 600)))

    moves = re.search(r'data-testid="moves">(.*?)</ul>', preview, re.S).group(1)
    assert "王芳" in moves and "Silver → Bronze" in moves and "李娜" not in moves
    assert ensure_rules(db.session, place.id).silver_at == 300
    saved = client.post("/staff/tiers", data=tier_form(page, 100, 400, 600, confirm="1"),
                        follow_redirects=True)
    assert "Thresholds saved." in text(saved)
    db.session.expire_all()
    assert ensure_rules(db.session, place.id).thresholds == {
        "bronze": 100, "silver": 400, "gold": 600}


def test_thresholds_with_gold_below_silver_are_refused(client, place, staff, ranked):
    page = text(enter_as(client, staff).get("/staff/tiers"))

    for confirm in ("", "1"):
        answer = client.post("/staff/tiers", data=tier_form(page, 100, 400, 300,
                                                            confirm=confirm))
        assert answer.status_code == 422
        assert "Whole numbers with bronze ≤ silver ≤ gold." in text(answer)
    db.session.expire_all()
    assert ensure_rules(db.session, place.id).thresholds == {
        "bronze": 100, "silver": 300, "gold": 600}


def test_the_leaderboard_ranks_by_merit_and_masks_those_who_opted_out(
        client, place, staff, make_volunteer):
    shown, hidden = make_volunteer(place, name="王芳"), make_volunteer(place, name="欧阳娜娜")
    hidden.show_on_leaderboard = False
    give_merit(place, shown, 50, "shown")
    give_merit(place, hidden, 80, "hidden")

    page = text(enter_as(client, staff).get("/staff/tiers"))

    board = re.search(r'data-testid="board">(.*?)</ol>', page, re.S).group(1)
    assert re.findall(r"(\d)\. (\S+)", board) == [("1", "欧***"), ("2", "王芳")]
    assert "欧阳娜娜" not in page


def test_staff_freeze_an_evaluation_and_print_it(client, place, staff, ranked):
    wang, li = ranked
    page = text(enter_as(client, staff).get("/staff/tiers"))
    today = clock.local_today()

    frozen = client.post("/staff/evaluations", data={
        "e-csrf_token": csrf_token(page), "e-name": "2026 H2", "e-start": "2026-01-01",
        "e-end": today.isoformat(), "e-early": "y"})  # today is not over: asked to anyway

    assert frozen.status_code == 302
    give_merit(place, li, 500, "later")  # after the freeze: the record does not change
    printed = text(client.get(frozen.location))
    assert "Evaluation 2026 H2" in printed
    rows = re.findall(r'<tr><td>(\d+)\. ([^<]+)</td>.*?<td data-label="Tier">([^<]+)</td></tr>',
                      printed)
    assert rows == [("1", "王芳", "Silver"), ("2", "李娜", "Bronze")]
    evaluation = db.session.scalar(sa.select(Evaluation).where(
        Evaluation.community_id == place.id))
    assert f"/staff/evaluations/{evaluation.id}" in text(client.get("/staff/tiers"))


def test_an_evaluation_name_used_before_is_refused(client, place, staff, ranked):
    page = text(enter_as(client, staff).get("/staff/tiers"))
    form = {"e-csrf_token": csrf_token(page), "e-name": "2026 H2", "e-start": "2026-07-01",
            "e-end": "2026-09-30"}

    client.post("/staff/evaluations", data=form)
    again = client.post("/staff/evaluations", data=form)

    assert again.status_code == 422 and "This name is taken." in text(again)
    assert count(Evaluation, place) == 1


# The volunteer's start page


def test_the_volunteer_home_shows_tier_and_what_is_missing_for_the_next(
        client, place, ranked):
    wang, li = ranked

    page = text(enter_as(client, li.user).get("/"))

    assert 'data-testid="tier">Bronze<' in page
    assert "150 more merit to reach Silver." in page
    assert 'data-testid="merit">150<' in page


def test_the_volunteer_home_warns_of_points_expiring_within_30_days(
        client, place, make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_months = "rolling", 12
    volunteer = make_volunteer(place)
    account, issuance = volunteer.account("POINTS"), place.community.account("POINTS")
    ledger.move(db.session, issuance, account, 40, key="old", kind="award",
                now=utcnow() - timedelta(days=355))
    ledger.move(db.session, issuance, account, 25, key="new", kind="award")
    db.session.commit()

    page = text(enter_as(client, volunteer.user).get("/"))

    found = re.search(r'data-testid="expiring">(\d+) points expire on (\d{4}-\d\d-\d\d)\.', page)
    assert found, page
    amount, day = int(found.group(1)), datetime.fromisoformat(found.group(2)).date()
    assert amount == 40
    assert 0 < (day - clock.local_today()).days <= 30


def test_the_volunteer_home_says_nothing_of_expiry_when_points_never_expire(
        client, place, make_volunteer):
    volunteer = make_volunteer(place, points=40)

    page = text(enter_as(client, volunteer.user).get("/"))

    assert 'data-testid="available">40<' in page and "expiring" not in page


# The admin's rules page


def rules_form(page: str, **change) -> dict:
    form = {"csrf_token": csrf_token(page), "daily_cap": "", "monthly_cap": "",
            "approval_points": "5000", "approval_people": "200", "expiry_mode": "never",
            "expiry_months": "24", "expiry_month": "3", "expiry_day": "31",
            "tier_window_days": "365", "merit_per_year": "20"}
    for name, points_, merit_, active in re.findall(
            r'name="type-(\d+)-points" value="(\d+)".*?name="type-\1-merit" value="(\d+)"'
            r'.*?name="type-\1-active" value="1" (checked)?', page, re.S):
        form.update({f"type-{name}-points": points_, f"type-{name}-merit": merit_})
        if active:
            form[f"type-{name}-active"] = "1"
    form.update(change)
    return form


def test_the_admin_saves_caps_expiry_and_activity_type_points(
        client, place, make_admin):
    url = f"/admin/communities/{place.id}/rules"
    page = text(enter_as(client, make_admin()).get(url))
    training = activity_type(db.session, place.id, "training")

    saved = client.post(url, follow_redirects=True, data=rules_form(
        page, daily_cap="50", monthly_cap="400", expiry_mode="rolling", expiry_months="12",
        **{f"type-{training.id}-points": "25", f"type-{training.id}-merit": "30"}))

    assert "Saved." in text(saved)
    db.session.expire_all()
    rules = ensure_rules(db.session, place.id)
    assert (rules.daily_cap, rules.monthly_cap) == (50, 400)
    assert (rules.expiry_mode, rules.expiry_months) == ("rolling", 12)
    training = activity_type(db.session, place.id, "training")
    assert (training.points, training.merit, training.active) == (25, 30, True)
    assert 'name="daily_cap" type="number" value="50"' in text(saved)


def test_bad_rules_show_field_errors_and_save_nothing(client, place, make_admin):
    url = f"/admin/communities/{place.id}/rules"
    page = text(enter_as(client, make_admin()).get(url))

    answer = client.post(url, data=rules_form(page, daily_cap="-1", expiry_months="0"))

    assert answer.status_code == 422
    assert text(answer).count('class="error"') >= 2
    db.session.expire_all()
    rules = ensure_rules(db.session, place.id)
    assert (rules.daily_cap, rules.expiry_months) == (None, 24)


def signed_task(secret: str, place, volunteer, task_id: str):
    body = (f'{{"community_id": {place.id}, "task_id": "{task_id}", '
            f'"volunteer_id": {volunteer.id}, "points": 5}}').encode()
    stamp = str(int(time.time()))
    return {"data": body, "content_type": "application/json", "headers": {
        "X-Timestamp": stamp, "X-Signature": platform.signature(secret, stamp, body)}}


def test_a_new_platform_secret_makes_the_old_one_fail(
        client, app, place, make_admin, make_volunteer):
    volunteer = make_volunteer(place)
    url = f"/admin/communities/{place.id}/rules"
    page = text(enter_as(client, make_admin()).get(url))
    old = re.search(r'data-testid="secret">([0-9a-f]+)<', page).group(1)

    rotated = client.post(f"{url}/rotate-secret", data={"csrf_token": csrf_token(page)},
                          follow_redirects=True)

    new = re.search(r'data-testid="secret">([0-9a-f]+)<', text(rotated)).group(1)
    assert "A new platform secret was made." in text(rotated) and new != old
    machine = app.test_client()
    refused = machine.post("/api/v1/platform/task-completions",
                           **signed_task(old, place, volunteer, "T-1"))
    assert refused.status_code == 401 and points(volunteer) == 0
    accepted = machine.post("/api/v1/platform/task-completions",
                            **signed_task(new, place, volunteer, "T-1"))
    assert accepted.status_code == 201 and points(volunteer) == 5


# The expiry command


def test_the_expire_command_moves_expired_points_once(app, place, make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_months = "rolling", 12
    volunteer = make_volunteer(place)
    account, issuance = volunteer.account("POINTS"), place.community.account("POINTS")
    ledger.move(db.session, issuance, account, 40, key="old", kind="award",
                now=utcnow() - timedelta(days=400))
    ledger.move(db.session, issuance, account, 25, key="new", kind="award")
    db.session.commit()
    runner = app.test_cli_runner()

    first = runner.invoke(args=["points", "expire"])
    second = runner.invoke(args=["points", "expire"])

    assert first.exit_code == 0, first.output
    # The command covers every community (on PostgreSQL others' committed rows may be due too).
    assert int(re.search(r"expired (\d+) point\(s\)", first.output).group(1)) >= 40
    assert "expired 0 point(s)" in second.output
    assert points(volunteer) == 25
    assert ledger.balance(db.session, expired_address(place.id)).posted == 40


# Adjustments over the approval limit, and forms that keep what was typed


def test_an_adjustment_over_the_limit_waits_on_its_page_until_another_staff_member_approves(
        client, app, place, staff, checker, make_volunteer):
    volunteer = make_volunteer(place, phone="13911110001", points=10)
    enter_as(client, staff)

    asked = client.post("/staff/adjustments", follow_redirects=True, data=adjust_form(
        client, phone="13911110001", points="6000", reason="年度表彰"))

    assert "No points have moved yet." in text(asked)
    assert "Waiting for another staff member" in text(asked)
    assert points(volunteer) == 10
    adjustment = db.session.scalar(sa.select(Adjustment).where(
        Adjustment.community_id == place.id))
    assert adjustment.status == "pending"
    second = enter_as(app.test_client(), checker)
    listing = text(second.get("/staff/awards"))
    assert "年度表彰" in listing and "Open to approve or reject" in listing
    page = text(second.get(f"/staff/adjustments/{adjustment.id}"))
    assert "Give 6,000 points to" in page and "+6,000" in page

    approved = second.post(f"/staff/adjustments/{adjustment.id}/approve",
                           data={"csrf_token": csrf_token(page)}, follow_redirects=True)

    assert "Approved and posted." in text(approved)
    assert points(volunteer) == 6010


def test_a_bad_adjustment_is_shown_again_with_what_was_typed_and_the_reason_beside_it(
        client, place, staff, make_volunteer):
    make_volunteer(place, phone="13911110001", points=10)
    enter_as(client, staff)

    answer = client.post("/staff/adjustments", data=adjust_form(
        client, phone="13900000000", points="25", reason="协助疫苗接种登记"))

    page = text(answer)
    assert answer.status_code == 422
    assert 'value="13900000000"' in page and 'value="25"' in page
    assert 'value="协助疫苗接种登记"' in page
    assert "Not volunteers of this community: 13900000000." in page
    assert "Adjust points" in page  # the page itself, not an error page


def test_one_unknown_phone_among_many_keeps_every_typed_number_and_names_the_wrong_one(
        client, place, staff, activity, make_volunteer):
    known = [make_volunteer(place, phone=f"1391111{n:04d}") for n in range(3)]
    typed = "\n".join([v.phone for v in known] + ["13999999999"])
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))

    answer = client.post(f"/staff/activities/{activity.id}/attendance", data={
        "csrf_token": csrf_token(page), "phones": typed})

    assert answer.status_code == 422
    assert typed in text(answer)
    assert "Not volunteers of this community: 13999999999." in text(answer)
    assert count(Attendance, place) == 0


def test_staff_tick_a_volunteer_who_did_not_sign_up_from_the_community_list(
        client, place, staff, activity, make_volunteer):
    walked_in = make_volunteer(place, name="赵敏")
    page = text(enter_as(client, staff).get(f"/staff/activities/{activity.id}"))
    assert "赵敏" in page

    client.post(f"/staff/activities/{activity.id}/attendance", data={
        "csrf_token": csrf_token(page), "volunteer_id": str(walked_in.id)})

    assert db.session.scalar(sa.select(Attendance.present).where(
        Attendance.activity_id == activity.id, Attendance.volunteer_id == walked_in.id))


def test_an_evaluation_whose_end_is_before_its_start_is_shown_again_with_the_dates_kept(
        client, place, staff):
    page = text(enter_as(client, staff).get("/staff/tiers"))

    answer = client.post("/staff/evaluations", data={
        "e-csrf_token": csrf_token(page), "e-name": "2026 上半年", "e-start": "2026-06-30",
        "e-end": "2026-01-01"})

    assert answer.status_code == 422
    assert 'value="2026 上半年"' in text(answer) and 'value="2026-06-30"' in text(answer)
    assert "The end is after the start." in text(answer)
    assert count(Evaluation, place) == 0


def test_freezing_a_period_that_has_not_ended_asks_first_and_the_printout_names_its_last_day(
        client, place, staff, ranked):
    page = text(enter_as(client, staff).get("/staff/tiers"))
    form = {"e-csrf_token": csrf_token(page), "e-name": "今年", "e-start": "2026-01-01",
            "e-end": (clock.local_today() + timedelta(days=30)).isoformat()}

    asked = client.post("/staff/evaluations", data=form)

    assert asked.status_code == 422 and "This period has not ended yet" in text(asked)
    assert count(Evaluation, place) == 0
    frozen = client.post("/staff/evaluations", data={**form, "e-end": "2026-06-30",
                                                     "e-name": "2026 H1"})
    printed = text(client.get(frozen.location))
    assert "2026-01-01 – 2026-06-30" in printed  # the last day, not the day after
    assert place.community.name in printed and "data-print" in printed
