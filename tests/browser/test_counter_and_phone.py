"""The counter and the volunteer's phone (issue 16, points 11-19), in a real Chromium.

Each test runs at a phone's 390 x 844 and a desktop's 1366 x 768, in Chinese, against
the real app seeded with the demo (plus a few accounts of its own, so that one test's
wrong codes or redemptions never move another's numbers). Every step leaves a screenshot
in test-artifacts/screenshots/ and must fit the window's width.
"""
# ruff: noqa: F811  (fixtures shared with test_phone_flows)

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from merchants import redemptions
from merchants.models import Item, Merchant
from pointsmall import create_app
from pointsmall.auth.models import User
from pointsmall.cli import demo
from pointsmall.core.photos import save_item_photo
from pointsmall.earning import activities, tiers
from pointsmall.earning.models import Activity
from pointsmall.extensions import db
from pointsmall.market import actions
from pointsmall.people.models import Volunteer
from tests.browser.test_phone_flows import (  # noqa: F401
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    chromium,
    expect,
    live_database,
    sign_in,
    sync_api,
)

SCREENS = {"390": {"width": 390, "height": 844}, "1366": {"width": 1366, "height": 768}}
MARKET, NOODLES = "渝能爱心超市", "老街牛肉面"
EGGS, GOLD_MEAL = "土鸡蛋 10 枚", "金牌志愿者双人餐"
DEAR = "测试：按摩椅一台"  # more points than any demo volunteer has
UNKNOWN_CODE_SAYS = "本店查不到这个兑换码。请核对兑换码，并确认兑换的是本店的商品。"


@dataclass
class Site:
    """The served app and a door into its database for setting the scene."""

    url: str
    app: Flask

    def run(self, work):
        with self.app.test_request_context():
            result = work(db.session)
            db.session.commit()
            db.session.remove()
            return result

    def volunteer(self, session, username: str) -> Volunteer:
        return session.scalar(sa.select(Volunteer).join(User, Volunteer.user_id == User.id)
                              .where(User.username == username))

    def reserve(self, username: str, item_name: str, quantity: int = 1) -> tuple[str, int]:
        """Redeem as `username` would in the mall; return the code as shown and the id."""
        def work(session):
            item = session.scalar(sa.select(Item).where(Item.name == item_name))
            found = redemptions.reserve(session, actions.redeemer_for(self.volunteer(
                session, username)), item.id, quantity, key=uuid.uuid4().hex)
            return redemptions.format_code(found.code), found.id
        return self.run(work)

    def clerk(self, shop: str) -> str:
        """Add a merchant staff account of its own to `shop`; return its username."""
        username = f"till-{uuid.uuid4().hex[:8]}"

        def work(session):
            merchant = session.scalar(sa.select(Merchant).where(Merchant.name == shop))
            session.add(User(username=username, name=shop, role="merchant",
                             merchant_id=merchant.id,
                             password_hash=generate_password_hash(demo.PASSWORD)))
        self.run(work)
        return username

    def tier(self, username: str) -> str | None:
        return self.run(lambda s: tiers.standing(s, self.volunteer(s, username)).tier)

    def check_in_link(self, title: str) -> str:
        def work(session):
            activity = session.scalar(sa.select(Activity).where(Activity.title == title)
                                      .order_by(Activity.id).limit(1))
            return f"/check-in/{activities.check_in_token(activity)}"
        return self.run(work)


@pytest.fixture(scope="module")
def site(chromium, live_database, tmp_path_factory) -> Iterator[Site]:
    """Serve the demo, with a photo on the eggs and an item nobody can afford."""
    uploads = tmp_path_factory.mktemp("uploads")
    app = create_app({"SECRET_KEY": "browser-tests", "SQLALCHEMY_DATABASE_URI": live_database,
                      "UPLOAD_FOLDER": str(uploads)})
    with app.app_context():
        upgrade()
        demo.seed(db.session)
        db.session.commit()
        db.session.remove()
    served = Site("", app)

    def scene(session):
        from PIL import Image

        picture = BytesIO()
        Image.new("RGB", (400, 300), (230, 180, 60)).save(picture, "JPEG")
        picture.seek(0)
        eggs = session.scalar(sa.select(Item).where(Item.name == EGGS))
        eggs.photo = save_item_photo(picture, "not an image")
        market = session.scalar(sa.select(Merchant).where(Merchant.name == MARKET))
        session.add(Item(merchant_id=market.id, name=DEAR, category="daily", price=99_999,
                         status="approved", active=True))
    served.run(scene)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield served
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(params=list(SCREENS))
def screen(request) -> str:
    return request.param


def open_tab(browser, site: Site, screen: str, locale: str = "zh-CN", **options):
    phone = screen == "390"
    context = browser.new_context(viewport=SCREENS[screen], is_mobile=phone, has_touch=phone,
                                  device_scale_factor=2 if phone else 1, base_url=site.url,
                                  locale=locale, **options)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def page(chromium, site, screen) -> Iterator["sync_api.Page"]:
    """A fresh tab (no cookies) of the screen's size, in Chinese."""
    context = open_tab(chromium, site, screen)
    yield context.new_page()
    context.close()


@pytest.fixture
def screenshot(request, screen):
    """Save a full-page screenshot, after checking that the page fits its window."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = request.node.originalname.removeprefix("test_")

    def take(page: "sync_api.Page", step: str) -> Path:
        path = SCREENSHOTS / f"{test}--{screen}--{step}.png"
        page.screenshot(path=str(path), full_page=True)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        window = page.viewport_size["width"]
        assert width <= window, f"{step}: the page is {width}px wide in a {window}px window"
        return path

    return take


def who(screen: str, on_phone: str, on_desktop: str) -> str:
    """Each screen size plays with an account of its own."""
    return on_phone if screen == "390" else on_desktop


def full_width(code: str) -> str:
    """Type `code` as a Chinese keyboard in full-width mode does (ＷＡＨＢＤ－…)."""
    return "".join("－" if c == "-" else chr(ord(c) + 0xFEE0) for c in code)


def look_up(page, code: str) -> None:
    page.fill('input[name="code"]', code)
    page.get_by_role("button", name="查询").click()


def small_tap_targets(page) -> list[str]:
    """Name the visible controls less than 44 px high (links inside a sentence excepted)."""
    return page.evaluate("""() => {
      const small = [];
      for (const el of document.querySelectorAll(
          'a, button, input:not([type=hidden]):not([type=checkbox]), select, summary')) {
        const box = el.getBoundingClientRect();
        if (!box.width || !box.height || getComputedStyle(el).visibility === 'hidden') continue;
        const parent = el.parentElement;
        const inSentence = el.tagName === 'A' && [...parent.childNodes].some(
          n => n !== el && n.nodeType === 3 && n.textContent.trim().length > 1);
        if (!inSentence && box.height < 44) small.push(
          `${el.tagName.toLowerCase()} "${(el.innerText || el.value || '').trim().slice(0, 30)}"`
          + ` ${Math.round(box.height)}px`);
      }
      return small;
    }""")


# --- The counter ---------------------------------------------------------------------


def test_11_the_scan_button_says_why_when_there_is_no_camera_or_no_permission(
        chromium, site, screen, screenshot):
    clerk = site.clerk(NOODLES)
    for case, script, says in (
        ("denied", "navigator.mediaDevices.getUserMedia = () => Promise.reject("
                   "new DOMException('denied', 'NotAllowedError'));",
         "未获准使用摄像头：请在浏览器设置中允许，或手动输入兑换码。"),
        ("no-camera", "Object.defineProperty(navigator, 'mediaDevices', {value: undefined});",
         "此设备上找不到摄像头，请手动输入兑换码。"),
        ("not-found", "navigator.mediaDevices.getUserMedia = () => Promise.reject("
                      "new DOMException('none', 'NotFoundError'));",
         "此设备上找不到摄像头，请手动输入兑换码。"),
    ):
        context = open_tab(chromium, site, screen)
        context.add_init_script(script)
        page = context.new_page()
        sign_in(page, clerk)
        scan = page.get_by_role("button", name="扫二维码")
        expect(scan).to_be_visible()
        # The button is drawn before scan.js (deferred) binds it: on a busy machine a click
        # that early does nothing. "load" comes after every deferred script has run.
        page.wait_for_load_state("load")
        scan.click()
        expect(page.get_by_test_id("scan-status")).to_have_text(says)
        expect(page.locator('input[name="code"]')).to_be_focused()
        screenshot(page, case)
        context.close()


def test_12_a_wrong_code_is_shown_back_with_the_tries_left_and_full_width_is_read(
        page, site, screen, screenshot):
    clerk = site.clerk(MARKET)
    code, _ = site.reserve(who(screen, "vol23", "vol24"), EGGS)
    sign_in(page, clerk)
    look_up(page, "ABCDE-23456")
    expect(page.locator(".flash-error")).to_have_text(UNKNOWN_CODE_SAYS)
    expect(page.locator('input[name="code"]')).to_have_value("ABCDE-23456")
    expect(page.get_by_test_id("tries-left")).to_have_text(
        "您输入的是 ABCDE-23456。再输错 9 次，兑换码输入将被锁定。")
    screenshot(page, "1-wrong-code")

    look_up(page, full_width(code))  # ＷＡＨＢＤ－… from a Chinese keyboard
    expect(page.get_by_test_id("item")).to_have_text(EGGS)
    expect(page.locator("p.code")).to_have_text(code)
    screenshot(page, "2-full-width-found")

    page.goto("/counter/")
    look_up(page, full_width("ABCDE-23456"))
    expect(page.locator('input[name="code"]')).to_have_value("ABCDE-23456")
    # 9 before the right full-width code, 8 now: the full-width code did not count.
    expect(page.get_by_test_id("tries-left")).to_contain_text("再输错 8 次")
    screenshot(page, "3-full-width-wrong")


def test_13_the_lockout_shows_on_reopening_with_its_end_and_the_field_shut(
        page, site, screen, screenshot):
    clerk = site.clerk(NOODLES)
    sign_in(page, clerk)
    # Another shop's real code reads exactly as a code that does not exist.
    elsewhere, _ = site.reserve(who(screen, "vol26", "vol27"), EGGS)
    look_up(page, elsewhere)
    expect(page.locator(".flash-error")).to_have_text(UNKNOWN_CODE_SAYS)
    screenshot(page, "1-another-shops-code")

    first = datetime.now(ZoneInfo(site.app.config["BABEL_DEFAULT_TIMEZONE"]))
    for n in range(9):
        look_up(page, f"ABCDE-2345{n % 8 + 2}")
    expect(page.get_by_test_id("locked")).to_be_visible()
    last = datetime.now(first.tzinfo)
    screenshot(page, "2-locked")

    page.goto("/counter/")  # reopening the counter
    locked = page.get_by_test_id("locked")
    expect(locked).to_contain_text("输错次数过多，兑换码输入已锁定至")
    until = re.search(r"(\d\d:\d\d)", locked.inner_text()).group(1)
    possible = {f"{(moment + timedelta(minutes=10, seconds=s)):%H:%M}"
                for moment in (first, last) for s in (0, 1)}
    assert until in possible, f"unlocks at {until}, not ten minutes after the guesses"
    expect(page.locator('input[name="code"]')).to_be_disabled()
    expect(page.get_by_role("button", name="查询")).to_be_disabled()
    screenshot(page, "3-reopened")


def test_14_the_qr_reader_loads_only_with_the_camera_compressed_and_cached(
        chromium, site, screen, screenshot):
    # A Chromium of its own, with a fake camera that films a test pattern.
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    try:
        context = open_tab(browser, site, screen, permissions=["camera"])
        page = context.new_page()
        asked = []
        page.on("request", lambda r: asked.append(r.url))
        sign_in(page, site.clerk(NOODLES))
        expect(page.get_by_role("button", name="扫二维码")).to_be_visible()
        page.wait_for_load_state("load")  # scan.js has bound the button (see test 11)
        assert not [u for u in asked if "scanner" in u or "jsQR" in u], \
            "the QR reader loaded before the camera was asked for"
        with page.expect_response(re.compile(r"/counter/scanner\.js")) as reply:
            page.get_by_role("button", name="扫二维码").click()
        headers = reply.value.all_headers()
        assert headers["content-encoding"] == "gzip"
        assert "immutable" in headers["cache-control"]
        expect(page.locator("#scan-video")).to_be_visible()
        expect(page.get_by_test_id("scan-status")).to_have_text("")
        screenshot(page, "camera-on")
        context.close()
    finally:
        browser.close()


# --- The volunteer's phone -------------------------------------------------------------


def test_15_a_mall_card_opens_as_a_whole_and_shows_the_item_photo(page, screen, screenshot):
    sign_in(page, who(screen, "vol2", "vol3"))
    page.goto("/mall/")
    card = page.get_by_test_id("item-card").filter(has_text=EGGS)
    photo = card.locator("img")
    expect(photo).to_be_visible()
    # decode() waits for the picture (a busy machine may still be loading it) and fails
    # on a broken one.
    assert photo.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    box = card.bounding_box()
    assert box["height"] >= 150 and box["width"] >= 150, box
    screenshot(page, "1-mall")
    card.locator(".price").click()  # the price, far from the name, opens the item too
    expect(page.locator("h1")).to_have_text(EGGS)
    expect(page.locator("img.photo")).to_be_visible()
    screenshot(page, "2-item")


def test_16_the_item_page_refuses_before_the_tap_keeps_the_quantity_and_confirms_cancel(
        page, site, screen, screenshot):
    volunteer = who(screen, "vol21", "vol30")  # bronze, with 85 and 80 points
    assert site.tier(volunteer) != "gold"
    sign_in(page, volunteer)
    available = int(page.get_by_test_id("available").inner_text())

    page.goto("/mall/")
    page.get_by_test_id("item-card").filter(has_text=GOLD_MEAL).click()
    expect(page.get_by_test_id("refusal")).to_contain_text("本商品仅限金牌及以上的微网格员兑换")
    expect(page.get_by_role("button", name="兑换")).to_be_disabled()
    screenshot(page, "1-gold-only")

    page.goto("/mall/")
    page.get_by_test_id("item-card").filter(has_text=DEAR).click()
    expect(page.get_by_test_id("refusal")).to_have_text(
        f"积分不足：可用 {available}，需要 99999。")
    expect(page.get_by_role("button", name="兑换")).to_be_disabled()
    screenshot(page, "2-over-budget")

    # Eggs: 20 points, at most 4 a month. Three are asked for while, on another phone,
    # two are redeemed: the tap is refused, and the three are still in the field.
    page.goto("/mall/")
    page.get_by_test_id("item-card").filter(has_text=EGGS).click()
    page.fill('input[name="quantity"]', "3")
    site.reserve(volunteer, EGGS, 2)
    page.get_by_role("button", name="兑换").click()
    expect(page.locator(".flash-error")).to_be_visible()
    expect(page.locator("h1")).to_have_text(EGGS)
    expect(page.locator('input[name="quantity"]')).to_have_value("3")
    screenshot(page, "3-refused-quantity-kept")

    page.fill('input[name="quantity"]', "1")
    page.get_by_role("button", name="兑换").click()
    expect(page.get_by_test_id("status")).to_have_text("待领取")
    held = int(page.get_by_test_id("available").inner_text())
    page.get_by_text("取消兑换并退回积分").click()  # the first tap only asks
    expect(page.get_by_text("确定取消这次兑换吗？兑换码将失效，积分退回。")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("待领取")
    screenshot(page, "4-cancel-asks")
    page.get_by_role("button", name="确定取消").click()
    expect(page.get_by_test_id("status")).to_have_text("已取消")
    expect(page.get_by_test_id("available")).to_have_text(str(held + 20))
    screenshot(page, "5-cancelled")


def test_17_the_check_in_button_is_offered_only_when_a_tap_would_work(
        page, site, screen, screenshot):
    sign_in(page, who(screen, "vol11", "vol12"))
    page.goto(site.check_in_link("社区网格巡查"))  # a demo activity of months ago
    expect(page.get_by_test_id("refusal")).to_have_text("签到已在活动结束 30 分钟后关闭。")
    expect(page.get_by_role("button", name="签到")).to_be_disabled()
    screenshot(page, "1-long-over")

    link = site.check_in_link("社区消防安全培训")  # began 20 minutes ago
    page.goto(link)
    page.get_by_role("button", name="签到").click()
    expect(page.locator(".flash-success")).to_contain_text("签到")
    page.goto(link)
    expect(page.get_by_test_id("refusal")).to_have_text("您已经签到过了。")
    expect(page.get_by_role("button", name="签到")).to_be_disabled()
    screenshot(page, "2-already-checked-in")

    page.goto("/check-in/not-a-real-code")
    expect(page.locator("h1")).to_have_text("无法签到")
    expect(page.get_by_test_id("refusal")).to_have_text("签到码无效。")
    screenshot(page, "3-bad-code")


def test_18_history_shows_the_held_points_between_balance_and_available(
        page, site, screen, screenshot):
    volunteer = who(screen, "vol14", "vol15")
    site.reserve(volunteer, EGGS)
    sign_in(page, volunteer)
    available = page.get_by_test_id("available").inner_text()
    expect(page.get_by_test_id("held")).to_have_text("20")
    page.get_by_role("link", name="全部明细").click()
    story = page.get_by_test_id("balance-story")
    expect(story.get_by_test_id("available")).to_have_text(available)
    expect(story.get_by_test_id("held")).to_have_text("−20")
    expect(story.get_by_test_id("posted")).to_have_text(str(int(available) + 20))
    expect(page.get_by_test_id("holds")).to_contain_text(EGGS)
    expect(page.get_by_test_id("holds")).to_contain_text("冻结 −20")
    screenshot(page, "history")


def test_19_signed_up_english_types_one_row_of_tabs_live_code_page_and_favicon(
        chromium, page, site, screen, screenshot):
    volunteer = who(screen, "vol16", "vol17")
    sign_in(page, volunteer)
    page.locator("nav.tabs").get_by_role("link", name="活动").click()
    row = page.locator("ul.rows > li").filter(has_text="周末环境整治志愿服务")
    row.get_by_role("button", name="报名").click()
    badge = page.locator("ul.rows > li").filter(has_text="周末环境整治志愿服务").locator(".badge")
    expect(badge).to_have_text("已报名")
    box = badge.bounding_box()
    assert box["width"] > box["height"] * 1.5, f"已报名 wraps: {box}"
    screenshot(page, "1-signed-up")

    page.locator("footer").get_by_role("link", name="English").click()
    expect(page.locator("main")).to_contain_text("Volunteer service")
    expect(page.locator("main")).to_contain_text("Training")
    expect(page.locator("main")).not_to_contain_text("· 志愿服务")
    expect(page.locator("main")).not_to_contain_text("· 培训")
    tops = page.locator("nav.tabs a").evaluate_all(
        "links => links.map(a => Math.round(a.getBoundingClientRect().top))")
    # Five since the task board joined the volunteer's menu: still one row.
    assert len(tops) == 5 and len(set(tops)) == 1, f"the tabs take several rows: {tops}"
    screenshot(page, "2-english")
    page.locator("footer").get_by_role("link", name="中文").click()

    code, number = site.reserve(volunteer, EGGS)
    page.goto(f"/mall/redemptions/{number}")
    expect(page.get_by_test_id("status")).to_have_text("待领取")
    till = open_tab(chromium, site, screen)
    counter = till.new_page()
    sign_in(counter, site.clerk(MARKET))
    look_up(counter, code)
    counter.get_by_role("button", name="确认已领取").click()
    expect(counter.locator(".flash-success")).to_contain_text(EGGS)
    till.close()
    expect(page.get_by_test_id("status")).to_have_text("已领取")  # no reload by hand
    screenshot(page, "3-collected")

    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/")


def test_every_control_on_the_phone_pages_is_at_least_44px_high(chromium, site):
    context = open_tab(chromium, site, "390")
    page = context.new_page()
    _, number = site.reserve("vol28", EGGS)
    sign_in(page, "vol28")
    problems = {}
    for path in ("/", "/activities", "/mall/", "/mall/items/1", "/mall/redemptions",
                 f"/mall/redemptions/{number}", "/history", "/account"):
        page.goto(path)
        problems.update({f"{path}: {p}": 1 for p in small_tap_targets(page)})
    page.goto("/")
    page.locator("footer").get_by_role("button", name="退出登录").click()
    sign_in(page, site.clerk(NOODLES))
    for path in ("/counter/", "/counter/month", "/counter/statement"):
        page.goto(path)
        problems.update({f"{path}: {p}": 1 for p in small_tap_targets(page)})
    page.screenshot(path=str(SCREENSHOTS / "tap-targets--390--counter.png"), full_page=True)
    context.close()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
@pytest.mark.parametrize("username", ["vol29", "merchant1"])
def test_no_page_reachable_from_the_home_page_is_wider_than_a_360px_phone(
        chromium, site, username, locale):
    """Follow every link from the home page at 360 px: each page answers and fits."""
    site.reserve("vol29", EGGS) if username == "vol29" else None  # a code page to visit
    context = chromium.new_context(viewport={"width": 360, "height": 740}, is_mobile=True,
                                   has_touch=True, device_scale_factor=2, base_url=site.url)
    context.add_cookies([{"name": "lang", "value": locale, "url": site.url}])
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in(page, username)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    queue, seen, variants, problems = ["/"], set(), {}, []
    while queue:
        path = queue.pop(0)
        seen.add(path)
        response = page.goto(path)
        if response.status >= 400:
            problems.append(f"{path}: {response.status}")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
        page.screenshot(path=str(SCREENSHOTS / f"crawl-360--{username}-{locale}--{slug}.png"),
                        full_page=True)
        if width > 360:
            problems.append(f"{path}: {width}px wide")
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            if not href.startswith(site.url):
                continue
            target = href[len(site.url):].split("#")[0] or "/"
            bare = target.split("?")[0]
            if (target in seen or target in queue or re.match(r"^/(lang/|logout)", target)
                    or re.search(r"\.(csv|xlsx|pdf)$", bare) or "format=" in target):
                continue
            variants[bare] = variants.get(bare, 0) + 1
            if variants[bare] <= 2:  # month links lead on without end
                queue.append(target)
    context.close()
    assert len(seen) > 5, seen
    assert not problems, "\n".join(problems)
