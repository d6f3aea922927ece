
"""The tests' one set of builders: places, people, shops, items, redemptions, activities and
tasks; signing in; and reading back what a user notices (balances, pages, audit rows).

conftest loads this module as a plugin, so its fixtures reach every test: the make_* builders
and the common world (place, staff, volunteer, shop, noodles), which a test module or a
folder's conftest may shape otherwise. The build_* functions serve fixtures of a wider scope
and worlds built by hand. Rows are written through the app's db.session, which the `app`
fixture joins to the test's rolled-back transaction, and committed (a savepoint) so that
requests see them.
"""

import io
import itertools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from pypdf import PdfReader
from werkzeug.security import generate_password_hash

import ledger
from merchants import items, redemptions
from merchants.models import Item, Merchant, Redemption
from pointsmall.auth import service as auth_service
from pointsmall.auth.models import User
from pointsmall.core import clock
from pointsmall.core.audit import AuditEntry
from pointsmall.earning import activities
from pointsmall.earning.models import Activity, Attendance
from pointsmall.earning.rules import activity_type
from pointsmall.extensions import db
from pointsmall.market.actions import redeemer_for
from pointsmall.people import communities
from pointsmall.people import service as volunteers
from pointsmall.people.communities import Community, Grid
from pointsmall.people.models import Volunteer
from pointsmall.tasks import board

PASSWORD = "right-password-1"
# The app hashes slowly on purpose (scrypt); test users get a quick hash to check.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_serial = itertools.count(1)


def serial() -> int:
    return next(_serial)


def new_phone() -> str:
    return f"139{serial():08d}"


# --- places and people ----------------------------------------------------------------


@dataclass
class Place:
    """A community with a grid, a micro-grid under it and, when asked for, a second one."""

    community: Community
    grid: Grid
    micro: Grid
    micro2: Grid | None = None

    @property
    def id(self) -> int:
        return self.community.id


def build_community(name: str | None = None, *, grid: str | None = None,
                    micro: str | None = None, micro2: str | None = None) -> Place:
    """Create a community with a grid and a micro-grid under it (and `micro2` if named)."""
    n = serial()
    community = communities.create_community(db.session, name or f"测试社区{n}")
    parent = communities.create_grid(db.session, community.id,
                                     grid or f"{community.name}网格{n}")
    micros = [communities.create_grid(db.session, community.id, grid_name, parent.id)
              for grid_name in (micro or f"{community.name}微网格{n}", micro2) if grid_name]
    db.session.commit()
    return Place(community, parent, *micros)


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
                         username: str | None = None, name: str | None = None) -> User:
    """Create merchant staff, of `merchant` or of a new merchant of the community."""
    merchant = merchant or items.create_merchant(db.session, place.id,
                                                 name=f"测试商户{serial()}")
    return _user("merchant", username=username, name=name, merchant_id=merchant.id)


def build_volunteer(place: Place, *, name: str | None = None, phone: str | None = None,
                    grid: Grid | None = None, username: str | None = None, points: int = 0,
                    merit: int = 0, status: str = "active") -> Volunteer:
    """Create a volunteer in the place's micro-grid (or `grid`), funded with points and merit."""
    volunteer, _ = volunteers.create_volunteer(
        db.session, place.id,
        {"name": name or f"志愿者{serial()}", "phone": phone or new_phone(),
         "grid_id": (grid or place.micro).id, "joined_on": date(2023, 3, 1)},
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


# --- the marketplace --------------------------------------------------------------------


@dataclass
class Shop:
    """A merchant and one of its staff users."""

    merchant: Merchant
    user: User

    @property
    def id(self) -> int:
        return self.merchant.id


def build_shop(place: Place, *, kind: str = "partner", name: str | None = None) -> Shop:
    """Create a merchant of the community and a staff user of it named after the shop."""
    merchant = items.create_merchant(db.session, place.id, kind=kind,
                                     name=name or f"老街牛肉面{serial()}")
    user = _user("merchant", username=f"shop{serial()}", name=merchant.name,
                 merchant_id=merchant.id)
    return Shop(merchant, user)


def build_item(shop: Shop, **fields) -> Item:
    item = items.create_item(db.session, shop.id,
                             {"name": f"招牌牛肉面{serial()}", "price": 30, "stock": 5,
                              "category": "food", **fields})
    db.session.commit()
    return item


def build_redemption(volunteer: Volunteer, item: Item, quantity: int = 1, *,
                     now: datetime | None = None) -> Redemption:
    """Reserve through the service (optionally at another moment), as the mall would."""
    now = now or clock.utcnow()
    today = clock.to_local(now).date()
    redemption = redemptions.reserve(
        db.session, redeemer_for(volunteer), item.id, quantity, key=f"test:{serial()}",
        now=now, today=today, month_start=clock.local_month_bounds(today)[0])
    db.session.commit()
    return redemption


# --- earning and the task board ---------------------------------------------------------


def build_activity(place: Place, *, title: str = "环境整治", points: int = 20, merit: int = 20,
                   starts: datetime | None = None, hours: int = 2, capacity: int | None = None,
                   code: str = "service") -> Activity:
    """Create an activity of the place that began ten minutes ago (or `starts`)."""
    starts = starts or clock.utcnow() - timedelta(minutes=10)
    activity = activities.create_activity(db.session, place.id, {
        "type_id": activity_type(db.session, place.id, code).id, "title": title,
        "place": "社区广场", "starts_at": starts, "ends_at": starts + timedelta(hours=hours),
        "points": points, "merit": merit, "capacity": capacity}, by=None)
    db.session.commit()
    return activity


def mark_present(activity: Activity, *people: Volunteer) -> None:
    activities.mark_present(db.session, activity, [v.id for v in people])
    db.session.commit()


def build_task(place: Place, staff: User, *, grid=None, points=20, merit=None, people=1,
               hours="2", photo_required=False, mode="open", deadline=None,
               title="清理楼道杂物"):
    """Publish a task for the place's micro-grid (or `grid`)."""
    task = board.publish_task(db.session, place.id, {
        "title": title, "description": "三楼楼道", "place": "1栋",
        "grid_id": (grid or place.micro).id,
        "points": points, "merit": points if merit is None else merit, "people": people,
        "hours": hours, "deadline": deadline or clock.utcnow() + timedelta(days=2),
        "photo_required": photo_required, "mode": mode}, actor=staff)
    db.session.commit()
    return task


def build_done(task, volunteer: Volunteer, note: str = "清理完毕"):
    """Have `volunteer` claim and finish `task`; return the assignment."""
    board.claim_task(db.session, volunteer, task.id)
    row = board.finish_task(db.session, volunteer, task.id, note=note)
    db.session.commit()
    return row


# --- the builders as fixtures, and the world most tests start from ----------------------


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


@pytest.fixture
def make_shop(app):
    return build_shop


@pytest.fixture
def make_item(app):
    return build_item


@pytest.fixture
def redeem(app):
    return build_redemption


@pytest.fixture
def make_activity(app, place):
    """Build activities of the test's place, or of `community`."""
    def build(community: Place | None = None, **options) -> Activity:
        return build_activity(community or place, **options)
    return build


@pytest.fixture
def make_task(app):
    return build_task


@pytest.fixture
def make_done(app):
    return build_done


@pytest.fixture
def place(make_community):
    return make_community()


@pytest.fixture
def staff(place, make_staff):
    return make_staff(place)


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, name="张三", points=100)


@pytest.fixture
def shop(place, make_shop):
    return make_shop(place, name="老街牛肉面")


@pytest.fixture
def noodles(shop, make_item):
    return make_item(shop, name="招牌牛肉面", price=30, stock=5)


@pytest.fixture
def activity(make_activity):
    return make_activity()


# --- signing in -------------------------------------------------------------------------


@pytest.fixture
def no_csrf(app, monkeypatch):
    """Turn CSRF checks off for this test only: the app is shared by the whole session."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)


@pytest.fixture
def ledger_stays_consistent(app):
    """After the test, every ledger invariant still holds (use with
    `pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")`)."""
    yield
    report = ledger.verify(db.session)
    assert report.ok, [str(v) for v in report.violations]


def enter_as(client, user: User, lang: str = "en"):
    """Sign `user` in on `client` (no password round trip), pages in `lang`."""
    client.set_cookie("lang", lang)
    enter_session(client, user)
    return client


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


def bearer(user: User) -> dict[str, str]:
    """Issue a token for `user` and return the header that sends it."""
    _, raw = auth_service.create_token(db.session, user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def ask_token(client, login: str, password: str = PASSWORD, *, address: str | None = None):
    """Ask the API for a token with a username (or phone) and password, from `address`."""
    environ = {"REMOTE_ADDR": address} if address else {}
    return client.post("/api/v1/auth/tokens", json={"username": login, "password": password},
                       environ_base=environ)


# --- reading back -----------------------------------------------------------------------


def text(response) -> str:
    return response.get_data(as_text=True)


def points(volunteer: Volunteer) -> int:
    return ledger.balance(db.session, volunteer.account("POINTS")).posted


def merit(volunteer: Volunteer) -> int:
    return ledger.balance(db.session, volunteer.account("MERIT")).posted


def count(model, place) -> int:
    """Count a community's rows (committed rows of other tests may share the database)."""
    community_id = getattr(place, "id", place)
    query = sa.select(sa.func.count()).select_from(model)
    if model is Attendance:
        query = query.join(Activity, Activity.id == Attendance.activity_id)
        model = Activity
    return db.session.scalar(query.where(model.community_id == community_id))


def volunteer_count(community_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(Volunteer)
    if community_id is not None:
        query = query.where(Volunteer.community_id == community_id)
    return db.session.scalar(query)


def audit_actions(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


def pdf_text(data: bytes) -> str:
    """The PDF's text without white space (pypdf reads the two-byte codes of fpdf2's CID font
    as NUL + character, poppler as the character: drop the NULs)."""
    pages = PdfReader(io.BytesIO(data)).pages
    return re.sub(r"[\s\x00]+", "", "".join(page.extract_text() for page in pages))


@contextmanager
def joined_to(app, connection: sa.Connection):
    """Push an app context whose db.session works in savepoints of `connection` (a test's
    transaction, rolled back after it)."""
    with app.app_context():
        engines = db.engines
        original = engines[None]
        engines[None] = connection
        db.session.remove()
        db.session.configure(join_transaction_mode="create_savepoint")
        try:
            yield app
        finally:
            db.session.remove()
            engines[None] = original
