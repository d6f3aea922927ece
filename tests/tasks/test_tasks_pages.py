"""The task board's pages and API as their users drive them: a volunteer on the phone, staff
at the office, a resident without an account, and the grid platform."""

import io
import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from ledger import utcnow
from pointsmall.core import clock
from pointsmall.core.attempts import AttemptCounter
from pointsmall.earning import platform
from pointsmall.earning.rules import ensure_rules
from pointsmall.extensions import db
from pointsmall.tasks import board, checks
from pointsmall.tasks.models import Assignment, Task, Wish
from tests.builders import bearer, csrf_token, enter_session, points


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place)


def form_post(client, page_url, url, data, *, prefix="", **kwargs):
    """Post a form with the CSRF token of the page it is on."""
    page = client.get(page_url).get_data(as_text=True)
    data = dict(data, **{f"{prefix}csrf_token": csrf_token(page)})
    return client.post(url, data=data, **kwargs)


def png() -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 30), "blue").save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def test_a_volunteer_claims_and_finishes_a_task_on_the_phone_pages(
        client, place, staff, volunteer, make_task):
    task = make_task(place, staff, title="帮独居老人买菜", hours="1.5")
    enter_session(client, volunteer.user)

    board_page = client.get("/tasks").get_data(as_text=True)
    assert "帮独居老人买菜" in board_page and "我的志愿时长" in board_page
    claimed = form_post(client, "/tasks", f"/tasks/{task.id}/claim", {})
    assert claimed.status_code == 302
    done = form_post(client, f"/tasks/{task.id}", f"/tasks/{task.id}/done",
                     {"done-note": "已送到", "done-photos": (png(), "a.png")},
                     content_type="multipart/form-data")

    assert done.status_code == 302
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'data-testid="state">已完成，等待核实' in page
    row = db.session.scalar(sa.select(Assignment).where(Assignment.task_id == task.id))
    assert (row.state, row.note, len(row.photos)) == ("done", "已送到", 1)


def test_done_without_the_required_photo_shows_the_error_beside_the_field_and_keeps_the_note(
        client, place, staff, volunteer, make_task):
    task = make_task(place, staff, photo_required=True)
    board.claim_task(db.session, volunteer, task.id)
    db.session.commit()
    enter_session(client, volunteer.user)

    answer = form_post(client, f"/tasks/{task.id}", f"/tasks/{task.id}/done",
                       {"done-note": "我做完了<b>"}, content_type="multipart/form-data")

    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(r'name="done-photos"[^>]*>\s*<small class="error">这个任务需要一张成果照片',
                     page)
    assert "我做完了&lt;b&gt;</textarea>" in page
    assert db.session.get(Assignment, board.my_assignment(
        db.session, volunteer, task.id).id).state == "claimed"


def test_staff_publish_a_task_and_a_past_deadline_is_refused_beside_the_field(
        client, place, staff):
    enter_session(client, staff)
    past = (clock.local_now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    future = (clock.local_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    fields = {"title": "巡查消防通道", "grid_id": str(place.micro.id), "points": "10",
              "merit": "10", "people": "2", "hours": "1", "mode": "open",
              "start_within_hours": "24"}

    refused = form_post(client, "/staff/tasks", "/staff/tasks", dict(fields, deadline=past))
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert re.search(r'name="deadline"[^>]*>\s*<small class="error">截止时间已过', page)
    assert 'value="巡查消防通道"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.community_id == place.id)) == 0

    published = form_post(client, "/staff/tasks", "/staff/tasks", dict(fields, deadline=future))
    assert published.status_code == 302
    task = db.session.scalar(sa.select(Task).where(Task.community_id == place.id))
    assert (task.title, task.people, task.status) == ("巡查消防通道", 2, "open")


def test_staff_accept_with_a_rating_on_the_task_page_and_the_volunteer_gets_the_points(
        client, place, staff, volunteer, make_task, make_done):
    row = make_done(make_task(place, staff, points=12), volunteer)
    enter_session(client, staff)

    answer = form_post(client, f"/staff/tasks/{row.task_id}",
                       f"/staff/task-assignments/{row.id}/accept",
                       {"check-rating": "4", "check-comment": "及时"})

    assert answer.status_code == 302
    assert points(volunteer) == 12
    again = form_post(client, f"/staff/tasks/{row.task_id}",
                      f"/staff/task-assignments/{row.id}/accept", {"check-rating": "5"},
                      headers={"Referer": f"http://localhost/staff/tasks/{row.task_id}"})
    assert again.status_code in (303, 409)
    assert points(volunteer) == 12


def test_a_resident_posts_a_wish_without_an_account_and_follows_it(client, place):
    answer = form_post(client, f"/wish/{place.micro.id}", f"/wish/{place.micro.id}", {
        "kind": "wish", "name": "李阿姨", "phone": "13912345678",
        "text": "<script>alert(1)</script>想请人帮忙修水龙头"})

    assert answer.status_code == 302
    wish = db.session.scalar(sa.select(Wish).where(Wish.community_id == place.id))
    assert answer.headers["Location"].endswith(f"/wish/follow/{wish.code}")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;想请人帮忙修水龙头" in page
    assert "<script>alert(1)" not in page
    assert "13912345678" not in page and "139****5678" in page
    assert "等待审核" in page


def test_a_wish_with_no_text_is_refused_beside_the_field_and_nothing_is_kept(client, place):
    answer = form_post(client, f"/wish/{place.micro.id}", f"/wish/{place.micro.id}", {
        "kind": "wish", "name": "小王", "phone": "13912345678", "text": "   "})

    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(r'name="text"[^>]*>[^<]*</textarea>\s*<small class="error">', page)
    assert 'value="小王"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Wish).where(
        Wish.community_id == place.id)) == 0


def test_the_wish_form_needs_its_csrf_token(client, place):
    answer = client.post(f"/wish/{place.micro.id}", data={
        "kind": "wish", "name": "小王", "phone": "13912345678", "text": "帮忙"})

    assert answer.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Wish).where(
        Wish.community_id == place.id)) == 0


def test_a_fifth_wish_in_an_hour_from_one_phone_is_refused(client, place):
    phone = "13987654321"
    db.session.execute(sa.delete(AttemptCounter).where(AttemptCounter.key == phone))
    for n in range(4):
        sent = form_post(client, f"/wish/{place.micro.id}", f"/wish/{place.micro.id}", {
            "kind": "wish", "name": "张", "phone": phone, "text": f"心愿{n}"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert sent.status_code == 302

    fifth = form_post(client, f"/wish/{place.micro.id}", f"/wish/{place.micro.id}", {
        "kind": "wish", "name": "张", "phone": phone, "text": "第五个"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"})

    assert fifth.status_code == 429
    assert "太多" in fifth.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Wish).where(
        Wish.phone == phone)) == 4


def test_many_wishes_from_one_address_are_refused(client, place):
    address = "10.9.9.9"
    db.session.execute(sa.delete(AttemptCounter).where(AttemptCounter.key == address))
    answers = [form_post(client, f"/wish/{place.micro.id}", f"/wish/{place.micro.id}", {
        "kind": "report", "name": "路人", "phone": f"1370000{n:04d}", "text": "路灯坏了"},
        environ_base={"REMOTE_ADDR": address}).status_code for n in range(21)]

    assert answers[:20] == [302] * 20 and answers[20] == 429


def test_staff_publish_a_wish_and_the_resident_rates_the_result(
        client, place, staff, volunteer):
    from pointsmall.tasks import wishes

    wish = wishes.post_wish(db.session, place.micro.id, {
        "name": "李阿姨", "phone": "13912345678", "text": "修水龙头"}, address="1.2.3.4")
    db.session.commit()
    enter_session(client, staff)
    staff_page = client.get(f"/staff/wishes/{wish.id}").get_data(as_text=True)
    assert "13912345678" in staff_page
    deadline = (clock.local_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    published = form_post(client, f"/staff/wishes/{wish.id}", f"/staff/wishes/{wish.id}/publish",
                          {"p-title": "修水龙头", "p-points": "10", "p-merit": "10",
                           "p-people": "1", "p-hours": "1", "p-deadline": deadline})
    assert published.status_code == 302
    db.session.refresh(wish)
    assert wish.status == "published"
    row = board.claim_task(db.session, volunteer, wish.task_id)
    board.finish_task(db.session, volunteer, wish.task_id, note="修好了")
    checks.accept_task(db.session, staff, row.id, rating=5)
    db.session.commit()
    resident = client.application.test_client()

    rated = form_post(resident, f"/wish/follow/{wish.code}", f"/wish/follow/{wish.code}/rate",
                      {"rating": "5", "comment": "谢谢"})

    assert rated.status_code == 302
    db.session.refresh(wish)
    assert (wish.resident_rating, wish.resident_comment) == (5, "谢谢")
    task_text = client.get(f"/staff/tasks/{wish.task_id}").get_data(as_text=True)
    assert "13912345678" not in task_text


def test_staff_close_a_wish_with_a_reason_the_resident_reads(client, place, staff):
    from pointsmall.tasks import wishes

    wish = wishes.post_wish(db.session, place.micro.id, {
        "name": "王", "phone": "13912345679", "text": "小区门口想装个长椅"}, address="1.2.3.5")
    db.session.commit()
    enter_session(client, staff)

    closed = form_post(client, f"/staff/wishes/{wish.id}", f"/staff/wishes/{wish.id}/close",
                       {"c-reason": "已转物业处理"})

    assert closed.status_code == 302
    page = client.application.test_client().get(f"/wish/follow/{wish.code}")
    assert "已转物业处理" in page.get_data(as_text=True)


def test_the_api_lists_claims_and_accepts_tasks(client, place, staff, volunteer, make_task):
    task = make_task(place, staff, points=8)
    as_volunteer, as_staff = bearer(volunteer.user), bearer(staff)

    listed = client.get("/api/v1/tasks", headers=as_volunteer).get_json()
    claimed = client.post(f"/api/v1/tasks/{task.id}/claim", headers=as_volunteer)
    done = client.post(f"/api/v1/tasks/{task.id}/done", json={"note": "好了"},
                       headers=as_volunteer)
    accepted = client.post(f"/api/v1/staff/task-assignments/{done.get_json()['id']}/accept",
                           json={"rating": 5}, headers=as_staff)
    twice = client.post(f"/api/v1/staff/task-assignments/{done.get_json()['id']}/accept",
                        json={"rating": 5}, headers=as_staff)
    hours_now = client.get("/api/v1/me/hours", headers=as_volunteer).get_json()

    assert [t["id"] for t in listed] == [task.id]
    assert (claimed.status_code, done.status_code, accepted.status_code) == (200, 200, 200)
    assert accepted.get_json()["state"] == "accepted"
    assert (twice.status_code, twice.get_json()["code"]) == (409, "already_accepted")
    assert points(volunteer) == 8
    assert hours_now["total"] == 2.0


def test_the_openapi_document_lists_the_task_and_wish_endpoints(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    assert {"/api/v1/tasks", "/api/v1/tasks/{task_id}/claim", "/api/v1/tasks/{task_id}/done",
            "/api/v1/staff/tasks", "/api/v1/staff/task-assignments/{assignment_id}/accept",
            "/api/v1/staff/wishes", "/api/v1/platform/tasks", "/api/v1/me/hours"} <= set(paths)


def _signed(place, body: dict):
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    secret = ensure_rules(db.session, place.id).platform_secret
    return raw, {"X-Timestamp": stamp, "X-Signature": platform.signature(secret, stamp, raw),
                 "Content-Type": "application/json"}


def test_the_grid_platform_creates_a_task_once_per_task_id(client, place):
    body = {"community_id": place.id, "task_id": "GRID-2026-001", "title": "井盖松动",
            "grid_id": place.micro.id, "points": 15, "people": 1,
            "deadline": (utcnow() + timedelta(days=2)).isoformat() + "Z"}

    first = client.post("/api/v1/platform/tasks", data=_signed(place, body)[0],
                        headers=_signed(place, body)[1])
    again = client.post("/api/v1/platform/tasks", data=_signed(place, body)[0],
                        headers=_signed(place, body)[1])
    changed = dict(body, points=99)
    conflict = client.post("/api/v1/platform/tasks", data=_signed(place, changed)[0],
                           headers=_signed(place, changed)[1])
    forged = client.post("/api/v1/platform/tasks", data=json.dumps(body),
                         headers={"X-Timestamp": "1", "X-Signature": "00",
                                  "Content-Type": "application/json"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert (first.get_json()["source"], first.get_json()["merit"]) == ("platform", 15)
    assert conflict.status_code == 409 and forged.status_code == 401
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.community_id == place.id)) == 1


def test_pages_speak_english_when_chosen(client, place, staff, volunteer, make_task):
    make_task(place, staff, title="英文页面任务")
    enter_session(client, volunteer.user)
    client.get("/lang/en?next=/tasks")

    page = client.get("/tasks").get_data(as_text=True)

    assert "My service hours" in page and "Open tasks near me" in page


def test_the_dashboard_shows_tasks_per_month_the_48_hour_share_and_overdue_grids(
        client, place, staff, make_volunteer, make_task):
    from pointsmall.tasks import figures

    created = utcnow() - timedelta(days=5)
    quick, slow = make_volunteer(place), make_volunteer(place)
    for volunteer, hours, rating in ((quick, 20, 5), (slow, 60, 3)):
        task = board.publish_task(db.session, place.id, {
            "title": "巡查", "grid_id": place.micro.id, "points": 5, "merit": 5, "people": 1,
            "deadline": created + timedelta(days=4)}, actor=staff, now=created)
        board.claim_task(db.session, volunteer, task.id, now=created + timedelta(hours=2))
        row = board.finish_task(db.session, volunteer, task.id, note="好",
                                now=created + timedelta(hours=hours - 1))
        checks.accept_task(db.session, staff, row.id, rating=rating,
                           now=created + timedelta(hours=hours))
    board.publish_task(db.session, place.id, {
        "title": "逾期任务", "grid_id": place.grid.id, "points": 5, "merit": 5, "people": 1,
        "deadline": utcnow() - timedelta(hours=1)}, actor=staff, now=created)
    db.session.commit()

    found = figures.summary(db.session, place.id, created - timedelta(days=1), utcnow())
    assert (found.closed, found.within_48h, found.hours_to_claim, found.rating,
            found.overdue) == (2, 0.5, 2.0, 4.0, 1)
    assert found.hours_to_close == 40.0
    enter_session(client, staff)
    page = client.get("/staff/dashboard").get_data(as_text=True)
    assert 'data-testid="within-48h">50%' in page
    assert f"{place.grid.name}</span><strong>1</strong>" in page


def test_staff_export_hours_per_volunteer_for_a_period_and_the_tasks_and_wishes(
        client, place, staff, volunteer, make_task, make_done):
    from pointsmall.tasks import wishes

    row = make_done(make_task(place, staff, title="导出任务", hours="2.5"), volunteer)
    checks.accept_task(db.session, staff, row.id, rating=5)
    wishes.post_wish(db.session, place.micro.id, {"name": "钱", "phone": "13912340000",
                                                  "text": "导出的心愿"}, address="5.6.7.8")
    db.session.commit()
    enter_session(client, staff)
    today = clock.local_today()

    hours_now = client.get(f"/staff/exports/hours.csv?start={today}&end={today}"
                           ).get_data(as_text=True)
    hours_before = client.get("/staff/exports/hours.csv?start=2020-01-01&end=2020-12-31"
                              ).get_data(as_text=True)
    tasks_csv = client.get("/staff/exports/tasks.csv").get_data(as_text=True)
    wishes_csv = client.get("/staff/exports/wishes.csv").get_data(as_text=True)

    line = next(li for li in hours_now.splitlines() if volunteer.phone in li)
    assert line.endswith(",2.5,0,2.5")
    old = next(li for li in hours_before.splitlines() if volunteer.phone in li)
    assert old.endswith(",0,0,0")
    assert "导出任务" in tasks_csv and "已核实" in tasks_csv
    assert "导出的心愿" in wishes_csv and "13912340000" in wishes_csv


def test_publishing_again_with_the_same_key_answers_the_first_task(client, place, staff):
    as_staff = dict(bearer(staff), **{"Idempotency-Key": "publish-1"})
    body = {"title": "重试的任务", "grid_id": place.micro.id, "points": 5,
            "deadline": (utcnow() + timedelta(days=1)).isoformat() + "Z"}

    first = client.post("/api/v1/staff/tasks", json=body, headers=as_staff)
    again = client.post("/api/v1/staff/tasks", json=body, headers=as_staff)
    other = client.post("/api/v1/staff/tasks", json=dict(body, points=6), headers=as_staff)
    enter_session(client, staff)
    page = client.get("/staff/tasks").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)
    fields = {"csrf_token": csrf_token(page), "key": key, "title": "按两次的任务",
              "grid_id": str(place.micro.id), "points": "5", "merit": "5", "people": "1",
              "hours": "1", "mode": "open", "start_within_hours": "24",
              "deadline": (clock.local_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")}
    presses = [client.post("/staff/tasks", data=fields) for _ in range(2)]

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert [p.status_code for p in presses] == [302, 302]
    assert presses[0].headers["Location"] == presses[1].headers["Location"]
    titles = db.session.scalars(sa.select(Task.title).where(Task.community_id == place.id)).all()
    assert sorted(titles) == ["按两次的任务", "重试的任务"]


def test_staff_screen_wishes_and_dispatch_through_the_api(
        client, place, staff, volunteer, make_task):
    from pointsmall.tasks import wishes

    posted = [wishes.post_wish(db.session, place.micro.id, {
        "name": "孙", "phone": f"1391234100{n}", "text": f"心愿{n}"}, address="9.9.9.9")
        for n in range(3)]
    task = make_task(place, staff, people=2, mode="dispatch")
    as_staff = bearer(staff)
    deadline = (utcnow() + timedelta(days=1)).isoformat() + "Z"

    published = client.post(f"/api/v1/staff/wishes/{posted[0].id}/publish",
                            json={"title": "心愿任务", "points": 7, "deadline": deadline},
                            headers=as_staff)
    merged = client.post(f"/api/v1/staff/wishes/{posted[1].id}/merge",
                         json={"into_id": posted[0].id}, headers=as_staff)
    closed = client.post(f"/api/v1/staff/wishes/{posted[2].id}/close",
                         json={"reason": "不在服务范围"}, headers=as_staff)
    again = client.post(f"/api/v1/staff/wishes/{posted[2].id}/close",
                        json={"reason": "再关一次"}, headers=as_staff)
    dispatched = client.post(f"/api/v1/staff/tasks/{task.id}/dispatch",
                             json={"volunteer_ids": [volunteer.id]}, headers=as_staff)

    assert [r.get_json()["status"] for r in (published, merged, closed)] == [
        "published", "merged", "closed"]
    assert db.session.get(Task, published.get_json()["task_id"]).points == 7
    assert again.status_code == 409
    assert dispatched.status_code == 200
    assert [(a["volunteer_id"], a["dispatched"]) for a in dispatched.get_json()] == [
        (volunteer.id, True)]


def test_tasks_are_counted_in_the_month_they_were_opened_claimed_done_and_accepted(
        place, staff, make_volunteer):
    from pointsmall.core import clock
    from pointsmall.tasks import figures

    this_month = clock.local_today().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    earlier = clock.utc_start_of(last_month) + timedelta(days=2)
    start = clock.utc_start_of(this_month)
    lately = start + (utcnow() - start) / 2  # in this month, whatever the day
    for when, volunteer in ((earlier, make_volunteer(place)), (lately, make_volunteer(place))):
        task = board.publish_task(db.session, place.id, {
            "title": "巡查", "grid_id": place.micro.id, "points": 5, "merit": 5, "people": 1,
            "deadline": when + timedelta(days=4)}, actor=staff, now=when)
        board.claim_task(db.session, volunteer, task.id, now=when + timedelta(minutes=1))
        row = board.finish_task(db.session, volunteer, task.id, note="好",
                                now=when + timedelta(minutes=2))
        checks.accept_task(db.session, staff, row.id, rating=4, now=when + timedelta(minutes=3))
    board.publish_task(db.session, place.id, {
        "title": "未认领", "grid_id": place.micro.id, "points": 5, "merit": 5, "people": 1,
        "deadline": utcnow() + timedelta(days=1)}, actor=staff, now=utcnow())
    db.session.commit()

    months = figures.by_month(db.session, place.id, [last_month, this_month])

    assert [(m.month, m.opened, m.claimed, m.done, m.accepted) for m in months] == [
        (last_month, 1, 1, 1, 1), (this_month, 2, 1, 1, 1)]
