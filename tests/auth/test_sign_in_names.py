"""Usernames and phone numbers are one namespace across communities: a sign-in name reaches
exactly one person, whichever community's staff made the accounts and however they did it.
"""

import csv
import io

import pytest
import sqlalchemy as sa

from pointsmall.auth.models import SignInName, User
from pointsmall.extensions import db
from pointsmall.people.models import Volunteer
from tests.builders import PASSWORD, bearer, enter_session


@pytest.fixture
def ours(make_community):
    return make_community()


@pytest.fixture
def theirs(make_community):
    return make_community()


def people() -> tuple[int, int]:
    return (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
            db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer)))


def signed_in_volunteer(client, login: str) -> int | None:
    answer = client.post("/api/v1/auth/tokens", json={"username": login, "password": PASSWORD})
    if answer.status_code != 201:
        return None
    token = answer.get_json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    return me["volunteer_id"]


def new_volunteer_by_api(client, staff: User, place, **body):
    client.set_cookie("lang", "en")
    return client.post("/api/v1/volunteers", headers=bearer(staff), json={
        "name": "冒名", "grid_id": place.micro.id, "joined_on": "2024-01-01", **body})


def test_the_api_refuses_a_username_that_is_another_communitys_phone_number(
        client, ours, theirs, make_volunteer, make_staff):
    owner = make_volunteer(ours, phone="13912340001")
    staff = make_staff(theirs)
    before = people()

    answer = new_volunteer_by_api(client, staff, theirs, phone="13912340002",
                                  username="13912340001")

    assert answer.status_code == 422
    assert "mobile number" in answer.get_json()["errors"]["username"][0]
    assert people() == before
    assert signed_in_volunteer(client, "13912340001") == owner.id


def test_a_username_cannot_take_a_phone_number_before_its_owner_is_registered(
        app, client, ours, theirs, make_staff, no_csrf):
    squatted = new_volunteer_by_api(client, make_staff(theirs), theirs, phone="13912340004",
                                    username="13912340003")
    page = app.test_client()
    enter_session(page, make_staff(ours))

    added = page.post("/staff/volunteers/new", data={
        "name": "真主人", "phone": "13912340003", "grid_id": ours.micro.id,
        "joined_on": "2024-03-01"})

    assert squatted.status_code == 422
    assert added.status_code == 200  # the page with the first password
    owner = db.session.scalar(sa.select(Volunteer).join(Volunteer.user)
                              .where(User.phone == "13912340003"))
    assert owner.community_id == ours.id
    assert owner.user.username == "13912340003"


def test_the_page_refuses_a_phone_that_is_another_accounts_username_and_writes_nothing(
        app, ours, theirs, make_staff, no_csrf):
    # An account from before the namespace: its username is a phone number.
    make_staff(theirs, username="13912340005")
    page = app.test_client()
    page.set_cookie("lang", "en")
    enter_session(page, make_staff(ours))
    before = people()

    answer = page.post("/staff/volunteers/new", data={
        "name": "撞名", "phone": "139 1234 0005", "grid_id": ours.micro.id,
        "joined_on": "2024-03-01"})

    assert answer.status_code == 422
    assert ("This phone number is already the sign-in name of another account."
            in answer.get_data(as_text=True))
    assert people() == before


def test_the_api_refuses_a_phone_registered_in_another_community(
        client, ours, theirs, make_volunteer, make_staff):
    make_volunteer(ours, phone="13912340006")
    staff = make_staff(theirs)
    before = people()

    answer = new_volunteer_by_api(client, staff, theirs, phone="13912340006")

    assert answer.status_code == 422
    assert answer.get_json()["errors"]["phone"] == ["This phone number is already registered."]
    assert people() == before


def test_an_import_refuses_a_phone_that_is_a_sign_in_name_in_another_community(
        app, ours, theirs, make_staff, make_volunteer, no_csrf):
    make_staff(theirs, username="13912340007")
    make_volunteer(theirs, phone="13912340008")
    page = app.test_client()
    page.set_cookie("lang", "en")
    enter_session(page, make_staff(ours))
    rows = io.StringIO()
    csv.writer(rows).writerows([
        ["姓名", "手机号", "微网格", "加入日期"],
        ["新人", "13912340009", ours.micro.name, "2024-03-01"],
        ["撞名", "13912340007", ours.micro.name, "2024-03-01"],
        ["重号", "13912340008", ours.micro.name, "2024-03-01"]])
    before = people()

    answer = page.post("/staff/volunteers/import", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(rows.getvalue().encode()), "v.csv")})

    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "This phone number is already the sign-in name of another account." in html
    assert "This phone number is already registered." in html
    assert people() == before


@pytest.mark.parametrize("username", ["13912340010", "139-1234-0011"])
def test_an_admin_cannot_name_staff_with_a_phone_number(app, ours, make_admin,
                                                      make_volunteer, no_csrf, username):
    make_volunteer(ours, phone="13912340010")
    page = app.test_client()
    page.set_cookie("lang", "en")
    enter_session(page, make_admin())
    before = people()

    answer = page.post("/admin/communities", data={
        "s-csrf_token": "", "s-community_id": ours.id, "s-username": username,
        "s-name": "新同事", "s-password": "a-long-password"})

    assert answer.status_code == 200
    assert "A username cannot be a mobile number" in answer.get_data(as_text=True)
    assert people() == before


def test_the_database_refuses_a_second_claim_of_a_name(app, ours, make_volunteer):
    make_volunteer(ours, phone="13912340012", username="xiaoli")
    db.session.add(User(username="13912340012", name="绕过检查", role="admin",
                        password_hash="x"))

    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_changed_phone_moves_the_sign_in_name(client, ours, make_volunteer, make_staff):
    volunteer = make_volunteer(ours, phone="13912340013")
    staff = bearer(make_staff(ours))

    answer = client.patch(f"/api/v1/volunteers/{volunteer.id}", headers=staff,
                          json={"phone": "13912340014"})

    assert answer.status_code == 200
    assert signed_in_volunteer(client, "13912340014") == volunteer.id
    assert signed_in_volunteer(client, "13912340013") is None
    assert db.session.scalars(sa.select(SignInName.name)
                              .where(SignInName.user_id == volunteer.user_id)).all() == [
        "13912340014"]
