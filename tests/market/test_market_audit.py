"""Every market action that moves points leaves an audit row, whichever way it comes in: the
mall and staff pages, the counter, the API and the command line. A refused one leaves none,
and no ledger row either."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from merchants import redemptions
from merchants.models import Redemption, merchant_address
from pointsmall.core import clock
from pointsmall.core.audit import AuditEntry
from pointsmall.extensions import db
from tests.builders import bearer, csrf_token, enter_as

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


def token_from(client, url: str) -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def audited(action: str) -> list[tuple]:
    """The audit rows of `action`: who (id and name), what, which community, from where."""
    return [tuple(row) for row in db.session.execute(
        sa.select(AuditEntry.actor_id, AuditEntry.actor_name, AuditEntry.target,
                  AuditEntry.community_id, AuditEntry.address)
        .where(AuditEntry.action == action).order_by(AuditEntry.id))]


def written() -> dict[str, int]:
    """What a refusal must leave as it was: audit rows, ledger transactions and holds."""
    def count(model) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))

    return {"audit": count(AuditEntry), "transactions": count(ledger.Transaction),
            "holds": count(ledger.Hold)}


def handed_over(shop, redemption: Redemption) -> Redemption:
    redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=shop.user.id)
    db.session.commit()
    return redemption


# The mall page


def test_a_redemption_on_the_mall_page_and_its_cancel_are_audited_as_the_volunteer(
        client, place, volunteer, noodles):
    user = volunteer.user
    enter_as(client, user)
    page = client.get(f"/mall/items/{noodles.id}").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "quantity": "2",
            "key": re.search(r'name="key" value="([0-9a-f]+)"', page).group(1)}

    redeemed = client.post(f"/mall/items/{noodles.id}/redeem", data=form)
    client.post(f"/mall/items/{noodles.id}/redeem", data=form)  # pressed twice: one redemption
    redemption_id = int(redeemed.location.rsplit("/", 1)[1])
    client.post(f"/mall/redemptions/{redemption_id}/cancel",
                data={"csrf_token": form["csrf_token"]})

    who = (user.id, user.username, f"redemption:{redemption_id}", place.id, "127.0.0.1")
    assert audited("redemption.reserve") == [who]
    assert audited("redemption.cancel") == [who]


def test_a_redemption_the_mall_page_refuses_writes_no_audit_row_and_no_ledger_row(
        client, volunteer, shop, make_item):
    feast = make_item(shop, name="金牌双人餐", price=500)
    enter_as(client, volunteer.user)
    url = f"/mall/items/{feast.id}"
    before = written()

    refused = client.post(f"{url}/redeem", data={"csrf_token": token_from(client, url),
                                                 "key": "k1", "quantity": "1"},
                          headers={"Referer": f"http://localhost{url}"})

    assert refused.status_code == 303
    assert written() == before


# The staff pages


def test_a_staff_refund_on_the_market_page_is_audited_as_the_staff_member(
        client, place, volunteer, staff, shop, noodles, redeem):
    redemption = handed_over(shop, redeem(volunteer, noodles))
    enter_as(client, staff)

    refunded = client.post(f"/staff/market/redemptions/{redemption.id}/refund", data={
        "csrf_token": token_from(client, "/staff/market/redemptions"), "reason": "顾客投诉"})

    assert refunded.status_code == 302
    assert audited("redemption.refund") == [
        (staff.id, staff.username, f"redemption:{redemption.id}", place.id, "127.0.0.1")]


def test_a_staff_refund_the_market_page_refuses_writes_no_audit_row_and_no_ledger_row(
        client, volunteer, staff, shop, noodles, redeem):
    reserved = redeem(volunteer, noodles)
    done = handed_over(shop, redeem(volunteer, noodles))
    enter_as(client, staff)
    token = token_from(client, "/staff/market/redemptions")
    before = written()

    for redemption, reason in ((done, " "), (reserved, "未领取")):
        refused = client.post(f"/staff/market/redemptions/{redemption.id}/refund",
                              data={"csrf_token": token, "reason": reason},
                              headers={"Referer": "http://localhost/staff/market/redemptions"})
        assert refused.status_code == 303

    assert written() == before
    assert db.session.get(Redemption, done.id).status == "fulfilled"


def test_closing_a_period_on_the_staff_page_is_audited_and_closing_it_again_is_not(
        client, place, volunteer, staff, shop, noodles, redeem):
    moment = clock.utcnow() - timedelta(days=2)
    redemptions.confirm(db.session, shop.id, redeem(volunteer, noodles, now=moment).code,
                        confirmed_by=shop.user.id, now=moment + timedelta(hours=1))
    db.session.commit()
    enter_as(client, staff)
    today = clock.local_today()
    form = {"csrf_token": token_from(client, "/staff/market/"),
            "start": str(today - timedelta(days=3)), "end": str(today - timedelta(days=1))}
    url = f"/staff/market/merchants/{shop.id}/settle"

    closed = client.post(url, data=form)
    before = written()
    again = client.post(url, data=form, headers={"Referer": f"http://localhost{url}"})

    statement_id = int(closed.location.rsplit("/", 1)[1])
    assert audited("statement.close") == [
        (staff.id, staff.username, f"statement:{statement_id}", place.id, "127.0.0.1")]
    assert again.status_code == 303 and written() == before


# The counter


def test_a_confirmation_and_a_refund_at_the_counter_are_audited_as_the_clerk(
        client, place, volunteer, staff, shop, noodles, redeem):
    redemption = redeem(volunteer, noodles)
    enter_as(client, shop.user)
    token = token_from(client, "/counter/")

    confirmed = client.post("/counter/confirm", data={"csrf_token": token,
                                                      "code": redemption.code})
    refunded = client.post(f"/counter/redemptions/{redemption.id}/refund",
                           data={"csrf_token": token, "reason": "面卖完了"})

    assert confirmed.status_code == refunded.status_code == 302
    clerk = (shop.user.id, shop.user.username, f"redemption:{redemption.id}", place.id,
             "127.0.0.1")
    assert audited("redemption.confirm") == [clerk]
    assert audited("redemption.refund") == [clerk]
    enter_as(client, staff).set_cookie("lang", "zh_CN")
    log = client.get("/staff/audit").get_data(as_text=True)
    assert "在柜台核销一笔兑换" in log and "退还一笔兑换" in log


def test_what_the_counter_refuses_writes_no_audit_row_and_no_ledger_row(
        client, place, volunteer, shop, noodles, redeem, make_shop):
    reserved = redeem(volunteer, noodles)
    cancelled = redeem(volunteer, noodles)
    redemptions.cancel(db.session, volunteer.id, cancelled.id)
    elsewhere = handed_over(shop, redeem(volunteer, noodles))
    enter_as(client, make_shop(place, name="隔壁面馆").user)
    token = token_from(client, "/counter/")
    before = written()

    client.post("/counter/confirm", data={"csrf_token": token, "code": reserved.code})
    client.post(f"/counter/redemptions/{elsewhere.id}/refund",
                data={"csrf_token": token, "reason": "不是我家的"})
    enter_as(client, shop.user)
    client.post("/counter/confirm", data={"csrf_token": token, "code": cancelled.code})
    client.post(f"/counter/redemptions/{reserved.id}/refund",
                data={"csrf_token": token, "reason": "还没领取"})

    assert written() == before
    assert db.session.get(Redemption, reserved.id).status == "reserved"


# The API


def test_a_redemption_its_confirmation_and_its_refund_through_the_api_are_audited(
        client, place, volunteer, shop, noodles):
    as_volunteer, as_shop = bearer(volunteer.user), bearer(shop.user)

    made = client.post("/api/v1/redemptions", json={"item_id": noodles.id},
                       headers={**as_volunteer, "Idempotency-Key": "api-1"})
    again = client.post("/api/v1/redemptions", json={"item_id": noodles.id},
                        headers={**as_volunteer, "Idempotency-Key": "api-1"})
    code = made.get_json()["code"]
    confirmed = client.post(f"/api/v1/merchant/redemptions/{code}/confirm", headers=as_shop)
    refunded = client.post(f"/api/v1/merchant/redemptions/{code}/refund",
                           json={"reason": "面卖完了"}, headers=as_shop)

    assert (made.status_code, again.status_code, confirmed.status_code,
            refunded.status_code) == (201, 201, 200, 200)
    target = f"redemption:{made.get_json()['id']}"
    user, clerk = volunteer.user, shop.user
    assert audited("redemption.reserve") == [
        (user.id, user.username, target, place.id, "127.0.0.1")]
    assert audited("redemption.confirm") == audited("redemption.refund") == [
        (clerk.id, clerk.username, target, place.id, "127.0.0.1")]


def test_what_the_api_refuses_writes_no_audit_row_and_no_ledger_row(
        client, place, volunteer, shop, noodles, redeem, make_shop, make_item):
    reserved = redeem(volunteer, noodles)
    done = handed_over(shop, redeem(volunteer, noodles))
    rival = bearer(make_shop(place, name="隔壁面馆").user)
    as_shop, as_volunteer = bearer(shop.user), bearer(volunteer.user)
    feast = make_item(shop, name="金牌双人餐", price=500)
    before = written()

    answers = [
        client.post("/api/v1/redemptions", json={"item_id": feast.id},
                    headers={**as_volunteer, "Idempotency-Key": "too-dear"}).status_code,
        client.post(f"/api/v1/merchant/redemptions/{done.code}/refund",
                    json={"reason": "不是我家的"}, headers=rival).status_code,
        client.post(f"/api/v1/merchant/redemptions/{reserved.code}/refund",
                    json={"reason": "还没领取"}, headers=as_shop).status_code,
        client.post(f"/api/v1/merchant/redemptions/{done.code}/confirm",
                    headers=as_shop).status_code,
    ]

    assert answers == [422, 404, 409, 409]
    assert written() == before


# The command line


def test_the_expire_command_audits_each_community_as_the_system(
        app, place, noodles, redeem, make_community, make_shop, make_item, make_volunteer):
    volunteer = make_volunteer(place, points=200)
    other = make_community()
    rice = make_item(make_shop(other, name="东北米铺"), name="东北大米", price=20)
    neighbour = make_volunteer(other, points=100)
    long_ago = clock.utcnow() - timedelta(days=8)
    redeem(volunteer, noodles, 2, now=long_ago)
    redeem(volunteer, noodles, now=long_ago)
    redeem(neighbour, rice, now=long_ago)
    redeem(volunteer, noodles)  # not due

    ran = app.test_cli_runner().invoke(args=["redemptions", "expire"])

    assert "expired 3 redemption(s)" in ran.output, ran.output
    assert sorted(audited("redemption.expire")) == sorted([
        (None, "", f"community:{place.id}", place.id, "cli"),
        (None, "", f"community:{other.id}", other.id, "cli")])
    details = {entry.community_id: entry.detail for entry in db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "redemption.expire"))}
    assert details == {place.id: {"count": 2, "points": 90},
                       other.id: {"count": 1, "points": 20}}


def test_the_ledger_hold_sweeper_audits_what_it_releases_as_the_system(
        app, volunteer, shop):
    long_ago = clock.utcnow() - timedelta(days=8)
    held = ledger.hold(db.session, volunteer.account("POINTS"), merchant_address(shop.id), 30,
                       key=f"deposit:{volunteer.id}", kind="deposit",
                       expires_at=long_ago + timedelta(days=1), now=long_ago)

    ran = app.test_cli_runner().invoke(args=["ledger", "expire-holds"])

    released = int(re.search(r"released (\d+) expired hold", ran.output).group(1))
    assert released >= 1, ran.output
    assert ledger.get_hold(db.session, held.id).status == "expired"
    assert audited("ledger.expire_holds") == [(None, "", "", None, "cli")]
    detail = db.session.scalar(sa.select(AuditEntry.detail)
                               .where(AuditEntry.action == "ledger.expire_holds"))
    assert detail["count"] == released and detail["points"] >= 30


def test_the_hold_sweeper_leaves_a_lapsed_redemption_to_the_redemption_command(
        app, volunteer, noodles, redeem):
    long_ago = clock.utcnow() - timedelta(days=8)
    lapsed = redeem(volunteer, noodles, now=long_ago)
    available = ledger.balance(db.session, volunteer.account("POINTS")).available

    app.test_cli_runner().invoke(args=["ledger", "expire-holds"])
    hold_after_sweep = ledger.get_hold(db.session, lapsed.hold_id).status
    app.test_cli_runner().invoke(args=["redemptions", "expire"])

    assert hold_after_sweep == "open"
    db.session.expire_all()
    assert db.session.get(Redemption, lapsed.id).status == "expired"
    assert ledger.get_hold(db.session, lapsed.hold_id).status == "voided"
    assert db.session.get(type(noodles), noodles.id).stock == 5
    assert ledger.balance(db.session, volunteer.account("POINTS")).available == (
        available + noodles.price)
    assert [row[2] for row in audited("redemption.expire")] == [
        f"community:{volunteer.community_id}"]


def test_an_expire_run_with_nothing_due_writes_no_audit_row_and_no_ledger_row(
        app, volunteer, noodles, redeem):
    redeem(volunteer, noodles)
    before = written()

    ran = app.test_cli_runner().invoke(args=["redemptions", "expire"])

    assert "expired 0 redemption(s)" in ran.output, ran.output
    assert written() == before
