"""Every page outside /staff, /admin and /api/v1, called by every kind of user.

test_scoping.py covers the staff, admin and API routes; this module covers the rest of
the app's URL map (the volunteer's pages, the mall, the counter, the account, sign-in and
the public files) with the same world and the same checks. The first test fails when the
app has a route that neither module knows, so a new page cannot ship without its case.
"""

import pytest

from tests.core import task_routes, test_scoping
from tests.core.test_scoping import (
    ANYONE,
    MERCHANT,
    NOT_SCOPED,
    ROUTES,
    VOLUNTEER,
    Case,
    call_as,
    callers_of,
)

# The world of test_scoping, built once for this module too.
built, world_app = test_scoping.built, test_scoping.world_app

SIGNED_IN = ("volunteer", "merchant", "staff", "admin")
JOB_ROLES = ("staff", "admin", "merchant")

PAGES: dict[tuple[str, str], Case] = {
    # signed-in users of every role
    ("GET", "/account"): Case(ANYONE, 200, owner=None),
    # An empty form is shown again; nothing changes.
    ("POST", "/account"): Case(ANYONE, 200, owner=None),
    # The URL names a token of staff A: another user's token is not there for them.
    ("POST", "/account/tokens/<int:token_id>/revoke"): Case(ANYONE, 302),
    ("POST", "/logout"): Case(ANYONE, 302, owner=None),
    # the volunteer's pages
    ("GET", "/history"): Case(VOLUNTEER, 200, owner="volunteer", other=200, shows_a=True),
    ("GET", "/activities"): Case(VOLUNTEER, 200, owner="volunteer", other=200, shows_a=True),
    ("POST", "/activities/<int:activity_id>/sign-up"): Case(
        VOLUNTEER, 302, owner="volunteer", args={"activity_id": "open_activity"}),
    # A venue QR of another community is refused with the reason, as in the API.
    ("GET", "/check-in/<token>"): Case(VOLUNTEER, 200, owner="volunteer", other=422,
                                       shows_a=True),
    ("POST", "/check-in/<token>"): Case(VOLUNTEER, 302, owner="volunteer", other=422),
    # the mall
    ("GET", "/mall/"): Case(VOLUNTEER, 200, owner="volunteer", other=200, shows_a=True),
    ("GET", "/mall/items/<int:item_id>"): Case(VOLUNTEER, 200, owner="volunteer",
                                               shows_a=True),
    ("POST", "/mall/items/<int:item_id>/redeem"): Case(VOLUNTEER, 302, owner="volunteer",
                                                       body=lambda w: {"quantity": "1"}),
    ("GET", "/mall/redemptions"): Case(VOLUNTEER, 200, owner="volunteer", other=200,
                                       shows_a=True),
    ("GET", "/mall/redemptions/<int:redemption_id>"): Case(VOLUNTEER, 200, owner="volunteer",
                                                           shows_a=True),
    # What the code page asks while it waits for the counter.
    ("GET", "/mall/redemptions/<int:redemption_id>/status"): Case(VOLUNTEER, 200,
                                                                  owner="volunteer"),
    ("POST", "/mall/redemptions/<int:redemption_id>/cancel"): Case(
        VOLUNTEER, 302, owner="volunteer", args={"redemption_id": "reserved"}),
    # background jobs (large exports, imports, PDFs): staff A's job, seen by staff A only
    ("GET", "/jobs"): Case(JOB_ROLES, 200, owner="staff", other=200, shows_a=True),
    ("GET", "/jobs/<int:job_id>"): Case(JOB_ROLES, 200, owner="staff", shows_a=True),
    ("GET", "/jobs/<int:job_id>.json"): Case(JOB_ROLES, 200, owner="staff"),
    ("GET", "/jobs/<int:job_id>/file"): Case(JOB_ROLES, 200, owner="staff", shows_a=True),
    # the merchant's counter
    ("GET", "/counter/"): Case(MERCHANT, 200, owner="merchant", other=200, shows_a=True),
    ("POST", "/counter/lookup"): Case(MERCHANT, 200, owner="merchant", shows_a=True,
                                      body=lambda w: {"code": w.codes["reserved_code"]}),
    ("POST", "/counter/confirm"): Case(MERCHANT, 302, owner="merchant",
                                       body=lambda w: {"code": w.codes["reserved_code"]}),
    ("POST", "/counter/redemptions/<int:redemption_id>/refund"): Case(
        MERCHANT, 302, owner="merchant", body=lambda w: {"reason": "退回测试"}),
    ("GET", "/counter/scanner.js"): Case(MERCHANT, 200, owner="merchant", other=200),
    ("GET", "/counter/month"): Case(MERCHANT, 200, owner="merchant", other=200, shows_a=True),
    ("GET", "/counter/statement"): Case(MERCHANT, 200, owner="merchant", other=200,
                                        shows_a=True),
    ("GET", "/counter/report"): Case(MERCHANT, 200, owner="merchant", other=200),
    ("GET", "/counter/exports"): Case(MERCHANT, 200, owner="merchant", other=200),
    # The files, as CSV (XLSX is the same view); the redemptions name A's item.
    ("GET", "/counter/exports/redemptions.<any(csv, xlsx):fmt>"): Case(
        MERCHANT, 200, owner="merchant", other=200, shows_a=True),
    ("GET", "/counter/exports/statements.<any(csv, xlsx):fmt>"): Case(
        MERCHANT, 200, owner="merchant", other=200),
    ("GET", "/me/year"): Case(VOLUNTEER, 200, owner="volunteer", other=200),
}
PAGES.update(task_routes.pages())
# The statement as a file, with the same answers.
STATEMENT_CSV = Case(MERCHANT, 200, owner="merchant", other=200, shows_a=True,
                     query="?format=csv")

# Routes anyone may call, signed in or not, with what an anonymous visitor gets.
PUBLIC = {
    ("GET", "/login"): 200,
    ("POST", "/login"): 400,  # no CSRF token; signing in is tested in test_web_auth.py
    ("GET", "/lang/<code>"): 302,
    ("GET", "/healthz"): 200,
    ("GET", "/api/openapi.json"): 200,
    ("GET", "/static/<path:filename>"): 200,
    ("GET", "/media/items/<name>"): 404,  # item photos, by unguessable names
    ("GET", "/favicon.ico"): 200,
}
PUBLIC_URLS = {"/lang/<code>": "/lang/en", "/static/<path:filename>": "/static/css/app.css",
               "/media/items/<name>": "/media/items/" + "0" * 32 + ".jpg"}
PUBLIC.update(task_routes.PUBLIC)
PUBLIC_URLS.update(task_routes.PUBLIC_URLS)
HOME = ("GET", "/")


def all_routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_of_the_app_has_an_authorisation_case(app):
    known = set(ROUTES) | set(NOT_SCOPED) | set(PAGES) | set(PUBLIC) | {HOME}

    missing = all_routes(app) - known

    assert not missing, f"routes without a case here or in test_scoping.py: {sorted(missing)}"


@pytest.mark.parametrize("route, caller", [
    (route, caller) for route in sorted(PAGES) for caller in callers_of(PAGES[route])
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else value)
def test_a_page_answers_only_its_rightful_caller(world_app, monkeypatch, route, caller):
    app, world = world_app

    call_as(app, world, monkeypatch, route, PAGES[route], caller)


@pytest.mark.parametrize("caller", callers_of(STATEMENT_CSV))
def test_the_statement_file_holds_only_the_merchants_own_redemptions(world_app, monkeypatch,
                                                                     caller):
    app, world = world_app

    call_as(app, world, monkeypatch, ("GET", "/counter/statement"), STATEMENT_CSV, caller)


@pytest.mark.parametrize("caller", ["volunteer", "other_volunteer", "merchant",
                                    "other_merchant", "staff", "other_staff", "admin"])
def test_the_start_page_shows_each_user_only_their_own(world_app, caller):
    app, world = world_app
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = world.sessions[caller]

    answer = client.get("/")

    page = answer.get_data(as_text=True)
    if caller in ("merchant", "other_merchant"):
        assert answer.status_code == 302
        assert answer.headers["Location"] == "/counter/"
        return
    assert answer.status_code == 200, page
    if caller in ("volunteer", "staff"):
        assert world.markers_of_a[0] in page, "the owner sees their community"
        return
    leaked = [m for m in world.markers(caller) if m in page]
    assert not leaked, f"{caller} saw data of community A: {leaked}"


def test_the_start_page_sends_an_anonymous_visitor_to_sign_in(world_app):
    app, _world = world_app

    answer = app.test_client().get("/")

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login")


@pytest.mark.parametrize("route", sorted(PUBLIC), ids=" ".join)
def test_a_public_route_answers_an_anonymous_visitor(world_app, route):
    app, _world = world_app
    method, rule = route

    answer = app.test_client().open(PUBLIC_URLS.get(rule, rule), method=method)

    assert answer.status_code == PUBLIC[route], answer.get_data(as_text=True)
