"""The API's sign-in: tokens, attempt limits, /me, revocation, the OpenAPI document, errors."""

import hashlib
import re

import pytest
import sqlalchemy as sa

import ledger
from pointsmall.auth import limits
from pointsmall.auth.models import ApiToken
from pointsmall.extensions import db
from tests.builders import PASSWORD, ask_token, bearer, csrf_token, sign_in


@pytest.fixture
def staff(place, make_staff):
    return make_staff(place, username="zhangwei")


def assert_error_shape(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"code", "message", "errors"}
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    for field, messages in body["errors"].items():
        assert isinstance(field, str)
        assert isinstance(messages, list) and all(isinstance(m, str) for m in messages)
    return body


def test_a_username_and_password_get_a_bearer_token(client, staff):
    response = ask_token(client, "zhangwei")

    assert response.status_code == 201
    token = response.get_json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.get_json()["id"] == staff.id


def test_a_phone_number_and_password_get_a_bearer_token(client, place, make_volunteer):
    volunteer = make_volunteer(place, phone="13912345678")

    response = ask_token(client, "13912345678")

    assert response.status_code == 201
    token = response.get_json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["volunteer_id"] == volunteer.id


def test_a_wrong_password_is_401_in_the_error_format(client, staff):
    body = assert_error_shape(ask_token(client, "zhangwei", "wrong-password"), 401)

    assert body["code"] == "sign_in_failed"


def test_the_sixth_wrong_attempt_on_one_account_is_refused_with_retry_after(client, staff):
    client.set_cookie("lang", "en")
    for _ in range(5):
        assert ask_token(client, "zhangwei", "wrong-password").status_code == 401

    refused = ask_token(client, "zhangwei", "wrong-password")

    body = assert_error_shape(refused, 429)
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins" in body["message"] and "minutes" in body["message"]


def test_a_refused_address_is_refused_even_the_right_password(client, staff):
    for _ in range(5):
        ask_token(client, "zhangwei", "wrong-password")

    assert_error_shape(ask_token(client, "zhangwei", PASSWORD), 429)


def test_the_owner_gets_a_token_from_another_address_while_the_guesser_is_refused(
        client, staff):
    for _ in range(5):
        ask_token(client, "zhangwei", "wrong-password", address="203.0.113.66")
    assert_error_shape(ask_token(client, "zhangwei", PASSWORD, address="203.0.113.66"), 429)

    assert ask_token(client, "zhangwei", PASSWORD, address="198.51.100.7").status_code == 201


def test_past_the_account_ceiling_the_api_asks_for_the_page_and_old_tokens_go_on(
        client, staff):
    headers = bearer(staff)
    for n in range(limits.ACCOUNT_CEILING):
        answer = ask_token(client, "zhangwei", f"guess-{n}", address=f"192.0.2.{n // 5 + 1}")
        assert answer.status_code == 401

    refused = ask_token(client, "zhangwei", PASSWORD, address="198.51.100.7")

    assert assert_error_shape(refused, 429)["code"] == "picture_required"
    assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_failures_by_username_and_by_phone_count_against_one_account(
        client, place, make_volunteer):
    make_volunteer(place, username="lina", phone="13900001111")
    for login in ("lina", "13900001111", "lina", "13900001111", "lina"):
        assert ask_token(client, login, "wrong-password").status_code == 401

    assert_error_shape(ask_token(client, "13900001111", PASSWORD), 429)


def test_one_address_is_refused_after_twenty_failures_across_usernames(client, staff):
    for n in range(20):
        assert ask_token(client, f"nobody{n}", "wrong", address="10.9.9.9").status_code == 401

    refused = ask_token(client, "zhangwei", PASSWORD, address="10.9.9.9")

    assert_error_shape(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    assert ask_token(client, "zhangwei", PASSWORD, address="10.9.9.10").status_code == 201


def test_me_tells_staff_their_role_and_community(client, place, staff):
    me = client.get("/api/v1/me", headers=bearer(staff)).get_json()

    assert me["id"] == staff.id
    assert me["role"] == "staff"
    assert me["community_id"] == place.id
    assert me["points"] is None and me["merit"] is None


def test_me_tells_a_volunteer_their_points_and_merit_as_the_ledger_has_them(
        client, place, make_volunteer):
    volunteer = make_volunteer(place, points=120, merit=80)
    merchant = ledger.open_account(db.session, "merchant:test-me:points", "POINTS")
    ledger.hold(db.session, volunteer.account("POINTS"), merchant.address, 45,
                key="test:me:hold", kind="redemption")
    db.session.commit()

    me = client.get("/api/v1/me", headers=bearer(volunteer.user)).get_json()

    points = ledger.balance(db.session, volunteer.account("POINTS"))
    merit = ledger.balance(db.session, volunteer.account("MERIT"))
    assert me["role"] == "volunteer" and me["volunteer_id"] == volunteer.id
    assert me["community_id"] == place.id
    assert me["points"] == {"balance": 120, "available": 75, "held": 45}
    assert me["points"] == {"balance": points.posted, "available": points.available,
                            "held": points.pending}
    assert me["merit"] == merit.posted == 80


def test_a_token_revoked_through_the_api_is_refused(client, staff):
    token = ask_token(client, "zhangwei").get_json()
    headers = {"Authorization": f"Bearer {token['token']}"}

    assert client.delete(f"/api/v1/auth/tokens/{token['id']}", headers=headers).status_code == 204

    assert_error_shape(client.get("/api/v1/me", headers=headers), 401)


def test_a_token_revoked_on_the_account_page_is_refused(client, staff):
    token = ask_token(client, "zhangwei").get_json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    sign_in(client, "zhangwei")
    page = client.get("/account").get_data(as_text=True)
    assert token["prefix"] in page

    revoked = client.post(f"/account/tokens/{token['id']}/revoke",
                          data={"csrf_token": csrf_token(page)})

    assert revoked.status_code == 302
    assert_error_shape(client.get("/api/v1/me", headers=headers), 401)


def test_one_user_cannot_revoke_another_users_token(client, place, staff, make_staff):
    token = ask_token(client, "zhangwei").get_json()
    other = make_staff(place)

    answer = client.delete(f"/api/v1/auth/tokens/{token['id']}", headers=bearer(other))

    assert_error_shape(answer, 404)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"}
                      ).status_code == 200


def test_tokens_are_stored_only_as_hashes(client, staff):
    raw = ask_token(client, "zhangwei").get_json()["token"]

    rows = db.session.execute(sa.select(ApiToken.__table__)).all()
    stored = [str(value) for row in rows for value in row]
    assert not any(raw in value for value in stored)
    assert hashlib.sha256(raw.encode()).hexdigest() in stored


def test_a_forged_or_malformed_token_is_401(client, staff):
    for header in ("Bearer pm_forged", "Bearer ", "Basic emhhbmd3ZWk6cGFzcw==", "pm_x"):
        assert_error_shape(client.get("/api/v1/me", headers={"Authorization": header}), 401)


def test_a_session_cookie_alone_does_not_authenticate_the_api(client, staff):
    assert sign_in(client, "zhangwei").status_code == 302
    assert client.get("/").status_code == 200  # the page session works

    assert_error_shape(client.get("/api/v1/me"), 401)
    assert_error_shape(client.get("/api/v1/volunteers"), 401)


def test_a_bearer_token_works_alongside_a_session_cookie(client, staff):
    sign_in(client, "zhangwei")

    answer = client.get("/api/v1/me", headers=bearer(staff))

    assert answer.status_code == 200 and answer.get_json()["id"] == staff.id


def test_the_openapi_document_lists_every_api_path_with_its_schemas(app, client):
    answer = client.get("/api/openapi.json")

    assert answer.status_code == 200
    doc = answer.get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    expected = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^<>]+:)?([^<>:]+)>", r"{\1}", rule.rule)
            expected.setdefault(path, set()).update(
                m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    assert expected, "no /api/v1 route found"
    for path, methods in expected.items():
        assert path in doc["paths"], f"{path} is missing from the OpenAPI document"
        for method in methods:
            operation = doc["paths"][path][method]
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation["responses"], f"{method} {path} documents no response"
            success = [s for s in operation["responses"] if s.startswith("2")]
            assert success, f"{method} {path} documents no success"
            for status in success:
                if status != "204":
                    content = operation["responses"][status]["content"]["application/json"]
                    assert "schema" in content, f"{method} {path} {status} has no schema"
            if method in ("post", "patch") and "requestBody" in operation:
                assert operation["requestBody"]["content"]["application/json"]["schema"]
    _assert_refs_resolve(doc, doc)


def _assert_refs_resolve(node, doc):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                target = doc
                for part in value.removeprefix("#/").split("/"):
                    assert part in target, f"unresolved reference {value}"
                    target = target[part]
            else:
                _assert_refs_resolve(value, doc)
    elif isinstance(node, list):
        for value in node:
            _assert_refs_resolve(value, doc)


def test_the_volunteer_schemas_are_in_the_openapi_document(client):
    doc = client.get("/api/openapi.json").get_json()

    schemas = doc["components"]["schemas"]
    assert {"Volunteer", "VolunteerCreate", "VolunteerChange", "Status", "Grid",
            "Error"} <= set(schemas)
    assert set(schemas["VolunteerCreate"]["required"]) == {"name", "phone", "grid_id"}
    volunteer = schemas["Volunteer"]["properties"]
    assert {"points", "merit", "status", "grid_id"} <= set(volunteer)


def test_an_unknown_api_path_is_404_in_the_error_format(client):
    assert assert_error_shape(client.get("/api/v1/nothing-here"), 404)["code"] == "not_found"


def test_a_wrong_method_is_405_in_the_error_format(client):
    assert_error_shape(client.get("/api/v1/auth/tokens"), 405)


def test_a_bad_body_is_422_with_errors_by_field(client):
    body = assert_error_shape(
        client.post("/api/v1/auth/tokens", json={"username": "", "extra": 1}), 422)

    assert set(body["errors"]) == {"username", "password", "extra"}


def test_malformed_json_is_400_in_the_error_format(client):
    answer = client.post("/api/v1/auth/tokens", data="{not json",
                         content_type="application/json")

    assert assert_error_shape(answer, 400)["errors"]


def test_no_token_is_401_in_the_error_format(client):
    assert_error_shape(client.get("/api/v1/me"), 401)


def test_healthz_answers_when_the_database_does(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.get_json()["database"] == "ok"
