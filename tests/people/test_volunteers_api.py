"""The volunteers and grids API for community staff."""

import pytest
import sqlalchemy as sa

import ledger
from pointsmall.auth.models import User
from pointsmall.core.audit import AuditEntry
from pointsmall.extensions import db
from pointsmall.people.models import Volunteer
from tests.builders import PASSWORD, bearer


@pytest.fixture
def place(make_community):
    """A community with one micro-grid (this folder's place has two)."""
    return make_community()


@pytest.fixture
def staff(place, make_staff):
    return bearer(make_staff(place))


def count_volunteers() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer))


def test_staff_list_their_volunteers_with_balances(client, place, staff, make_volunteer):
    rich = make_volunteer(place, name="张富", points=300, merit=120)
    make_volunteer(place, name="李穷")
    merchant = ledger.open_account(db.session, "merchant:test-list:points", "POINTS")
    ledger.hold(db.session, rich.account("POINTS"), merchant.address, 100, key="test:list",
                kind="redemption")
    db.session.commit()

    page = client.get("/api/v1/volunteers", headers=staff).get_json()

    assert page["total"] == 2 and page["page"] == 1 and page["pages"] == 1
    by_name = {v["name"]: v for v in page["items"]}
    assert by_name["张富"]["points"] == {"balance": 300, "available": 200, "held": 100}
    assert by_name["张富"]["merit"] == 120
    assert by_name["李穷"]["points"] == {"balance": 0, "available": 0, "held": 0}
    assert by_name["张富"]["grid_id"] == place.micro.id
    assert by_name["张富"]["grid"] == f"{place.grid.name} / {place.micro.name}"


def test_the_list_filters_by_name_grid_and_status(client, place, staff, make_volunteer,
                                                 make_community):
    make_volunteer(place, name="王一", phone="13911110001")
    make_volunteer(place, name="王二", status="suspended")
    make_volunteer(place, name="赵三")

    def names(query):
        answer = client.get(f"/api/v1/volunteers?{query}", headers=staff).get_json()
        return sorted(v["name"] for v in answer["items"])

    assert names("q=王") == ["王一", "王二"]
    assert names("q=1391111") == ["王一"]
    assert names("status=suspended") == ["王二"]
    assert names(f"grid_id={place.grid.id}") == ["王一", "王二", "赵三"]
    assert names(f"grid_id={make_community().micro.id}") == []


def test_the_list_comes_a_page_at_a_time_with_the_total(client, place, staff, make_volunteer):
    for n in range(5):
        make_volunteer(place, name=f"志愿者{n}")

    first = client.get("/api/v1/volunteers?per_page=2", headers=staff).get_json()
    last = client.get("/api/v1/volunteers?per_page=2&page=3", headers=staff).get_json()

    assert first["total"] == last["total"] == 5 and first["pages"] == 3
    assert len(first["items"]) == 2 and len(last["items"]) == 1
    assert [v["name"] for v in first["items"]] == ["志愿者0", "志愿者1"]


def test_a_page_reads_all_its_balances_in_one_query(client, place, staff, make_volunteer,
                                                   connection):
    for n in range(6):
        make_volunteer(place, points=10 * (n + 1))
    statements = []

    def record(conn, cursor, statement, *rest):
        statements.append(statement)

    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        answer = client.get("/api/v1/volunteers", headers=staff)
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)

    assert answer.status_code == 200 and len(answer.get_json()["items"]) == 6
    assert len([s for s in statements if "ledger_balances" in s]) == 1


@pytest.mark.parametrize("query", ["status=gone", "page=0", "per_page=101", "grid_id=x"])
def test_bad_list_filters_are_422_by_field(client, staff, query):
    answer = client.get(f"/api/v1/volunteers?{query}", headers=staff)

    assert answer.status_code == 422
    assert set(answer.get_json()["errors"]) == {query.split("=")[0]}


def test_staff_add_a_volunteer_who_can_then_sign_in(client, place, staff):
    answer = client.post("/api/v1/volunteers", headers=staff, json={
        "name": "新志愿者", "phone": "139 0000 1234", "grid_id": place.micro.id,
        "joined_on": "2024-05-01"})

    assert answer.status_code == 201
    body = answer.get_json()
    volunteer = body["volunteer"]
    assert volunteer["phone"] == "13900001234" and volunteer["status"] == "active"
    assert volunteer["joined_on"] == "2024-05-01"
    assert volunteer["points"] == {"balance": 0, "available": 0, "held": 0}
    signed_in = client.post("/api/v1/auth/tokens", json={"username": "13900001234",
                                                         "password": body["password"]})
    assert signed_in.status_code == 201
    assert db.session.scalar(sa.select(AuditEntry.action).where(
        AuditEntry.target == f"volunteer:{volunteer['id']}")) == "volunteer.create"


@pytest.mark.parametrize("body, fields", [
    ({}, {"name", "phone", "grid_id"}),
    ({"name": "", "phone": "12345", "grid_id": 999999}, {"name", "phone", "grid_id"}),
    ({"name": "x" * 41, "phone": "13900000000", "grid_id": "one"}, {"grid_id"}),
    ({"name": "张三", "phone": "13900000000", "grid_id": 1, "joined_on": "yesterday"},
     {"joined_on"}),
    ({"name": "张三", "phone": "13900000000", "grid_id": 1, "status": "active"}, {"status"}),
])
def test_a_bad_volunteer_is_422_by_field_and_writes_nothing(client, staff, body, fields):
    before = count_volunteers()

    answer = client.post("/api/v1/volunteers", headers=staff, json=body)

    assert answer.status_code == 422
    error = answer.get_json()
    assert error["code"] == "validation_failed"
    assert set(error["errors"]) == fields
    assert count_volunteers() == before


def test_a_duplicate_phone_and_a_future_join_date_are_refused(client, place, staff,
                                                             make_volunteer):
    make_volunteer(place, phone="13900000077")

    answer = client.post("/api/v1/volunteers", headers=staff, json={
        "name": "重复", "phone": "13900000077", "grid_id": place.micro.id,
        "joined_on": "2999-01-01"})

    assert answer.status_code == 422
    assert set(answer.get_json()["errors"]) == {"phone", "joined_on"}


def test_staff_see_one_volunteer(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, name="孙悟空", points=50, merit=30)

    answer = client.get(f"/api/v1/volunteers/{volunteer.id}", headers=staff).get_json()

    assert answer["name"] == "孙悟空" and answer["username"] == volunteer.user.username
    assert answer["points"]["balance"] == 50 and answer["merit"] == 30


def test_patch_changes_only_the_given_fields(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, name="旧名字", phone="13900000088")

    answer = client.patch(f"/api/v1/volunteers/{volunteer.id}", headers=staff,
                          json={"name": "新名字", "show_on_leaderboard": False})

    assert answer.status_code == 200
    body = answer.get_json()
    assert body["name"] == "新名字" and body["phone"] == "13900000088"
    assert body["show_on_leaderboard"] is False and body["joined_on"] == "2023-03-01"


def test_a_bad_patch_is_422_and_changes_nothing(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, name="不变")

    answer = client.patch(f"/api/v1/volunteers/{volunteer.id}", headers=staff,
                          json={"name": "", "phone": "123"})

    assert answer.status_code == 422
    assert set(answer.get_json()["errors"]) == {"name", "phone"}
    db.session.expire_all()
    assert db.session.get(Volunteer, volunteer.id).name == "不变"


def test_suspending_a_volunteer_stops_their_token(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place)
    theirs = bearer(volunteer.user)

    answer = client.post(f"/api/v1/volunteers/{volunteer.id}/status", headers=staff,
                         json={"status": "suspended"})

    assert answer.status_code == 200 and answer.get_json()["status"] == "suspended"
    assert client.get("/api/v1/me", headers=theirs).status_code == 401
    back = client.post(f"/api/v1/volunteers/{volunteer.id}/status", headers=staff,
                       json={"status": "active"})
    assert back.get_json()["status"] == "active"
    assert client.get("/api/v1/me", headers=theirs).status_code == 200


def test_an_unknown_status_is_422(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place)

    answer = client.post(f"/api/v1/volunteers/{volunteer.id}/status", headers=staff,
                         json={"status": "retired"})

    assert answer.status_code == 422 and set(answer.get_json()["errors"]) == {"status"}


def test_a_password_reset_answers_a_new_password_once(client, place, staff, make_volunteer):
    volunteer = make_volunteer(place, username="resetme")

    answer = client.post(f"/api/v1/volunteers/{volunteer.id}/reset-password", headers=staff)

    assert answer.status_code == 200
    password = answer.get_json()["password"]
    assert password != PASSWORD
    db.session.expire_all()
    user = db.session.get(User, volunteer.user_id)
    assert user.check_password(password) and not user.check_password(PASSWORD)


def test_staff_list_their_grids_only(client, place, staff, make_community):
    other = make_community()

    grids = client.get("/api/v1/grids", headers=staff).get_json()

    assert [(g["id"], g["level"], g["parent_id"]) for g in grids] == [
        (place.grid.id, "grid", None), (place.micro.id, "micro", place.grid.id)]
    assert other.grid.id not in {g["id"] for g in grids}


def test_volunteers_of_another_community_are_404(client, staff, make_community,
                                                 make_volunteer):
    stranger = make_volunteer(make_community(), name="别人家的")

    for method, path, body in (
            ("GET", "", None), ("PATCH", "", {"name": "改"}),
            ("POST", "/status", {"status": "left"}), ("POST", "/reset-password", None)):
        answer = client.open(f"/api/v1/volunteers/{stranger.id}{path}", method=method,
                             headers=staff, json=body)
        assert answer.status_code == 404, (method, path)
        assert answer.get_json()["code"] == "not_found"
    db.session.expire_all()
    assert db.session.get(Volunteer, stranger.id).status == "active"
