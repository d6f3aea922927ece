"""The office's pages as staff read them (issue 16, points 1-10): a volunteer's points on
their staff page, the audit log in plain words and local time, the volunteer table. Pages
are read in Chinese, the default language."""
# ruff: noqa: F811  (fixtures imported from market_builders)

import re

import pytest
from builders import enter_session
from market_builders import make_item, make_shop, redeem  # noqa: F401

from pointsmall.earning import awards
from pointsmall.extensions import db


@pytest.fixture
def place(make_community):
    return make_community()


@pytest.fixture
def staff(place, make_staff):
    return make_staff(place)


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
