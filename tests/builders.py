"""Builders for app tests: communities with grids, people, tokens, sign-in helpers.

The fixtures (make_community, make_staff, make_volunteer, ...) are loaded for every module
by conftest. They build through the app's db.session, which the `app` fixture joins to
the test's rolled-back transaction, and commit (a savepoint) so that requests see the
rows. The build_* functions do the same for fixtures of a wider scope.
"""

import itertools
import re
from dataclasses import dataclass
from datetime import date

import pytest
from werkzeug.security import generate_password_hash

import ledger
from merchants import items
from merchants.models import Merchant
from pointsmall.auth import service as auth_service
from pointsmall.auth.models import User
from pointsmall.extensions import db
from pointsmall.people import communities
from pointsmall.people import service as volunteers
from pointsmall.people.communities import Community, Grid
from pointsmall.people.models import Volunteer

PASSWORD = "right-password-1"
# The app hashes slowly on purpose (scrypt); test users get a quick hash to check.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_serial = itertools.count(1)


def serial() -> int:
    return next(_serial)


def new_phone() -> str:
    return f"139{serial():08d}"


@dataclass
class Place:
    """A community with one grid and one micro-grid under it."""

    community: Community
    grid: Grid
    micro: Grid

    @property
    def id(self) -> int:
        return self.community.id


def build_community(name: str | None = None) -> Place:
    """Create a community with a grid and a micro-grid under it."""
    n = serial()
    community = communities.create_community(db.session, name or f"测试社区{n}")
    grid = communities.create_grid(db.session, community.id, f"{community.name}网格{n}")
    micro = communities.create_grid(db.session, community.id, f"{community.name}微网格{n}",
                                    grid.id)
    db.session.commit()
    return Place(community, grid, micro)


def _user(role: str, *, username: str | None, name: str | None, **scope) -> User:
    n = serial()
    user = User(username=username or f"{role}{n}", name=name or f"{role} {n}", role=role,
                password_hash=PASSWORD_HASH, **scope)
    db.session.add(user)
    db.session.commit()
    return user


def build_staff(place: Place, *, username: str | None = None, name: str | None = None) -> User:
    return _user("staff", username=username, name=name, community_id=place.id)


def build_admin(*, username: str | None = None) -> User:
    return _user("admin", username=username, name=None)


def build_merchant_staff(place: Place, *, merchant: Merchant | None = None,
                         username: str | None = None) -> User:
    """Create merchant staff, of `merchant` or of a new merchant of the community."""
    merchant = merchant or items.create_merchant(db.session, place.id,
                                                 name=f"测试商户{serial()}")
    return _user("merchant", username=username, name=None, merchant_id=merchant.id)


def build_volunteer(place: Place, *, name: str | None = None, phone: str | None = None,
                    username: str | None = None, points: int = 0, merit: int = 0,
                    status: str = "active") -> Volunteer:
    """Create a volunteer in the community's micro-grid, funded with points and merit."""
    volunteer, _ = volunteers.create_volunteer(
        db.session, place.id,
        {"name": name or f"志愿者{serial()}", "phone": phone or new_phone(),
         "grid_id": place.micro.id, "joined_on": date(2023, 3, 1)},
        username=username, password_hash=PASSWORD_HASH, audit_it=False)
    legs = []
    for asset, amount in (("POINTS", points), ("MERIT", merit)):
        if amount:
            legs += [ledger.Leg(place.community.account(asset), -amount),
                     ledger.Leg(volunteer.account(asset), amount)]
    if legs:
        ledger.transfer(db.session, legs, key=f"test:award:{volunteer.id}", kind="award")
    if status != "active":
        volunteers.set_status(db.session, volunteer, status)
    db.session.commit()
    return volunteer


@pytest.fixture
def make_community(app):
    return build_community


@pytest.fixture
def make_staff(app):
    return build_staff


@pytest.fixture
def make_admin(app):
    return build_admin


@pytest.fixture
def make_merchant_staff(app):
    return build_merchant_staff


@pytest.fixture
def make_volunteer(app):
    return build_volunteer


def bearer(user: User) -> dict[str, str]:
    """Issue a token for `user` and return the header that sends it."""
    _, raw = auth_service.create_token(db.session, user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def csrf_token(html: str) -> str:
    """Return the CSRF token of the (first) form in a page."""
    tag = re.search(r'<input[^>]*name="(?:\w+-)?csrf_token"[^>]*>', html)
    assert tag, "the page has no CSRF token"
    return re.search(r'value="([^"]+)"', tag.group(0)).group(1)


def sign_in(client, login: str, password: str = PASSWORD, **environ):
    """Sign in through the sign-in form, CSRF token and all; return the response."""
    page = client.get("/login")
    data = {"login": login, "password": password}
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post("/login", data=data, environ_base=environ)


def enter_session(client, user: User) -> None:
    """Start a signed-in page session for `user` without the sign-in form (fast)."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
