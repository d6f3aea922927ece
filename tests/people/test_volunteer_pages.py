"""Staff find, add, change, suspend and reset volunteers of their own community only."""

import re

import pytest
import sqlalchemy as sa

from pointsmall.auth.models import User
from pointsmall.extensions import db
from pointsmall.people.models import Volunteer
from tests.builders import audit_actions, build_staff, sign_in, text


def listed_names(response) -> list[str]:
    """Return the volunteer names the list page shows, in order."""
    return re.findall(r'<a href="/staff/volunteers/\d+">([^<]*)</a>', text(response))


def shown_password(response) -> str:
    found = re.search(r'data-testid="password">([^<]+)</pre>', text(response))
    assert found, "the page shows no password"
    return found.group(1).strip()


@pytest.fixture
def three(make_volunteer, place):
    """张伟 (1栋), 张强 (2栋) and a suspended 李娜 (1栋)."""
    return (make_volunteer(place, name="张伟", phone="13800000001"),
            make_volunteer(place, name="张强", phone="13800000002", grid=place.micro2),
            make_volunteer(place, name="李娜", phone="13800000003", status="suspended"))


def test_the_list_finds_volunteers_by_name(as_staff, three):
    assert sorted(listed_names(as_staff.get("/staff/volunteers?q=张"))) == ["张伟", "张强"]


def test_the_list_finds_volunteers_by_phone(as_staff, three):
    assert listed_names(as_staff.get("/staff/volunteers?q=00000003")) == ["李娜"]


def test_a_search_for_percent_matches_nothing_rather_than_everything(as_staff, three):
    assert listed_names(as_staff.get("/staff/volunteers?q=%25")) == []


def test_the_list_filters_by_micro_grid_and_by_grid(as_staff, place, three):
    assert listed_names(as_staff.get(f"/staff/volunteers?grid={place.micro2.id}")) == ["张强"]
    everyone = listed_names(as_staff.get(f"/staff/volunteers?grid={place.grid.id}"))
    assert sorted(everyone) == ["张伟", "张强", "李娜"]


def test_the_list_filters_by_status(as_staff, three):
    assert listed_names(as_staff.get("/staff/volunteers?status=suspended")) == ["李娜"]
    assert sorted(listed_names(as_staff.get("/staff/volunteers?status=active"))) == [
        "张伟", "张强"]


def test_fifty_five_volunteers_make_two_pages_of_the_office_table(as_staff, place, make_volunteer):
    for n in range(55):
        make_volunteer(place, name=f"志愿者{n:02d}")

    first = as_staff.get("/staff/volunteers")
    second = as_staff.get("/staff/volunteers?page=2")

    assert len(listed_names(first)) == 50 and len(listed_names(second)) == 5
    assert set(listed_names(first)).isdisjoint(listed_names(second))
    assert "page=2" in text(first)


def test_staff_add_a_volunteer_who_then_signs_in_with_the_one_time_password(
        app, as_staff, place):
    answer = as_staff.post("/staff/volunteers/new", data={
        "name": "赵敏", "phone": "139 1234 5678", "grid_id": place.micro.id,
        "joined_on": "2024-03-01", "show_on_leaderboard": "y"})

    assert answer.status_code == 200
    password = shown_password(answer)
    volunteer = db.session.scalar(sa.select(Volunteer).join(Volunteer.user)
                                  .where(User.phone == "13912345678"))
    assert volunteer.community_id == place.id and volunteer.grid_id == place.micro.id
    assert [e.target for e in audit_actions("volunteer.create")] == [f"volunteer:{volunteer.id}"]
    newcomer = app.test_client()
    assert sign_in(newcomer, "13912345678", password).status_code == 302
    assert sign_in(app.test_client(), "13912345678", "wrong-password").status_code == 401


def test_adding_a_volunteer_with_bad_fields_shows_them_and_writes_nothing(as_staff, place):
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer))

    answer = as_staff.post("/staff/volunteers/new", data={
        "name": "", "phone": "12345", "grid_id": place.micro.id, "joined_on": "2024-03-01"})

    assert answer.status_code == 422
    assert text(answer).count('class="error"') >= 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer)) == before


def test_staff_change_a_volunteer(as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, name="张伟", phone="13800000011")

    answer = as_staff.post(f"/staff/volunteers/{volunteer.id}", data={
        "name": "张伟伟", "phone": "13800000012", "grid_id": place.micro2.id,
        "joined_on": "2020-01-01"})

    assert answer.status_code == 302
    db.session.refresh(volunteer)
    assert (volunteer.name, volunteer.phone, volunteer.grid_id) == (
        "张伟伟", "13800000012", place.micro2.id)
    [entry] = audit_actions("volunteer.update")
    assert entry.target == f"volunteer:{volunteer.id}" and entry.detail["before"]["name"] == "张伟"


def test_a_suspended_volunteer_cannot_sign_in(app, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, name="张伟", phone="13800000021")
    password = shown_password(as_staff.post(f"/staff/volunteers/{volunteer.id}/reset-password"))

    answer = as_staff.post(f"/staff/volunteers/{volunteer.id}/status/suspended")

    assert answer.status_code == 302
    db.session.refresh(volunteer)
    assert volunteer.status == "suspended"
    assert sign_in(app.test_client(), "13800000021", password).status_code == 401
    [entry] = audit_actions("volunteer.status")
    assert (entry.detail["before"], entry.detail["after"]) == ("active", "suspended")


def test_a_reset_password_replaces_the_old_one(app, as_staff, place, make_volunteer):
    volunteer = make_volunteer(place, name="张伟", phone="13800000031")
    first = shown_password(as_staff.post(f"/staff/volunteers/{volunteer.id}/reset-password"))

    second = shown_password(as_staff.post(f"/staff/volunteers/{volunteer.id}/reset-password"))

    assert first != second
    assert sign_in(app.test_client(), "13800000031", first).status_code == 401
    assert sign_in(app.test_client(), "13800000031", second).status_code == 302
    assert len(audit_actions("volunteer.reset_password")) == 2


@pytest.mark.parametrize("method, path", [
    ("get", "/staff/volunteers/{id}"),
    ("post", "/staff/volunteers/{id}"),
    ("post", "/staff/volunteers/{id}/status/suspended"),
    ("post", "/staff/volunteers/{id}/reset-password"),
])
def test_staff_of_another_community_get_404_and_change_nothing(
        client, place, other_place, make_volunteer, no_csrf, method, path):
    volunteer = make_volunteer(place, name="张伟", phone="13800000041")
    password_hash = volunteer.user.password_hash
    sign_in(client, build_staff(other_place, username="staff_b").username)

    answer = getattr(client, method)(path.format(id=volunteer.id), data={
        "name": "改名", "phone": "13800000042", "grid_id": other_place.micro.id,
        "joined_on": "2020-01-01"})

    assert answer.status_code == 404
    db.session.refresh(volunteer)
    assert (volunteer.name, volunteer.status, volunteer.user.password_hash) == (
        "张伟", "active", password_hash)
    assert audit_actions("volunteer.update") + audit_actions("volunteer.status") == []


def test_staff_of_another_community_do_not_see_its_volunteers(
        client, place, other_place, make_volunteer, no_csrf):
    make_volunteer(place, name="张伟", phone="13800000051")
    sign_in(client, build_staff(other_place, username="staff_b").username)

    assert listed_names(client.get("/staff/volunteers")) == []
    assert listed_names(client.get("/staff/volunteers?q=张伟")) == []


@pytest.mark.parametrize("path", ["/staff/volunteers", "/staff/volunteers/import",
                                  "/staff/volunteers/import/template.csv",
                                  "/staff/volunteers/export.csv"])
def test_a_volunteer_may_not_open_staff_pages(client, place, make_volunteer, no_csrf, path):
    make_volunteer(place, name="张伟", phone="13800000061")  # signs in with the test password
    assert sign_in(client, "13800000061").status_code == 302

    assert client.get(path).status_code == 403


def test_staff_pages_ask_strangers_to_sign_in(client):
    answer = client.get("/staff/volunteers/export.csv")

    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
