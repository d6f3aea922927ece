"""Staff import volunteers from CSV or XLSX (all rows or none) and export them as CSV."""

import csv
import io
import re
import time
from datetime import date, datetime

import openpyxl
import pytest
import sqlalchemy as sa

import ledger
from pointsmall.auth.models import User
from pointsmall.extensions import db
from pointsmall.people import importer
from pointsmall.people.models import Volunteer
from tests.builders import (
    audit_actions,
    build_staff,
    csrf_token,
    sign_in,
    text,
    volunteer_count,
)

HEADER_ZH = ["姓名", "手机号", "微网格", "加入日期", "是否上榜"]


def csv_bytes(rows: list[list], *, header: list[str] = HEADER_ZH,
              encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode(encoding)


def upload(client, data: bytes, filename: str = "volunteers.csv", **extra):
    return client.post("/staff/volunteers/import", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename), **extra})


CLEAN_ROWS = [
    ["张伟", "13800000001", "1栋", "2024-03-01", "是"],
    ["李娜", "138 0000 0002", "一网格/2栋", "2023/7/15", "否"],
    ["王芳", "+8613800000003", "2栋", "2022年1月5日", ""],
]


@pytest.fixture
def english(as_staff):
    """The signed-in staff client, with English pages (messages are checked in English)."""
    as_staff.set_cookie("lang", "en")
    return as_staff


def error_rows(response) -> list[tuple[str, str, str]]:
    """Return the (line, column, problem) rows of the import page's error table."""
    table = re.search(r'<table data-testid="import-errors">(.*?)</table>', text(response), re.S)
    assert table, "the page shows no table of problems"
    return [tuple(re.sub(r"<[^>]+>", "", cell).strip()
                  for cell in re.findall(r"<td>(.*?)</td>", row, re.S))
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S) if "<td>" in row]


def xlsx_bytes(rows: list[list], header: list[str] = HEADER_ZH) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in [header, *rows]:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def exported(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 BOM for Excel"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_a_clean_csv_in_each_encoding_imports_every_row(english, place, encoding):
    as_staff = english
    answer = upload(as_staff, csv_bytes(CLEAN_ROWS, encoding=encoding))

    assert answer.status_code == 302
    assert "3 volunteers imported." in text(as_staff.get(answer.headers["Location"]))
    assert volunteer_count(place.id) == 3
    listed = text(as_staff.get("/staff/volunteers?q=李娜"))
    assert "李娜" in listed and "13800000002" in listed
    wang = db.session.scalar(sa.select(Volunteer).join(Volunteer.user)
                             .where(User.phone == "13800000003"))
    assert (wang.grid_id, wang.joined_on, wang.show_on_leaderboard) == (
        place.micro2.id, date(2022, 1, 5), True)
    assert db.session.scalar(sa.select(Volunteer.show_on_leaderboard).join(Volunteer.user)
                             .where(User.name == "李娜")) is False


def test_an_import_writes_one_audit_entry_with_the_count(as_staff, place):
    upload(as_staff, csv_bytes(CLEAN_ROWS))

    [entry] = audit_actions("volunteer.import")
    assert entry.detail["count"] == 3 and entry.community_id == place.id
    assert audit_actions("volunteer.create") == []


def test_imported_volunteers_have_accounts_and_no_usable_password(as_staff, place):
    upload(as_staff, csv_bytes(CLEAN_ROWS[:1]))
    volunteer = db.session.scalar(sa.select(Volunteer).where(Volunteer.community_id == place.id))

    assert volunteer.user.password_hash.startswith("!")
    assert not volunteer.user.check_password("")
    assert ledger.verify(db.session).ok
    assert ledger.balance(db.session, volunteer.account("POINTS")).posted == 0
    assert ledger.balance(db.session, volunteer.account("MERIT")).posted == 0


def test_english_headers_are_accepted(as_staff, place):
    rows = [["Zhang Wei", "13800000011", "1栋", "2024-03-01", "yes"]]
    header = ["name", "phone", "grid", "joined_on", "show_on_leaderboard"]

    answer = upload(as_staff, csv_bytes(rows, header=header))

    assert answer.status_code == 302 and volunteer_count(place.id) == 1


def test_every_bad_row_is_listed_with_its_line_and_nothing_is_imported(
        as_staff, place, make_volunteer):
    make_volunteer(place, name="老会员", phone="13900000000")
    rows = [
        ["好人", "13800000021", "1栋", "2024-03-01", "是"],      # line 2: fine
        ["重复库", "13900000000", "1栋", "2024-03-01", "是"],    # line 3: phone in the DB
        ["重复甲", "13800000022", "1栋", "2024-03-01", "是"],    # line 4: fine itself
        ["重复乙", "13800000022", "1栋", "2024-03-01", "是"],    # line 5: same as line 4
        ["坏号码", "12345", "1栋", "2024-03-01", "是"],          # line 6
        ["", "13800000023", "1栋", "2024-03-01", "是"],          # line 7: empty name
        ["无网格", "13800000024", "火星微网格", "2024-03-01", "是"],  # line 8
        ["坏日期", "13800000025", "1栋", "2024-02-30", "是"],    # line 9
        ["未来", "13800000026", "1栋", "2999-01-01", "是"],      # line 10
        ["上榜?", "13800000027", "1栋", "2024-03-01", "也许"],   # line 11
    ]
    before = volunteer_count()

    answer = upload(as_staff, csv_bytes(rows))

    assert answer.status_code == 422
    problems = error_rows(answer)
    assert [(line, column) for line, column, _ in problems] == [
        ("3", "手机号"), ("5", "手机号"), ("6", "手机号"), ("7", "姓名"), ("8", "微网格"),
        ("9", "加入日期"), ("10", "加入日期"), ("11", "是否上榜")]
    assert "4" in problems[1][2]  # says which line has the same phone
    assert "火星微网格" in problems[4][2]
    assert volunteer_count() == before
    assert audit_actions("volunteer.import") == []


def test_line_numbers_count_blank_rows_as_the_spreadsheet_shows_them(as_staff, place):
    data = csv_bytes([["好人", "13800000031", "1栋", "2024-03-01", "是"], [],
                      ["坏号码", "1380", "1栋", "2024-03-01", "是"]])

    answer = upload(as_staff, data)

    assert [line for line, _, _ in error_rows(answer)] == ["4"]


def test_missing_columns_are_named_in_one_error(english, place):
    answer = upload(english, csv_bytes([["张伟", "1栋"]], header=["姓名", "微网格"]))

    assert answer.status_code == 422
    page = text(answer)
    assert "Missing columns: 手机号 (phone), 加入日期 (joined_on)." in page
    assert 'data-testid="import-errors"' not in page
    assert volunteer_count(place.id) == 0


@pytest.mark.parametrize("data", [
    "姓名,手机号,微网格,加入日期\n张伟,13800000001,1栋,2024-03-01\n".encode("utf-16"),
    bytes(range(256)) * 8,
], ids=["utf-16", "random-bytes"])
def test_a_file_neither_utf8_nor_gbk_is_refused_clearly(english, place, data):
    answer = upload(english, data)

    assert answer.status_code == 422
    assert "The file is neither UTF-8 nor GBK text." in text(answer)
    assert volunteer_count(place.id) == 0


def test_more_than_ten_thousand_rows_are_refused(english, place, app, monkeypatch):
    # Such a file is past the size of a background import: import it in the request here
    # (test_jobs.py runs large imports as jobs).
    monkeypatch.setitem(app.config, "IMPORT_JOB_BYTES", None)
    rows = [[f"志愿者{n}", f"150{n:08d}", "1栋", "2024-03-01", "是"]
            for n in range(importer.MAX_ROWS + 1)]

    answer = upload(english, csv_bytes(rows))

    assert answer.status_code == 422
    assert "The file has more than 10000 rows." in text(answer)
    assert volunteer_count(place.id) == 0


def test_an_upload_over_five_megabytes_gets_413_with_a_clear_message(english, place):
    answer = upload(english, b"x" * (5 * 1024 * 1024 + 1))

    assert answer.status_code == 413
    assert "The file is too large: at most 5 MB can be uploaded at once." in text(answer)
    assert volunteer_count(place.id) == 0


def test_an_xlsx_file_imports_dates_and_numbers_as_typed(as_staff, place):
    rows = [["张伟", 13800000041, "1栋", datetime(2024, 3, 1), "是"],
            ["李娜", "13800000042", "一网格 / 2栋", "2023-07-15", None]]

    answer = upload(as_staff, xlsx_bytes(rows), "名单.xlsx")

    assert answer.status_code == 302
    assert volunteer_count(place.id) == 2
    assert db.session.scalar(sa.select(Volunteer.joined_on).join(Volunteer.user)
                             .where(User.phone == "13800000041")) == date(2024, 3, 1)


def test_an_xlsx_with_bad_rows_lists_them_by_spreadsheet_line(as_staff, place):
    rows = [["张伟", 13800000051, "1栋", datetime(2024, 3, 1), "是"],
            ["", 13800000052, "1栋", datetime(2024, 3, 1), "是"]]

    answer = upload(as_staff, xlsx_bytes(rows), "名单.xlsx")

    assert answer.status_code == 422
    assert error_rows(answer)[0][:2] == ("3", "姓名")


def test_a_file_that_is_no_xlsx_is_refused(english, place):
    answer = upload(english, b"PK\x03\x04 not really a zip", "名单.xlsx")

    assert answer.status_code == 422
    assert "This is not a readable XLSX file." in text(answer)


def test_an_import_goes_into_the_staffs_own_community_only(
        client, place, other_place, no_csrf):
    intruder = build_staff(other_place, username="staff_b")
    sign_in(client, intruder.username)
    rows = [["张伟", "13800000061", "阳光社区的网格", "2024-03-01", "是"]]
    place.micro.name = "阳光社区的网格"
    db.session.commit()

    answer = upload(client, csv_bytes(rows))

    assert answer.status_code == 422
    assert error_rows(answer)[0][1] == "微网格"
    assert volunteer_count(place.id) == 0 and volunteer_count(other_place.id) == 0


def test_a_forged_or_missing_csrf_token_is_refused_and_writes_nothing(client, staff, place):
    assert sign_in(client, staff.username).status_code == 302
    form = text(client.get("/staff/volunteers/import"))
    assert csrf_token(form)

    missing = upload(client, csv_bytes(CLEAN_ROWS))
    forged = upload(client, csv_bytes(CLEAN_ROWS), csrf_token="forged-token")

    assert (missing.status_code, forged.status_code) == (400, 400)
    assert volunteer_count(place.id) == 0
    good = upload(client, csv_bytes(CLEAN_ROWS), csrf_token=csrf_token(form))
    assert good.status_code == 302 and volunteer_count(place.id) == 3


def test_the_template_is_utf8_with_bom_and_chinese_headers(as_staff):
    answer = as_staff.get("/staff/volunteers/import/template.csv")

    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert exported(answer) == [HEADER_ZH]


def test_the_import_page_offers_the_template_and_a_file_field(as_staff):
    page = text(as_staff.get("/staff/volunteers/import"))

    assert 'type="file"' in page and "/staff/volunteers/import/template.csv" in page


def test_an_upload_without_a_file_asks_for_one(as_staff, place):
    answer = as_staff.post("/staff/volunteers/import", data={},
                           content_type="multipart/form-data")

    assert answer.status_code == 422


def test_export_lists_the_volunteers_with_chinese_headers(as_staff, place, make_volunteer):
    make_volunteer(place, name="张伟", phone="13800000071")
    make_volunteer(place, name="李娜", phone="13800000072", grid=place.micro2)

    rows = exported(as_staff.get("/staff/volunteers/export.csv"))

    assert rows[0] == [*HEADER_ZH, "状态"]
    assert sorted(r[:3] for r in rows[1:]) == [["张伟", "13800000071", "一网格 / 1栋"],
                                               ["李娜", "13800000072", "一网格 / 2栋"]]
    assert all(r[3] == "2023-03-01" and r[4] == "是" for r in rows[1:])


def test_export_has_english_headers_after_switching_language(as_staff, place,
                                                             make_volunteer):
    make_volunteer(place, name="张伟", phone="13800000081")
    as_staff.get("/lang/en")

    rows = exported(as_staff.get("/staff/volunteers/export.csv"))

    assert rows[0] == ["name", "phone", "grid", "joined_on", "show_on_leaderboard", "status"]
    assert rows[1][4] == "yes" and rows[1][5] == "Active"


def test_export_honours_the_list_filters(as_staff, place, make_volunteer):
    make_volunteer(place, name="张伟", phone="13800000091")
    make_volunteer(place, name="张强", phone="13800000092", grid=place.micro2)
    make_volunteer(place, name="李娜", phone="13800000093", status="suspended")

    def phones(query: str) -> list[str]:
        answer = as_staff.get(f"/staff/volunteers/export.csv?{query}")
        return sorted(r[1] for r in exported(answer)[1:])

    assert phones("q=张") == ["13800000091", "13800000092"]
    assert phones(f"grid={place.micro2.id}") == ["13800000092"]
    assert phones("status=suspended") == ["13800000093"]
    assert phones("") == ["13800000091", "13800000092", "13800000093"]


def test_export_neutralises_spreadsheet_formulas(as_staff, place, make_volunteer):
    make_volunteer(place, name="=cmd()", phone="13800000101")
    make_volunteer(place, name="@SUM(A1)", phone="13800000102")

    names = sorted(r[0] for r in exported(as_staff.get("/staff/volunteers/export.csv"))[1:])

    assert names == ["'=cmd()", "'@SUM(A1)"]


def test_export_shows_only_the_staffs_own_community(client, place, other_place,
                                                    make_volunteer, no_csrf):
    make_volunteer(place, name="张伟", phone="13800000111")
    make_volunteer(other_place, name="锦华人", phone="13800000112")
    sign_in(client, build_staff(other_place, username="staff_b").username)

    rows = exported(client.get("/staff/volunteers/export.csv"))

    assert [r[0] for r in rows[1:]] == ["锦华人"]


def test_an_exported_file_can_be_imported_again(as_staff, place, make_volunteer):
    make_volunteer(place, name="张伟", phone="13800000121")
    body = as_staff.get("/staff/volunteers/export.csv").get_data()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    rows[1][1] = "13800000122"  # a new phone: the old one is taken

    again = upload(as_staff, csv_bytes(rows[1:], header=rows[0], encoding="utf-8-sig"))

    assert again.status_code == 302 and volunteer_count(place.id) == 2


def test_the_list_page_links_to_import_and_to_the_filtered_export(as_staff, place):
    page = text(as_staff.get("/staff/volunteers?q=张&status=active"))

    assert "/staff/volunteers/import" in page
    assert re.search(r'/staff/volunteers/export\.csv\?[^"]*status=active', page)


def test_an_import_runs_no_query_per_row(app, place, connection):
    def statements(rows: int, first_phone: int) -> int:
        data = csv_bytes([[f"志愿者{n}", str(first_phone + n), "1栋", "2024-03-01", "是"]
                          for n in range(rows)])
        executed = []
        listener = lambda *args: executed.append(args[2])  # noqa: E731
        sa.event.listen(connection, "before_cursor_execute", listener)
        try:
            with app.test_request_context():
                importer.import_volunteers(db.session, place.id, "few.csv", data)
        finally:
            sa.event.remove(connection, "before_cursor_execute", listener)
        return len(executed)

    statements(1, 15100000000)  # the first import also opens a savepoint and so on
    # Up to 500 keys a look-up (250 volunteers with two accounts each), the count is fixed.
    assert statements(20, 15200000000) == statements(250, 15300000000)


def test_five_thousand_rows_import_in_a_few_seconds(app, place):
    rows = [[f"志愿者{n}", f"151{n:08d}", "1栋" if n % 2 else "2栋", "2024-03-01", "是"]
            for n in range(5000)]
    with app.test_request_context():
        started = time.perf_counter()
        created = importer.import_volunteers(db.session, place.id, "big.csv", csv_bytes(rows))
        elapsed = time.perf_counter() - started

    assert len(created) == 5000 and volunteer_count(place.id) == 5000
    print(f"imported 5000 rows in {elapsed:.2f}s")
    assert elapsed < 60


def test_an_import_hands_out_first_sign_in_codes_and_names_the_columns_it_did_not_keep(
        app, as_staff, place):
    data = csv_bytes([["张伟", "13800000001", "1栋", "2024-03-01", "是", "党员"],
                      ["李娜", "13800000002", "2栋", "2023-07-15", "否", ""]],
                     header=[*HEADER_ZH, "备注"])

    answer = upload(as_staff, data, codes="y")

    page = text(answer)
    assert answer.status_code == 200
    assert "未导入的列：备注" in page
    listed = re.findall(r'<tr><td>([^<]+)</td>.*?<code class="first-code">([a-z0-9]+)</code>',
                        page)
    assert sorted(name for name, _code in listed) == ["张伟", "李娜"]
    found = re.search(r"13800000001</td>.*?<code class=\"first-code\">([a-z0-9]+)</code>", page)
    assert sign_in(app.test_client(), "13800000001", found.group(1)).status_code == 302
    assert sign_in(app.test_client(), "13800000002", "wrong-code-1").status_code == 401
    assert [e.detail["count"] for e in audit_actions("volunteer.first_codes")] == [2]
