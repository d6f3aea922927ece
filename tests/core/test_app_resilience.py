"""The app survives what the database and the network put in its way: a deadlock is run
again, values out of range are a 422, and behind a proxy the client's address counts."""

import sqlalchemy as sa
from psycopg.errors import DeadlockDetected
from psycopg.errors import SyntaxError as PostgresSyntaxError
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.middleware.proxy_fix import ProxyFix

import ledger
from pointsmall import create_app
from tests.builders import bearer


def test_a_request_that_meets_a_deadlock_is_run_again_and_succeeds(
        client, make_community, make_volunteer, monkeypatch):
    volunteer = make_volunteer(make_community(), points=30)
    headers = bearer(volunteer.user)
    real, calls = ledger.balances, []

    def deadlock_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT ...", {}, DeadlockDetected("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger, "balances", deadlock_once)
    answer = client.get("/api/v1/me", headers=headers)
    assert answer.status_code == 200
    assert answer.get_json()["points"]["available"] == 30
    assert len(calls) == 2


def test_a_persistent_database_error_is_not_retried_forever(
        client, make_community, make_volunteer, monkeypatch):
    volunteer = make_volunteer(make_community())
    headers = bearer(volunteer.user)
    calls = []

    def always_locked(*args, **kwargs):
        calls.append(1)
        raise OperationalError("SELECT ...", {}, DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(ledger, "balances", always_locked)
    answer = client.get("/api/v1/me", headers=headers)
    assert len(calls) == 3
    # Still failing after the retries: "try again" (503), as when the database is away.
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"


def test_a_database_that_is_away_answers_503_and_the_health_check_says_unhealthy(
        client, make_community, make_volunteer, monkeypatch):
    # What a PostgreSQL restart or refused connections look like to the app (issue 7's
    # fault run): the API answered 500 "something went wrong on our side" for each request.
    volunteer = make_volunteer(make_community())
    headers = bearer(volunteer.user)
    refused = OperationalError("SELECT ...", {}, Exception(
        "connection failed: connection to server at \"127.0.0.1\" failed: Connection refused"))

    def away(*args, **kwargs):
        raise refused

    monkeypatch.setattr(ledger, "balances", away)
    answer = client.get("/api/v1/me", headers=headers)
    assert answer.status_code == 503
    assert answer.get_json()["code"] == "unavailable"
    assert answer.get_json()["message"]
    assert answer.headers["Retry-After"] == "1"

    from pointsmall.extensions import db

    monkeypatch.setattr(db.session, "execute", away)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["status"] == "unhealthy"


def test_a_huge_item_id_is_not_found_rather_than_a_crash(client, make_community,
                                                         make_volunteer):
    volunteer = make_volunteer(make_community())
    answer = client.get("/api/v1/items/100000000000000000000",
                        headers=bearer(volunteer.user))
    assert answer.status_code in (404, 422)
    assert answer.get_json()["code"] in ("not_found", "out_of_range")


def test_a_statement_ending_in_the_year_9999_is_refused_with_a_422(
        client, make_community, make_merchant_staff):
    merchant = make_merchant_staff(make_community())
    answer = client.get("/api/v1/merchant/statement?start=2026-01-01&end=9999-12-31",
                        headers=bearer(merchant))
    assert answer.status_code == 422
    assert answer.get_json()["code"] == "out_of_range"


def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(database_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "TRUSTED_PROXIES": 1,
                      "SQLALCHEMY_DATABASE_URI": database_url})
    assert isinstance(app.wsgi_app, ProxyFix)
    plain = create_app({"TESTING": True, "SECRET_KEY": "x",
                        "SQLALCHEMY_DATABASE_URI": database_url})
    assert not isinstance(plain.wsgi_app, ProxyFix)


def test_a_fractional_adjustment_is_refused_and_changes_nothing(
        client, make_community, make_staff, make_volunteer):
    place = make_community()
    volunteer = make_volunteer(place, points=5)
    answer = client.post("/api/v1/staff/adjustments", headers={
        **bearer(make_staff(place)), "Idempotency-Key": "k1"},
        json={"volunteer_id": volunteer.id, "points": 10.7, "reason": "奖励"})
    assert answer.status_code == 422
    assert "points" in answer.get_json()["errors"]
    assert ledger.balance(client.application.extensions["sqlalchemy"].session,
                          volunteer.account("POINTS")).posted == 5


def test_a_password_reset_or_change_ends_the_users_api_tokens(
        client, make_community, make_volunteer):
    from pointsmall.auth import service as auth_service
    from pointsmall.extensions import db
    from pointsmall.people import service as volunteers

    volunteer = make_volunteer(make_community())
    headers = bearer(volunteer.user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    volunteers.reset_password(db.session, volunteer)  # staff reset after a lost phone
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    headers = bearer(volunteer.user)
    password = "a-new-password-1"
    volunteer.user.set_password(password)
    auth_service.change_password(db.session, volunteer.user, password, "another-one-22")
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_token_older_than_ninety_days_no_longer_works(client, make_community, make_volunteer):
    from datetime import timedelta

    from ledger.clock import utcnow
    from pointsmall.auth.models import ApiToken
    from pointsmall.extensions import db

    volunteer = make_volunteer(make_community())
    headers = bearer(volunteer.user)
    token = db.session.scalars(sa.select(ApiToken).where(
        ApiToken.user_id == volunteer.user.id)).one()
    token.created_at = utcnow() - timedelta(days=91)
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_syntax_error_is_our_bug_not_a_database_that_is_away(
        app, client, make_community, make_volunteer, monkeypatch):
    # As in production, where an unexpected error is answered rather than raised.
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    volunteer = make_volunteer(make_community())

    def broken(*args, **kwargs):
        raise ProgrammingError("UPDATE ...", {}, PostgresSyntaxError(
            'syntax error at or near "("'))

    monkeypatch.setattr(ledger, "balances", broken)
    answer = client.get("/api/v1/me", headers=bearer(volunteer.user))
    assert answer.status_code == 500
    assert answer.get_json()["code"] == "internal_error"
    assert "Retry-After" not in answer.headers
