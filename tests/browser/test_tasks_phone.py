"""The task board on a phone, in a real Chromium at 390 x 844, against the demo: a volunteer
claims and finishes a task, a resident posts a wish from the station's poster and follows
it, staff accept a done task with a rating. Each step leaves a screenshot in
test-artifacts/screenshots/; the staff pages are also shot at 1366 x 768."""

import io
import re

import pytest
from PIL import Image

from tests.browser.test_phone_flows import (  # noqa: F401  (fixtures)
    SCREENSHOTS,
    chromium,
    expect,
    live_database,
    live_url,
    phone,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1366, "height": 768}


def photo_file() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(buffer, "PNG")
    return {"name": "result.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def test_a_volunteer_claims_and_finishes_a_task(phone, screenshot):  # noqa: F811
    sign_in(phone, "vol1")
    phone.locator("nav.tabs").get_by_text("任务").click()
    expect(phone.locator("h1")).to_have_text("我的志愿时长")
    expect(phone.get_by_test_id("stars")).to_be_visible()
    screenshot(phone, "1-board")

    first = phone.get_by_test_id("open-tasks").locator("li").first
    title = first.locator("strong").inner_text()
    first.get_by_role("button", name="认领").click()
    expect(phone.locator("h1")).to_have_text(title)
    expect(phone.get_by_test_id("state")).to_have_text("已认领")
    screenshot(phone, "2-claimed")

    phone.get_by_role("button", name="开始").click()
    expect(phone.get_by_test_id("state")).to_have_text("进行中")
    phone.fill('textarea[name="done-note"]', "已清理完毕，楼道通畅。")
    phone.set_input_files('input[name="done-photos"]', files=[photo_file()])
    screenshot(phone, "3-finishing")
    phone.get_by_role("button", name="完成", exact=True).click()

    expect(phone.get_by_test_id("state")).to_have_text("已完成，等待核实")
    expect(phone.locator("img.thumb")).to_have_count(1)
    screenshot(phone, "4-done")


def test_a_resident_posts_a_wish_from_the_poster_and_follows_it(
        phone, chromium, live_url, screenshot):  # noqa: F811
    sign_in(phone, "staff1")
    phone.goto("/staff/wishes")
    phone.get_by_role("link", name="海报").first.click()
    expect(phone.locator("h1")).to_have_text("点亮微心愿")
    link = phone.locator(".poster p.muted").inner_text()
    screenshot(phone, "1-poster")

    resident = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True, device_scale_factor=2, locale="zh-CN")
    page = resident.new_page()
    try:
        page.goto(link)
        expect(page.locator("h1")).to_have_text("提交微心愿或反映问题")
        page.fill('input[name="name"]', "周阿姨")
        page.fill('input[name="phone"]', "13811112222")
        page.fill('textarea[name="text"]', "<b>想请志愿者</b>帮忙换个灯泡")
        screenshot(page, "2-wish-form")
        page.get_by_role("button", name="提交").click()

        expect(page.get_by_test_id("wish-status")).to_have_text("等待审核")
        expect(page.get_by_test_id("wish-text")).to_have_text("<b>想请志愿者</b>帮忙换个灯泡")
        expect(page.locator("main")).not_to_contain_text("13811112222")
        code = page.get_by_test_id("code").inner_text()
        screenshot(page, "3-following")

        page.goto(f"{live_url}/wish/follow")
        page.fill('input[name="code"]', code.lower())
        page.get_by_role("button", name="查询").click()
        expect(page).to_have_url(re.compile(f"/wish/follow/{code}$"))
        screenshot(page, "4-found-by-code")
    finally:
        resident.close()


def test_staff_accept_a_done_task_with_a_rating(phone, chromium, live_url, screenshot):  # noqa: F811
    sign_in(phone, "staff1")
    phone.goto("/staff/tasks")
    waiting = phone.get_by_test_id("waiting").locator("a").first
    expect(waiting).to_be_visible()
    screenshot(phone, "1-tasks")
    waiting.click()
    phone.locator('select[name="check-rating"]').first.select_option("4")
    phone.locator('input[name="check-comment"]').first.fill("完成得及时")
    screenshot(phone, "2-checking")
    phone.get_by_role("button", name="核实通过并发放积分").first.click()

    expect(phone.locator(".flash-success")).to_contain_text("已核实，评 4 分")
    expect(phone.locator("main")).to_contain_text("4/5")
    screenshot(phone, "3-accepted")

    desk = chromium.new_context(viewport=DESKTOP, base_url=live_url, locale="zh-CN")
    page = desk.new_page()
    try:
        sign_in(page, "staff1")
        for step, url in (("tasks", "/staff/tasks"), ("wishes", "/staff/wishes")):
            page.goto(url)
            page.screenshot(path=str(SCREENSHOTS / f"staff_desktop--{step}.png"),
                            full_page=True)
        page.get_by_role("link", name=re.compile("^#")).first.click()
        page.screenshot(path=str(SCREENSHOTS / "staff_desktop--wish.png"), full_page=True)
    finally:
        desk.close()
