"""The office's pages as staff read them (issue 16, points 1-10): a volunteer's points on
their staff page, the audit log in plain words and local time, the volunteer table. Pages
are read in Chinese, the default language."""

import re
from datetime import datetime

import sqlalchemy as sa

from pointsmall.core import audit
from pointsmall.core.audit import AuditEntry
from pointsmall.core.clock import local_today, next_month
from pointsmall.earning import awards
from pointsmall.extensions import db
from pointsmall.reports.models import LedgerCheck
from tests.builders import enter_session


def page_of(client, user, url: str) -> str:
    enter_session(client, user)
    answer = client.get(url)
    assert answer.status_code == 200, url
    return answer.get_data(as_text=True)


def plain(html: str) -> str:
    """The page's text without tags, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_staff_see_a_volunteers_balance_holds_merit_tier_history_and_adjustments(
        client, place, staff, make_volunteer, make_shop, make_item, redeem):
    volunteer = make_volunteer(place, name="王芳", points=100)
    awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 0, 350)], key="m",
                        by=None, title="年度服务", type_code="service")
    held = redeem(volunteer, make_item(make_shop(place), name="东北大米", price=20))
    awards.adjust(db.session, place.id, volunteer.id, 15, reason="补录培训", key="a1",
                  by=staff.id)
    db.session.commit()

    page = page_of(client, staff, f"/staff/volunteers/{volunteer.id}")

    assert re.search(r'data-testid="available">95<', page)  # 100 + 15 - 20 held
    assert re.search(r'data-testid="held">20<', page)
    assert re.search(r'data-testid="merit">350<', page)
    assert 'data-testid="tier">银牌<' in page  # 350 merit and 3 years' bonus: silver
    text = plain(page)
    assert "东北大米 × 1" in text and held.points == 20
    assert "补录培训" in text and "+15" in text
    assert "积分明细" in text and "可用积分" in text


def test_the_audit_log_reads_in_plain_chinese_in_beijing_time_and_filters_by_day(
        client, place, staff, make_admin, make_volunteer):
    volunteer = make_volunteer(place, name="李娜", phone="13911112222", points=10)
    awards.adjust(db.session, place.id, volunteer.id, -5, reason="扣回", key="k",
                  by=staff.id)
    entry = db.session.scalar(sa.select(AuditEntry).where(
        AuditEntry.action == "points.adjust", AuditEntry.community_id == place.id))
    entry.at, entry.actor_name = datetime(2026, 12, 1, 16, 30), "staff1"
    db.session.commit()
    admin = make_admin()

    page = page_of(client, admin, f"/admin/audit?community={place.id}&from=2026-12-02")

    text = plain(page)
    assert "时间（北京时间）" in text
    assert "2026-12-02 00:30:00" in text  # 16:30 UTC is half past midnight in Beijing
    assert "调整积分" in text and "points.adjust" not in text
    assert "李娜 (13911112222)" in text and f"volunteer:{volunteer.id}" not in text
    assert "原因: 扣回" in text and "\\u" not in page
    assert "staff1" in text
    earlier = plain(page_of(client, admin, f"/admin/audit?community={place.id}&to=2026-12-01"))
    assert "李娜 (13911112222)" not in earlier


def test_rows_without_an_operator_say_the_system_did_it(client, make_admin):
    audit.record(db.session, "community.create", "", actor=None)
    db.session.commit()

    assert "系统" in plain(page_of(client, make_admin(), "/admin/audit?action=community.create"))


def test_the_volunteer_table_sorts_by_points_filters_by_tier_and_exports_the_same_people(
        client, place, staff, make_volunteer):
    rich = make_volunteer(place, name="赵丽", points=900)
    make_volunteer(place, name="阿明", points=10)
    poor = make_volunteer(place, name="张三", points=0)
    awards.create_batch(db.session, place.id, [awards.Line(rich.id, 0, 700)], key="gold",
                        by=None, title="年度服务", type_code="service")
    db.session.commit()

    by_points = plain(page_of(client, staff, "/staff/volunteers?sort=-points"))
    assert by_points.index("赵丽") < by_points.index("阿明") < by_points.index("张三")
    by_name = plain(page_of(client, staff, "/staff/volunteers"))
    assert by_name.index("阿明") < by_name.index("张三") < by_name.index("赵丽")  # a, zh, zh
    gold = page_of(client, staff, "/staff/volunteers?tier=gold")
    assert "赵丽" in gold and "张三" not in gold
    assert "tier=gold" in re.search(r'href="([^"]+)"[^>]*data-testid="export-csv"', gold)[1]

    exported = client.get("/staff/volunteers/export.csv?tier=gold").get_data(as_text=True)
    assert "赵丽" in exported and "阿明" not in exported and "张三" not in exported
    low = client.get("/staff/volunteers/export.csv?max_points=5").get_data(as_text=True)
    assert poor.name in low and "赵丽" not in low


def test_after_a_failed_ledger_check_the_dashboard_does_not_also_say_the_figures_agree(
        client, place, staff, make_volunteer):
    make_volunteer(place, points=50)
    db.session.add(LedgerCheck(ok=False, violations=1, postings=10, detail="hash chain"))
    db.session.commit()

    page = plain(page_of(client, staff, "/staff/dashboard"))

    assert "请勿依据这些数字" in page
    assert "一致" not in page  # not beside the red warning


def test_the_dashboard_does_not_offer_a_month_that_has_not_begun(client, place, staff):
    page = page_of(client, staff, "/staff/dashboard")
    following = next_month(local_today())

    assert f"month={following:%Y-%m}" not in page


def test_staff_read_their_own_communitys_audit_log_and_no_other(
        client, place, staff, make_community, make_volunteer):
    ours = make_volunteer(place, name="李娜")
    theirs = make_volunteer(make_community(), name="赵敏")
    for volunteer, key in ((ours, "a"), (theirs, "b")):
        awards.adjust(db.session, volunteer.community_id, volunteer.id, 5, reason="补录",
                      key=key)
    db.session.commit()

    page = plain(page_of(client, staff, "/staff/audit"))

    assert "调整积分" in page and "李娜" in page
    assert "赵敏" not in page
