"""Hostile input: markup in names, SQL in search boxes, odd JSON, files that are not what
they claim, and formulas in exported cells. Nothing runs, nothing crashes, nothing leaks."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from merchants import redemptions
from pointsmall.core import clock
from pointsmall.core.cells import FORMULA_START
from pointsmall.earning import activities, awards
from pointsmall.earning.models import Attendance
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from pointsmall.market.actions import redeemer_for
from tests.builders import bearer, enter_session

SCRIPT = '<script>alert("x")</script>'
IMG = "<img src=x onerror=alert(1)>"


def page_of(client, user, url: str, method: str = "GET", **kwargs) -> str:
    enter_session(client, user)
    answer = client.open(url, method=method, **kwargs)
    assert answer.status_code < 500, answer.get_data(as_text=True)
    return answer.get_data(as_text=True)


def assert_escaped(page: str, *payloads: str) -> None:
    for payload in payloads:
        assert payload not in page, f"{payload} reached the page unescaped"
    assert "&lt;script&gt;" in page or "&lt;img" in page, "the check proves nothing"


@pytest.fixture
def hostile(make_community, make_staff, make_volunteer, make_shop, make_item, make_admin):
    """A community whose every name a person typed is markup."""
    place = make_community(f"社区{IMG}")
    staff = make_staff(place)
    volunteer = make_volunteer(place, name=SCRIPT, points=500)
    shop = make_shop(place, name=f"面馆{IMG}")
    item = make_item(shop, name=f"面{SCRIPT}", description=f"描述{IMG}{SCRIPT}", price=10)
    kind = activity_types(db.session, place.id)[0]
    now = clock.utcnow()
    activity = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": f"活动{SCRIPT}", "starts_at": now,
        "ends_at": now + timedelta(hours=2)},
        by=staff.id)
    awards.adjust(db.session, place.id, volunteer.id, 5, reason=f"理由{SCRIPT}",
                  key="hostile-adjust")
    redemption = redemptions.reserve(db.session, redeemer_for(volunteer), item.id, 1,
                                     key="hostile-redeem")
    db.session.commit()
    return {"place": place, "staff": staff, "volunteer": volunteer, "shop": shop,
            "item": item, "activity": activity, "redemption": redemption,
            "admin": make_admin()}


def test_markup_in_names_descriptions_and_reasons_renders_as_text(app, hostile, no_csrf):
    h = hostile
    staff_pages = ["/", "/staff/volunteers", f"/staff/volunteers/{h['volunteer'].id}",
                   "/staff/activities", f"/staff/activities/{h['activity'].id}",
                   "/staff/market/", f"/staff/market/items/{h['item'].id}",
                   "/staff/market/redemptions", "/staff/grids", "/staff/awards"]
    volunteer_pages = ["/", "/history", "/activities", "/mall/", f"/mall/items/{h['item'].id}",
                       "/mall/redemptions", f"/mall/redemptions/{h['redemption'].id}"]
    for user, urls in ((h["staff"], staff_pages), (h["volunteer"].user, volunteer_pages)):
        for url in urls:
            page = page_of(app.test_client(), user, url)
            assert SCRIPT not in page and IMG not in page, url
    assert_escaped(page_of(app.test_client(), h["volunteer"].user,
                           f"/mall/items/{h['item'].id}"), SCRIPT, IMG)
    assert_escaped(page_of(app.test_client(), h["volunteer"].user, "/history"), SCRIPT)
    assert_escaped(page_of(app.test_client(), h["admin"], "/admin/communities"), IMG)
    looked = page_of(app.test_client(), h["shop"].user, "/counter/lookup", "POST",
                     data={"code": h["redemption"].code})
    assert_escaped(looked, SCRIPT)


def test_markup_in_a_flashed_message_renders_as_text(app, hostile, no_csrf):
    client = app.test_client()
    enter_session(client, hostile["shop"].user)

    client.post("/counter/confirm", data={"code": hostile["redemption"].code})
    page = client.get("/counter/").get_data(as_text=True)

    assert_escaped(page, SCRIPT)


SQL = ["' OR '1'='1", "'; DROP TABLE users; --", '" OR ""="', "%", "_", "\\", "%' --",
       "' UNION SELECT password_hash FROM users --", "1; SELECT pg_sleep(5)", "😀", "\x00"]


@pytest.mark.parametrize("needle", SQL, ids=repr)
def test_sql_in_every_search_box_is_a_plain_search(app, hostile, make_volunteer, needle):
    h = hostile
    make_volunteer(h["place"], name="百分之百%_")
    staff_api = bearer(h["staff"])
    pages = [(h["staff"], f"/staff/volunteers?q={needle}"),
             (h["staff"], f"/staff/volunteers?status={needle}"),
             (h["staff"], f"/staff/market/redemptions?status={needle}"),
             (h["staff"], f"/staff/awards?status={needle}"),
             (h["admin"], f"/admin/audit?action={needle}&actor={needle}"),
             (h["volunteer"].user, f"/mall/?category={needle}&merchant={needle}"),
             (h["shop"].user, f"/counter/month?month={needle}"),
             (h["shop"].user, f"/counter/statement?start={needle}&end={needle}")]
    for user, url in pages:
        client = app.test_client()
        enter_session(client, user)
        answer = client.get(url, query_string=None)
        assert answer.status_code in (200, 422), (url, answer.status_code)
    found = app.test_client().get("/api/v1/volunteers", query_string={"q": needle},
                                  headers=staff_api)
    assert found.status_code in (200, 422)
    if needle in ("%", "_") and found.status_code == 200:
        assert [v["name"] for v in found.get_json()["items"]] == ["百分之百%_"]
    if needle.startswith("'") and found.status_code == 200:
        assert found.get_json()["items"] == []  # no injected "OR true" lists everyone


def test_sql_in_a_typed_code_and_a_sign_in_name_is_only_a_wrong_one(app, hostile, no_csrf):
    client = app.test_client()
    enter_session(client, hostile["shop"].user)
    for needle in SQL[:4]:
        looked = client.post("/counter/lookup", data={"code": needle})
        assert looked.status_code == 404, needle
    for needle in SQL[:4]:
        answer = app.test_client().post("/login", data={"login": needle, "password": needle})
        assert answer.status_code == 401, needle


@pytest.mark.parametrize("body, status", [
    (b"{", 400),
    (b"\xff\xfe{}", 400),
    (b"[1, 2, 3]", 422),
    (b'"just a string"', 422),
    (b"null", 422),
    (b'{"volunteer_id": 1e400, "points": 5, "reason": "x"}', 422),
    (b'{"volunteer_id": 99999999999999999999999, "points": 5, "reason": "x"}', 422),
    (b'{"volunteer_id": 1, "points": NaN, "reason": "x"}', 422),
    (b'{"volunteer_id": 1, "points": 5, "reason": "' + b"x" * 100_000 + b'"}', 422),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, 400),
], ids=["truncated", "not utf-8", "a list", "a string", "null", "a huge float",
        "a huge integer", "NaN", "a 100 kB reason", "nested lists", "nested objects"])
def test_malformed_or_odd_json_is_refused_in_the_error_format(app, hostile, body, status):
    headers = {**bearer(hostile["staff"]), "Idempotency-Key": "odd-json",
               "Content-Type": "application/json"}

    answer = app.test_client().post("/api/v1/staff/adjustments", data=body, headers=headers)

    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    assert set(answer.get_json()) == {"code", "message", "errors"}


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(app, hostile):
    headers = {**bearer(hostile["staff"]), "Content-Type": "application/json"}
    body = b'{"name": "' + b"x" * (6 * 1024 * 1024) + b'"}'

    answer = app.test_client().post("/api/v1/staff/activities", data=body, headers=headers)

    assert answer.status_code == 413
    assert answer.get_json()["code"] == "request_entity_too_large"


def png_bomb(side: int = 6_000) -> bytes:
    """A small PNG that decompresses into side x side pixels."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data", [
    ("photo.jpg", b"not an image at all"),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
    ("photo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("bomb.png", None),
], ids=["text", "broken png", "svg with script", "decompression bomb"])
def test_a_photo_that_is_no_image_or_a_bomb_is_refused(app, hostile, no_csrf, name, data):
    h = hostile
    data = png_bomb() if data is None else data
    client = app.test_client()
    enter_session(client, h["staff"])
    form = {"merchant_id": str(h["shop"].id), "name": "新的商品", "category": "food",
            "price": "8", "min_tier": "", "active": "y",
            "photo": (io.BytesIO(data), name)}

    answer = client.post(f"/staff/market/items/{h['item'].id}", data=form,
                         content_type="multipart/form-data")

    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    db.session.expire_all()
    assert db.session.get(type(h["item"]), h["item"].id).photo is None


def xlsx_of_many_rows(rows: int = 12_000) -> bytes:
    """An XLSX with more rows than a sheet may have: small zipped, large unzipped."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["手机号"])
    for _ in range(rows):
        sheet.append(["13900000000"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data", [
    ("sheet.xlsx", b"PK\x03\x04 not really a zip"),
    ("sheet.xlsx", None),
    ("sheet.csv", "手机号\n139\x0000\n".encode()),
    ("sheet.csv", b"\xff\xfe\x00\x00binary"),
], ids=["broken xlsx", "xlsx of too many rows", "csv with NUL", "binary"])
def test_a_sign_in_sheet_that_is_broken_or_huge_is_refused(app, hostile, no_csrf, name, data):
    h = hostile
    data = xlsx_of_many_rows() if data is None else data
    client = app.test_client()
    enter_session(client, h["staff"])

    answer = client.post(f"/staff/activities/{h['activity'].id}/sheet",
                         data={"file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")

    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert not db.session.scalars(sa.select(Attendance).where(
        Attendance.activity_id == h["activity"].id)).all(), "nobody was marked present"


def test_a_sign_in_sheet_over_its_row_limit_is_refused_by_its_size(app, hostile, monkeypatch):
    from pointsmall.core.errors import ValidationFailed
    from pointsmall.earning import sheets

    monkeypatch.setattr(sheets, "MAX_ROWS", 10)
    with pytest.raises(ValidationFailed) as refusal:
        sheets._sheet_rows("sheet.xlsx", xlsx_of_many_rows(5_000))

    assert refusal.value.errors == {"file": ["每张表最多 10 行。"]}  # Chinese, the default


def test_a_volunteer_import_that_is_a_zip_bomb_is_refused(app, hostile, no_csrf):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<" + "a" * 50_000_000 + ">")
    client = app.test_client()
    enter_session(client, hostile["staff"])

    answer = client.post("/staff/volunteers/import",
                         data={"file": (io.BytesIO(buffer.getvalue()), "v.xlsx")},
                         content_type="multipart/form-data")

    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]


FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"x\")", "＝1+1"]


def test_the_counter_statement_file_defuses_formulas(app, make_community, make_volunteer,
                                                     make_shop, make_item, no_csrf):
    place = make_community()
    shop = make_shop(place)
    for n, formula in enumerate(FORMULAS):
        item = make_item(shop, name=f"{formula}", price=10)
        volunteer = make_volunteer(place, name=formula, points=100)
        found = redemptions.reserve(db.session, redeemer_for(volunteer), item.id, 1,
                                    key=f"formula-{n}")
        redemptions.confirm(db.session, shop.id, found.code, confirmed_by=shop.user.id)
    db.session.commit()
    client = app.test_client()
    enter_session(client, shop.user)

    answer = client.get("/counter/statement?format=csv")

    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 1 + len(FORMULAS)
    dangerous = [c for c in cells if c.startswith(FORMULA_START)]
    assert not dangerous, dangerous
    assert all(row[-1] == "10" for row in rows[1:]), "points stay numbers"


def test_the_volunteer_export_defuses_formulas(app, make_community, make_staff,
                                               make_volunteer):
    place = make_community()
    staff = make_staff(place)
    for formula in FORMULAS:
        make_volunteer(place, name=formula)
    client = app.test_client()
    enter_session(client, staff)

    answer = client.get("/staff/volunteers/export.csv")

    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    names = [row[0] for row in rows[1:]]
    assert len(names) == len(FORMULAS)
    assert all(name.startswith("'") for name in names), names


def test_the_api_answers_markup_as_json_never_as_a_page(app, hostile):
    answer = app.test_client().get("/api/v1/items", headers=bearer(hostile["volunteer"].user))

    assert answer.mimetype == "application/json"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert any(SCRIPT in item["name"] for item in json.loads(answer.data)["items"])
