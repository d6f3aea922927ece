"""The printable monthly report: the month's figures on an A4 page and in a PDF, for staff
of the community and for admins, in Chinese or English.

The seeded community, in Asia/Shanghai local time (2026):
  Jan 20  C awarded 50
  Feb 10  A awarded 500
  Mar  5  A awarded 300; Mar 12 A redeems 2 bowls (60), handed over; Mar 13 one more (30),
          handed over and refunded on Mar 20; Mar 25 100 of A's points expire;
          Mar 31 23:59 B awarded 200 (still March)
  Apr  1  00:00 B awarded 70 (April)
So March: issued 500, redeemed 60, expired 100, outstanding 550 -> 890; the year to the
end of March: issued 1,050, redeemed 60, expired 100, 0 -> 890; held now 960.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

import ledger
from merchants import redemptions
from pointsmall.core import clock
from pointsmall.earning import activities, awards
from pointsmall.earning.rules import activity_types, ensure_rules
from pointsmall.extensions import db
from pointsmall.people.communities import expired_address
from pointsmall.reports import monthly
from tests.builders import (
    build_admin,
    build_community,
    build_staff,
    build_volunteer,
    enter_session,
    pdf_text,
)


def local(text: str) -> datetime:
    """The naive-UTC moment of a local (Asia/Shanghai) time written 'YYYY-MM-DD HH:MM'."""
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=clock.zone())
    return moment.astimezone(UTC).replace(tzinfo=None)


def now() -> str:
    return clock.local_now().strftime("%Y-%m-%d %H:%M")


@dataclass
class Seeded:
    place: object
    staff: object
    a: object
    b: object
    c: object
    shop: object


def award_at(place, staff, volunteer, points: int, when: str) -> None:
    """Award through a batch that waits for approval, posted at a local moment."""
    kind = activity_types(db.session, place.id)[0]
    ensure_rules(db.session, place.id).approval_points = 0  # every batch waits: post it below
    batch = awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, points, points)],
                                key=f"report:{volunteer.id}:{when}", by=staff.id,
                                title="河道巡查", type_code=kind.code)
    awards.post_batch(db.session, batch, now=local(when))
    db.session.commit()


def hand_over(shop, redemption, when: str):
    done = redemptions.confirm(db.session, shop.id, redemption.code, confirmed_by=shop.user.id,
                               now=local(when))
    db.session.commit()
    return done


@pytest.fixture
def seeded(app, make_shop, make_item, redeem) -> Seeded:
    place = build_community("阳光社区")
    staff = build_staff(place, name="工作人员张")
    a, b, c = (build_volunteer(place, name=name) for name in ("张三", "李四", "王五"))
    award_at(place, staff, c, 50, "2026-01-20 10:00")
    award_at(place, staff, a, 500, "2026-02-10 10:00")
    award_at(place, staff, a, 300, "2026-03-05 10:00")
    shop = make_shop(place, name="老街牛肉面")
    noodles = make_item(shop, name="招牌牛肉面", price=30, stock=10, category="food")
    hand_over(shop, redeem(a, noodles, 2, now=local("2026-03-12 12:00")), "2026-03-12 12:10")
    refunded = hand_over(shop, redeem(a, noodles, 1, now=local("2026-03-13 12:00")),
                         "2026-03-13 12:10")
    redemptions.refund(db.session, refunded.id, reason="做错了", merchant_id=shop.id,
                       now=local("2026-03-20 09:00"))
    ledger.open_account(db.session, expired_address(place.id), "POINTS")
    ledger.move(db.session, a.account("POINTS"), expired_address(place.id), 100,
                key=f"report:expire:{a.id}", kind="expiry", now=local("2026-03-25 00:30"))
    award_at(place, staff, b, 200, "2026-03-31 23:59")
    award_at(place, staff, b, 70, "2026-04-01 00:00")
    b.joined_on = date(2026, 3, 15)
    kind = activity_types(db.session, place.id)[0]
    held = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": "垃圾分类宣传", "starts_at": local("2026-03-08 09:00"),
        "ends_at": local("2026-03-08 11:00")}, by=staff.id)
    activities.mark_present(db.session, held, [a.id, b.id])
    db.session.commit()
    return Seeded(place, staff, a, b, c, shop)


def page_of(client, user, url: str):
    enter_session(client, user)
    return client.get(url)


def row(page: str, name: str) -> list[str]:
    """The cells of a table row marked data-row=name."""
    found = re.search(rf'<tr data-row="{name}">(.*?)</tr>', page, re.S)
    assert found, f"no row {name}"
    return re.findall(r"<td>([^<]*)</td>", found.group(1))


def test_the_page_shows_the_months_points_and_the_year_to_date(client, seeded):
    answer = page_of(client, seeded.staff, "/staff/reports/monthly?month=2026-03")

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "阳光社区" in page and "2026-03" in page
    assert row(page, "issued") == ["500", "1,050"]
    assert row(page, "redeemed") == ["60", "60"]
    assert row(page, "expired") == ["100", "100"]
    assert row(page, "outstanding") == ["890", "890"]
    assert "(550 → 890)" in page
    assert 'data-check="reconciled"' in page and "960" in page


def test_an_award_at_2359_on_the_last_day_counts_in_that_month_and_one_at_midnight_does_not(
        client, seeded):
    enter_session(client, seeded.staff)

    march = client.get("/staff/reports/monthly?month=2026-03").get_data(as_text=True)
    april = client.get("/staff/reports/monthly?month=2026-04").get_data(as_text=True)

    assert row(march, "issued")[0] == "500"
    assert row(april, "issued")[0] == "70"


def test_the_page_counts_people_activities_redemptions_and_what_waits(client, seeded):
    kind = activity_types(db.session, seeded.place.id)[0]
    awards.create_batch(db.session, seeded.place.id, [awards.Line(seeded.c.id, 9000, 0)],
                        key="report:waiting", by=seeded.staff.id, title="大额", type_code=kind.code)
    db.session.commit()

    page = page_of(client, seeded.staff, "/staff/reports/monthly?month=2026-03").get_data(
        as_text=True)

    volunteers = re.search(r'data-testid="volunteers">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", volunteers) == ["3", "1", "2", "3"]
    held = re.search(r'data-testid="activities">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", held) == ["1", "2"]
    merchants = re.search(r'data-testid="by-merchant">(.*?)</table>', page, re.S).group(1)
    assert "老街牛肉面" in merchants and re.findall(r"<td>([^<]*)</td>", merchants) == ["1", "60"]
    waiting = re.search(r'data-testid="waiting">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", waiting)[:2] == ["1", "9,000"]


def test_top_volunteers_who_opted_out_are_masked(client, seeded):
    hidden = build_volunteer(seeded.place, name="赵隐身")
    award_at(seeded.place, seeded.staff, hidden, 5000, now())
    hidden.show_on_leaderboard = False
    db.session.commit()

    page = page_of(client, seeded.staff, "/staff/reports/monthly?month=2026-03").get_data(
        as_text=True)

    top = re.search(r'data-testid="top">(.*?)</table>', page, re.S).group(1)
    assert "赵**" in top and "赵隐身" not in page


def test_without_a_month_the_report_is_of_the_last_complete_month(client, seeded):
    expected = monthly.previous_month(clock.local_today()).strftime("%Y-%m")

    page = page_of(client, seeded.staff, "/staff/reports/monthly").get_data(as_text=True)

    assert f"<strong>{expected}</strong>" in page


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March", "2026-03-01", "1999-12",
                                   "2999-01", "２０２６-03"])
def test_a_bad_month_is_refused_with_a_clear_message_and_nothing_else(client, seeded, month):
    enter_session(client, seeded.staff)

    for url in ("/staff/reports/monthly", "/staff/reports/monthly.pdf"):
        answer = client.get(url, query_string={"month": month})

        page = answer.get_data(as_text=True)
        assert answer.status_code == 422
        assert "2026-03" in page  # the message shows how a month is written
        assert "阳光社区" not in page and "1,050" not in page


def test_english_headers_when_the_language_is_english(client, seeded):
    enter_session(client, seeded.staff)
    client.get("/lang/en?next=/")

    page = client.get("/staff/reports/monthly?month=2026-03").get_data(as_text=True)
    pdf = client.get("/staff/reports/monthly.pdf?month=2026-03")

    assert "Monthly report" in page and "Year to date" in page and "Issued" in page
    assert "月度报表" not in page and "本年累计" not in page
    text = pdf_text(pdf.data)
    assert "Monthlyreport" in text and "Yeartodate" in text
    assert "月度报表" not in text and "本年累计" not in text


def test_the_pdf_is_a_pdf_with_the_figures_in_chinese(client, seeded):
    answer = page_of(client, seeded.staff, "/staff/reports/monthly.pdf?month=2026-03")

    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF")
    text = pdf_text(answer.data)
    assert "月度报表" in text and "阳光社区" in text and "2026-03" in text
    assert "1,050" in text and "890" in text and "老街牛肉面" in text


def test_a_character_the_font_lacks_prints_as_a_placeholder_not_an_error(client, seeded):
    rare = build_volunteer(seeded.place, name="王喆😀")
    award_at(seeded.place, seeded.staff, rare, 9000, now())

    answer = page_of(client, seeded.staff, "/staff/reports/monthly.pdf?month=2026-03")

    assert answer.status_code == 200
    assert "王□□" in pdf_text(answer.data)


def test_staff_of_another_community_see_their_own_report_and_none_of_this_one(client, seeded):
    other = build_staff(build_community("锦华社区"))

    page = page_of(client, other, "/staff/reports/monthly?month=2026-03").get_data(as_text=True)
    refused = client.get(f"/admin/communities/{seeded.place.id}/reports/monthly?month=2026-03")
    pdf = client.get("/staff/reports/monthly.pdf?month=2026-03")

    assert "锦华社区" in page and "阳光社区" not in page and "老街牛肉面" not in page
    assert row(page, "issued") == ["0", "0"]
    assert refused.status_code == 403 and "阳光社区" not in refused.get_data(as_text=True)
    assert "阳光社区" not in pdf_text(pdf.data)


def test_an_admin_sees_any_community_and_a_404_for_an_unknown_one(client, seeded):
    admin = build_admin()
    enter_session(client, admin)

    page = client.get(f"/admin/communities/{seeded.place.id}/reports/monthly?month=2026-03")
    pdf = client.get(f"/admin/communities/{seeded.place.id}/reports/monthly.pdf?month=2026-03")
    unknown = client.get("/admin/communities/987654/reports/monthly")
    unknown_pdf = client.get("/admin/communities/987654/reports/monthly.pdf")
    as_staff = client.get("/staff/reports/monthly")

    assert page.status_code == 200 and row(page.get_data(as_text=True), "issued")[0] == "500"
    assert "阳光社区" in pdf_text(pdf.data)
    assert unknown.status_code == 404 and unknown_pdf.status_code == 404
    assert as_staff.status_code == 403


def test_the_page_prints_on_a4_without_the_shell(client, seeded):
    page = page_of(client, seeded.staff, "/staff/reports/monthly?month=2026-03").get_data(
        as_text=True)
    css = client.get("/static/css/report.css").get_data(as_text=True)

    assert "css/report.css" in page
    printing = css[css.index("@media print"):]
    assert "size: A4" in printing
    assert re.search(r"\.bar, \.tabs, footer[^{]*\{ display: none", printing)
    assert "break-inside: avoid" in printing and "http" not in css


def test_the_exports_pages_link_to_the_report(client, seeded):
    admin = build_admin()

    staff_page = page_of(client, seeded.staff, "/staff/exports").get_data(as_text=True)
    admin_page = page_of(client, admin, f"/admin/communities/{seeded.place.id}/exports").get_data(
        as_text=True)

    assert 'href="/staff/reports/monthly"' in staff_page
    assert f'href="/admin/communities/{seeded.place.id}/reports/monthly"' in admin_page
