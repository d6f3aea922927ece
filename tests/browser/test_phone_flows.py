"""What volunteers and staff do on a phone, in a real Chromium at 390 x 844.

The real app is served on 127.0.0.1 and a free port, on a database of its own (a fresh
PostgreSQL database on the suite's server) built by the migrations and seeded with the
demo, so the browser signs in with the demo accounts.
Each step leaves a screenshot in test-artifacts/screenshots/ and must fit the phone's width.
"""

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_migrate import upgrade
from werkzeug.serving import make_server

from pointsmall import create_app
from pointsmall.cli import demo
from pointsmall.extensions import db

HOW_TO_ENABLE = ("browser tests need Debian's Chromium and the playwright package: "
                 "apt-get install chromium fonts-noto-cjk; pip install -e '.[dev]' "
                 "(or set POINTSMALL_CHROMIUM to a Chromium binary)")
sync_api = pytest.importorskip("playwright.sync_api", reason=HOW_TO_ENABLE, exc_type=ImportError)
expect = sync_api.expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("POINTSMALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium() -> Iterator["sync_api.Browser"]:
    """Chromium, headless, or a skip that says how to get it."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("POINTSMALL_BROWSER_TESTS") == "required":  # CI: never skip
            pytest.fail(HOW_TO_ENABLE)
        pytest.skip(HOW_TO_ENABLE)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_database(own_database) -> Iterator[str]:
    """A database for the served app alone, dropped afterwards."""
    with own_database("browser") as url:
        yield url


@pytest.fixture(scope="module")
def live_url(chromium, live_database) -> Iterator[str]:
    """Serve the real app, migrated and seeded with the demo, on 127.0.0.1 and a free port."""
    app = create_app({"SECRET_KEY": "browser-tests", "SQLALCHEMY_DATABASE_URI": live_database})
    with app.app_context():
        upgrade()
        demo.seed(db.session)
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def phone(chromium, live_url) -> Iterator["sync_api.Page"]:
    """A fresh phone-sized browser tab (no cookies) whose relative URLs go to the app."""
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                   device_scale_factor=2, base_url=live_url,
                                   locale="zh-CN")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(request):
    """Save a full-page screenshot of `page` as a test artefact, after checking it fits."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = request.node.name.removeprefix("test_")

    def take(page: "sync_api.Page", step: str) -> Path:
        path = SCREENSHOTS / f"{test}--{step}.png"
        page.screenshot(path=str(path), full_page=True)
        # Layout width, not window.innerWidth: a phone zooms out to show what overflows.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{step}: the page is {width}px wide on a 390px phone"
        return path

    return take


def sign_in(page: "sync_api.Page", login: str, password: str = demo.PASSWORD) -> None:
    page.goto("/login")
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', password)
    page.locator("main form button[type=submit]").click()


def test_volunteer_signs_in_with_username_and_sees_points_in_chinese(phone, screenshot):
    phone.goto("/login")
    expect(phone.locator("h1")).to_have_text("登录")
    expect(phone.get_by_text("用户名或手机号")).to_be_visible()
    screenshot(phone, "1-sign-in")

    sign_in(phone, "vol1")
    expect(phone).to_have_url(re.compile(r"/$"))
    main = phone.locator("main")
    expect(main).to_contain_text("可用积分")
    expect(main).to_contain_text("贡献值")
    expect(phone.get_by_test_id("available")).to_have_text(re.compile(r"^\d+$"))
    expect(phone.get_by_test_id("merit")).to_have_text(re.compile(r"^\d+$"))
    expect(phone.locator("nav.tabs")).to_contain_text("我的积分")
    screenshot(phone, "2-my-points")


def test_volunteer_signs_in_with_phone_number(phone, screenshot):
    sign_in(phone, "13800000001")
    expect(phone.get_by_test_id("available")).to_be_visible()
    expect(phone.locator("header .who")).not_to_be_empty()
    screenshot(phone, "my-points")


def test_wrong_password_shows_the_error_and_keeps_the_form(phone, screenshot):
    sign_in(phone, "vol2", "not-the-password")
    expect(phone.locator(".flash-error")).to_have_text("用户名、手机号或密码错误。")
    expect(phone.locator('input[name="login"]')).to_have_value("vol2")
    expect(phone.locator('input[name="password"]')).to_have_value("")
    screenshot(phone, "error")


def test_staff_signs_in_and_sees_the_volunteers_of_their_community(phone, screenshot):
    sign_in(phone, "staff1")
    expect(phone.locator("nav.tabs")).to_contain_text("微网格员")
    screenshot(phone, "1-overview")

    phone.locator("nav.tabs").get_by_role("link", name="微网格员").click()
    expect(phone).to_have_url(re.compile(r"/staff/volunteers"))
    expect(phone.locator("h1")).to_contain_text("微网格员")
    expect(phone.locator("h1 small")).to_have_text("30")  # vol1..vol30 live in community 1
    expect(phone.locator("[data-testid=volunteer-table] tbody tr")).to_have_count(30)
    expect(phone.get_by_text("13800000001")).to_be_visible()
    expect(phone.get_by_text("13800000031")).to_have_count(0)  # community 2's
    screenshot(phone, "2-volunteers")


def test_language_choice_is_remembered_across_pages_and_can_be_switched_back(phone, screenshot):
    sign_in(phone, "staff1")
    phone.locator("footer").get_by_role("link", name="English").click()
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    expect(phone.locator("nav.tabs")).to_contain_text("Volunteers")
    screenshot(phone, "1-english")

    phone.locator("nav.tabs").get_by_role("link", name="Volunteers").click()
    expect(phone.locator("h1")).to_contain_text("Volunteers")
    expect(phone.get_by_text("Search name or phone")).to_be_visible()
    phone.goto("/staff/grids")
    expect(phone.locator("h1")).to_have_text("Grids")
    screenshot(phone, "2-english-next-page")

    phone.locator("footer").get_by_role("link", name="中文").click()
    expect(phone.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(phone.locator("h1")).to_have_text("网格")
    phone.goto("/staff/volunteers")
    expect(phone.get_by_text("按姓名或手机号搜索")).to_be_visible()
    screenshot(phone, "3-chinese-again")


def test_staff_import_with_a_bad_row_names_its_line_and_imports_nothing(phone, screenshot):
    sign_in(phone, "staff1")
    phone.goto("/staff/volunteers/import")
    expect(phone.locator('input[name="file"]')).to_be_visible()
    screenshot(phone, "1-form")

    csv = ("姓名,手机号,微网格,加入日期\n"
           "张三,13900000001,1栋微网格,2023-05-01\n"
           "李四,12345,1栋微网格,2023-05-01\n")  # line 3: not a mobile number
    phone.set_input_files('input[name="file"]', files=[{
        "name": "微网格员.csv", "mimeType": "text/csv", "buffer": csv.encode("utf-8")}])
    phone.locator('main form:has(input[name="file"]) button[type=submit]').click()
    expect(phone.get_by_role("alert")).to_contain_text("未导入")
    problems = phone.get_by_test_id("import-errors").locator("tbody tr")
    expect(problems).to_have_count(1)
    expect(problems.locator("td").first).to_have_text("3")
    expect(problems).to_contain_text("手机号码")
    screenshot(phone, "2-bad-row")

    phone.goto("/staff/volunteers?q=13900000001")  # the good row was not imported either
    expect(phone.get_by_text("没有符合条件的微网格员。")).to_be_visible()
