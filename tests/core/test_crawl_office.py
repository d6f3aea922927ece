"""Every link the office can reach answers: a crawl from the staff and admin home pages
that follows each same-site link (pages, exports, reports, printouts) and fails on any
4xx or 5xx. (The volunteer's and merchant's crawl is another file's.)"""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urljoin, urlparse

import pytest

from ledger.clock import utcnow
from pointsmall.core import clock
from pointsmall.earning import activities, awards, tiers
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from tests.builders import enter_session

LINK = re.compile(r'<a\b[^>]*\bhref="([^"#]*)', re.IGNORECASE)
MAX_PAGES = 400
# Month and page links lead on forever; a few of each path show whether they answer.
QUERIES_PER_PATH = 4


@pytest.fixture
def office_world(make_community, make_staff, make_volunteer, make_shop, make_item, redeem):
    """A community with some of everything the office pages list."""
    place = make_community()
    staff, checker = make_staff(place), make_staff(place)
    volunteer = make_volunteer(place, name="王芳", points=200)
    redeem(volunteer, make_item(make_shop(place), name="东北大米", price=20))
    kind = activity_types(db.session, place.id)[0]
    now = utcnow()
    activity = activities.create_activity(db.session, place.id, {
        "type_id": kind.id, "title": "河道巡查", "starts_at": now - timedelta(hours=3),
        "ends_at": now - timedelta(hours=1)}, by=staff.id)
    activities.mark_present(db.session, activity, [volunteer.id])
    awards.award_activity(db.session, activity, None, key="crawl", by=staff.id)
    awards.create_batch(db.session, place.id, [awards.Line(volunteer.id, 6000, 0)],
                        key="crawl-big", by=checker.id, title="大额奖励", type_code=kind.code)
    awards.adjust(db.session, place.id, volunteer.id, 6000, reason="年度表彰", key="crawl",
                  by=checker.id)
    tiers.evaluate(db.session, place.id, "2026 年度", clock.local_today() - timedelta(days=30),
                   clock.local_today(), by=staff.id)
    db.session.commit()
    return staff


def crawl(client, start: str = "/") -> dict[str, int]:
    """Visit every same-site link reachable from `start`; return each URL's status."""
    seen: dict[str, int] = {}
    per_path: dict[str, int] = {}
    queue = [start]
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        answer = client.get(url)
        body = answer.get_data()  # a streamed export is read to its end
        seen[url] = answer.status_code
        if answer.status_code in (301, 302, 303):
            queue.append(urlparse(answer.headers["Location"]).path)
            continue
        if "text/html" not in answer.content_type:
            continue
        for href in LINK.findall(body.decode("utf-8")):
            target = urlparse(urljoin("http://localhost" + url, unescape(href)))
            if target.netloc not in ("", "localhost") or target.path.startswith(
                    ("/lang/", "/static/")):
                continue
            local = target.path + (f"?{target.query}" if target.query else "")
            if local not in seen and local not in queue and per_path.get(
                    target.path, 0) < QUERIES_PER_PATH:
                per_path[target.path] = per_path.get(target.path, 0) + 1
                queue.append(local)
    return seen


def failures(seen: dict[str, int]) -> dict[str, int]:
    return {url: status for url, status in seen.items() if status >= 400}


def test_every_link_reachable_from_the_staff_home_page_answers(client, office_world):
    enter_session(client, office_world)

    seen = crawl(client)

    assert failures(seen) == {}
    assert len(seen) > 30  # the crawl went through the menu and beyond
    assert any(url.startswith("/staff/adjustments/") for url in seen)
    assert any(url.startswith("/staff/volunteers/") for url in seen)


def test_every_link_reachable_from_the_admin_home_page_answers(client, office_world,
                                                              make_admin):
    enter_session(client, make_admin())

    seen = crawl(client)

    assert failures(seen) == {}
    assert any(url.startswith("/admin/audit") for url in seen)
    assert any("/rules" in url for url in seen)
