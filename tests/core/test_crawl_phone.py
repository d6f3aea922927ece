"""Every link a volunteer or a merchant can reach from their start page answers.

A crawl, as a curious user would do it: from the home page, follow every link, picture
and script on the site, page after page, and fail on any 4xx or 5xx. None of these links
is meant to be refused; browsers also ask for /favicon.ico on their own.
"""

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa

from merchants import redemptions
from merchants.models import Item
from pointsmall.auth.models import User
from pointsmall.cli import demo
from pointsmall.extensions import db
from pointsmall.market import actions
from pointsmall.people.models import Volunteer
from tests.builders import enter_session

# Links that do something rather than show something: the crawl does not follow them.
NOT_FOLLOWED = re.compile(r"^/(lang/|logout)")
MOST_PAGES = 400
# Month and page links lead on without end (last month has a last month): a few of each
# page's variants are enough to try its query handling.
VARIANTS_PER_PAGE = 4


class Links(HTMLParser):
    """Collect the same-site URLs a page links to or loads."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        url = attrs.get("href") if tag in ("a", "link") else (
            attrs.get("src") if tag in ("img", "script") else None)
        if url:
            self.found.append(url)


def crawl(client, start: list[str]) -> dict[str, int]:
    """Visit every same-site URL reachable from `start`; return each one's status."""
    seen: dict[str, int] = {}
    variants: dict[str, int] = {}
    queue = deque(start)
    while queue and len(seen) < MOST_PAGES:
        url = queue.popleft()
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        targets = []
        if response.status_code in (301, 302, 303, 307, 308):
            targets.append(response.headers["Location"])
        elif response.mimetype == "text/html":
            parser = Links()
            parser.feed(response.get_data(as_text=True))
            targets += parser.found
        for target in targets:
            parts = urlsplit(urljoin("http://localhost" + url, target))
            if parts.netloc not in ("", "localhost") or parts.scheme not in ("", "http"):
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if NOT_FOLLOWED.match(path) or path in seen or path in queue:
                continue
            variants[parts.path] = variants.get(parts.path, 0) + 1
            if variants[parts.path] <= VARIANTS_PER_PAGE:
                queue.append(path)
    assert len(seen) < MOST_PAGES, "the crawl did not end: a link makes links forever"
    return seen


@pytest.fixture(scope="module")
def crawl_app(own_app):
    """The demo in a database of its own. The demo seeds only an empty database, and the
    shared one may hold rows that tests of concurrent transactions committed for real."""
    with own_app("crawl") as app:
        yield app


@pytest.fixture
def app(crawl_app):
    with crawl_app.app_context():
        yield crawl_app
        db.session.remove()


@pytest.fixture
def demo_site(app, client, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path)
    demo.seed(db.session)
    # A code waiting at the counter: its page, with the QR code, is one of the links.
    volunteer = db.session.scalar(sa.select(Volunteer).join(User, Volunteer.user_id == User.id)
                                  .where(User.username == "vol2"))
    eggs = db.session.scalar(sa.select(Item).where(Item.name == "土鸡蛋 10 枚"))
    # One key: each test of the module meets the same waiting code (the database is kept).
    redemptions.reserve(db.session, actions.redeemer_for(volunteer), eggs.id, 1,
                        key="crawl:waiting-code")
    db.session.commit()
    return client


def signed_in(client, username: str):
    user = db.session.scalar(sa.select(User).where(User.username == username))
    enter_session(client, user)
    return client


@pytest.mark.parametrize("username", ["vol2", "merchant1", "market1"])
def test_every_link_reachable_from_the_home_page_answers(demo_site, username):
    statuses = crawl(signed_in(demo_site, username), ["/", "/favicon.ico"])
    broken = {url: status for url, status in statuses.items() if status >= 400}
    assert not broken, f"{username} meets broken links: {broken}"
    assert len(statuses) > 8  # the crawl went somewhere: the pages link to each other
