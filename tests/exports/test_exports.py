"""Exports: every table as CSV and XLSX, in the user's language, scoped, period-bounded, safe."""

import csv
import io
from datetime import datetime, timedelta

import openpyxl
import pytest

import ledger
from ledger.clock import utcnow
from merchants import redemptions, settlement
from pointsmall.core import cells, files
from pointsmall.core import export_query as query
from pointsmall.earning import activities, awards
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from tests.builders import build_staff, enter_session

ZH_JOURNAL = ["交易编号", "时间", "类型", "摘要", "账户", "资产", "金额", "变动后余额"]
EN_JOURNAL = ["Transaction no.", "Time", "Kind", "Memo", "Ledger account", "Asset", "Amount",
              "Balance after"]
TABLES = ("volunteers", "activities", "attendance", "awards", "redemptions", "statements",
          "journal")
# 2026-04-01 00:00 in Shanghai is 2026-03-31 16:00 UTC (the database keeps naive UTC).
LOCAL_MIDNIGHT = datetime(2026, 3, 31, 16, 0)


def csv_rows(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_data()
    assert body.startswith("\ufeff".encode()), "a BOM, or Excel garbles the Chinese"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def xlsx_rows(answer) -> list[list]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype.endswith("spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(answer.get_data())).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


@pytest.fixture
def place(make_community):
    return make_community("阳光社区")


@pytest.fixture
def other(make_community):
    return make_community("锦华社区")


@pytest.fixture
def staff(client, place):
    user = build_staff(place, name="工作人员")
    enter_session(client, user)
    return user


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, name="王小明", phone="13900001111", points=100)


@pytest.fixture
def awarded(place, staff, volunteer):
    """An activity yesterday with the volunteer present and awarded its points."""
    kind = activity_types(db.session, place.id)[0]
    start = utcnow() - timedelta(days=1)
    activity = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": "河道巡查", "place": "滨江路", "starts_at": start,
        "ends_at": start + timedelta(hours=2), "points": 12, "merit": 7}, by=staff.id)
    activities.mark_present(db.session, activity, [volunteer.id])
    batch = awards.award_activity(db.session, activity, None, key="k", by=staff.id)
    db.session.commit()
    return activity, batch


def test_every_table_is_offered_on_the_exports_page(client, staff):
    page = client.get("/staff/exports?start=2026-01-01&end=2026-01-31").get_data(as_text=True)

    for table in TABLES:
        assert f"/staff/exports/{table}.csv" in page and f"/staff/exports/{table}.xlsx" in page
    assert "/staff/exports/journal.xlsx?start=2026-01-01&amp;end=2026-01-31" in page


@pytest.mark.parametrize("table", TABLES)
def test_every_table_downloads_in_both_formats_with_chinese_headers(client, staff, table):
    as_csv = csv_rows(client.get(f"/staff/exports/{table}.csv"))
    as_xlsx = xlsx_rows(client.get(f"/staff/exports/{table}.xlsx"))

    assert as_csv[0] == as_xlsx[0]
    assert all("\u4e00" <= header[0] <= "\u9fff" for header in as_csv[0]), as_csv[0]


def test_headers_are_chinese_by_default_and_english_for_an_english_user(client, staff):
    chinese = csv_rows(client.get("/staff/exports/journal.csv"))[0]
    client.get("/lang/en")
    english = csv_rows(client.get("/staff/exports/journal.csv"))[0]
    english_xlsx = xlsx_rows(client.get("/staff/exports/journal.xlsx"))[0]

    assert chinese == ZH_JOURNAL
    assert english == english_xlsx == EN_JOURNAL


def test_the_journal_lists_each_posting_of_the_communitys_transactions(
        client, place, staff, volunteer, awarded):
    rows = csv_rows(client.get("/staff/exports/journal.csv"))[1:]

    award = [r for r in rows if r[3] == "河道巡查"]
    assert sorted((r[2], r[4], r[5], r[6]) for r in award) == sorted([
        ("奖励", f"community:{place.id}:issuance:merit", "MERIT", "-7"),
        ("奖励", f"community:{place.id}:issuance:points", "POINTS", "-12"),
        ("奖励", f"volunteer:{volunteer.id}:merit", "MERIT", "7"),
        ("奖励", f"volunteer:{volunteer.id}:points", "POINTS", "12")])
    after = {r[4]: r[7] for r in award}
    assert after[f"volunteer:{volunteer.id}:points"] == "112"  # 100 to start with, then 12
    # An issuance account is striped: no one balance to show after a posting.
    assert after[f"community:{place.id}:issuance:points"] == ""
    assert len({r[0] for r in award}) == 1


def test_the_journal_in_xlsx_keeps_numbers_and_local_times(client, staff, volunteer, awarded):
    rows = xlsx_rows(client.get("/staff/exports/journal.xlsx"))[1:]

    posting = next(r for r in rows if r[4] == f"volunteer:{volunteer.id}:points"
                   and r[3] == "河道巡查")
    assert posting[6] == 12 and isinstance(posting[0], int)
    from pointsmall.core import clock

    assert abs(posting[1] - clock.local_now().replace(tzinfo=None)) < timedelta(minutes=5)


def test_activities_attendance_and_awards_show_what_happened(client, staff, volunteer,
                                                            awarded):
    activity, batch = awarded
    listed = csv_rows(client.get("/staff/exports/activities.csv"))[1:]
    attended = csv_rows(client.get("/staff/exports/attendance.csv"))[1:]
    awarded_rows = csv_rows(client.get("/staff/exports/awards.csv"))[1:]

    assert [(r[0], r[1], r[3], r[7], r[8], r[9], r[10], r[11]) for r in listed] == [
        (str(activity.id), "河道巡查", "滨江路", "12", "7", "否", "1", "1")]
    assert [(r[1], r[3], r[4], r[8], r[9]) for r in attended] == [
        ("河道巡查", "王小明", "13900001111", "是", "工作人员标记")]
    assert [(r[1], r[2], r[4], r[6], r[8], r[9], r[10]) for r in awarded_rows] == [
        (str(batch.id), "已入账", "王小明", "河道巡查", "12", "12", "7")]


def test_redemptions_and_statements_of_the_communitys_merchants(
        client, place, staff, volunteer, make_shop, make_item, redeem):
    shop = make_shop(place, name="老街面馆")
    noodles = make_item(shop, name="牛肉面", price=30)
    long_ago = utcnow() - timedelta(days=40)
    handed = redeem(volunteer, noodles, now=long_ago)
    redemptions.confirm(db.session, shop.id, handed.code, confirmed_by=shop.user.id,
                        now=long_ago)
    settlement.close_period(db.session, shop.id, long_ago - timedelta(days=1),
                            long_ago + timedelta(days=1), fen_per_point=5, closed_by=staff.id)
    db.session.commit()

    sold = csv_rows(client.get("/staff/exports/redemptions.csv"))[1:]
    settled = xlsx_rows(client.get("/staff/exports/statements.xlsx"))[1:]

    assert [(r[2], r[3], r[4], r[6], r[7], r[8]) for r in sold] == [
        ("老街面馆", "牛肉面", "1", "30", "王**", "已领取")]
    assert [(r[1], r[4], r[6], r[7], r[8]) for r in settled] == [
        ("老街面馆", 30, 30, 5, 1.5)]


def test_a_period_runs_from_local_midnight_to_local_midnight_the_end_day_included(
        client, place, staff, volunteer):
    for label, moment in (("before", LOCAL_MIDNIGHT - timedelta(seconds=1)),
                          ("at", LOCAL_MIDNIGHT)):
        ledger.move(db.session, place.community.account("POINTS"), volunteer.account("POINTS"),
                    1, key=f"boundary:{label}", kind="adjustment", memo=label, now=moment)
    db.session.commit()

    def memos(query: str) -> list[str]:
        rows = csv_rows(client.get(f"/staff/exports/journal.csv?{query}"))[1:]
        return sorted({r[3] for r in rows})

    assert memos("start=2026-03-31&end=2026-03-31") == ["before"]
    assert memos("start=2026-04-01&end=2026-04-01") == ["at"]
    assert memos("start=2026-03-31&end=2026-04-01") == ["at", "before"]
    rows = csv_rows(client.get("/staff/exports/journal.csv?start=2026-04-01"))[1:]
    assert {r[1] for r in rows if r[3] == "at"} == {"2026-04-01 00:00:00"}


def test_a_bad_or_reversed_period_is_refused_with_the_field(client, staff):
    bad = client.get("/staff/exports/journal.csv?start=2026-02-30")
    reversed_ = client.get("/staff/exports/journal.xlsx?start=2026-03-02&end=2026-03-01")

    assert bad.status_code == reversed_.status_code == 422
    assert "2026-12-31" in bad.get_data(as_text=True)


def test_staff_of_another_community_get_none_of_its_rows(client, place, other, volunteer,
                                                        awarded, make_admin):
    enter_session(client, build_staff(other, name="乙社区工作人员"))

    for table in TABLES:
        rows = csv_rows(client.get(f"/staff/exports/{table}.csv"))
        sheet = xlsx_rows(client.get(f"/staff/exports/{table}.xlsx"))
        assert rows[1:] == [] and sheet[1:] == [], table
    assert client.get(f"/admin/communities/{place.id}/exports/journal.csv").status_code == 403
    enter_session(client, make_admin())
    assert client.get("/admin/communities/999999/exports/journal.csv").status_code == 404
    rows = csv_rows(client.get(f"/admin/communities/{place.id}/exports/attendance.csv"))
    assert [r[3] for r in rows[1:]] == ["王小明"]


def test_merchant_staff_export_only_their_own_handed_over_redemptions(
        client, place, volunteer, make_shop, make_item, redeem):
    mine, theirs = make_shop(place, name="老街面馆"), make_shop(place, name="爱心超市")
    for shop, name in ((mine, "牛肉面"), (theirs, "大米")):
        redemptions.confirm(db.session, shop.id, redeem(volunteer, make_item(
            shop, name=name, price=10)).code, confirmed_by=shop.user.id)
    redeem(volunteer, make_item(mine, name="还没领的面", price=10))
    db.session.commit()
    enter_session(client, mine.user)

    rows = csv_rows(client.get("/counter/exports/redemptions.csv"))[1:]
    sheet = xlsx_rows(client.get("/counter/exports/statements.xlsx"))

    assert [r[3] for r in rows] == ["牛肉面"]
    assert sheet[1:] == []
    assert client.get("/staff/exports/redemptions.csv").status_code == 403
    assert client.get("/counter/exports/journal.csv").status_code == 404
    assert "/counter/exports/redemptions.xlsx" in client.get("/counter/month").get_data(
        as_text=True)
    page = client.get("/counter/exports").get_data(as_text=True)
    assert "/counter/exports/statements.csv" in page and "/staff/exports" not in page


def test_text_that_a_spreadsheet_would_run_is_neutralised(
        client, place, staff, make_volunteer, make_shop, make_item, redeem):
    hostile = make_volunteer(place, name="=cmd|' /C calc'!A0", points=50)
    shop = make_shop(place, name="@SUM(A1)")
    redemptions.confirm(db.session, shop.id, redeem(hostile, make_item(
        shop, name='=HYPERLINK("http://x")', price=10)).code, confirmed_by=shop.user.id)
    ledger.move(db.session, place.community.account("POINTS"), hostile.account("POINTS"), 1,
                key="hostile", kind="adjustment", memo="-2+3")
    db.session.commit()

    for table in ("volunteers", "redemptions", "journal"):
        for rows in (csv_rows(client.get(f"/staff/exports/{table}.csv")),
                     xlsx_rows(client.get(f"/staff/exports/{table}.xlsx"))):
            # A negative amount is a number (-1), which a spreadsheet reads as one.
            text = [c for row in rows for c in row
                    if isinstance(c, str) and not c.lstrip("-").isdigit()]
            assert not [c for c in text if c.startswith(("=", "+", "-", "@"))], (table, text)
    sheet = openpyxl.load_workbook(io.BytesIO(
        client.get("/staff/exports/redemptions.xlsx").get_data())).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    journal = xlsx_rows(client.get("/staff/exports/journal.xlsx"))
    assert "'-2+3" in [r[3] for r in journal] and -1 in [r[6] for r in journal]


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("＝1", "'＝1"), ("王小明", "王小明"), ("a=b", "a=b"), (None, ""),
    (-5, -5), (0, 0), (True, "True"),
])
def test_a_safe_cell_keeps_numbers_and_defuses_formulas(value, cell):
    assert cells.safe_cell(value) == cell


def test_xlsx_cells_lose_the_control_characters_xml_forbids():
    assert cells.xlsx_value("a\x00b\x1fc\td") == "ab" + "c\td"


def test_a_large_export_streams_chunk_by_chunk_and_misses_no_row(
        client, place, staff, volunteer, monkeypatch):
    for n in range(40):
        ledger.move(db.session, place.community.account("POINTS"), volunteer.account("POINTS"),
                    1, key=f"many:{n}", kind="adjustment", memo=f"第{n}笔")
    db.session.commit()
    monkeypatch.setattr(query, "CHUNK", 7)
    monkeypatch.setattr(files, "ROWS_PER_CHUNK", 5)
    monkeypatch.setattr(query.keyset, "__defaults__", (1, 7))

    answer = client.get("/staff/exports/journal.csv")
    assert answer.is_streamed
    pieces = list(answer.response)
    rows = list(csv.reader(io.StringIO("".join(
        p.decode() if isinstance(p, bytes) else p for p in pieces).lstrip("\ufeff"))))

    assert len(pieces) > 10, "the rows came in one piece"
    memos = [r[3] for r in rows[1:] if r[3].startswith("第")]
    # Each transfer twice (the issuance leg and the volunteer's), in order, none lost or doubled.
    assert memos == [f"第{n}笔" for n in range(40) for _leg in (1, 2)]


def test_the_new_volunteers_export_is_the_list_pages_export(client, staff, volunteer):
    old = client.get("/staff/volunteers/export.csv?status=active").get_data()
    new = client.get("/staff/exports/volunteers.csv?status=active").get_data()

    assert old == new and "王小明".encode() in new
