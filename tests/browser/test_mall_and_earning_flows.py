"""Earning and spending on a phone: check in by the venue's QR link and see the award;
redeem in the mall, show the code, have the counter confirm it, see it fulfilled."""
# ruff: noqa: F811  (fixtures shared with test_phone_flows)

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import ledger
from pointsmall.core.clock import zone
from tests.browser.test_phone_flows import (  # noqa: F401
    chromium,
    expect,
    live_database,
    live_url,
    phone,
    screenshot,
    sign_in,
)


def _available(page) -> int:
    return int(page.get_by_test_id("available").inner_text())


def test_a_volunteer_checks_in_by_the_qr_link_and_sees_the_points_after_the_award(
        chromium, live_url, screenshot):
    staff = chromium.new_context(viewport={"width": 390, "height": 844}, base_url=live_url)
    volunteer = chromium.new_context(viewport={"width": 390, "height": 844}, base_url=live_url)
    office, mobile = staff.new_page(), volunteer.new_page()

    sign_in(office, "staff1")
    office.goto("/staff/activities")
    local = datetime.now(zone_of_app())
    office.select_option('select[name="type_id"]', index=1)
    office.fill('input[name="title"]', "楼道清理志愿服务")
    office.fill('input[name="place"]', "3 栋楼下")
    office.fill('input[name="day"]', local.date().isoformat())
    office.fill('input[name="start"]', "00:00")
    office.fill('input[name="end"]', "23:59")
    office.fill('input[name="points"]', "25")
    office.locator('main form button[type=submit]').last.click()
    expect(office.locator("h1")).to_have_text("楼道清理志愿服务")
    expect(office.locator("img.venue-qr")).to_be_visible()
    screenshot(office, "1-venue-qr")
    link = office.get_by_test_id("check-in-link").inner_text().strip()

    sign_in(mobile, "vol3")
    before = _available(mobile)
    mobile.goto(link)  # what the phone camera opens
    mobile.get_by_role("button", name="签到").click()
    expect(mobile.locator(".flash-success")).to_contain_text("签到")
    screenshot(mobile, "2-checked-in")

    office.reload()
    office.get_by_role("button", name=re.compile("奖励")).click()
    expect(office.locator(".flash-success")).to_contain_text("1")
    screenshot(office, "3-awarded")

    mobile.goto("/")
    expect(mobile.get_by_test_id("available")).to_have_text(str(before + 25))
    expect(mobile.locator("main")).to_contain_text("楼道清理志愿服务")
    screenshot(mobile, "4-points-arrived")
    staff.close()
    volunteer.close()


def test_a_volunteer_redeems_and_the_counter_confirms_the_typed_code(
        chromium, live_url, screenshot):
    volunteer = chromium.new_context(viewport={"width": 390, "height": 844}, base_url=live_url)
    counter = chromium.new_context(viewport={"width": 390, "height": 844}, base_url=live_url)
    mobile, till = volunteer.new_page(), counter.new_page()

    sign_in(mobile, "vol12")
    mobile.goto("/mall/")
    before = _available(mobile)
    screenshot(mobile, "1-mall")
    mobile.get_by_role("link", name=re.compile("土鸡蛋")).click()
    mobile.get_by_role("button", name="兑换").click()
    screenshot(mobile, "1b-after-redeem")
    expect(mobile.locator(".flash-error")).to_have_count(0)
    expect(mobile.get_by_test_id("status")).to_have_text("待领取")
    code = mobile.get_by_test_id("code").inner_text().strip()
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}", code)
    expect(mobile.locator("img.qr")).to_be_visible()
    screenshot(mobile, "2-code")

    sign_in(till, "market1")
    till.fill('input[name="code"]', code.replace("-", "").lower())
    till.get_by_role("button", name="查询").click()
    expect(till.get_by_test_id("item")).to_have_text("土鸡蛋 10 枚")
    screenshot(till, "3-looked-up")
    till.get_by_role("button", name="确认已领取").click()
    expect(till.locator(".flash-success")).to_contain_text("土鸡蛋")
    screenshot(till, "4-confirmed")

    mobile.reload()
    expect(mobile.get_by_test_id("status")).to_have_text("已领取")
    expect(mobile.get_by_test_id("available")).to_have_text(str(before - 20))
    screenshot(mobile, "5-fulfilled")
    volunteer.close()
    counter.close()


def zone_of_app():
    """The app's time zone (ledger.DEFAULT_ZONE unless configured), outside an app context."""
    try:
        return zone()
    except RuntimeError:
        return ZoneInfo(ledger.DEFAULT_ZONE)
