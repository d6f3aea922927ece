"""Fixtures for the staff volunteer pages: two communities, their staff, a signed-in client.

Import the fixtures a module needs (`from volunteer_staff import place, staff, ...`).
Rows are written through the app's db.session and committed (a savepoint of the test's
rolled-back transaction) so that requests see them.
"""

import csv
import io
import itertools
import re
from dataclasses import dataclass
from datetime import date

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from pointsmall.auth.models import User
from pointsmall.core.audit import AuditEntry
from pointsmall.extensions import db
from pointsmall.people import communities, service
from pointsmall.people.communities import Community, Grid
from pointsmall.people.models import Volunteer

PASSWORD = "staff-password-1"
# The app hashes slowly on purpose; test users get a quick hash of the same kind of check.
QUICK_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
HEADER_ZH = ["姓名", "手机号", "微网格", "加入日期", "是否上榜"]
_serial = itertools.count(1)


@dataclass
class Place:
    """A community with grid 一网格 and its micro-grids 1栋 and 2栋."""

    community: Community
    grid: Grid
    micro: Grid
    micro2: Grid

    @property
    def id(self) -> int:
        return self.community.id


def build_place(name: str) -> Place:
    community = communities.create_community(db.session, name)
    grid = communities.create_grid(db.session, community.id, "一网格")
    micro = communities.create_grid(db.session, community.id, "1栋", grid.id)
    micro2 = communities.create_grid(db.session, community.id, "2栋", grid.id)
    db.session.commit()
    return Place(community, grid, micro, micro2)


def build_staff(place: Place, username: str) -> User:
    user = User(username=username, name=f"工作人员{username}", role="staff",
                community_id=place.id, password_hash=QUICK_HASH)
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def place(app) -> Place:
    return build_place("阳光社区")


@pytest.fixture
def other_place(app) -> Place:
    return build_place("锦华社区")


@pytest.fixture
def staff(place) -> User:
    return build_staff(place, "staff_a")


@pytest.fixture
def no_csrf(app, monkeypatch):
    """Turn CSRF checks off for this test only: the app is shared by the whole session."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)


@pytest.fixture
def as_staff(client, staff, no_csrf):
    """A client signed in as staff of `place`."""
    assert sign_in(client, staff.username).status_code == 302
    return client


@pytest.fixture
def make_volunteer(app, place):
    def build(name: str | None = None, phone: str | None = None, *, grid: Grid | None = None,
              status: str = "active", on: Place | None = None) -> Volunteer:
        n = next(_serial)
        target = on or place
        volunteer, _ = service.create_volunteer(db.session, target.id, {
            "name": name or f"志愿者{n:03d}", "phone": phone or f"137{n:08d}",
            "grid_id": (grid or target.micro).id, "joined_on": date(2023, 3, 1),
        }, password_hash=QUICK_HASH, audit_it=False)
        if status != "active":
            service.set_status(db.session, volunteer, status)
        db.session.commit()
        return volunteer

    return build


def sign_in(client, login: str, password: str = PASSWORD):
    """Sign in through the form, with the CSRF token when the app checks it."""
    page = client.get("/login")
    data = {"login": login, "password": password}
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post("/login", data=data)


def csrf_token(html: str) -> str:
    tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', html)
    assert tag, "the page has no CSRF token"
    return re.search(r'value="([^"]+)"', tag.group(0)).group(1)


def csv_bytes(rows: list[list], *, header: list[str] = HEADER_ZH,
              encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode(encoding)


def upload(client, data: bytes, filename: str = "volunteers.csv", **extra):
    return client.post("/staff/volunteers/import", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename), **extra})


def volunteer_count(community_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(Volunteer)
    if community_id is not None:
        query = query.where(Volunteer.community_id == community_id)
    return db.session.scalar(query)


def audit_actions(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


def text(response) -> str:
    return response.get_data(as_text=True)
