"""Dashboards on a phone: the charts fit, their numbers are one tap away, in Chinese."""
# ruff: noqa: F811  (fixtures shared with test_phone_flows)

import re

from tests.browser.test_phone_flows import (  # noqa: F401
    chromium,
    expect,
    live_database,
    live_url,
    phone,
    screenshot,
    sign_in,
)


def test_staff_read_the_dashboard_and_open_the_numbers_behind_a_chart(phone, screenshot):
    sign_in(phone, "staff1")
    phone.locator("nav.tabs").get_by_text("数据看板").click()
    expect(phone).to_have_url(re.compile(r"/staff/dashboard$"))
    main = phone.locator("main")
    expect(main).to_contain_text("积分发放")
    expect(main).to_contain_text("积分结存")
    # The demo's seed ran a clean verify: the figures show without a warning.
    expect(main).to_contain_text("校验无误")
    expect(main).not_to_contain_text("对不上")
    chart = phone.locator("svg.chart").first
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] <= 390
    numbers = phone.locator("details").first
    expect(numbers.locator("table")).to_be_hidden()
    numbers.locator("summary").click()
    expect(numbers.locator("table")).to_be_visible()
    expect(numbers.locator("tbody tr")).to_have_count(12)
    screenshot(phone, "1-dashboard")


def test_the_admin_compares_communities_side_by_side(phone, screenshot):
    sign_in(phone, "admin")
    phone.locator("nav.tabs").get_by_text("全区").click()
    expect(phone).to_have_url(re.compile(r"/admin/dashboard$"))
    table = phone.locator("#district-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("渝能阳光社区")
    expect(table).to_contain_text("锦华社区")
    expect(table.locator("tfoot")).to_contain_text("合计")
    screenshot(phone, "2-district")


def test_a_volunteer_opens_their_year(phone, screenshot):
    sign_in(phone, "vol1")
    phone.get_by_role("link", name="我的年度回顾").click()
    main = phone.locator("main")
    expect(main.locator("h1")).to_have_text(re.compile(r"我的 \d{4} 年"))
    expect(main).to_contain_text("各类活动所得积分")
    screenshot(phone, "3-my-year")
