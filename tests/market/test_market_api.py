"""The marketplace API: items, redemptions with idempotency keys, the merchant counter,
statements; each refusal with its status and error code, and the OpenAPI document."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

import ledger
from merchants import redemptions, settlement
from merchants.models import Item, Redemption
from pointsmall.core import clock
from pointsmall.extensions import db
from tests.builders import bearer, csrf_token, enter_session

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
def as_volunteer(app, volunteer):
    return bearer(volunteer.user)


@pytest.fixture
def as_shop(app, shop):
    return bearer(shop.user)


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"code", "message", "errors"} and body["message"]
    if code:
        assert body["code"] == code
    return body


def redeem_api(client, headers, item_id, quantity=1, key="key-1", **extra):
    body = {"item_id": item_id, "quantity": quantity, **extra}
    return client.post("/api/v1/redemptions", json=body,
                       headers={**headers, "Idempotency-Key": key} if key else headers)


def what_is_written(volunteer, item) -> dict:
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    return {"posted": balance.posted, "pending": balance.pending,
            "stock": db.session.scalar(sa.select(Item.stock).where(Item.id == item.id)),
            "redemptions": db.session.scalar(sa.select(sa.func.count()).select_from(Redemption)),
            "holds": db.session.scalar(sa.select(sa.func.count()).select_from(ledger.Hold))}


def fulfilled(shop, redemption):
    redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=shop.user.id)
    db.session.commit()
    return redemption


# Items


def test_items_lists_what_the_caller_can_redeem_today_with_filters(
        client, place, shop, as_volunteer, make_shop, make_item, make_community):
    charity = make_shop(place, kind="charity", name="爱心超市")
    noodles = make_item(shop, name="招牌牛肉面", price=30, stock=None)
    make_item(shop, name="金牌双人餐", price=500, min_tier="gold")
    rice = make_item(charity, name="东北大米", price=60, category="grocery")
    today = clock.local_today()
    make_item(shop, name="下周的面", price=10, valid_from=today + timedelta(days=7))
    make_item(shop, name="过期的面", price=10, valid_to=today - timedelta(days=1))
    make_item(shop, name="下架的面", price=10, active=False)
    make_item(make_shop(make_community()), name="别处的面", price=10)

    def names(query=""):
        response = client.get(f"/api/v1/items{query}", headers=as_volunteer)
        assert response.status_code == 200, response.get_data(as_text=True)
        return sorted(item["name"] for item in response.get_json()["items"])

    assert names() == sorted(["招牌牛肉面", "金牌双人餐", "东北大米"])
    assert names("?affordable=true") == sorted(["招牌牛肉面", "东北大米"])
    assert names("?category=grocery") == ["东北大米"]
    assert names(f"?merchant={charity.id}") == ["东北大米"]
    assert names(f"?merchant={shop.id}&affordable=true") == ["招牌牛肉面"]
    listing = client.get("/api/v1/items", headers=as_volunteer).get_json()
    assert listing["total"] == 3 and listing["page"] == 1
    first = next(item for item in listing["items"] if item["id"] == noodles.id)
    assert first == {
        "id": noodles.id, "name": "招牌牛肉面", "description": "", "category": "food",
        "photo_url": None, "price": 30, "stock": None, "monthly_limit": None,
        "min_tier": None, "valid_from": None, "valid_to": None, "merchant_id": shop.id,
        "merchant": "老街牛肉面", "merchant_kind": "partner"}
    assert next(item for item in listing["items"] if item["id"] == rice.id)[
        "merchant_kind"] == "charity"
    assert_error(client.get("/api/v1/items?category=weapons", headers=as_volunteer), 422,
                 "validation_failed")


def test_an_item_is_shown_to_its_communities_only(
        client, noodles, as_volunteer, make_shop, make_item, make_community):
    elsewhere = make_item(make_shop(make_community()), name="别处的面")

    shown = client.get(f"/api/v1/items/{noodles.id}", headers=as_volunteer)

    assert shown.status_code == 200
    assert (shown.get_json()["name"], shown.get_json()["stock"]) == ("招牌牛肉面", 5)
    assert_error(client.get(f"/api/v1/items/{elsewhere.id}", headers=as_volunteer), 404,
                 "unknown_item")
    assert_error(client.get("/api/v1/items/999999", headers=as_volunteer), 404, "unknown_item")


# Redeeming, with an Idempotency-Key


def test_a_redemption_holds_the_points_and_answers_its_code(
        client, volunteer, noodles, as_volunteer):
    created = redeem_api(client, as_volunteer, noodles.id, 2)

    assert created.status_code == 201
    body = created.get_json()
    assert body["status"] == "reserved" and body["points"] == 60
    assert {"id", "code", "status", "points", "expires_at"} <= set(body)
    assert len(body["code"]) == 10
    assert body["quantity"] == 2 and body["item"] == "招牌牛肉面"
    written = what_is_written(volunteer, noodles)
    assert (written["posted"], written["pending"], written["stock"]) == (100, 60, 3)


def test_the_same_key_answers_the_same_redemption_with_no_second_hold(
        client, volunteer, noodles, as_volunteer):
    first = redeem_api(client, as_volunteer, noodles.id, 2, key="tap-7")
    written = what_is_written(volunteer, noodles)

    again = redeem_api(client, as_volunteer, noodles.id, 2, key="tap-7")

    assert again.status_code in (200, 201)
    assert again.get_json() == first.get_json()
    assert what_is_written(volunteer, noodles) == written

    changed = redeem_api(client, as_volunteer, noodles.id, 1, key="tap-7")

    assert_error(changed, 409, "idempotency_conflict")
    assert what_is_written(volunteer, noodles) == written


def test_a_redemption_needs_an_idempotency_key(client, volunteer, noodles, as_volunteer):
    before = what_is_written(volunteer, noodles)

    missing = redeem_api(client, as_volunteer, noodles.id, key=None)
    too_long = redeem_api(client, as_volunteer, noodles.id, key="k" * 101)

    assert "Idempotency-Key" in assert_error(missing, 422)["errors"]
    assert "Idempotency-Key" in assert_error(too_long, 422)["errors"]
    assert what_is_written(volunteer, noodles) == before


@pytest.mark.parametrize(("item", "quantity", "code"), [
    ({"price": 200}, 1, "insufficient_funds"),
    ({"stock": 2}, 3, "out_of_stock"),
    ({"monthly_limit": 1}, 2, "over_personal_limit"),
    ({"min_tier": "silver"}, 1, "tier_too_low"),
    ({"valid_from": "tomorrow"}, 1, "item_unavailable"),
    ({"valid_to": "yesterday"}, 1, "item_unavailable"),
    ({}, 0, None),
    ({}, 100, None),
    ({}, 1.5, None),
    ({}, True, None),
    ({}, "2", None),
    ({}, None, None),
], ids=["over-balance", "over-stock", "over-limit", "below-tier", "not-yet-valid",
        "no-longer-valid", "qty-0", "qty-100", "qty-1.5", "qty-true", "qty-string",
        "qty-null"])
def test_a_refused_redemption_is_422_and_writes_nothing(
        client, place, shop, make_item, make_volunteer, item, quantity, code):
    today = clock.local_today()
    fields = {"price": 10, **item}
    for name, word in (("valid_from", "tomorrow"), ("valid_to", "yesterday")):
        if fields.get(name) == word:
            fields[name] = today + timedelta(days=1 if word == "tomorrow" else -1)
    goods = make_item(shop, **fields)
    volunteer = make_volunteer(place, points=100)
    headers = bearer(volunteer.user)
    before = what_is_written(volunteer, goods)

    refused = redeem_api(client, headers, goods.id, quantity)

    body = assert_error(refused, 422, code)
    if code is None:
        assert "quantity" in body["errors"]
    assert what_is_written(volunteer, goods) == before


def test_a_volunteer_of_the_tier_may_redeem_a_tier_gated_item(
        client, place, shop, make_item, make_volunteer):
    gated = make_item(shop, price=10, min_tier="silver")
    silver = make_volunteer(place, points=100)
    silver.joined_on = date(2000, 1, 1)  # decades of service count towards the tier
    db.session.commit()

    assert redeem_api(client, bearer(silver.user), gated.id).status_code == 201


def test_an_item_of_another_community_or_none_is_not_found(
        client, volunteer, as_volunteer, make_shop, make_item, make_community):
    elsewhere = make_item(make_shop(make_community()))

    assert_error(redeem_api(client, as_volunteer, elsewhere.id), 404, "unknown_item")
    assert_error(redeem_api(client, as_volunteer, 999999, key="k2"), 404, "unknown_item")
    assert "item_id" in assert_error(redeem_api(client, as_volunteer, "x", key="k3"),
                                     422)["errors"]
    assert ledger.balance(db.session, volunteer.account("POINTS")).pending == 0


def test_the_caller_lists_their_own_redemptions_newest_first(
        client, place, volunteer, noodles, as_volunteer, make_volunteer, redeem):
    older, newer = redeem(volunteer, noodles), redeem(volunteer, noodles)
    redeem(make_volunteer(place, points=100), noodles)

    listed = client.get("/api/v1/redemptions", headers=as_volunteer)
    page = client.get(f"/api/v1/redemptions?limit=1&before={newer.id}", headers=as_volunteer)

    assert [r["id"] for r in listed.get_json()] == [newer.id, older.id]
    assert [r["id"] for r in page.get_json()] == [older.id]


def test_cancel_returns_points_and_stock_once_and_only_for_the_caller(
        client, place, volunteer, noodles, as_volunteer, make_volunteer, redeem):
    mine = redeem(volunteer, noodles, 2)
    theirs = redeem(make_volunteer(place, points=100), noodles)

    cancelled = client.post(f"/api/v1/redemptions/{mine.id}/cancel", headers=as_volunteer)
    again = client.post(f"/api/v1/redemptions/{mine.id}/cancel", headers=as_volunteer)
    not_mine = client.post(f"/api/v1/redemptions/{theirs.id}/cancel", headers=as_volunteer)

    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert_error(again, 409, "redemption_not_reserved")
    assert_error(not_mine, 404, "unknown_redemption")
    assert db.session.get(Redemption, theirs.id).status == "reserved"
    assert what_is_written(volunteer, noodles)["pending"] == 0
    assert what_is_written(volunteer, noodles)["stock"] == 4


def test_a_confirmed_redemption_cannot_be_cancelled(
        client, volunteer, shop, noodles, as_volunteer, redeem):
    done = fulfilled(shop, redeem(volunteer, noodles))

    assert_error(client.post(f"/api/v1/redemptions/{done.id}/cancel", headers=as_volunteer),
                 409, "redemption_not_reserved")
    assert ledger.balance(db.session, shop.merchant.account()).posted == 30


# The merchant counter


def test_the_merchant_sees_what_a_code_is_for(client, volunteer, noodles, as_shop, redeem):
    redemption = redeem(volunteer, noodles, 2)
    typed = redemptions.format_code(redemption.code).lower()

    shown = client.get(f"/api/v1/merchant/redemptions/{typed}", headers=as_shop)

    assert shown.status_code == 200
    body = shown.get_json()
    assert (body["item"], body["quantity"], body["points"], body["volunteer"],
            body["status"]) == ("招牌牛肉面", 2, 60, "张*", "reserved")
    assert "张三" not in shown.get_data(as_text=True)


def test_a_code_is_confirmed_once(client, volunteer, shop, noodles, as_shop, redeem):
    redemption = redeem(volunteer, noodles)
    url = f"/api/v1/merchant/redemptions/{redemption.code}/confirm"

    first = client.post(url, headers=as_shop)
    second = client.post(url, headers=as_shop)

    assert first.status_code == 200 and first.get_json()["status"] == "fulfilled"
    assert_error(second, 409, "redemption_not_reserved")
    assert ledger.balance(db.session, shop.merchant.account()).posted == 30
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    assert (balance.posted, balance.pending) == (70, 0)


def test_a_cancelled_code_cannot_be_confirmed(
        client, volunteer, shop, noodles, as_volunteer, as_shop, redeem):
    redemption = redeem(volunteer, noodles)
    client.post(f"/api/v1/redemptions/{redemption.id}/cancel", headers=as_volunteer)

    refused = client.post(f"/api/v1/merchant/redemptions/{redemption.code}/confirm",
                          headers=as_shop)

    assert_error(refused, 409, "redemption_not_reserved")
    assert ledger.balance(db.session, shop.merchant.account()).posted == 0


def test_another_merchants_code_is_not_found_and_looks_like_a_wrong_code(
        client, place, volunteer, noodles, redeem, make_shop):
    redemption = redeem(volunteer, noodles)
    rival = bearer(make_shop(place, name="隔壁面馆").user)

    looked = client.get(f"/api/v1/merchant/redemptions/{redemption.code}", headers=rival)
    confirmed = client.post(f"/api/v1/merchant/redemptions/{redemption.code}/confirm",
                            headers=rival)
    refunded = client.post(f"/api/v1/merchant/redemptions/{redemption.code}/refund",
                           json={"reason": "试试"}, headers=rival)
    nonsense = client.get("/api/v1/merchant/redemptions/ZZZZZZZZZZ", headers=rival)

    for response in (looked, confirmed, refunded):
        assert assert_error(response, 404, "unknown_redemption") == nonsense.get_json()
    assert db.session.get(Redemption, redemption.id).status == "reserved"


def test_the_merchant_refunds_a_handed_over_code_with_a_reason(
        client, volunteer, shop, noodles, as_shop, redeem):
    reserved = redeem(volunteer, noodles)
    done = fulfilled(shop, redeem(volunteer, noodles))
    url = f"/api/v1/merchant/redemptions/{done.code}/refund"

    assert "reason" in assert_error(client.post(url, json={}, headers=as_shop), 422)["errors"]
    assert_error(client.post(url, json={"reason": ""}, headers=as_shop), 422)
    assert_error(client.post(f"/api/v1/merchant/redemptions/{reserved.code}/refund",
                             json={"reason": "不要了"}, headers=as_shop),
                 409, "redemption_not_fulfilled")
    refunded = client.post(url, json={"reason": "面卖完了"}, headers=as_shop)
    again = client.post(url, json={"reason": "面卖完了"}, headers=as_shop)

    assert refunded.status_code == 200 and refunded.get_json()["status"] == "refunded"
    assert_error(again, 409, "redemption_not_fulfilled")
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    assert (balance.posted, balance.pending) == (100, 30)
    assert ledger.balance(db.session, shop.merchant.account()).posted == 0


def test_ten_wrong_codes_lock_code_entry_with_retry_after(
        client, app, volunteer, shop, noodles, as_shop, redeem):
    redemption = redeem(volunteer, noodles)
    page = app.test_client()
    page.set_cookie("lang", "en")
    enter_session(page, shop.user)
    token = csrf_token(page.get("/counter/").get_data(as_text=True))

    # Wrong codes count the same at the counter page and in the API.
    for n in range(5):
        assert page.post("/counter/lookup", data={"csrf_token": token,
                                                  "code": f"WRONG{n:05d}"}).status_code == 404
    for n in range(5):
        assert_error(client.get(f"/api/v1/merchant/redemptions/BAD{n:07d}", headers=as_shop),
                     404)
    looked = client.get(f"/api/v1/merchant/redemptions/{redemption.code}", headers=as_shop)
    confirmed = client.post(f"/api/v1/merchant/redemptions/{redemption.code}/confirm",
                            headers=as_shop)

    for response in (looked, confirmed):
        assert_error(response, 429, "too_many_attempts")
        assert 0 < int(response.headers["Retry-After"]) <= 600
    assert db.session.get(Redemption, redemption.id).status == "reserved"


def test_right_codes_do_not_count_towards_the_lock(
        client, volunteer, noodles, as_shop, redeem):
    redemption = redeem(volunteer, noodles)

    answers = [client.get(f"/api/v1/merchant/redemptions/{redemption.code}", headers=as_shop)
               for _ in range(12)]

    assert {a.status_code for a in answers} == {200}


# Statements


def test_the_merchant_lists_frozen_statements_and_the_lines_of_a_period(
        client, place, volunteer, shop, noodles, as_shop, redeem):
    first = clock.local_today().replace(day=1)
    moment = clock.utc_start_of(first) - timedelta(days=2)
    handed = redeem(volunteer, noodles, 2, now=moment)
    redemptions.confirm(db.session, shop.id, handed.code, confirmed_by=1,
                        now=moment + timedelta(hours=1))
    start = (first - timedelta(days=1)).replace(day=1)
    statement = settlement.close_period(db.session, shop.id, clock.utc_start_of(start),
                                        clock.utc_start_of(first), fen_per_point=12,
                                        closed_by=None)
    today_one = fulfilled(shop, redeem(volunteer, noodles))

    frozen = client.get("/api/v1/merchant/statements", headers=as_shop)
    period = client.get(f"/api/v1/merchant/statement?start={start}"
                        f"&end={first - timedelta(days=1)}", headers=as_shop)
    this_month = client.get("/api/v1/merchant/statement", headers=as_shop)

    assert frozen.status_code == 200
    [only] = frozen.get_json()
    assert only["id"] == statement.id
    assert (only["net_points"], only["fen_per_point"], only["amount_fen"]) == (60, 12, 720)
    body = period.get_json()
    assert period.status_code == 200 and body["total"] == 60
    assert [(line["redemption_id"], line["kind"], line["points"], line["volunteer"])
            for line in body["lines"]] == [(handed.id, "fulfilled", 60, "张*")]
    assert this_month.get_json()["start"] == first.isoformat()
    assert [line["redemption_id"] for line in this_month.get_json()["lines"]] == [today_one.id]


def test_a_period_that_ends_before_it_starts_or_is_no_date_is_refused(client, as_shop):
    backwards = client.get("/api/v1/merchant/statement?start=2026-03-10&end=2026-03-01",
                           headers=as_shop)
    no_date = client.get("/api/v1/merchant/statement?start=March", headers=as_shop)

    assert_error(backwards, 422, "invalid_period")
    assert "start" in assert_error(no_date, 422)["errors"]


# Who may call what


def test_each_endpoint_is_for_its_role_and_a_bearer_token(
        client, volunteer, noodles, as_volunteer, as_shop, redeem):
    redemption = redeem(volunteer, noodles)
    volunteer_calls = [("get", "/api/v1/items"), ("get", f"/api/v1/items/{noodles.id}"),
                       ("get", "/api/v1/redemptions"), ("post", "/api/v1/redemptions"),
                       ("post", f"/api/v1/redemptions/{redemption.id}/cancel")]
    merchant_calls = [("get", f"/api/v1/merchant/redemptions/{redemption.code}"),
                      ("post", f"/api/v1/merchant/redemptions/{redemption.code}/confirm"),
                      ("post", f"/api/v1/merchant/redemptions/{redemption.code}/refund"),
                      ("get", "/api/v1/merchant/statements"),
                      ("get", "/api/v1/merchant/statement")]

    for method, url in volunteer_calls + merchant_calls:
        assert_error(getattr(client, method)(url), 401)
    for method, url in volunteer_calls:
        assert_error(getattr(client, method)(url, headers=as_shop), 403)
    for method, url in merchant_calls:
        assert_error(getattr(client, method)(url, headers=as_volunteer), 403)
    assert db.session.get(Redemption, redemption.id).status == "reserved"


def test_every_marketplace_path_is_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()

    expected = {
        "/api/v1/items": {"get"},
        "/api/v1/items/{item_id}": {"get"},
        "/api/v1/redemptions": {"get", "post"},
        "/api/v1/redemptions/{redemption_id}/cancel": {"post"},
        "/api/v1/merchant/redemptions/{code}": {"get"},
        "/api/v1/merchant/redemptions/{code}/confirm": {"post"},
        "/api/v1/merchant/redemptions/{code}/refund": {"post"},
        "/api/v1/merchant/statements": {"get"},
        "/api/v1/merchant/statement": {"get"},
    }
    for path, methods in expected.items():
        assert path in spec["paths"], path
        for method in methods:
            operation = spec["paths"][path][method]
            assert operation["summary"], (path, method)
    post = spec["paths"]["/api/v1/redemptions"]["post"]
    assert {"201", "409", "422"} <= set(post["responses"])
    header = next(p for p in post["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    assert "429" in spec["paths"]["/api/v1/merchant/redemptions/{code}/confirm"]["post"][
        "responses"]
