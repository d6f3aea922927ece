"""Signing in on the pages: limits, passwords, CSRF, security headers, the shell, language."""

import re

import pytest
import sqlalchemy as sa

from pointsmall.auth import limits, picture
from pointsmall.auth import models as auth_models
from pointsmall.auth import service as auth_service
from pointsmall.auth.models import UNUSABLE, ApiToken, User
from pointsmall.core.attempts import AttemptCounter
from pointsmall.core.audit import AuditEntry
from pointsmall.extensions import db
from pointsmall.people.communities import Community, Grid
from pointsmall.people.models import Volunteer
from tests.builders import PASSWORD, csrf_token, sign_in, text


@pytest.fixture
def staff(place, make_staff):
    return make_staff(place, username="wangfang")


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, username="liqiang", phone="13911112222")


@pytest.fixture
def english(client):
    client.set_cookie("lang", "en")
    return client


def signed_in_as(client) -> str | None:
    """Return the name the shell shows for the signed-in user, or None."""
    page = client.get("/account")
    if page.status_code != 200:
        return None
    found = re.search(r'<span class="who">([^<]*)</span>', text(page))
    return found.group(1) if found else None


def test_staff_sign_in_with_their_username(client, staff):
    answer = sign_in(client, "wangfang")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert signed_in_as(client) == staff.name


def test_a_volunteer_signs_in_with_their_phone_number(client, volunteer):
    assert sign_in(client, "13911112222").status_code == 302

    assert signed_in_as(client) == volunteer.name


def test_sign_in_returns_to_a_local_page_only(app, staff):
    for target, expected in (("/account", "/account"), ("//evil.example", "/"),
                             ("/\\evil.example", "/"), ("https://evil.example/", "/")):
        client = app.test_client()
        page = client.get("/login")
        answer = client.post(f"/login?next={target}", data={
            "login": "wangfang", "password": PASSWORD, "csrf_token": csrf_token(text(page))})
        assert answer.headers["Location"] == expected, target


def test_a_wrong_password_shows_the_message(english, staff):
    answer = sign_in(english, "wangfang", "not-the-password")

    assert answer.status_code == 401
    assert "Wrong username, phone number or password." in text(answer)
    assert signed_in_as(english) is None


def test_five_failures_from_one_address_refuse_even_the_right_password_there(english, staff):
    for _ in range(5):
        assert sign_in(english, "wangfang", "not-the-password").status_code == 401

    answer = sign_in(english, "wangfang", PASSWORD)

    assert answer.status_code == 429
    assert re.search(r"Too many failed sign-ins\. Please try again in \d+ minutes\.",
                     text(answer))
    assert signed_in_as(english) is None


def test_the_owner_signs_in_from_another_address_while_the_guesser_is_refused(
        app, english, staff):
    guesser = {"REMOTE_ADDR": "203.0.113.66"}
    for _ in range(5):
        assert sign_in(english, "wangfang", "not-the-password", **guesser).status_code == 401
    assert sign_in(english, "wangfang", PASSWORD, **guesser).status_code == 429

    owner = app.test_client()
    answer = sign_in(owner, "wangfang", PASSWORD, REMOTE_ADDR="198.51.100.7")

    assert answer.status_code == 302
    assert signed_in_as(owner) == staff.name


def guess_from_many_addresses(app, login: str, failures: int) -> None:
    """Fail `failures` sign-ins on `login`, five from each of as many addresses as needed."""
    for n in range(failures):
        answer = app.test_client().post(
            "/api/v1/auth/tokens", json={"username": login, "password": f"guess-{n}"},
            environ_base={"REMOTE_ADDR": f"192.0.2.{n // 5 + 1}"})
        assert answer.status_code == 401


def sign_in_with_picture(client, page_html: str, login: str, answer: str, **environ):
    return client.post("/login", data={
        "login": login, "password": PASSWORD, "csrf_token": csrf_token(page_html),
        "picture_token": re.search(r'name="picture_token"[^>]*value="([^"]+)"', page_html)
        .group(1), "picture_answer": answer}, environ_base=environ)


def test_guessing_from_many_addresses_asks_for_a_picture_rather_than_locking_the_owner(
        app, english, staff, monkeypatch):
    guess_from_many_addresses(app, "wangfang", limits.ACCOUNT_CEILING)
    monkeypatch.setattr(picture, "new_text", lambda: "KM4XR")
    owner = {"REMOTE_ADDR": "198.51.100.7"}

    asked = sign_in(english, "wangfang", PASSWORD, **owner)
    misread = sign_in_with_picture(english, text(asked), "wangfang", "KM4XP", **owner)
    read = sign_in_with_picture(english, text(misread), "wangfang", "km4xr", **owner)

    assert asked.status_code == 401
    assert "type the characters in the picture" in text(asked)
    assert 'data-testid="sign-in-picture"' in text(asked)
    assert misread.status_code == 401 and "did not match the picture" in text(misread)
    assert read.status_code == 302
    assert signed_in_as(english) == staff.name


def test_a_read_picture_lets_one_sign_in_through(app, staff, monkeypatch):
    guess_from_many_addresses(app, "wangfang", limits.ACCOUNT_CEILING)
    monkeypatch.setattr(picture, "new_text", lambda: "KM4XR")
    first = app.test_client()
    asked = text(sign_in(first, "wangfang", PASSWORD))
    assert sign_in_with_picture(first, asked, "wangfang", "KM4XR").status_code == 302

    again = app.test_client()
    page = text(again.get("/login"))
    replayed = again.post("/login", data={
        "login": "wangfang", "password": PASSWORD, "csrf_token": csrf_token(page),
        "picture_token": re.search(r'name="picture_token"[^>]*value="([^"]+)"', asked)
        .group(1), "picture_answer": "KM4XR"})

    assert replayed.status_code == 401
    assert signed_in_as(again) is None


@pytest.mark.parametrize("who", ["unknown name", "known name", "suspended", "imported"])
def test_a_wrong_sign_in_checks_one_password_hash_whoever_is_named(
        client, place, staff, make_volunteer, monkeypatch, who):
    if who == "suspended":
        make_volunteer(place, username="zhaomin", status="suspended")
    if who == "imported":
        volunteer = make_volunteer(place, username="zhaomin")
        volunteer.user.password_hash = UNUSABLE + "0123abcd"
        db.session.commit()
    login = {"unknown name": "nobody-here", "known name": "wangfang"}.get(who, "zhaomin")
    checks = []
    real = auth_models.check_password_hash
    monkeypatch.setattr(auth_models, "check_password_hash",
                        lambda stored, password: checks.append(stored) or real(stored, password))

    answer = sign_in(client, login, "not-the-password")

    assert answer.status_code == 401
    assert len(checks) == 1
    # Who cannot enter is checked against a hash of the real kind and cost.
    assert (checks[0] == auth_service.unknown_user_hash()) == (who != "known name")


def test_the_lock_is_shown_in_chinese_by_default(client, staff):
    for _ in range(5):
        sign_in(client, "wangfang", "not-the-password")

    answer = sign_in(client, "wangfang", PASSWORD)

    assert answer.status_code == 429
    assert "Too many failed sign-ins" not in text(answer)
    assert re.search(r'class="flash flash-error"[^>]*>[^<]*\d+', text(answer))


def change_password(client, current, new):
    page = client.get("/account")
    return client.post("/account", data={"current": current, "new": new,
                                         "csrf_token": csrf_token(text(page))})


def test_a_wrong_current_password_is_refused(app, english, staff):
    sign_in(english, "wangfang")

    answer = change_password(english, "not-the-password", "a-new-password")

    assert "The current password is wrong." in text(answer)
    db.session.expire_all()
    assert db.session.get(User, staff.id).check_password(PASSWORD)


def test_a_changed_password_works_and_ends_the_other_sessions(app, staff):
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, "wangfang")
    sign_in(laptop, "wangfang")
    assert signed_in_as(laptop) == staff.name

    answer = change_password(phone, PASSWORD, "a-new-password")

    assert answer.status_code == 302
    assert signed_in_as(phone) == staff.name  # the session that changed it goes on
    assert signed_in_as(laptop) is None
    assert laptop.get("/").headers["Location"].startswith("/login")
    stranger = app.test_client()
    assert sign_in(stranger, "wangfang", PASSWORD).status_code == 401
    assert sign_in(stranger, "wangfang", "a-new-password").status_code == 302


def test_a_short_new_password_is_refused(english, staff):
    sign_in(english, "wangfang")

    answer = change_password(english, PASSWORD, "short")

    assert "A password has at least 8 characters." in text(answer)
    db.session.expire_all()
    assert db.session.get(User, staff.id).check_password(PASSWORD)


def test_staff_reset_a_volunteers_password(app, client, staff, volunteer):
    on_phone = app.test_client()
    sign_in(on_phone, "liqiang")
    sign_in(client, "wangfang")
    page = client.get(f"/staff/volunteers/{volunteer.id}")

    answer = client.post(f"/staff/volunteers/{volunteer.id}/reset-password",
                         data={"csrf_token": csrf_token(text(page))})

    assert answer.status_code == 200
    password = re.search(r'data-testid="password">([^<]+)<', text(answer)).group(1)
    assert signed_in_as(on_phone) is None  # the volunteer's old session ended
    fresh = app.test_client()
    assert sign_in(fresh, "liqiang", PASSWORD).status_code == 401
    assert sign_in(fresh, "liqiang", password).status_code == 302


def test_a_suspended_volunteer_cannot_sign_in(english, place, make_volunteer):
    make_volunteer(place, username="zhaomin", status="suspended")

    answer = sign_in(english, "zhaomin", PASSWORD)

    assert answer.status_code == 401
    assert "Wrong username, phone number or password." in text(answer)
    assert signed_in_as(english) is None


def counts() -> dict[str, int]:
    """Rows a refused form must not have written."""
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (AttemptCounter, AuditEntry, User, Volunteer, Grid, Community,
                          ApiToken)}


def test_a_sign_in_without_a_csrf_token_is_refused_and_writes_nothing(client, staff):
    before = counts()

    missing = client.post("/login", data={"login": "wangfang", "password": "wrong"})
    forged = client.post("/login", data={"login": "wangfang", "password": PASSWORD,
                                         "csrf_token": "forged"})

    assert missing.status_code == forged.status_code == 400
    assert counts() == before
    assert signed_in_as(client) is None


def test_a_password_change_without_a_csrf_token_is_refused(client, staff):
    sign_in(client, "wangfang")

    answer = client.post("/account", data={"current": PASSWORD, "new": "a-new-password"})

    assert answer.status_code == 400
    db.session.expire_all()
    assert db.session.get(User, staff.id).check_password(PASSWORD)


def test_a_token_from_another_session_is_refused(app, client, staff, make_staff, place):
    make_staff(place, username="other")
    other = app.test_client()
    sign_in(other, "other")
    their_token = csrf_token(text(other.get("/account")))
    sign_in(client, "wangfang")

    answer = client.post("/account", data={"current": PASSWORD, "new": "a-new-password",
                                           "csrf_token": their_token})

    assert answer.status_code == 400
    db.session.expire_all()
    assert db.session.get(User, staff.id).check_password(PASSWORD)


def post_routes(app):
    return sorted((rule for rule in app.url_map.iter_rules()
                   if "POST" in rule.methods and not rule.rule.startswith("/api/")),
                  key=lambda rule: rule.rule)


def test_every_form_refuses_a_post_without_a_csrf_token_and_writes_nothing(
        app, client, place, staff, volunteer, make_admin):
    admin = make_admin()
    values = {"volunteer_id": volunteer.id, "status": "suspended", "token_id": 1,
              "grid_id": place.micro.id, "community_id": place.id}
    checked = []
    for rule in post_routes(app):
        prefix = rule.rule.split("/")[1]
        user = {"admin": admin, "staff": staff}.get(prefix, staff)
        client = app.test_client()
        if rule.rule != "/login":
            sign_in(client, user.username)
        arguments = {name: values.get(name, 1) for name in rule.arguments}
        url = app.url_map.bind("localhost").build(rule.endpoint, arguments)
        before = counts()

        answer = client.post(url, data={"name": "x", "current": PASSWORD, "new": "x" * 10})

        assert answer.status_code == 400, rule.rule
        assert counts() == before, rule.rule
        checked.append(rule.rule)
    assert {"/login", "/account", "/logout", "/staff/volunteers/new"} <= set(checked)


def csp(response) -> dict[str, list[str]]:
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


@pytest.mark.parametrize("path", ["/login", "/nowhere", "/staff/volunteers"])
def test_pages_send_security_headers(client, path):
    answer = client.get(path)

    policy = csp(answer)
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert policy["object-src"] == ["'none'"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_signed_in_pages_carry_no_inline_script(client, staff):
    sign_in(client, "wangfang")
    for path in ("/", "/account", "/staff/volunteers", "/staff/volunteers/new", "/staff/grids"):
        page = text(client.get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
        assert not re.search(r"\son[a-z]+=", page), path
        assert "javascript:" not in page, path


def test_the_session_cookie_is_http_only_and_same_site(client, staff):
    answer = sign_in(client, "wangfang")

    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def assert_inside_the_shell(page: str) -> None:
    assert '<nav class="tabs"' in page
    assert "<footer>" in page and "</footer>" in page
    assert 'href="/account"' in page


def test_a_forbidden_page_renders_inside_the_shell(client, volunteer):
    sign_in(client, "liqiang")

    answer = client.get("/staff/volunteers")

    assert answer.status_code == 403
    assert answer.mimetype == "text/html"
    assert_inside_the_shell(text(answer))


def test_a_missing_page_renders_inside_the_shell(client, staff):
    sign_in(client, "wangfang")

    answer = client.get("/staff/nothing-here")

    assert answer.status_code == 404
    assert_inside_the_shell(text(answer))


def test_a_missing_volunteer_renders_inside_the_shell(client, staff):
    sign_in(client, "wangfang")

    answer = client.get("/staff/volunteers/999999")

    assert answer.status_code == 404
    assert_inside_the_shell(text(answer))


def test_pages_are_in_chinese_by_default(client):
    page = text(client.get("/login"))

    assert '<html lang="zh-CN">' in page
    assert "Sign in" not in page


def test_switching_to_english_is_remembered(client):
    switched = client.get("/lang/en?next=/login")

    assert switched.status_code == 302 and switched.headers["Location"] == "/login"
    cookie = next(c for c in switched.headers.getlist("Set-Cookie") if c.startswith("lang="))
    assert "lang=en" in cookie and "Max-Age=" in cookie
    for _ in range(2):
        page = text(client.get("/login"))
        assert '<html lang="en">' in page
        assert "Sign in" in page and "Username or phone number" in page


def test_switching_back_to_chinese(client):
    client.get("/lang/en")

    client.get("/lang/zh_CN")

    assert '<html lang="zh-CN">' in text(client.get("/login"))


def test_an_unknown_language_is_404_and_a_foreign_next_is_ignored(client):
    assert client.get("/lang/xx").status_code == 404
    assert client.get("/lang/en?next=//evil.example").headers["Location"] == "/"
    assert client.get("/lang/en?next=/\\evil.example").headers["Location"] == "/"
