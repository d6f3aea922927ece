"""Dashboards: figures from the ledger that reconcile, local month boundaries, who sees what."""

import re
from datetime import date, datetime

import pytest
import sqlalchemy as sa

import ledger
from merchants import redemptions
from pointsmall.core.clock import local_today
from pointsmall.earning import awards
from pointsmall.extensions import db
from pointsmall.people.communities import expired_address
from pointsmall.reports import charts, figures
from pointsmall.reports.models import LedgerCheck, record_check
from tests.builders import enter_as, serial


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def award(place, volunteer, points, when, merit=0):
    legs = [ledger.Leg(place.community.account("POINTS"), -points),
            ledger.Leg(volunteer.account("POINTS"), points)]
    if merit:
        legs += [ledger.Leg(place.community.account("MERIT"), -merit),
                 ledger.Leg(volunteer.account("MERIT"), merit)]
    tx = ledger.transfer(db.session, legs, key=f"test:award:{serial()}", kind="award", now=when)
    db.session.commit()
    return tx


def held_points(place) -> int:
    return db.session.scalar(
        sa.select(sa.func.sum(ledger.Balance.posted))
        .join(ledger.Account, ledger.Account.id == ledger.Balance.account_id)
        .where(ledger.Account.scope == f"community:{place.id}",
               ledger.Account.asset_code == "POINTS"))


@pytest.fixture
def history(make_community, make_volunteer, make_shop, make_item, redeem):
    """A community's autumn: awards, a reversal, adjustments, redemptions, a refund, expiry.

    Local (Asia/Shanghai) times: 16:00 UTC is midnight of the next local day.
    """
    place = make_community()
    ann, bob = make_volunteer(place, name="王芳"), make_volunteer(place, name="李强")
    shop = make_shop(place, name="社区爱心超市")
    rice = make_item(shop, name="大米 5kg", price=40, stock=10, category="grocery")
    # September: 100 + 60 awarded, the 60 reversed in October.
    award(place, ann, 100, datetime(2026, 9, 10, 2, 0))
    mistake = award(place, bob, 60, datetime(2026, 9, 30, 15, 59, 59))  # 23:59:59 local
    # October: 1 October 00:00:00 local.
    award(place, bob, 80, datetime(2026, 9, 30, 16, 0, 0))
    ledger.reverse(db.session, mistake.id, key=f"test:rev:{serial()}",
                   now=datetime(2026, 10, 2, 3, 0))
    awards.adjust(db.session, place.id, ann.id, 15, reason="补录", key=f"a{serial()}",
                  now=datetime(2026, 10, 3, 3, 0))
    awards.adjust(db.session, place.id, bob.id, -5, reason="多发", key=f"a{serial()}",
                  now=datetime(2026, 10, 3, 4, 0))
    # November: two rice redemptions by ann (80), one refunded; bob's 20 expire.
    first = redeem(ann, rice, now=datetime(2026, 11, 5, 2, 0))
    second = redeem(ann, rice, now=datetime(2026, 11, 5, 2, 5))
    for found in (first, second):
        redemptions.confirm(db.session, shop.id, found.code, confirmed_by=shop.user.id,
                            now=datetime(2026, 11, 5, 3, 0))
    redemptions.refund(db.session, second.id, reason="质量问题", merchant_id=shop.id,
                       now=datetime(2026, 11, 6, 3, 0))
    ledger.move(db.session, bob.account("POINTS"), expired_address(place.id), 20,
                key=f"test:exp:{serial()}", kind="expiry", now=datetime(2026, 11, 30, 15, 0))
    db.session.commit()
    return place, ann, bob, shop


MONTHS = [date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)]


def test_points_by_month_reconcile_with_what_volunteers_hold(history):
    place, ann, bob, _shop = history
    rows = figures.points_by_month(db.session, [place.id], MONTHS)[place.id]
    got = [(r.month, r.issued, r.redeemed, r.expired, r.outstanding) for r in rows]
    assert got == [
        (date(2026, 9, 1), 160, 0, 0, 160),
        # 80 awarded, 60 reversed, +15 and -5 adjusted.
        (date(2026, 10, 1), 30, 0, 0, 190),
        # 80 redeemed less 40 refunded; 20 expired.
        (date(2026, 11, 1), 0, 40, 20, 130),
    ]
    for r in rows:
        assert r.other == 0
    # The last month's outstanding is what the accounts hold, point for point.
    ann_points = ledger.balance(db.session, ann.account("POINTS")).posted
    bob_points = ledger.balance(db.session, bob.account("POINTS")).posted
    assert ann_points + bob_points == 130 == held_points(place)
    check = figures.reconciliation(db.session, [place.id])[place.id]
    assert (check.issued, check.redeemed, check.expired, check.outstanding, check.held) == (
        190, 40, 20, 130, 130)
    assert check.ok


def test_the_community_dashboard_shows_the_month_and_the_reconciliation(
        client, history, make_staff):
    place, *_ = history
    record_check(db.session, ledger.verify(db.session))
    db.session.commit()
    page = enter_as(client, make_staff(place)).get("/staff/dashboard?month=2026-11")
    assert page.status_code == 200
    text = text_of(page)
    assert "0 points issued 40 points redeemed 20 points expired 130 points outstanding" in text
    assert ("All time: issued 190 − redeemed 40 − expired 20 = outstanding 130, what "
            "volunteers hold.") in text
    assert "Ledger verified clean" in text
    assert "do not reconcile" not in text
    # The chart's numbers, one tap away.
    html = page.get_data(as_text=True)
    assert '<svg class="chart"' in html
    assert "<td>2026-10</td><td>30</td><td>0</td><td>0</td><td>190</td>" in html
    # Redemptions of the month by merchant and by category.
    assert "社区爱心超市" in text and "Groceries" in text


def test_the_month_boundary_is_local_midnight(client, history, make_staff):
    place, *_ = history
    staff = enter_as(client, make_staff(place))
    september = text_of(staff.get("/staff/dashboard?month=2026-09"))
    october = text_of(staff.get("/staff/dashboard?month=2026-10"))
    # The award at 23:59:59 on 30 September counts in September, the one a second later
    # in October.
    assert "160 points issued" in september
    assert "30 points issued" in october


def test_figures_show_with_a_warning_until_a_clean_verify_is_on_record(
        client, history, make_staff, app):
    place, *_ = history
    db.session.execute(sa.delete(LedgerCheck))
    db.session.commit()
    staff = enter_as(client, make_staff(place))
    assert "has not been verified yet" in text_of(staff.get("/staff/dashboard"))
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "Ledger verified clean" in text_of(staff.get("/staff/dashboard"))
    # A tampered flow: verify names it, and both the banner and the reconciliation warn.
    db.session.execute(sa.update(ledger.Flow).where(
        ledger.Flow.scope == f"community:{place.id}", ledger.Flow.kind == "expiry")
        .values(debits=ledger.Flow.debits + 7))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    page = text_of(staff.get("/staff/dashboard?month=2026-11"))
    assert "found 1 problem(s)" in page
    assert "The figures do not reconcile" in page
    assert "volunteers hold 130" in page


def test_a_staff_member_sees_only_their_community(client, history, make_community,
                                                  make_staff, make_volunteer):
    other = make_community()
    make_volunteer(other, points=999)
    page = enter_as(client, make_staff(other)).get("/staff/dashboard")
    assert page.status_code == 200
    text = text_of(page)
    # Funded today: this month's figures, not November's.
    assert "999 points issued" in text and "999 points outstanding" in text
    assert "社区爱心超市" not in text
    assert client.get("/admin/dashboard").status_code == 403
    assert client.get(f"/admin/communities/{history[0].id}/dashboard").status_code == 403


def test_the_district_dashboard_puts_communities_side_by_side_with_totals(
        client, history, make_community, make_volunteer, make_admin):
    place, *_ = history
    other = make_community()
    make_volunteer(other, points=70)
    page = enter_as(client, make_admin()).get("/admin/dashboard?month=2026-12")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = {name: cells for name, cells in re.findall(
        r'<th scope="row"><a [^>]*>([^<]+)</a></th>(.*?)</tr>', html, re.S)}
    cells = re.findall(r"<td>([^<]*)</td>", rows[place.community.name])
    # This month, then the year: issued, redeemed, expired; outstanding; volunteers ...
    assert cells[3:7] == ["190", "40", "20", "130"]
    assert re.findall(r"<td>([^<]*)</td>", rows[other.community.name])[6] == "70"
    assert cells[-1] == "✓"
    # Totals are the sum over every community the district has (other tests' too).
    footer = re.search(r"<tfoot>(.*?)</tfoot>", html, re.S).group(1)
    ids = [c.id for c in figures.communities(db.session)]
    outstanding = sum(figures.reconciliation(db.session, ids)[c].held for c in ids)
    assert re.findall(r"<td>([^<]*)</td>", footer)[6] == f"{outstanding:,}"
    # The admin opens any community's own dashboard from its row.
    assert enter_as(client, make_admin()).get(
        f"/admin/communities/{place.id}/dashboard").status_code == 200
    assert client.get("/admin/communities/999999/dashboard").status_code == 404


def test_the_merchant_report_counts_each_day_from_the_ledger(client, history, make_shop):
    place, _ann, _bob, shop = history
    found = figures.merchant_figures(db.session, shop.id, today=date(2026, 11, 30))
    by_day = {d.day: (d.redemptions, d.points, d.refunded) for d in found.days if d.redemptions
              or d.refunded}
    assert by_day == {date(2026, 11, 5): (2, 80, 0), date(2026, 11, 6): (0, 0, 40)}
    assert [(i.name, i.count, i.points) for i in found.items] == [("大米 5kg", 1, 40)]
    assert (found.received, found.settled, found.unsettled) == (40, 0, 40)
    assert found.reconciles
    page = enter_as(client, shop.user).get("/counter/report")
    assert page.status_code == 200
    assert "40 points received 0 points settled 40 points waiting for settlement" in text_of(page)
    other = make_shop(place)
    assert "40 points waiting" not in text_of(enter_as(client, other.user).get("/counter/report"))


def test_a_volunteers_year_in_review(client, history, make_volunteer):
    place, ann, bob, _shop = history
    review = figures.year_in_review(db.session, ann, 2026)
    assert (review.points_in, review.points_out) == (100 + 15 + 40, 80)
    assert [(r.name, r.count, r.points) for r in review.redeemed] == [("大米 5kg", 1, 40)]
    page = enter_as(client, ann.user).get("/me/year?year=2026")
    assert page.status_code == 200
    assert "155 points in 80 points out" in text_of(page)
    other = text_of(enter_as(client, bob.user).get("/me/year?year=2026"))
    assert "大米 5kg" not in other
    assert client.get("/me/year?year=1999").status_code == 404


def test_pages_speak_chinese_by_default(client, history, make_staff):
    place, *_ = history
    page = enter_as(client, make_staff(place), lang="zh_CN").get("/staff/dashboard")
    assert "积分" in text_of(page)
    assert "points issued" not in text_of(page)


def test_a_bad_month_is_refused(client, history, make_staff):
    place, *_ = history
    staff = enter_as(client, make_staff(place))
    for month in ("2026-13", "last", "2026-1-1"):
        assert staff.get(f"/staff/dashboard?month={month}").status_code == 400


def test_charts_scale_numbers_and_escape_labels():
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 11, 180, 2001)] == [
        0, 1, 5, 10, 20, 200, 5000]
    assert [charts.short(v) for v in (999, 1200, 3_500_000, -2000)] == [
        "999", "1.2k", "3.5M", "-2k"]
    svg = str(charts.hbars("t", ["<script>"], [charts.Series("s", [5], "c")]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_active_and_new_volunteers_are_counted_per_community(make_community, make_volunteer):
    from datetime import timedelta

    from ledger.clock import utcnow

    first, second = make_community(), make_community()
    a, b, c = (make_volunteer(first) for _ in range(3))
    d = make_volunteer(second)
    now = utcnow()
    for place, who, days in ((first, a, 10), (first, b, 60), (first, a, 70), (second, d, 5)):
        awards.create_batch(db.session, place.id, [awards.Line(who.id, 5, 1)],
                            key=f"t{serial()}", by=None, title="巡查", type_code="task",
                            now=now - timedelta(days=days))
    db.session.commit()
    months = figures.months_ending(local_today(), 2)
    found = figures.people_of(db.session, [first.id, second.id], months, now=now)
    assert (found[first.id].total, found[first.id].active_30, found[first.id].active_90) == (
        3, 1, 2)
    assert (found[second.id].total, found[second.id].active_30) == (1, 1)
    assert found[first.id] == figures.people(db.session, first.id, months, now=now)
