"""The office's pages in a real Chromium, in Chinese, as staff and the admin use them (issue
16, points 1-10): at a desktop's 1366 x 768 and a phone's 390 x 844, and every staff and
admin page at 360 px without sideways scrolling. Each step leaves a screenshot in
test-artifacts/screenshots/ (named office-...) and must fit its window's width."""
# ruff: noqa: F811  (fixtures shared with test_phone_flows)

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from tests.browser.test_phone_flows import (  # noqa: F401
    SCREENSHOTS,
    chromium,
    expect,
    live_database,
    live_url,
    sign_in,
    sync_api,
)

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 360, "height": 740}


def _tab(chromium, live_url, viewport, mobile: bool) -> Iterator["sync_api.Page"]:
    context = chromium.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile,
                                   device_scale_factor=1, base_url=live_url, locale="zh-CN")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def desktop(chromium, live_url):
    """An office computer's browser window at 1366 x 768."""
    yield from _tab(chromium, live_url, DESKTOP, mobile=False)


@pytest.fixture
def phone(chromium, live_url):
    yield from _tab(chromium, live_url, PHONE, mobile=True)


@pytest.fixture
def narrow(chromium, live_url):
    """The narrowest phone the office pages must fit: 360 px."""
    yield from _tab(chromium, live_url, NARROW, mobile=True)


def overflow(page: "sync_api.Page") -> int:
    """Return by how many pixels the page is wider than its window (0 when it fits)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.fixture
def screenshot(request):
    """Save a full-page screenshot of `page`, after checking it does not scroll sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = request.node.name.removeprefix("test_")

    def take(page: "sync_api.Page", step: str) -> Path:
        width = page.viewport_size["width"]
        path = SCREENSHOTS / f"office-{test}--{step}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        assert overflow(page) <= 0, f"{step}: {overflow(page)}px too wide at {width}px"
        return path

    return take


def field_of(page: "sync_api.Page", name: str) -> "sync_api.Locator":
    """The label.field that holds the input named `name`: its text, input and error."""
    return page.locator(f"label.field:has([name='{name}'])")


# 1. A form error keeps the work and says what is wrong beside the field


def test_a_wrong_phone_in_an_adjustment_keeps_everything_typed_and_marks_the_phone(
        phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/awards")
    phone.fill("input[name='adj-phone']", "13900009999")
    phone.fill("input[name='adj-points']", "12")
    phone.fill("input[name='adj-reason']", "协助疫苗接种登记")
    phone.locator("#adjust button[type=submit]").click()

    expect(field_of(phone, "adj-phone").locator(".error")).to_have_text(
        "以下号码不是本社区的微网格员：13900009999。")
    expect(phone.locator("input[name='adj-phone']")).to_have_value("13900009999")
    expect(phone.locator("input[name='adj-points']")).to_have_value("12")
    expect(phone.locator("input[name='adj-reason']")).to_have_value("协助疫苗接种登记")
    expect(phone.locator("h1")).not_to_have_text("422")
    screenshot(phone, "1-kept")


def test_one_wrong_number_among_pasted_phones_keeps_the_list_on_the_activity_page(
        desktop, screenshot):
    sign_in(desktop, "staff1")
    desktop.goto("/staff/activities")
    desktop.locator("main a[href^='/staff/activities/']").first.click()
    pasted = "\n".join([f"138000000{n:02d}" for n in range(1, 6)] + ["13911112222"])
    desktop.fill("textarea[name='phones']", pasted)
    desktop.get_by_role("button", name="保存到场情况").click()

    expect(desktop.locator("textarea[name='phones']")).to_have_value(pasted)
    expect(desktop.locator("label.field:has(textarea) .error")).to_contain_text("13911112222")
    screenshot(desktop, "1-kept")


def test_an_evaluation_that_ends_before_it_starts_keeps_its_dates(phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/tiers")
    phone.fill("input[name='e-name']", "2026 上半年")
    phone.fill("input[name='e-start']", "2026-06-30")
    phone.fill("input[name='e-end']", "2026-01-01")
    phone.get_by_role("button", name="固定本次评定结果").click()

    expect(field_of(phone, "e-end").locator(".error")).to_be_visible()
    expect(phone.locator("input[name='e-name']")).to_have_value("2026 上半年")
    expect(phone.locator("input[name='e-start']")).to_have_value("2026-06-30")
    screenshot(phone, "1-kept")


# 2-5. The volunteer's points, one approval rule, approving on the detail page, the audit log


def points_on_staff_page(page: "sync_api.Page", phone_number: str) -> int:
    page.goto(f"/staff/volunteers?q={phone_number}")
    page.locator("[data-testid=volunteer-table] tbody a").first.click()
    return int(page.get_by_test_id("available").inner_text().replace(",", ""))


def test_an_adjustment_over_the_limit_waits_for_a_second_staff_member_who_approves_it(
        desktop, phone, screenshot):
    # The admin gives community 1 a second staff member.
    sign_in(desktop, "admin")
    desktop.goto("/admin/communities")
    staff_form = desktop.locator("form:has([name='s-username'])")
    staff_form.locator("select[name='s-community_id']").select_option(label="渝能阳光社区")
    staff_form.locator("input[name='s-username']").fill("checker1")
    staff_form.locator("input[name='s-name']").fill("复核员王")
    staff_form.locator("input[name='s-password']").fill("checker-pass-2026")
    staff_form.locator("button[type=submit]").click()
    expect(desktop.locator(".flash-success")).to_contain_text("checker1")
    desktop.context.clear_cookies()

    sign_in(desktop, "staff1")
    before = points_on_staff_page(desktop, "13800000007")
    expect(desktop.get_by_test_id("volunteer-points")).to_contain_text("可用积分")
    expect(desktop.get_by_test_id("tier")).to_be_visible()
    expect(desktop.get_by_test_id("history").locator("li").first).to_be_visible()
    screenshot(desktop, "2-volunteer-points")

    desktop.get_by_role("link", name="调整积分").click()
    expect(desktop.locator("input[name='adj-phone']")).to_have_value("13800000007")
    desktop.fill("input[name='adj-points']", "6000")
    desktop.fill("input[name='adj-reason']", "年度优秀网格员")
    desktop.locator("#adjust button[type=submit]").click()
    expect(desktop.locator(".flash")).to_contain_text("积分尚未变动")
    expect(desktop.get_by_test_id("adjustment-facts")).to_contain_text("+6,000")
    expect(desktop.locator("main")).to_contain_text("等待另一名工作人员审批")
    screenshot(desktop, "3-waiting")
    assert points_on_staff_page(desktop, "13800000007") == before  # nothing moved

    sign_in(phone, "checker1", "checker-pass-2026")
    phone.goto("/staff/awards")
    waiting = phone.get_by_test_id("waiting-adjustments")
    expect(waiting).to_contain_text("年度优秀网格员")
    expect(waiting).to_contain_text("社区工作人员1")
    waiting.get_by_role("link", name="打开审批").click()
    expect(phone.get_by_test_id("adjustment-facts")).to_contain_text("年度优秀网格员")
    confirm = phone.get_by_role("button", name="确认批准并入账")
    expect(confirm).to_be_hidden()  # one tap opens the question, a second one posts
    phone.get_by_test_id("approve").locator("summary").click()
    expect(phone.get_by_test_id("approve")).to_contain_text("6,000")
    screenshot(phone, "4-confirm")
    confirm.click()
    expect(phone.locator(".flash-success")).to_have_text("已审批并入账。")
    screenshot(phone, "4-approved")
    assert points_on_staff_page(phone, "13800000007") == before + 6000

    # 5. The admin reads what happened, in Chinese and Beijing time.
    desktop.context.clear_cookies()
    sign_in(desktop, "admin")
    desktop.goto("/admin/audit")
    table = desktop.get_by_test_id("audit")
    expect(table.locator("thead")).to_contain_text("北京时间")
    row = table.locator("tbody tr", has_text="批准积分调整").first
    expect(row).to_contain_text("checker1")
    expect(row).to_contain_text("13800000007")
    expect(row).to_contain_text("6000")
    expect(table).to_contain_text("申请超过审批额度的积分调整")
    expect(table).not_to_contain_text("points.adjust")
    expect(table).not_to_contain_text("\\u")
    screenshot(desktop, "5-audit")
    desktop.locator("select[name='action']").select_option(label="批准积分调整")
    desktop.get_by_role("button", name="筛选").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    screenshot(desktop, "5-audit-filtered")


# 9. The office works at a desktop's width


def test_the_volunteer_table_uses_the_desktop_and_sorts_and_filters_into_its_export(
        desktop, screenshot):
    sign_in(desktop, "staff1")
    desktop.goto("/staff/volunteers")
    table = desktop.get_by_test_id("volunteer-table")
    expect(table.locator("thead")).to_contain_text("积分")
    expect(table.locator("thead")).to_contain_text("等级")
    expect(table.locator("thead")).to_contain_text("最近活动")
    assert desktop.locator("main").bounding_box()["width"] > 1200
    expect(table.locator("tbody tr")).to_have_count(30)  # all of community 1, one page
    screenshot(desktop, "9-table")

    table.get_by_role("link", name="积分").click()
    expect(desktop).to_have_url(re.compile(r"sort=-points"))
    figures = [int(t.replace(",", "")) for t in
               table.get_by_test_id("points").all_inner_texts()]
    assert figures == sorted(figures, reverse=True) and figures[0] > figures[-1]

    desktop.fill("input[name='min_points']", str(figures[4]))
    desktop.get_by_role("button", name="筛选").click()
    expect(desktop).to_have_url(re.compile(r"min_points="))
    shown = table.locator("tbody tr").count()
    assert 5 <= shown < 30
    export = desktop.get_by_test_id("export-csv").get_attribute("href")
    assert f"min_points={figures[4]}" in export
    csv = desktop.request.get(export).text()
    assert len(csv.strip().splitlines()) == shown + 1  # the header and the same people
    screenshot(desktop, "9-sorted-filtered")


def test_the_volunteer_table_stacks_into_cards_on_a_phone(phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/volunteers")
    table = phone.get_by_test_id("volunteer-table")
    first = table.locator("tbody tr").first
    expect(table.locator("thead")).to_be_hidden()  # each row reads as a card of labels
    expect(first.locator("td[data-label='积分']")).to_be_visible()
    assert first.bounding_box()["width"] <= PHONE["width"]
    screenshot(phone, "9-phone")


# 10. Every office page fits a 360 px phone, in both languages


def office_pages(page: "sync_api.Page", live_url: str, limit: int = 80) -> list[str]:
    """Collect the pages reachable from the home page, two links deep (no downloads)."""
    seen, queue = [], ["/"]
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        answer = page.goto(path)
        seen.append(path)
        if answer is None or "text/html" not in answer.headers.get("content-type", ""):
            continue
        depth = path.count("/")
        for href in page.locator("a[href]").evaluate_all("els => els.map(e => e.href)"):
            target = urlparse(urljoin(live_url, href))
            if target.netloc != urlparse(live_url).netloc or target.path.startswith(
                    ("/lang/", "/static/", "/api/")) or re.search(
                    r"\.(csv|xlsx|pdf|png)$|/exports/|/download", target.path):
                continue
            local = target.path + (f"?{target.query}" if target.query else "")
            if local not in seen and local not in queue and depth < 4:
                queue.append(local)
    return seen


@pytest.mark.parametrize("login", ["staff1", "admin"])
def test_every_office_page_fits_a_360px_phone(narrow, live_url, screenshot, login):
    sign_in(narrow, login)
    too_wide = {}
    for path in office_pages(narrow, live_url):
        narrow.goto(path)
        if overflow(narrow) > 0:
            too_wide[path] = overflow(narrow)
    assert too_wide == {}, f"pages wider than 360px: {too_wide}"
    narrow.goto("/")
    screenshot(narrow, "10-home")


def test_the_wide_office_pages_fit_a_phone_in_english_too(phone, screenshot):
    sign_in(phone, "admin")
    phone.locator("footer").get_by_role("link", name="English").click()
    for path, step in (("/admin/audit", "audit"), ("/admin/communities/1/rules", "rules"),
                       ("/admin/dashboard", "district")):
        phone.goto(path)
        screenshot(phone, f"10-en-{step}")
    phone.context.clear_cookies()
    sign_in(phone, "staff1")
    phone.locator("footer").get_by_role("link", name="English").click()
    for path, step in (("/staff/volunteers", "volunteers"), ("/staff/tiers", "tiers")):
        phone.goto(path)
        screenshot(phone, f"10-en-{step}")


# 6. Dates and periods


def test_the_dashboard_stops_at_this_month_and_an_unfinished_period_is_frozen_only_on_request(
        desktop, screenshot):
    sign_in(desktop, "staff1")
    desktop.goto("/staff/dashboard")
    nav = desktop.locator("nav.month-nav")
    expect(nav.locator("a")).to_have_count(1)  # back a month, not into the future
    screenshot(desktop, "6-dashboard")

    desktop.goto("/staff/tiers")
    desktop.fill("input[name='e-name']", "本年度（未结束）")
    desktop.fill("input[name='e-start']", "2026-01-01")
    desktop.fill("input[name='e-end']", "2099-12-31")
    desktop.get_by_role("button", name="固定本次评定结果").click()
    expect(field_of(desktop, "e-end").locator(".error")).to_contain_text("还没有结束")
    expect(desktop.locator("input[name='e-name']")).to_have_value("本年度（未结束）")
    screenshot(desktop, "6-asks-first")

    desktop.fill("input[name='e-name']", "2026 上半年")
    desktop.fill("input[name='e-end']", "2026-06-30")
    desktop.get_by_role("button", name="固定本次评定结果").click()
    expect(desktop.get_by_test_id("period")).to_contain_text("2026-01-01 – 2026-06-30")
    expect(desktop.locator("h1")).to_contain_text("渝能阳光社区")
    expect(desktop.get_by_role("button", name="打印")).to_be_visible()
    screenshot(desktop, "6-printout")


# 7. Wording


def test_start_dates_merchant_names_and_the_account_page_read_as_office_staff_expect(
        phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/tiers")
    expect(phone.locator("main")).to_contain_text("起始日期")
    expect(phone.locator("main")).not_to_contain_text("来源地址")
    screenshot(phone, "7-tiers")
    phone.goto("/staff/market/")
    expect(phone.locator("main")).to_contain_text("商家名称")
    screenshot(phone, "7-merchants")
    phone.goto("/account")
    expect(phone.locator("main")).not_to_contain_text("/api/v1")
    screenshot(phone, "7-account")


# 8. Roster import and attendance for anyone of the community


def test_an_import_lists_first_sign_in_codes_and_names_the_column_it_left_out(
        desktop, screenshot):
    sign_in(desktop, "staff1")
    desktop.goto("/staff/volunteers/import")
    csv = ("姓名,手机号,微网格,加入日期,备注\n"
           "钱多多,13900000111,1栋微网格,2024-05-01,党员\n")
    desktop.set_input_files("input[name='file']", files=[{
        "name": "名单.csv", "mimeType": "text/csv", "buffer": csv.encode("utf-8")}])
    expect(desktop.locator("input[name='codes']")).to_be_checked()
    desktop.locator("main form button[type=submit]").click()

    expect(desktop.locator(".flash")).to_contain_text(["已导入", "未导入的列：备注"])
    codes = desktop.get_by_test_id("first-codes")
    expect(codes).to_contain_text("钱多多")
    code = codes.locator("code").first.inner_text()
    screenshot(desktop, "8-codes")
    desktop.context.clear_cookies()
    sign_in(desktop, "13900000111", code)
    expect(desktop.get_by_test_id("available")).to_be_visible()


def test_staff_find_and_tick_a_volunteer_who_did_not_sign_up(phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/activities")
    phone.locator("main a[href^='/staff/activities/']").first.click()
    phone.wait_for_load_state("load")  # office.js (deferred) filters as one types
    picker = phone.get_by_test_id("pick-volunteers")
    picker.locator("summary").click()
    everyone = picker.locator("li:visible").count()
    wanted = picker.locator("li").last.get_attribute("data-search").split()[-1]  # a phone
    picker.locator("input[type=search]").fill(wanted)
    expect(picker.locator("li:visible")).to_have_count(1)
    assert everyone > 1
    picker.locator("li:visible input[type=checkbox]").check()
    screenshot(phone, "8-picked")
    phone.get_by_role("button", name="保存到场情况").click()
    expect(phone.locator(".flash-success")).to_be_visible()
    present = phone.locator("main ul.rows li", has_text=wanted)
    expect(present).to_contain_text("已到场")


# 10. Phone-size tables


def test_the_district_and_evaluation_tables_keep_names_on_one_line_on_a_phone(
        phone, screenshot):
    sign_in(phone, "admin")
    phone.goto("/admin/dashboard")
    name = phone.locator("#district-table tbody th").first
    line = phone.evaluate("() => parseFloat(getComputedStyle(document.body).lineHeight)")
    assert name.bounding_box()["height"] < 2 * line  # one line, not one character a line
    screenshot(phone, "10-district")
    phone.context.clear_cookies()
    sign_in(phone, "staff1")
    phone.goto("/staff/tiers")
    phone.locator("main a[href^='/staff/evaluations/']").first.click()
    first = phone.locator("main table tbody tr").first
    expect(first.locator("td[data-label='等级']")).to_be_visible()
    assert first.bounding_box()["width"] <= PHONE["width"]
    screenshot(phone, "10-evaluation")
