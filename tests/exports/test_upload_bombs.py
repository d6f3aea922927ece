"""Spreadsheet bombs against every upload: the volunteer import and the sign-in sheet.

Each bomb (see bombs.py) is refused with the page's own message, in Chinese (the default)
and in English, with a 422, and nothing is written. How fast, and in how much memory, is
measured by benchmarks/upload_bombs.py: a test only says what a user sees.
"""

import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from pointsmall.core import clock, uploads
from pointsmall.earning import activities, sheets
from pointsmall.earning.models import Attendance
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from pointsmall.people import importer
from pointsmall.people.models import Volunteer
from tests.builders import enter_session
from tests.exports.bombs import BOMBS

# What each page says, in English, for each reason a bomb is refused.
IMPORT_MESSAGES = {
    "too_many_rows": "The file has more than 10000 rows.",
    "too_many_columns": "The file has more than 256 columns.",
    "too_large": "The file is too large once unpacked.",
    "unreadable": "This is not a readable XLSX file.",
}
SHEET_MESSAGES = {
    "too_many_rows": "At most 10000 rows in one sheet.",
    "too_many_columns": "The file has more than 256 columns.",
    "too_large": "The file is too large once unpacked.",
    "unreadable": "The file is not a readable XLSX workbook.",
}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def bomb_files() -> dict[str, tuple[str, bytes]]:
    return {name: build() for name, (build, _reason) in BOMBS.items()}


@pytest.fixture
def staff_client(app, make_community, make_staff, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    place = make_community()
    staff = make_staff(place)
    client = app.test_client()
    enter_session(client, staff)
    return place, staff, client


@pytest.fixture
def activity(staff_client):
    place, staff, _client = staff_client
    kind = activity_types(db.session, place.id)[0]
    now = clock.utcnow()
    found = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": "河道巡查", "starts_at": now,
        "ends_at": now + timedelta(hours=2)}, by=staff.id)
    db.session.commit()
    return found


def page_text(answer) -> str:
    return answer.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")


def chinese(message: str, reason: str, page) -> str:
    """Return the page's own message for `reason` in Chinese (and check it is Chinese)."""
    with force_locale("zh_CN"):
        words = page._refusal_message(reason, xlsx=True)
    assert CJK.search(words) and words != message, words
    return words


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("bomb", BOMBS, ids=BOMBS.keys())
def test_a_bomb_is_refused_by_the_volunteer_import_and_nothing_is_imported(
        staff_client, bomb_files, bomb, language):
    place, _staff, client = staff_client
    if language == "en":
        client.set_cookie("lang", "en")
    name, data = bomb_files[bomb]
    reason = BOMBS[bomb][1]

    answer = client.post("/staff/volunteers/import", data={"file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")

    message = IMPORT_MESSAGES[reason]
    expected = message if language == "en" else chinese(message, reason, importer)
    assert answer.status_code == 422
    assert expected in page_text(answer), page_text(answer)[-2000:]
    assert not db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer).where(
        Volunteer.community_id == place.id))


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("bomb", BOMBS, ids=BOMBS.keys())
def test_a_bomb_is_refused_as_a_sign_in_sheet_and_nobody_is_marked_present(
        staff_client, activity, bomb_files, bomb, language):
    _place, _staff, client = staff_client
    if language == "en":
        client.set_cookie("lang", "en")
    name, data = bomb_files[bomb]
    reason = BOMBS[bomb][1]

    answer = client.post(f"/staff/activities/{activity.id}/sheet",
                         data={"file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")

    message = SHEET_MESSAGES[reason]
    expected = message if language == "en" else chinese(message, reason, sheets)
    assert answer.status_code == 422
    assert expected in page_text(answer), page_text(answer)[-2000:]
    assert not db.session.scalars(sa.select(Attendance).where(
        Attendance.activity_id == activity.id)).all()


def test_a_sheet_within_bounds_is_read_whole_with_its_blank_lines():
    data = ("手机号\r\n13900000001\r\n\r\n13900000002\r\n").encode("gbk")

    lines = list(uploads.sheet_lines("名单.csv", data, uploads.Bounds(lines=4)))

    assert lines == [(1, ["手机号"]), (2, ["13900000001"]), (3, []), (4, ["13900000002"])]


@pytest.mark.parametrize("lines, columns, reason", [
    (3, 5, "too_many_rows"), (4, 1, "too_many_columns")])
def test_a_sheet_one_past_its_bounds_is_refused(lines, columns, reason):
    data = "手机号,姓名\r\n13900000001,张三\r\n\r\n13900000002,李四\r\n".encode()

    with pytest.raises(uploads.SheetRefused) as refusal:
        list(uploads.sheet_lines("名单.csv", data, uploads.Bounds(lines=lines,
                                                                columns=columns)))

    assert refusal.value.reason == reason


def test_an_xlsx_packed_with_lzma_is_refused_before_it_is_unpacked():
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")

    with pytest.raises(uploads.SheetRefused) as refusal:
        list(uploads.sheet_lines("a.xlsx", buffer.getvalue(), uploads.Bounds(lines=10)))

    assert refusal.value.reason == "unreadable"
