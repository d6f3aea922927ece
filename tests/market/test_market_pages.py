"""The marketplace pages: the volunteer's mall, the merchant counter, the staff's catalog and
settlement, item photos, and the expiry command. Pages are read in English."""

import csv
import io
import re
import struct
import zlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

import ledger
from merchants import redemptions
from merchants.models import Item, Merchant, Redemption, Statement
from pointsmall.core import clock
from pointsmall.extensions import db
from pointsmall.people.communities import Community
from tests.builders import csrf_token, enter_session, text

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture(autouse=True)
def uploads(app, tmp_path):
    before = app.config["UPLOAD_FOLDER"]
    app.config["UPLOAD_FOLDER"] = str(tmp_path)
    yield tmp_path
    app.config["UPLOAD_FOLDER"] = before


def as_user(client, user):
    client.set_cookie("lang", "en")
    enter_session(client, user)
    return client


def token_from(client, url: str) -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def points(address: str) -> ledger.AccountBalance:
    return ledger.balance(db.session, address)


def stock_of(item) -> int | None:
    return db.session.scalar(sa.select(Item.stock).where(Item.id == item.id))


def shown_code(html: str) -> str:
    return re.search(r'data-testid="code">([A-Z0-9-]+)<', html).group(1)


# The volunteer's mall


def test_a_volunteer_browses_redeems_sees_the_code_and_its_qr_and_cancels(
        client, volunteer, noodles):
    as_user(client, volunteer.user)

    mall = client.get("/mall/")
    assert mall.status_code == 200 and "招牌牛肉面" in text(mall)
    item_page = client.get(f"/mall/items/{noodles.id}")
    key = re.search(r'name="key" value="([0-9a-f]+)"', text(item_page)).group(1)
    form = {"csrf_token": csrf_token(text(item_page)), "key": key, "quantity": "2"}
    redeemed = client.post(f"/mall/items/{noodles.id}/redeem", data=form)
    twice = client.post(f"/mall/items/{noodles.id}/redeem", data=form)

    assert redeemed.status_code == 302 and twice.location == redeemed.location
    page = client.get(redeemed.location)
    html = text(page)
    code = shown_code(html)
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)
    assert 'class="qr" src="data:image/svg+xml;base64,' in html
    assert 'data-testid="available">40<' in html
    assert stock_of(noodles) == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Redemption)
                             .where(Redemption.volunteer_id == volunteer.id)) == 1

    redemption_id = int(redeemed.location.rsplit("/", 1)[1])
    cancelled = client.post(f"/mall/redemptions/{redemption_id}/cancel",
                            data={"csrf_token": form["csrf_token"]}, follow_redirects=True)

    assert "Cancelled. The points are back." in text(cancelled)
    assert 'data-testid="status">Cancelled<' in text(cancelled)
    assert 'data-testid="available">100<' in text(cancelled)
    assert stock_of(noodles) == 5
    listing = client.get("/mall/redemptions")
    assert "招牌牛肉面" in text(listing)


def test_a_refused_redemption_says_why_on_the_item_page_and_writes_nothing(
        client, volunteer, make_item, shop):
    feast = make_item(shop, name="金牌双人餐", price=500)
    as_user(client, volunteer.user)
    url = f"/mall/items/{feast.id}"
    token = token_from(client, url)

    refused = client.post(f"{url}/redeem", data={"csrf_token": token, "key": "k1",
                                                 "quantity": "1"},
                          headers={"Referer": f"http://localhost{url}"})

    assert refused.status_code == 303 and refused.location.endswith(url)
    assert "Not enough points: 100 available, 500 needed." in text(client.get(url))
    assert stock_of(feast) == 5
    assert points(volunteer.account("POINTS")).pending == 0


def test_the_mall_filters_by_shop_category_and_what_the_volunteer_can_afford(
        client, place, volunteer, shop, make_shop, make_item, make_community):
    charity = make_shop(place, kind="charity", name="爱心超市")
    faraway = make_shop(make_community(), name="别处的店")
    make_item(shop, name="招牌牛肉面", price=30)
    make_item(shop, name="金牌双人餐", price=500)
    make_item(charity, name="东北大米", price=60, category="grocery")
    make_item(faraway, name="别处的面", price=10)
    make_item(shop, name="下架的面", price=10, active=False)
    as_user(client, volunteer.user)

    everything = text(client.get("/mall/"))
    affordable = text(client.get("/mall/?affordable=1"))
    groceries = text(client.get("/mall/?category=grocery"))
    at_charity = text(client.get(f"/mall/?merchant={charity.id}"))

    assert all(name in everything for name in ("招牌牛肉面", "金牌双人餐", "东北大米"))
    assert "别处的面" not in everything and "下架的面" not in everything
    assert "招牌牛肉面" in affordable and "金牌双人餐" not in affordable
    assert "东北大米" in groceries and "招牌牛肉面" not in groceries
    assert "东北大米" in at_charity and "招牌牛肉面" not in at_charity


# The merchant counter


def test_the_merchant_looks_up_a_code_sees_the_masked_name_and_confirms_once(
        client, app, volunteer, shop, noodles, redeem):
    redemption = redeem(volunteer, noodles, 2)
    counter = as_user(app.test_client(), shop.user)
    token = token_from(counter, "/counter/")
    typed = redemptions.format_code(redemption.code).lower()

    found = counter.post("/counter/lookup", data={"csrf_token": token, "code": typed})

    html = text(found)
    assert found.status_code == 200
    assert 'data-testid="item">招牌牛肉面<' in html
    assert "<dd>2</dd>" in html and "<dd>60</dd>" in html
    assert "<dd>张*</dd>" in html and "张三" not in html

    confirmed = counter.post("/counter/confirm", data={"csrf_token": token, "code": typed},
                             follow_redirects=True)
    again = counter.post("/counter/confirm", data={"csrf_token": token, "code": typed})

    assert "Confirmed: 2 × 招牌牛肉面 for 张*, 60 points." in text(confirmed)
    assert again.status_code == 409
    assert "This redemption is no longer waiting: it is Fulfilled." in text(again)
    assert points(shop.merchant.account()).posted == 60
    assert points(volunteer.account("POINTS")).posted == 40
    as_user(client, volunteer.user)
    assert 'data-testid="status">Fulfilled<' in text(
        client.get(f"/mall/redemptions/{redemption.id}"))
    today = text(counter.get("/counter/"))
    assert 'data-testid="unsettled">60<' in today


def test_ten_wrong_codes_lock_code_entry_even_for_a_right_code(
        client, volunteer, shop, noodles, redeem, make_shop, place):
    redemption = redeem(volunteer, noodles)
    as_user(client, shop.user)
    token = token_from(client, "/counter/")

    wrong = [client.post("/counter/lookup", data={"csrf_token": token, "code": f"WRONG{n:05d}"})
             for n in range(10)]
    right = client.post("/counter/lookup", data={"csrf_token": token, "code": redemption.code})
    confirm = client.post("/counter/confirm", data={"csrf_token": token,
                                                    "code": redemption.code})

    assert [r.status_code for r in wrong] == [404] * 10
    assert "No such redemption code here. Check the code, and that it was redeemed at this " \
        "shop." in text(wrong[0])
    assert right.status_code == 429 and confirm.status_code == 429
    assert 0 < int(right.headers["Retry-After"]) <= 600
    assert "Too many wrong codes: code entry is locked until" in text(right)
    assert db.session.get(Redemption, redemption.id).status == "reserved"
    colleague = make_shop(place)  # another user is not locked out
    colleague.user.merchant_id = shop.id
    db.session.commit()
    other = as_user(client.application.test_client(), colleague.user)
    assert other.post("/counter/lookup", data={
        "csrf_token": token_from(other, "/counter/"), "code": redemption.code}).status_code == 200


def test_a_merchant_of_another_shop_gets_not_found_for_the_code(
        client, place, volunteer, noodles, redeem, make_shop):
    redemption = redeem(volunteer, noodles)
    rival = make_shop(place, name="隔壁面馆")
    as_user(client, rival.user)
    token = token_from(client, "/counter/")

    looked = client.post("/counter/lookup", data={"csrf_token": token, "code": redemption.code})
    confirmed = client.post("/counter/confirm", data={"csrf_token": token,
                                                      "code": redemption.code})

    assert looked.status_code == confirmed.status_code == 404
    assert "招牌牛肉面" not in text(looked)
    assert db.session.get(Redemption, redemption.id).status == "reserved"
    assert points(rival.merchant.account()).posted == 0


def test_pages_are_for_their_roles(client, volunteer, shop):
    as_user(client, volunteer.user)
    assert client.get("/counter/").status_code == 403
    assert client.get("/staff/market/").status_code == 403
    as_user(client, shop.user)
    assert client.get("/mall/").status_code == 403


def test_the_counter_month_steps_back_but_not_into_months_to_come(client, shop):
    as_user(client, shop.user)
    first = clock.local_today().replace(day=1)
    last_month = (first - timedelta(days=1)).replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)

    this_page = client.get("/counter/month").get_data(as_text=True)
    last_page = client.get(f"/counter/month?month={last_month:%Y-%m}").get_data(as_text=True)

    assert f"month={last_month:%Y-%m}" in this_page
    assert f"month={next_month:%Y-%m}" not in this_page
    assert f"month={first:%Y-%m}" in last_page


def test_the_merchant_sees_the_month_the_statement_and_a_safe_csv(
        client, place, volunteer, shop, make_item, redeem):
    formula = make_item(shop, name="=HYPERLINK(\"http://x\")", price=10)
    noodles = make_item(shop, name="招牌牛肉面", price=30)
    for item in (formula, noodles):
        redemptions.confirm(db.session, shop.id, redeem(volunteer, item).code, confirmed_by=1)
    db.session.commit()
    as_user(client, shop.user)

    month = text(client.get("/counter/month"))
    today = clock.local_today()
    statement = text(client.get(f"/counter/statement?start={today.replace(day=1)}&end={today}"))
    download = client.get(f"/counter/statement?start={today.replace(day=1)}&end={today}"
                          "&format=csv")

    assert "招牌牛肉面" in month and "40 points" in month
    assert "招牌牛肉面" in statement and 'data-testid="total">40<' in statement
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    raw = download.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["Time", "Code", "Item", "Quantity", "Volunteer", "Kind", "Points"]
    assert sorted(row[2] for row in rows[1:]) == ["'=HYPERLINK(\"http://x\")", "招牌牛肉面"]
    assert all(row[4] == "张*" and row[5] == "Handed over" for row in rows[1:])
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_the_merchant_refunds_from_the_month_page_with_a_reason(
        client, volunteer, shop, noodles, redeem):
    redemption = redeem(volunteer, noodles)
    redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=1)
    db.session.commit()
    as_user(client, shop.user)
    token = token_from(client, "/counter/month")

    without = client.post(f"/counter/redemptions/{redemption.id}/refund",
                          data={"csrf_token": token, "reason": ""}, follow_redirects=True)
    assert "A reason is required for a refund." in text(without)
    assert db.session.get(Redemption, redemption.id).status == "fulfilled"

    refunded = client.post(f"/counter/redemptions/{redemption.id}/refund",
                           data={"csrf_token": token, "reason": "面卖完了"},
                           follow_redirects=True)

    assert "Refunded." in text(refunded)
    assert points(volunteer.account("POINTS")).posted == 100
    assert stock_of(noodles) == 5


# Community staff: merchants, items and photos, approvals, refunds, settlement


def png(width: int = 40, height: int = 30, color=(200, 30, 30)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def bomb_png(width: int = 30000, height: int = 30000) -> io.BytesIO:
    """A tiny PNG whose header claims a picture of width x height."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return io.BytesIO(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                      + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def item_form(token: str, merchant_id: int, **overrides) -> dict:
    return {"csrf_token": token, "merchant_id": str(merchant_id), "name": "菜籽油 1.8L",
            "description": "", "category": "grocery", "price": "50", "stock": "30",
            "monthly_limit": "2", "min_tier": "", "valid_from": "", "valid_to": "",
            "active": "y", **overrides}


def test_staff_add_a_merchant_and_an_item_with_a_photo_that_is_shrunk_and_served(
        client, place, staff, uploads):
    as_user(client, staff)
    token = token_from(client, "/staff/market/")

    added = client.post("/staff/market/", data={
        "m-csrf_token": token, "m-name": "渝能爱心超市", "m-kind": "charity",
        "m-address": "社区服务中心一楼", "m-opening_hours": "9:00-17:00", "m-contact": ""})
    merchant = db.session.scalar(sa.select(Merchant).where(Merchant.name == "渝能爱心超市"))
    saved = client.post("/staff/market/items/new", content_type="multipart/form-data",
                        data=item_form(token, merchant.id, photo=(png(1200, 600), "oil.png")))

    assert added.status_code == 302 and merchant.kind == "charity"
    assert merchant.community_id == place.id
    assert saved.status_code == 302
    item = db.session.scalar(sa.select(Item).where(Item.merchant_id == merchant.id))
    assert (item.name, item.price, item.stock, item.monthly_limit, item.status) == (
        "菜籽油 1.8L", 50, 30, 2, "approved")
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", item.photo)
    served = client.get(f"/media/items/{item.photo}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(served.data)).size == (800, 400)
    assert client.get("/media/items/..%2Fsecret_key").status_code == 404
    assert client.get("/media/items/" + "0" * 32 + ".jpg").status_code == 404


@pytest.mark.parametrize("upload", [
    lambda: (io.BytesIO(b"just some text, not a picture\n" * 20), "photo.png"),
    lambda: (bomb_png(), "huge.png"),
    lambda: (bomb_png(6000, 5000), "big.png"),
], ids=["text-named-png", "decompression-bomb", "over-24-megapixels"])
def test_an_upload_that_is_no_usable_image_is_refused_with_a_field_error(
        client, staff, shop, uploads, upload):
    as_user(client, staff)
    token = token_from(client, "/staff/market/items/new")

    refused = client.post("/staff/market/items/new", content_type="multipart/form-data",
                          data=item_form(token, shop.id, photo=upload()))

    assert refused.status_code == 422
    assert '<small class="error">Not an image we can read.</small>' in text(refused)
    assert db.session.scalar(sa.select(Item.id).where(Item.merchant_id == shop.id)) is None
    assert list(uploads.rglob("*.jpg")) == []


def test_staff_see_field_errors_for_a_bad_item(client, staff, shop):
    as_user(client, staff)
    token = token_from(client, "/staff/market/items/new")

    refused = client.post("/staff/market/items/new", data=item_form(
        token, shop.id, name="", price="0", valid_from="2026-05-01", valid_to="2026-04-01"))

    assert refused.status_code == 422
    html = text(refused)
    assert "Required." in html and "A whole number of points greater than zero." in html
    assert "The end is before the start." in html
    assert db.session.scalar(sa.select(Item.id).where(Item.merchant_id == shop.id)) is None


def test_staff_cannot_touch_another_communitys_merchants(
        client, staff, make_community, make_shop, make_item):
    elsewhere = make_shop(make_community())
    item = make_item(elsewhere)
    as_user(client, staff)
    token = token_from(client, "/staff/market/items/new")

    assert client.get(f"/staff/market/items/{item.id}").status_code == 404
    assert client.get(f"/staff/market/merchants/{elsewhere.id}/settle").status_code == 404
    added = client.post("/staff/market/items/new", data=item_form(token, elsewhere.id),
                        headers={"Referer": "http://localhost/staff/market/items/new"})
    assert added.status_code == 303  # refused with a message on the form's page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Item)
                             .where(Item.merchant_id == elsewhere.id)) == 1


def test_staff_approve_an_item_a_merchant_proposed(
        client, volunteer, staff, shop, make_item):
    proposal = make_item(shop, name="新品凉面")
    proposal.status, proposal.proposed_by = "proposed", shop.user.id
    db.session.commit()
    as_user(client, volunteer.user)
    assert "新品凉面" not in text(client.get("/mall/"))
    assert client.get(f"/mall/items/{proposal.id}").status_code == 404

    as_user(client, staff)
    listing = text(client.get("/staff/market/"))
    assert f"/staff/market/items/{proposal.id}/review/approve" in listing
    approved = client.post(f"/staff/market/items/{proposal.id}/review/approve",
                           data={"csrf_token": csrf_token(listing)})

    assert approved.status_code == 302
    assert db.session.get(Item, proposal.id).status == "approved"
    as_user(client, volunteer.user)
    assert "新品凉面" in text(client.get("/mall/"))


def test_staff_refund_a_redemption_with_a_reason(
        client, volunteer, staff, shop, noodles, redeem):
    redemption = redeem(volunteer, noodles)
    redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=1)
    db.session.commit()
    as_user(client, staff)
    page = client.get("/staff/market/redemptions?status=fulfilled")
    token = csrf_token(text(page))
    url = f"/staff/market/redemptions/{redemption.id}/refund"

    without = client.post(url, data={"csrf_token": token, "reason": " "},
                          headers={"Referer": "http://localhost/staff/market/redemptions"})
    assert without.status_code == 303
    assert db.session.get(Redemption, redemption.id).status == "fulfilled"

    refunded = client.post(url, data={"csrf_token": token, "reason": "顾客投诉，退回积分"})

    assert refunded.status_code == 302
    db.session.expire_all()
    found = db.session.get(Redemption, redemption.id)
    assert (found.status, found.refund_reason) == ("refunded", "顾客投诉，退回积分")
    assert points(volunteer.account("POINTS")).posted == 100
    assert stock_of(noodles) == 5


def test_staff_close_a_period_and_see_the_frozen_statement_in_yuan(
        client, place, volunteer, staff, shop, noodles, redeem):
    first = clock.local_today().replace(day=1)
    last_month = clock.utc_start_of(first) - timedelta(days=2)
    redemption = redeem(volunteer, noodles, now=last_month)
    redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=1,
                        now=last_month + timedelta(hours=1))
    db.session.commit()
    as_user(client, staff)
    token = token_from(client, "/staff/market/")
    rate = client.post("/staff/market/", data={"r-csrf_token": token, "r-fen_per_point": "12"})
    assert rate.status_code == 302 and db.session.get(Community, place.id).fen_per_point == 12

    start, end = first - timedelta(days=5), first - timedelta(days=1)
    preview = text(client.get(f"/staff/market/merchants/{shop.id}/settle"))  # last month
    closed = client.post(f"/staff/market/merchants/{shop.id}/settle",
                         data={"csrf_token": token, "start": str(start), "end": str(end)})

    assert 'data-testid="total">30<' in preview
    assert closed.status_code == 302
    statement = text(client.get(closed.location))
    assert 'data-testid="net">30<' in statement
    assert 'data-testid="amount">¥3.60<' in statement
    assert "招牌牛肉面" in statement
    assert points(shop.merchant.account()).posted == 0
    assert points(shop.merchant.settlement_account()).posted == 30

    again = client.post(f"/staff/market/merchants/{shop.id}/settle",
                        data={"csrf_token": token, "start": str(start), "end": str(end)},
                        headers={"Referer": f"http://localhost/staff/market/merchants/{shop.id}"
                                            "/settle"})
    assert again.status_code == 303
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Statement)
                             .where(Statement.merchant_id == shop.id)) == 1

    as_user(client, shop.user)
    frozen = text(client.get(f"/counter/statement?start={start}&end={end}"))
    assert "Settled periods" in frozen and "¥3.60" in frozen
    assert 'data-testid="unsettled">0<' in text(client.get("/counter/"))


def test_a_charity_supermarkets_statement_shows_no_money(
        client, place, volunteer, staff, make_shop, make_item, redeem):
    charity = make_shop(place, kind="charity", name="爱心超市")
    rice = make_item(charity, name="东北大米", price=60, category="grocery")
    db.session.get(Community, place.id).fen_per_point = 12
    moment = clock.utcnow() - timedelta(days=2)
    redemptions.confirm(db.session, charity.id, redeem(volunteer, rice, now=moment).code,
                        confirmed_by=1, now=moment + timedelta(hours=1))
    db.session.commit()
    as_user(client, staff)
    today = clock.local_today()

    closed = client.post(f"/staff/market/merchants/{charity.id}/settle", data={
        "csrf_token": token_from(client, "/staff/market/"),
        "start": str(today - timedelta(days=3)), "end": str(today - timedelta(days=1))})

    statement = text(client.get(closed.location))
    assert 'data-testid="net">60<' in statement
    assert 'data-testid="amount">Donated goods: no money<' in statement


# The expiry command


def test_the_expire_command_expires_due_redemptions_and_returns_their_stock(
        app, volunteer, noodles, redeem):
    due = redeem(volunteer, noodles, 2, now=clock.utcnow() - timedelta(days=8))
    fresh = redeem(volunteer, noodles)
    runner = app.test_cli_runner()

    first = runner.invoke(args=["redemptions", "expire"])
    second = runner.invoke(args=["redemptions", "expire"])

    assert first.exit_code == 0, first.output
    assert "expired 1 redemption(s)" in first.output
    assert "expired 0 redemption(s)" in second.output
    db.session.expire_all()
    assert db.session.get(Redemption, due.id).status == "expired"
    assert db.session.get(Redemption, fresh.id).status == "reserved"
    assert stock_of(noodles) == 4
    balance = points(volunteer.account("POINTS"))
    assert (balance.posted, balance.pending) == (100, 30)


def test_saving_an_item_does_not_put_reserved_units_back_on_the_shelf(app, client):
    """Staff open the form at stock 10; a volunteer reserves one; saving a typo fix keeps 9,
    and setting a stock the editor did not see refused."""
    from merchants import items as item_service
    from merchants.errors import InvalidItem
    from pointsmall.extensions import db
    from pointsmall.people.communities import create_community

    community = create_community(db.session, "库存社区")
    merchant = item_service.create_merchant(db.session, community.id, name="库存超市")
    item = item_service.create_item(db.session, merchant.id, {
        "name": "大米", "price": 10, "stock": 10, "category": "grocery"})
    seen = item.stock
    db.session.execute(sa.update(Item).where(Item.id == item.id).values(stock=Item.stock - 1))
    fields = {"name": "东北大米", "price": 10, "stock": seen, "category": "grocery"}
    item_service.update_item(db.session, item, fields, stock_seen=seen)
    assert (item.name, item.stock) == ("东北大米", 9)
    with pytest.raises(InvalidItem) as refused:
        item_service.update_item(db.session, item, dict(fields, stock=50), stock_seen=seen)
    assert refused.value.errors == {"stock": ["changed"]}
    item_service.update_item(db.session, item, dict(fields, stock=50), stock_seen=9)
    assert item.stock == 50
